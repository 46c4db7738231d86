"""Compiled per-row loops (numba) behind :mod:`glamm.families.compiled`: the log-densities of
the count families and their zero-inflated and hurdle mixtures with two derivatives in the
count part's ``eta``, in one pass over the rows instead of some thirty NumPy calls.

Importing this module imports numba; :mod:`glamm.families.compiled` does so on first use
only and falls back to the NumPy code without it. Each function fills ``out`` (rows of a
preallocated array) and mirrors a NumPy method, which the tests compare it with:

- :func:`count_log_link`: ``Poisson.eta_derivatives`` / ``NegativeBinomial.eta_derivatives``
  at the log link;
- :func:`two_part`: ``ZeroInflated._evaluate_now`` for those count families.

Not public API.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_NEG_INF = -np.inf


@numba.njit(cache=True, error_model="numpy", inline="always")
def _count_row(y: float, mu: float, wt: float, const: float, shape: float, poisson: bool):
    """``(log f, d log f / d eta, d2 log f / d eta2)`` of one row at the log link (``mu =
    exp(eta)``), ``const`` the row's data constant: ``-lgamma(y + 1)`` (Poisson) or
    ``lgamma(y + shape) - lgamma(shape) - lgamma(y + 1)`` (negative binomial, size
    ``shape``)."""
    if poisson:
        if mu == math.inf or mu != mu:
            ll = _NEG_INF
        elif y == 0.0:
            ll = -mu + const
        else:
            ll = y * math.log(mu) - mu + const
        ll = wt * ll
        d1 = wt * (y - mu)
        d2 = -wt * mu
    else:
        th = shape
        d = th / (th + mu)
        if mu == math.inf or mu != mu or not mu > 0.0:
            ll = _NEG_INF
        else:
            ll = const - th * math.log1p(mu / th)
            if y != 0.0:
                ll += y * math.log(mu / (mu + th))
        ll = wt * ll
        d1 = wt * (y - mu) * d
        d2 = -wt * mu * (th + y) * d / (th + mu)
    if wt == 0.0:
        ll = 0.0
    return ll, d1, d2


@numba.njit(cache=True, error_model="numpy")
def count_log_link(y, mu, wt, const, shape, poisson, out):
    """Rows 0-2 of ``out``: the count family's log-density and its two ``eta``-derivatives
    (see :func:`_count_row`)."""
    for i in range(y.shape[0]):
        ll, d1, d2 = _count_row(y[i], mu[i], wt[i], const[i], shape, poisson)
        out[0, i] = ll
        out[1, i] = d1
        out[2, i] = d2


@numba.njit(cache=True, error_model="numpy", inline="always")
def _log1mexp(g: float) -> float:
    """``log(1 - exp(g))`` for ``g <= 0`` (Maechler's two branches)."""
    if g > -0.6931471805599453:
        return math.log(-math.expm1(g))
    return math.log1p(-math.exp(g))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _count_pair(y: float, mu: float, wt: float, const: float, shape: float, log_shape: float,
                poisson: bool):
    """:func:`_count_row` at ``y`` and at 0 together, sharing the logarithms:
    ``(log f(y), d1, d2, log f(0), g1, g2)``."""
    if poisson:
        lf, d1, d2 = _count_row(y, mu, wt, const, shape, poisson)
        g = -wt * mu if mu < math.inf else _NEG_INF
        if wt == 0.0:
            g = 0.0
        return lf, d1, d2, g, -wt * mu, -wt * mu
    th = shape
    d = th / (th + mu)
    g1 = -wt * mu * d
    g2 = g1 * d
    d1 = wt * (y - mu) * d
    d2 = -wt * mu * (th + y) * d / (th + mu)
    if mu == math.inf or mu != mu or not mu > 0.0:
        lf = g = _NEG_INF
    else:
        log_th_mu = math.log(th + mu)
        g = -th * (log_th_mu - log_shape)
        lf = const + g
        if y != 0.0:
            lf += y * (math.log(mu) - log_th_mu)
        lf *= wt
        g *= wt
    if wt == 0.0:
        lf = g = 0.0
    return lf, d1, d2, g, g1, g2


@numba.njit(cache=True, error_model="numpy", inline="always")
def _zero_share(lp: float, l1p: float, g: float):
    """Under zero inflation a zero's ``log(pi + (1 - pi) f(0))`` and the count part's share
    ``r = (1 - pi) f(0) / p(0)`` of it, from one exponential (``lp = log pi``, ``l1p =
    log(1 - pi)``, ``g = log f(0)``)."""
    b = l1p + g
    if lp == _NEG_INF:
        return b, 1.0
    if lp > b:
        e = math.exp(b - lp)
        return lp + math.log1p(e), e / (1.0 + e)
    e = math.exp(lp - b)
    return b + math.log1p(e), 1.0 / (1.0 + e)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _mixture_row(y: float, lp: float, l1p: float, lf: float, d1: float, d2: float, g: float,
                 g1: float, g2: float, hurdle: bool):
    """One row's mixture: ``(l, l_e, l_ee, r, q)``: the log-density and its two
    ``eta``-derivatives from the count part's pieces, with a zero's count share ``r`` (zero
    inflation) and a positive count's ``q = f(0) / (1 - f(0))`` (hurdle) for the callers'
    further derivatives (1 and 0 where they do not apply)."""
    if hurdle:
        if y == 0.0:
            return lp, 0.0, 0.0, 1.0, 0.0
        log_pos0 = _log1mexp(g)
        q = math.exp(g - log_pos0)
        return (l1p + lf - log_pos0, d1 + q * g1, d2 + q * g2 + q * (1.0 + q) * g1 * g1,
                1.0, q)
    if y == 0.0:
        lv, r = _zero_share(lp, l1p, g)
        return lv, r * g1, r * g2 + r * (1.0 - r) * g1 * g1, r, 0.0
    return l1p + lf, d1, d2, 1.0, 0.0


@numba.njit(cache=True, error_model="numpy")
def two_part(y, mu, wt, const, shape, poisson, log_pi, log_1m_pi, hurdle, out):
    """The zero-inflated (``hurdle`` false) or hurdle mixture of a count family, per row:
    ``out`` rows ``l, l_e, l_ee`` (the mixture's log-density and ``eta``-derivatives) and
    ``lf, g, d1, d2, g1, g2`` (the count family's ``log f(y)``, ``log f(0)`` and their
    derivatives), as ``ZeroInflated._mixture`` without ``zeta`` terms. A mean outside the
    count family's range (not finite, or negative) gives ``l = -inf``."""
    log_shape = math.log(shape) if not poisson else 0.0
    for i in range(y.shape[0]):
        yi, mi = y[i], mu[i]
        lf, d1, d2, g, g1, g2 = _count_pair(yi, mi, wt[i], const[i], shape, log_shape,
                                            poisson)
        lv, le, lee, _, _ = _mixture_row(yi, log_pi[i], log_1m_pi[i], lf, d1, d2, g, g1, g2,
                                         hurdle)
        if not (mi >= 0.0 and mi < math.inf):
            lv = _NEG_INF
        out[0, i] = lv
        out[1, i] = le
        out[2, i] = lee
        out[3, i] = lf
        out[4, i] = g
        out[5, i] = d1
        out[6, i] = d2
        out[7, i] = g1
        out[8, i] = g2


@numba.njit(cache=True, error_model="numpy")
def two_part_log_shape(y, mu, wt, const, psi_diff, shape, log_pi, log_1m_pi, hurdle, out):
    """The derivatives in ``log(size)`` of a negative binomial count part, at fixed ``eta``
    and ``zeta``, of the zero-inflated or hurdle mixture's log-density, its ``eta``-score and
    minus its second ``eta``-derivative (``out`` rows 0-2; :meth:`ZeroInflated.
    extra_derivatives`' column for the size). ``psi_diff`` is ``digamma(y + size) -
    digamma(size)`` per row. With ``s = size + mu`` the count part's pieces move by
    ``d log f / d size = psi_diff + log(size / s) + 1 - (size + y) / s``, ``d d1 = (y - mu) mu
    / s^2``, ``d d2 = -mu (2 size mu + y mu - y size) / s^3`` (at ``y = 0``: ``log(size / s) +
    mu / s``, ``-mu^2 / s^2``, ``-2 mu^2 size / s^3``), and the mixture's as its formulas'
    derivatives through ``g = log f(0)`` (:func:`two_part`)."""
    th = shape
    log_shape = math.log(th)
    for i in range(y.shape[0]):
        yi, mi, wi = y[i], mu[i], wt[i]
        lf, d1, d2, g, g1, g2 = _count_pair(yi, mi, wi, const[i], th, log_shape, False)
        s = th + mi
        a = log_shape - math.log(s)
        s2 = s * s
        s3 = s2 * s
        # derivatives in log(size): size times those in size, and the prior weight
        c = wi * th
        dg = c * (a + mi / s)
        dg1 = -c * mi * mi / s2
        dg2 = -2.0 * c * mi * mi * th / s3
        _, _, _, r, q = _mixture_row(yi, log_pi[i], log_1m_pi[i], lf, d1, d2, g, g1, g2,
                                     hurdle)
        if yi == 0.0:
            if hurdle:
                dl, dle, dlee = 0.0, 0.0, 0.0
            else:
                rr = r * (1.0 - r)
                dr = rr * dg
                dl = r * dg
                dle = dr * g1 + r * dg1
                dlee = (dr * g2 + r * dg2 + (1.0 - 2.0 * r) * dr * g1 * g1
                        + 2.0 * rr * g1 * dg1)
        else:
            dlf = c * (psi_diff[i] + a + 1.0 - (th + yi) / s)
            dd1 = c * (yi - mi) * mi / s2
            dd2 = -c * mi * (2.0 * th * mi + yi * mi - yi * th) / s3
            if hurdle:
                dq = q * (1.0 + q) * dg
                dl = dlf + q * dg
                dle = dd1 + dq * g1 + q * dg1
                dlee = (dd2 + dq * g2 + q * dg2 + dq * (1.0 + 2.0 * q) * g1 * g1
                        + 2.0 * q * (1.0 + q) * g1 * dg1)
            else:
                dl, dle, dlee = dlf, dd1, dd2
        out[0, i] = dl
        out[1, i] = dle
        out[2, i] = -dlee


@numba.njit(cache=True, error_model="numpy")
def two_part_zeta(y, mu, wt, const, shape, poisson, log_pi, log_1m_pi, hurdle, out):
    """The derivatives in the zero part's log-odds ``zeta`` at fixed ``eta`` (``out`` rows
    ``l_z``, ``l_ez``, ``l_eez``: of the log-density, the ``eta``-score and the second
    ``eta``-derivative; ``l_zz``, the second derivative in ``zeta``), as
    ``ZeroInflated._mixture(..., zeta_terms=True)``: a positive count has ``l_z = -pi``,
    ``l_zz = -pi (1 - pi)`` and no others; a zero ``1 - pi`` (hurdle) or ``(1 - r) - pi``,
    ``-r (1 - r) g'``, ``-r (1 - r) (g'' + (1 - 2 r) g'^2)`` and ``r (1 - r) - pi (1 - pi)``
    (zero inflation, ``r`` the count part's share of the zero's probability)."""
    log_shape = math.log(shape) if not poisson else 0.0
    for i in range(y.shape[0]):
        yi, mi = y[i], mu[i]
        lp, l1p = log_pi[i], log_1m_pi[i]
        pi = math.exp(lp)
        lz, lez, leez = -pi, 0.0, 0.0
        lzz = -pi * (1.0 - pi)
        if yi == 0.0:
            if hurdle:
                lz = 1.0 - pi
            else:
                _, _, _, g, g1, g2 = _count_pair(0.0, mi, wt[i], 0.0, shape, log_shape,
                                                 poisson)
                r = _zero_share(lp, l1p, g)[1]
                rr = r * (1.0 - r)
                lz = (1.0 - r) - pi
                lzz += rr
                lez = -rr * g1
                leez = -rr * (g2 + (1.0 - 2.0 * r) * g1 * g1)
        out[0, i] = lz
        out[1, i] = lez
        out[2, i] = leez
        out[3, i] = lzz


@numba.njit(cache=True, error_model="numpy", inline="always")
def _log_expit(z: float) -> float:
    """``log(1 / (1 + exp(-z)))`` without overflow."""
    if z >= 0.0:
        return -math.log1p(math.exp(-z))
    return z - math.log1p(math.exp(z))


@numba.njit(cache=True, error_model="numpy")
def two_part_joint(y, mu, wt, const, shape, poisson, zeta, hurdle, out):
    """The mixture's log-density as a function of both predictors, the count part's ``eta``
    (``mu = exp(eta)``) and the zero part's log-odds ``zeta`` per row (random effects in
    the zero part): ``out`` rows ``l, l_e, l_z, l_ee, l_ez, l_zz``, as
    ``ZeroInflated.joint_derivatives`` (:func:`two_part` and :func:`two_part_zeta` with
    ``pi = logistic(zeta)``)."""
    log_shape = math.log(shape) if not poisson else 0.0
    for i in range(y.shape[0]):
        yi, mi, zi = y[i], mu[i], zeta[i]
        lf, d1, d2, g, g1, g2 = _count_pair(yi, mi, wt[i], const[i], shape, log_shape,
                                            poisson)
        lp, l1p = _log_expit(zi), _log_expit(-zi)
        pi = math.exp(lp)
        ppi = pi * (1.0 - pi)
        lv, le, lee, r, _ = _mixture_row(yi, lp, l1p, lf, d1, d2, g, g1, g2, hurdle)
        lz, lez, lzz = -pi, 0.0, -ppi
        if yi == 0.0:
            if hurdle:
                lz = 1.0 - pi
            else:
                rr = r * (1.0 - r)
                lz = (1.0 - r) - pi
                lez = -rr * g1
                lzz = rr - ppi
        if not (mi >= 0.0 and mi < math.inf):
            lv = _NEG_INF
        out[0, i] = lv
        out[1, i] = le
        out[2, i] = lz
        out[3, i] = lee
        out[4, i] = lez
        out[5, i] = lzz


@numba.njit(cache=True, error_model="numpy", inline="always")
def _trigamma1(v: float) -> float:
    """``psi'(v)`` for ``v > 0``: the recurrence ``psi'(v) = psi'(v + 1) + 1 / v^2`` up to
    14, then the asymptotic series to ``v^-11`` (the first omitted term, ``691 / (2730
    v^13)``, is below 5e-15 relative there)."""
    acc = 0.0
    while v < 14.0:
        acc += 1.0 / (v * v)
        v += 1.0
    r = 1.0 / v
    r2 = r * r
    return acc + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r2 * (-1.0 / 30.0 + r2 * (
        1.0 / 42.0 + r2 * (-1.0 / 30.0 + r2 * (5.0 / 66.0)))))))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _digamma1(v: float) -> float:
    """``psi(v)`` for ``v > 0``: the recurrence ``psi(v) = psi(v + 1) - 1 / v`` up to 14,
    then ``log v - 1 / (2 v) - sum_k B_2k / (2k v^2k)`` to ``v^-10`` (the first omitted term,
    ``691 / (32760 v^12)``, is below 2e-15 there)."""
    acc = 0.0
    while v < 14.0:
        acc -= 1.0 / v
        v += 1.0
    r = 1.0 / v
    r2 = r * r
    return acc + math.log(v) - 0.5 * r - r2 * (1.0 / 12.0 - r2 * (1.0 / 120.0 - r2 * (
        1.0 / 252.0 - r2 * (1.0 / 240.0 - r2 * (1.0 / 132.0)))))


@numba.njit(cache=True, error_model="numpy")
def trigamma(x, out):
    """``out[i] = psi'(x[i])`` for ``x > 0`` (flat arrays), as
    ``glamm.families.extra.trigamma`` but with each element's own number of recurrence
    steps (:func:`_trigamma1`)."""
    for i in range(x.shape[0]):
        out[i] = _trigamma1(x[i])


#: counts up to this many use finite sums for the log-gamma, digamma and trigamma
#: differences of a negative binomial; larger ones the functions themselves
_SUM_LIMIT = 64.0


@numba.njit(cache=True, error_model="numpy")
def nbinom1(y, mu, wt, lfac, phi, out):
    """NB1 (size ``k = mu / phi``): ``out`` rows the log-density without the prior weights'
    zero rule (``glamm.families.extra_counts.NegativeBinomial1._loglik``), ``d log f / d mu`` and
    ``d2 log f / d mu2``, ``lfac`` the rows' ``-lgamma(y + 1)``. For a whole count ``y`` up
    to :data:`_SUM_LIMIT` the differences ``lgamma(y + k) - lgamma(k)``, ``digamma(y + k) -
    digamma(k)`` and ``trigamma(y + k) - trigamma(k)`` are the finite sums over ``k + j``,
    ``j < y`` (exact, and free of the cancellation the functions suffer at large ``k``).
    A mean that is not positive and finite gives ``-inf`` and NaN derivatives."""
    log1p_phi = math.log1p(phi)
    log_ratio = math.log(phi / (1.0 + phi))
    for i in range(y.shape[0]):
        yi, mi, wi = y[i], mu[i], wt[i]
        if not (mi > 0.0 and mi < math.inf):
            out[0, i] = _NEG_INF
            out[1, i] = math.nan
            out[2, i] = math.nan
            continue
        k = mi / phi
        if yi <= _SUM_LIMIT and yi == math.floor(yi):
            s0, s1, s2 = 0.0, 0.0, 0.0
            for j in range(int(yi)):
                kj = k + j
                s0 += math.log(kj)
                s1 += 1.0 / kj
                s2 -= 1.0 / (kj * kj)
        else:
            s0 = math.lgamma(yi + k) - math.lgamma(k)
            s1 = _digamma1(yi + k) - _digamma1(k)
            s2 = _trigamma1(yi + k) - _trigamma1(k)
        out[0, i] = wi * (s0 + lfac[i] - k * log1p_phi + yi * log_ratio)
        out[1, i] = wi / phi * (s1 - log1p_phi)
        out[2, i] = wi / (phi * phi) * s2


@numba.njit(cache=True, error_model="numpy")
def beta(y_log, y_log1m, mu, wt, phi, out):
    """Beta regression (precision ``phi``, ``a = mu phi``, ``b = (1 - mu) phi``): ``out``
    rows the log-density, its ``mu``-derivative and second derivative, from the rows'
    ``log y`` and ``log(1 - y)`` (``glamm.families.extra.Beta``). A mean outside (0, 1)
    gives ``-inf`` and NaN derivatives."""
    lg_phi = math.lgamma(phi)
    for i in range(mu.shape[0]):
        mi, wi = mu[i], wt[i]
        if not (mi > 0.0 and mi < 1.0):
            out[0, i] = _NEG_INF
            out[1, i] = math.nan
            out[2, i] = math.nan
            continue
        a, b = mi * phi, (1.0 - mi) * phi
        ly, l1y = y_log[i], y_log1m[i]
        out[0, i] = wi * (lg_phi - math.lgamma(a) - math.lgamma(b) + (a - 1.0) * ly
                          + (b - 1.0) * l1y)
        out[1, i] = wi * phi * (ly - l1y - _digamma1(a) + _digamma1(b))
        out[2, i] = -wi * phi * phi * (_trigamma1(a) + _trigamma1(b))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _gamma_ratio_terms(a: float, m: float):
    """``(lgamma(a + m) - lgamma(a), digamma(a + m) - digamma(a), trigamma(a + m) -
    trigamma(a))`` for ``a > 0`` and a whole ``m >= 0``: finite sums up to
    :data:`_SUM_LIMIT` terms, the functions beyond."""
    if m <= _SUM_LIMIT:
        s0, s1, s2 = 0.0, 0.0, 0.0
        for j in range(int(m)):
            aj = a + j
            s0 += math.log(aj)
            s1 += 1.0 / aj
            s2 -= 1.0 / (aj * aj)
        return s0, s1, s2
    return (math.lgamma(a + m) - math.lgamma(a), _digamma1(a + m) - _digamma1(a),
            _trigamma1(a + m) - _trigamma1(a))


@numba.njit(cache=True, error_model="numpy")
def betabinomial(n, k, const, mu, phi, out):
    """Beta-binomial (``k`` successes of ``n`` trials, probability ``~ Beta(mu phi, (1 - mu)
    phi)``): ``out`` rows the log-density (``const`` the rows' binomial coefficients), its
    ``mu``-derivative and second derivative (``glamm.families.extra.BetaBinomial``), the
    log-gamma differences as finite sums over the counts. A mean outside (0, 1) gives
    ``-inf`` and NaN derivatives."""
    for i in range(mu.shape[0]):
        mi = mu[i]
        if not (mi > 0.0 and mi < 1.0):
            out[0, i] = _NEG_INF
            out[1, i] = math.nan
            out[2, i] = math.nan
            continue
        a, b = mi * phi, (1.0 - mi) * phi
        ni, ki = n[i], k[i]
        ka0, ka1, ka2 = _gamma_ratio_terms(a, ki)
        kb0, kb1, kb2 = _gamma_ratio_terms(b, ni - ki)
        n0, _, _ = _gamma_ratio_terms(phi, ni)
        out[0, i] = const[i] + ka0 + kb0 - n0
        out[1, i] = phi * (ka1 - kb1)
        out[2, i] = phi * phi * (ka2 + kb2)


@numba.njit(cache=True, error_model="numpy")
def student_t(y, mu, wt, phi, df, const, out):
    """Student's t (scale ``sqrt(phi)``, ``df`` degrees of freedom, ``const`` the density's
    constant in ``df``): ``out`` rows the log-density, its ``mu``-derivative and second
    derivative (``glamm.families.extra.StudentT``)."""
    half_log_phi = 0.5 * math.log(phi)
    dphi = df * phi
    for i in range(y.shape[0]):
        wi = wt[i]
        r = y[i] - mu[i]
        r2 = r * r
        s = dphi + r2
        out[0, i] = wi * (const - half_log_phi - 0.5 * (df + 1.0) * math.log1p(r2 / dphi))
        out[1, i] = wi * (df + 1.0) * r / s
        out[2, i] = wi * (df + 1.0) * (r2 - dphi) / (s * s)


@numba.njit(cache=True, error_model="numpy")
def genpois(y, mu, wt, lfac, phi, out):
    """Generalized Poisson (``theta = mu / sqrt(phi)``, ``lambda = 1 - 1 / sqrt(phi)``):
    ``out`` rows the log-density (``lfac`` the rows' ``-lgamma(y + 1)``; ``-inf`` where
    ``theta + lambda y <= 0``), its ``mu``-derivative and second derivative
    (``glamm.families.extra_counts.GeneralizedPoisson``)."""
    s = math.sqrt(phi)
    lam = 1.0 - 1.0 / s
    for i in range(y.shape[0]):
        yi, wi = y[i], wt[i]
        theta = mu[i] / s
        inner = theta + lam * yi
        if inner > 0.0:
            ll = math.log(theta) - inner + lfac[i]
            if yi != 1.0:
                ll += (yi - 1.0) * math.log(inner)
            out[0, i] = wi * ll
        else:
            out[0, i] = _NEG_INF
        out[1, i] = wi / s * (1.0 / theta + (yi - 1.0) / inner - 1.0)
        out[2, i] = -wi / phi * (1.0 / (theta * theta) + (yi - 1.0) / (inner * inner))


#: the Tweedie kernel tabulates log-gamma (and digamma) over the union of the rows' windows
#: of ``j``; beyond this many entries it declines and the NumPy blocks run
_TWEEDIE_TABLE_LIMIT = 4_000_000


@numba.njit(cache=True, error_model="numpy")
def tweedie_series(y, phi, p, drop, max_terms, derivatives, out):
    """Dunn and Smyth's series as ``glamm.families.tweedie._series`` (the same window of
    ``j`` per row: ``j_max = y^(2 - p) / (phi (2 - p))`` plus or minus
    ``ceil(sqrt(2 drop j_max (1 + 1 / alpha)) + 10)``; a row whose window is wider than
    ``max_terms`` gets NaN): ``out`` rows ``log(sum_j W_j)`` and, with ``derivatives``, its
    derivatives in ``log(phi)`` and in ``p``, for ``y > 0``. Returns false (nothing
    filled) when the table of ``lgamma(j + 1) + lgamma(alpha j)`` over all windows would be
    too large."""
    n = y.shape[0]
    alpha = (2.0 - p) / (p - 1.0)
    log_pm1 = math.log(p - 1.0)
    log_phi = math.log(phi)
    c = -alpha * log_pm1 - (1.0 + alpha) * log_phi - math.log(2.0 - p)
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    k0 = np.int64(-1)
    k1 = np.int64(-1)
    for i in range(n):
        jmax = max(1.0, y[i] ** (2.0 - p) / (phi * (2.0 - p)))
        half = math.ceil(math.sqrt(2.0 * drop * jmax * (1.0 + 1.0 / alpha)) + 10.0)
        a = max(1.0, math.floor(jmax) - half)
        b = math.floor(jmax) + half
        if b - a + 1.0 > max_terms:
            lo[i] = -1
            continue
        lo[i] = np.int64(a)
        hi[i] = np.int64(b)
        if k0 < 0 or lo[i] < k0:
            k0 = lo[i]
        if hi[i] > k1:
            k1 = hi[i]
    size = k1 - k0 + 1 if k0 >= 0 else 0
    if size > _TWEEDIE_TABLE_LIMIT:
        return False
    lg = np.empty(size)
    psi = np.empty(size if derivatives else 0)
    for t in range(size):
        kf = float(k0 + t)
        lg[t] = math.lgamma(kf + 1.0) + math.lgamma(alpha * kf)
        if derivatives:
            psi[t] = _digamma1(alpha * kf)
    dalpha = -1.0 / (p - 1.0) ** 2
    for i in range(n):
        if lo[i] < 0:
            out[0, i] = np.nan
            if derivatives:
                out[1, i] = np.nan
                out[2, i] = np.nan
            continue
        log_y = math.log(y[i])
        logz = alpha * log_y + c
        top = -math.inf
        for jj in range(lo[i], hi[i] + 1):
            term = jj * logz - lg[jj - k0]
            if term > top:
                top = term
        total = 0.0
        sj = 0.0
        sjpsi = 0.0
        for jj in range(lo[i], hi[i] + 1):
            wgt = math.exp(jj * logz - lg[jj - k0] - top)
            total += wgt
            if derivatives:
                sj += wgt * jj
                sjpsi += wgt * jj * psi[jj - k0]
        out[0, i] = top + math.log(total)
        if derivatives:
            mean_j = sj / total
            dlogz = (dalpha * (log_y - log_pm1 - log_phi) - alpha / (p - 1.0)
                     + 1.0 / (2.0 - p))
            out[1, i] = -(1.0 + alpha) * mean_j
            out[2, i] = mean_j * dlogz - dalpha * sjpsi / total
    return True

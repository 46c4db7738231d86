"""Zero-inflated and hurdle count models (glmmTMB's ``ziformula``), as a family with a second
linear predictor.

With ``pi_i = logistic(Z_i gamma)`` (``Z`` the design of ``ziformula``) and ``f`` the count
family (Poisson or negative binomial, mean ``mu = exp(eta)``):

- zero inflation: ``p(0) = pi + (1 - pi) f(0)``, ``p(y) = (1 - pi) f(y)`` for ``y > 0``;
- hurdle (glmmTMB's ``truncated_*`` families): ``p(0) = pi``, ``p(y) = (1 - pi) f(y) / (1 -
  f(0))`` for ``y > 0`` (a zero-truncated count part).

:class:`ZeroInflated` is a :class:`~glamm.families.Family` bound to the model's rows (``Z`` has
one row per observation). Its own parameters (:meth:`extra_names`) are the count family's
(a negative binomial's size) and ``gamma``, estimated with the rest of the model; the
linear predictor ``eta`` is the count part's, so PIRLS, the Laplace approximation and
quadrature see one predictor. The log-density and its first two derivatives in ``eta`` are
written from the count family's (with all constants); PIRLS works with the score and a
positive weight (:meth:`working_residual`, :meth:`pirls_weights`).
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from ..errors import DataError
from .base import Family
from .links import Link

#: the count families a zero part can be added to (glmmTMB's names: nbinom2 is
#: ``negative_binomial`` here)
COUNT_FAMILIES = ("poisson", "negative_binomial", "nbinom1", "genpois", "compois")


def _shown(name: str) -> str:
    return "nbinom2" if name == "negative_binomial" else name


#: the smallest PIRLS weight, relative to the count family's Fisher weight (where the
#: log-density is concave in eta PIRLS takes Newton steps, the observed information)
_MIN_WEIGHT = 1e-3


class ZeroInflated(Family):
    """A count family with a zero-inflation or hurdle part.

    Parameters
    ----------
    base : Family
        The count family (Poisson or negative binomial, log link).
    Z : ndarray
        ``(n, k)`` design of the zero part (``k = 0``: no zero part, only for a hurdle,
        which is then a zero-truncated model).
    names : list of str
        Names of ``Z``'s columns.
    hurdle : bool
        A hurdle (``truncated_*``) rather than zero inflation.
    """


    def __init__(self, base: Family, Z: np.ndarray, names: list[str], hurdle: bool = False,
                 zi_spec=None):
        if base.name not in COUNT_FAMILIES:
            raise DataError("zero inflation and hurdles are for count families ("
                            + ", ".join(_shown(n) for n in COUNT_FAMILIES)
                            + f"); got {base.name}")
        self.base = base
        self.Z = np.asarray(Z, dtype=float)
        self.zi_names = list(names)
        self.hurdle = bool(hurdle)
        self.gamma = np.zeros(self.Z.shape[1])
        #: formulaic's spec of the zero part's columns (new data), or None
        self.zi_spec = zi_spec
        self.link: Link = base.link
        self.name = ("truncated_" if hurdle else "zi_") + _shown(base.name)

    # ------------------------------------------------------------------ description
    has_dispersion = False
    can_separate = False
    #: the Laplace gradient differentiates the own parameters (a negative binomial's size
    #: and the zero part's coefficients) row by row at fixed eta (glmm.gradient)
    analytic_extra_gradient = True

    @property
    def has_shape(self) -> bool:  # type: ignore[override]
        return False

    @property
    def shape(self) -> float | None:
        return getattr(self.base, "shape", None)

    @property
    def link_is_canonical(self) -> bool:
        return False

    @property
    def start_family(self) -> Family:
        """The family of the GLM that starts the fit (the count part alone)."""
        return self.base

    def _params(self) -> tuple:
        return (type(self), self.base._params(), self.hurdle, self.gamma.tobytes())

    def __repr__(self) -> str:
        return f"ZeroInflated({self.base!r}, hurdle={self.hurdle})"

    # ----------------------------------------------------------------- parameters
    def extra_names(self) -> list[str]:
        return self.base.extra_names() + [f"zi~{n}" for n in self.zi_names]

    def extra_values(self) -> np.ndarray:
        return np.concatenate([self.base.extra_values(), self.gamma])

    def with_extra(self, values: np.ndarray) -> ZeroInflated:
        nb = len(self.base.extra_names())
        new = copy.copy(self)
        new.__dict__.pop("_memo", None)
        new.__dict__.pop("_pi_of", None)
        new.base = self.base.with_extra(values[:nb]) if nb else self.base
        new.gamma = np.asarray(values[nb:], dtype=float).copy()
        return new

    def extra_start(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """The count family's start, and ``gamma`` from a logistic regression of the zeros
        (the hurdle's exact estimate without random effects in the zero part; for zero
        inflation a start)."""
        base = self.base.extra_start(y, mu, wt)
        k = self.Z.shape[1]
        if k == 0:
            return base
        zero = (np.asarray(y) == 0).astype(float)
        if not self.hurdle:   # zeros beyond the count family's own
            p0 = np.exp(self.base.loglik(np.zeros_like(mu), mu, wt, 1.0))
            zero = np.clip((zero - p0) / np.maximum(1.0 - p0, 1e-3), 0.02, 0.98)
        gamma = _logistic_fit(self.Z, zero)
        return np.concatenate([base, gamma])

    @property
    def pi(self) -> np.ndarray:
        """Each row's probability of the zero part (0 without one; kept for the current
        coefficients)."""
        held = self.__dict__.get("_pi_of")
        key = self.gamma.tobytes()
        if held is not None and held[0] == key:
            return held[1]
        pi = (np.zeros(self.Z.shape[0]) if self.Z.shape[1] == 0
              else special.expit(self.Z @ self.gamma))
        self.__dict__["_pi_of"] = (key, pi)
        return pi

    def _pi_like(self, eta) -> np.ndarray:
        pi = self.pi
        return pi.reshape(pi.shape + (1,) * (np.ndim(eta) - 1))

    # ------------------------------------------------------------------ densities
    def _zeros(self, y: np.ndarray) -> np.ndarray:
        """Zeros of ``y``'s shape, the same array for the same ``y`` (the count family keeps
        its log-factorials per response array, by identity: a new array per call would
        recompute them and push the true responses' out of its small cache)."""
        held = self.__dict__.get("_zeros_of")
        if held is None or held[0] is not y:
            held = (y, np.zeros(np.shape(y)))
            self.__dict__["_zeros_of"] = held
        return held[1]

    def _parts(self, y, mu, eta, wt, phi):
        """``log f(y)``, ``log f(0)`` and their first two derivatives in ``eta``."""
        b = self.base
        lf, d1, d2 = b.eta_derivatives(y, mu, eta, wt, phi)
        g, g1, g2 = b.eta_derivatives(self._zeros(y), mu, eta, wt, phi)
        return lf, g, d1, d2, g1, g2

    def loglik(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        if np.ndim(mu) == 1 and np.shape(y) == np.shape(mu):
            # one value per row (PIRLS, the Laplace value): with the derivatives PIRLS asks
            # for next at the same means
            return self._evaluate(y, mu, None, wt, dispersion)[0]
        y, wt = self._prep(y, wt)
        mu = np.asarray(mu, dtype=float)
        pi = self._pi_like(mu)
        zero = y == 0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lf = self.base.loglik(y, mu, wt, dispersion)
            g = self.base.loglik(self._zeros(y), mu, wt, dispersion)
            if self.hurdle:
                log_pos = np.log1p(-pi) + lf - _log1mexp(g)
                out = np.where(zero, np.log(pi), log_pos)
            else:
                out = np.where(zero, np.logaddexp(np.log(pi), np.log1p(-pi) + g),
                               np.log1p(-pi) + lf)
        return np.where(self.base.mu_in_range(mu), out, -np.inf)

    def loglik_eta(self, y, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self.loglik(y, self.link.inverse(eta), wt, dispersion)

    def _derivatives(self, y, mu, eta, wt, dispersion):
        return self._evaluate(y, mu, eta, wt, dispersion)[1:]

    def _evaluate(self, y, mu, eta, wt, dispersion):
        """Per row the log-density, its score and its second derivative in ``eta``, kept for
        the last means (PIRLS asks for the value at a step's means and then for the score and
        the weights there; the link is fixed, so the means identify ``eta``)."""
        key = (id(y), id(mu), id(wt), id(dispersion) if np.ndim(dispersion) else
               float(dispersion))
        memo = self.__dict__.get("_memo")
        if memo is not None and memo[0] == key and memo[1] is mu and memo[2] is y:
            return memo[3]
        out = self._evaluate_now(y, mu, eta, wt, dispersion)
        self.__dict__["_memo"] = (key, mu, y, out)
        return out

    def _evaluate_now(self, y, mu, eta, wt, dispersion):
        y, wt = self._prep(y, wt)
        mu = np.asarray(mu, dtype=float)
        if eta is None:
            eta = self.link.link(mu)
        pi = self._pi_like(mu)
        zero = y == 0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lf, g, d1, d2, g1, g2 = self._parts(y, mu, eta, wt, dispersion)
            log_1m_pi = np.log1p(-pi)
            if self.hurdle:
                # positive counts: log f - log(1 - f(0)); with q = f(0) / (1 - f(0)),
                # d log(1 - f(0)) = -q g' and d2 log(1 - f(0)) = -(q g'' + q (1 + q) g'^2)
                log_pos0 = _log1mexp(g)
                ll = np.where(zero, np.log(pi), log_1m_pi + lf - log_pos0)
                q = np.exp(g - log_pos0)
                s = np.where(zero, 0.0, d1 + q * g1)
                h = np.where(zero, 0.0, d2 + q * g2 + q * (1.0 + q) * g1 * g1)
            else:
                # zeros: log(pi + (1 - pi) f(0)); r = (1 - pi) f(0) / p(0)
                a = np.logaddexp(np.log(pi), log_1m_pi + g)
                ll = np.where(zero, a, log_1m_pi + lf)
                r = np.exp(log_1m_pi + g - a)
                s = np.where(zero, r * g1, d1)
                h = np.where(zero, r * g2 + r * (1.0 - r) * g1 * g1, d2)
        ll = np.where(self.base.mu_in_range(mu), ll, -np.inf)
        return ll, s, h

    def joint_derivatives(self, y: np.ndarray, eta: np.ndarray, zeta: np.ndarray,
                          wt: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """The log-density as a function of both linear predictors, the count part's ``eta``
        and the zero part's log-odds ``zeta`` (for random effects in the zero part, where
        ``zeta`` is not ``Z gamma`` alone): per row ``(l, l_eta, l_zeta, l_eta_eta,
        l_eta_zeta, l_zeta_zeta)``. ``eta`` and ``zeta`` broadcast against ``y``;
        ``wt`` (unit prior weights, optional) is there for its identity: passing the same
        ``y`` and ``wt`` arrays on every call lets the count family keep its log-factorials.

        With ``pi = logistic(zeta)``, ``g = log f(0)`` and for a zero under zero inflation
        ``ll = logaddexp(zeta, g) - log(1 + exp(zeta))``; ``r`` below is the count part's share
        of that zero's probability."""
        y = np.asarray(y, dtype=float)
        eta, zeta = np.broadcast_arrays(np.asarray(eta, dtype=float),
                                        np.asarray(zeta, dtype=float))
        if y.shape == eta.shape:
            yb = y
        else:
            yb = np.broadcast_to(y.reshape(y.shape + (1,) * (eta.ndim - y.ndim)), eta.shape)
        mu = self.link.inverse(eta)
        if wt is None or np.shape(wt) != eta.shape:
            wt = np.ones(eta.shape)
        zero = yb == 0
        pi = special.expit(zeta)
        log_pi, log_1m_pi = -np.logaddexp(0.0, -zeta), -np.logaddexp(0.0, zeta)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lf, g, d1, d2, g1, g2 = self._parts(yb, mu, eta, wt, 1.0)
            logit_var = -pi * (1.0 - pi)
            if self.hurdle:
                q = np.exp(g - _log1mexp(g))
                ll = np.where(zero, log_pi, log_1m_pi + lf - _log1mexp(g))
                l_e = np.where(zero, 0.0, d1 + q * g1)
                l_ee = np.where(zero, 0.0, d2 + q * g2 + q * (1.0 + q) * g1 * g1)
                l_z = np.where(zero, 1.0 - pi, -pi)
                l_ez = np.zeros(eta.shape)
                l_zz = logit_var
            else:
                a = np.logaddexp(zeta, g)
                r = np.exp(g - a)
                ll = np.where(zero, a + log_1m_pi, log_1m_pi + lf)
                l_e = np.where(zero, r * g1, d1)
                l_ee = np.where(zero, r * g2 + r * (1.0 - r) * g1 * g1, d2)
                l_z = np.where(zero, (1.0 - r) - pi, -pi)
                l_ez = np.where(zero, -r * (1.0 - r) * g1, 0.0)
                l_zz = np.where(zero, r * (1.0 - r), 0.0) + logit_var
        ll = np.where(self.base.mu_in_range(mu), ll, -np.inf)
        return ll, l_e, l_z, l_ee, l_ez, l_zz

    def extra_derivatives(self, y, eta, wt, observed: bool):
        """Per row, the derivatives at fixed ``eta`` of the log-density, the score and the
        observed information in :meth:`extra_names`' parameters (``n x m`` each), for the
        analytic Laplace gradient. The zero part's coefficients in closed form: each row's
        derivatives in its log-odds ``zeta`` times the row of ``Z`` (for a zero under zero
        inflation ``d w / d zeta = r (1 - r) (g'' + (1 - 2 r) g'^2)``, with ``r`` the count
        part's share of the zero's probability and ``g = log f(0)``; the other rows' score
        and weight do not depend on ``zeta``); the count family's own parameters (a negative
        binomial's size) by central differences. ``None`` for the expected information."""
        if not observed:
            return None
        y, wt = self._prep(y, wt)
        eta = np.asarray(eta, dtype=float)
        mu = self.link.inverse(eta)
        cols: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        values = self.extra_values()
        nb = len(self.base.extra_names())
        eps = 1e-5
        for j in range(nb):   # the count family's own parameters
            step = np.zeros(values.size)
            step[j] = eps
            up, down = self.with_extra(values + step), self.with_extra(values - step)
            pair = [(f.loglik(y, mu, wt), f.dloglik_deta(y, mu, eta, wt),
                     -f.d2loglik_deta2(y, mu, eta, wt)) for f in (up, down)]
            cols.append(tuple((a - b) / (2.0 * eps)
                              for a, b in zip(pair[0], pair[1], strict=True)))
        k = self.Z.shape[1]
        n = y.shape[0]
        if k:
            pi = self.pi
            zero = y == 0
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                _, g, _, _, g1, g2 = self._parts(y, mu, eta, wt, 1.0)
                if self.hurdle:
                    l_z = np.where(zero, 1.0 - pi, -pi)
                    s_z = np.zeros(n)
                    w_z = np.zeros(n)
                else:
                    a = np.logaddexp(self.Z @ self.gamma, g)
                    r = np.exp(g - a)
                    rr = r * (1.0 - r)
                    l_z = np.where(zero, (1.0 - r) - pi, -pi)
                    s_z = np.where(zero, -rr * g1, 0.0)
                    w_z = np.where(zero, rr * (g2 + (1.0 - 2.0 * r) * g1 * g1), 0.0)
            cols.append((l_z[:, None] * self.Z, s_z[:, None] * self.Z,
                         w_z[:, None] * self.Z))
        if not cols:
            return np.zeros((n, 0)), np.zeros((n, 0)), np.zeros((n, 0))
        dlp, ds, dw = (np.column_stack([c[i] for c in cols]) for i in range(3))
        return dlp, ds, dw

    def dloglik_deta(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._derivatives(y, mu, eta, wt, dispersion)[0]

    def d2loglik_deta2(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._derivatives(y, mu, eta, wt, dispersion)[1]

    def fisher_weights(self, eta, mu, wt, dispersion=1.0,
                       mu_eta=None) -> tuple[np.ndarray, np.ndarray]:
        """PIRLS weights: the observed information, held at least :data:`_MIN_WEIGHT` times
        the count family's Fisher weight (the zero-inflated log-density need not be concave
        in ``eta``); PIRLS's working response is ``eta + score / w``."""
        raise NotImplementedError("ZeroInflated needs the responses: use pirls_weights")

    def working_residual(self, y, mu, eta, wt, dispersion, w, mu_eta) -> np.ndarray:
        """PIRLS's working residual ``score / w`` (the score is not ``w (y - mu) /
        mu_eta`` here)."""
        s = self.dloglik_deta(y, mu, eta, wt, dispersion)
        return np.divide(s, w, out=np.zeros_like(s), where=w > 0)

    def pirls_weights(self, y, eta, mu, wt, dispersion=1.0) -> np.ndarray:
        """The PIRLS weights of :meth:`fisher_weights` (they need the responses)."""
        h = self._derivatives(y, mu, eta, wt, dispersion)[1]
        wb, _ = self.base.fisher_weights(eta, mu, self._prep(y, wt)[1], dispersion)
        return np.maximum(-h, _MIN_WEIGHT * wb)

    # ------------------------------------------------------------------ the rest
    def variance(self, mu) -> np.ndarray:
        """The response variance of the mixture (zero inflation) or of the hurdle model."""
        mu = np.asarray(mu, dtype=float)
        pi = self._pi_like(mu)
        vb = self.base.variance(mu)
        if self.hurdle:
            p0 = np.exp(self.base.loglik(np.zeros_like(mu), mu, None, 1.0))
            m1 = mu / (1.0 - p0)               # E(y | y > 0)
            m2 = (vb + mu * mu) / (1.0 - p0)   # E(y^2 | y > 0)
            mean = (1.0 - pi) * m1
            return (1.0 - pi) * m2 - mean * mean
        return (1.0 - pi) * (vb + pi * mu * mu)

    def variance_deriv(self, mu) -> np.ndarray:   # pragma: no cover - not used for this family
        raise NotImplementedError

    def unit_deviance(self, y, mu) -> np.ndarray:
        """``2 (l_saturated - l)`` per row is not defined for mixtures: minus twice the
        log-density (the deviance glmmTMB reports)."""
        return -2.0 * self.loglik(y, mu)

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:   # pragma: no cover - loglik overrides
        return self.loglik(y, mu, wt, phi)

    def zero_probability(self, newdata=None) -> np.ndarray:
        """``pi``: the probability of the zero part (an extra zero, or for a hurdle the
        probability of 0), for the model's rows or ``newdata``."""
        if newdata is None:
            return self.pi.copy()
        if self.Z.shape[1] == 0:
            return np.zeros(len(newdata))
        from ..formula.evaluate import formula_context

        Z = np.asarray(self.zi_spec.get_model_matrix(newdata, na_action="ignore",
                                                     context=formula_context()), dtype=float)
        return special.expit(Z @ self.gamma)

    def mean(self, mu, newdata=None) -> np.ndarray:
        """``E(y)``: ``(1 - pi) mu`` (zero inflation) or ``(1 - pi) mu / (1 - f(0))``
        (``pi`` of ``newdata`` when given)."""
        mu = np.asarray(mu, dtype=float)
        pi = self._pi_like(mu) if newdata is None else self.zero_probability(newdata)
        if self.hurdle:
            p0 = np.exp(self.base.loglik(np.zeros_like(mu), mu, None, 1.0))
            return (1.0 - pi) * mu / (1.0 - p0)
        return (1.0 - pi) * mu

    def mu_in_range(self, mu) -> np.ndarray:
        return self.base.mu_in_range(mu)

    def _validate_support(self, y, wt) -> None:
        self.base._validate_support(y, wt)
        if self.hurdle and self.Z.shape[1] == 0 and np.any(y == 0):
            raise DataError(f"{self.name} without a ziformula is a zero-truncated model, but "
                            f"the response has {int(np.sum(y == 0))} zeros; give the zero "
                            "part, e.g. ziformula='~ 1'")

    def mustart(self, y, wt=None) -> np.ndarray:
        return self.base.mustart(y, wt)


def _log1mexp(g: np.ndarray) -> np.ndarray:
    """``log(1 - exp(g))`` for ``g < 0``, accurately."""
    g = np.asarray(g, dtype=float)
    return np.where(g > -0.693, np.log(-np.expm1(g)), np.log1p(-np.exp(g)))


def _logistic_fit(Z: np.ndarray, p: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Coefficients of a logistic regression of (fractional) responses ``p`` on ``Z``
    (Newton; a small ridge keeps separated designs finite)."""
    k = Z.shape[1]
    gamma = np.zeros(k)
    for _ in range(iterations):
        pr = special.expit(Z @ gamma)
        w = pr * (1.0 - pr)
        H = Z.T @ (w[:, None] * Z) + 1e-6 * np.eye(k)
        step = np.linalg.solve(H, Z.T @ (p - pr) - 1e-6 * gamma)
        gamma += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return gamma

"""glmmTMB's Tweedie family (compound Poisson-gamma, ``1 < power < 2``) and Dunn & Smyth's
series for its normalizing constant. A family with a parameter of its own (the power), as
those of :mod:`glamm.families.extra`."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
from scipy import special

from ..errors import DataError
from . import compiled
from .base import Family
from .extra import _ExtraFamily, _rows
from .links import Link
from .numeric import _arr

#: Dunn & Smyth's series is summed over ``j`` within this many log units of its largest term
_SERIES_DROP = 40.0
#: at most this many terms (rows x window) are held at once: the rows are summed in blocks
_SERIES_BUDGET = 2_000_000
#: a row whose window needs more terms than this gets NaN (its log-density is then not
#: finite and the optimizers step back): as the power tends to 2 (data without zeros: the
#: gamma limit) the window grows like 1 / (2 - p) and would exhaust memory and time
_SERIES_MAX_TERMS = 20_000
#: the last few Tweedie constants ``(y, phi, power, value)``: a fit evaluates the
#: log-likelihood many times at the same dispersion and power (PIRLS, quadrature's columns);
#: the responses are compared by identity, so a new array is never mistaken for an old one
_TWEEDIE_CACHE: list = []


def tweedie_log_series(y: np.ndarray, phi: float, power: float) -> np.ndarray:
    """``log(sum_j W_j)`` of Dunn & Smyth's (2005) series for the Tweedie density with
    ``1 < power < 2`` at ``y > 0``, where (``alpha = (2 - p) / (p - 1)``)
    ``log W_j = j (alpha log(y) - alpha log(p - 1) - (1 + alpha) log(phi) - log(2 - p))
    - lgamma(j + 1) - lgamma(alpha j)``, so that
    ``log f(y) = log(sum_j W_j) - log(y) + (y theta - kappa(theta)) / phi`` (the mean part
    in :meth:`Tweedie._loglik`). The terms are summed in log space around the largest one
    (``j_max = y^(2 - p) / (phi (2 - p))``) over a common window of ``j`` wide enough for
    every row (vectorized; terms more than :data:`_SERIES_DROP` below the largest are left
    out, a relative error below 1e-17 per term)."""
    return _series(y, phi, power, derivatives=False)[0]


def tweedie_log_series_derivatives(y: np.ndarray, phi: float, power: float
                                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`tweedie_log_series` and its derivatives in ``log(phi)`` and in ``power``, from
    the same terms: with ``E`` the mean over ``j`` weighted by ``W_j``,
    ``d / d log(phi) = -(1 + alpha) E[j]`` and
    ``d / dp = E[j] d log z / dp - alpha'(p) E[j psi(alpha j)]`` (``log z`` the coefficient
    of ``j`` in ``log W_j``, ``psi`` the digamma function)."""
    return _series(y, phi, power, derivatives=True)


def _series(y: np.ndarray, phi: float, power: float, derivatives: bool):
    y = np.asarray(y, dtype=float)
    shape = y.shape
    y = y.reshape(-1)
    n_out = 3 if derivatives else 1
    if y.size == 0:
        return tuple(np.zeros(shape) for _ in range(n_out))
    k = compiled.kernels()
    if k is not None:
        # one compiled loop over the rows (the NumPy blocks below are the reference)
        res = np.empty((3 if derivatives else 1, y.size))
        with np.errstate(all="ignore"):
            done = k.tweedie_series(np.ascontiguousarray(y), float(phi), float(power),
                                    _SERIES_DROP, float(_SERIES_MAX_TERMS), derivatives, res)
        if done:
            return tuple(r.reshape(shape) for r in res)
    p = power
    alpha = (2.0 - p) / (p - 1.0)
    logz = (alpha * np.log(y) - alpha * math.log(p - 1.0) - (1.0 + alpha) * math.log(phi)
            - math.log(2.0 - p))   # log W_j = j logz - lgamma(j + 1) - lgamma(alpha j)
    jmax = np.maximum(1.0, y ** (2.0 - p) / (phi * (2.0 - p)))

    # the terms fall off like a Gaussian in j around jmax with variance ~ jmax / (1 + alpha)
    # ... (Stirling): a window of +-(c sqrt(jmax) + 10) terms covers the 40-log-unit drop
    half = np.ceil(np.sqrt(2.0 * _SERIES_DROP * jmax * (1.0 + 1.0 / alpha)) + 10.0)
    lo = np.maximum(1.0, np.floor(jmax) - half)
    row_width = np.floor(jmax) + half - lo + 1.0
    usable = row_width <= _SERIES_MAX_TERMS
    width = int(np.max(row_width, where=usable, initial=0.0))
    block = max(1, _SERIES_BUDGET // max(width, 1))
    if not usable.all() or y.size > block:
        # rows beyond the window limit get NaN; the rest in blocks of bounded memory
        out = tuple(np.full(y.size, np.nan) for _ in range(n_out))
        rows = np.flatnonzero(usable)
        order = rows[np.argsort(row_width[rows], kind="stable")]   # similar windows together
        for start in range(0, order.size, block):
            idx = order[start:start + block]
            for o, part in zip(out, _series_block(y[idx], logz[idx], jmax[idx], half[idx],
                                                  lo[idx], alpha, p, phi, derivatives),
                               strict=True):
                o[idx] = part
        return tuple(o.reshape(shape) for o in out)
    return tuple(o.reshape(shape) for o in _series_block(y, logz, jmax, half, lo, alpha, p,
                                                         phi, derivatives))


def _series_block(y, logz, jmax, half, lo, alpha: float, p: float, phi: float,
                  derivatives: bool):
    """:func:`_series` for rows whose common window fits in memory (1-d arrays)."""
    width = int(np.max(np.floor(jmax) + half - lo)) + 1
    # lgamma(j + 1) and lgamma(alpha j) once for every j any row uses, then looked up
    j0 = int(np.min(lo))
    k = np.arange(j0, int(np.max(lo)) + width, dtype=float)
    lg = special.gammaln(k + 1.0) + special.gammaln(alpha * k)
    offset = (lo - j0).astype(np.intp)[..., None] + np.arange(width)
    j = lo[..., None] + np.arange(width, dtype=float)
    terms = j * logz[..., None] - lg[offset]
    terms = np.where(j <= (np.floor(jmax) + half)[..., None], terms, -np.inf)
    top = np.max(terms, axis=-1)
    weights = np.exp(terms - top[..., None])
    total = np.sum(weights, axis=-1)
    value = top + np.log(total)
    if not derivatives:
        return (value,)
    mean_j = np.sum(weights * j, axis=-1) / total
    mean_jpsi = np.sum(weights * (j * special.digamma(alpha * k)[offset]), axis=-1) / total
    dalpha = -1.0 / (p - 1.0) ** 2
    dlogz = (dalpha * (np.log(y) - math.log(p - 1.0) - math.log(phi)) - alpha / (p - 1.0)
             + 1.0 / (2.0 - p))
    return value, -(1.0 + alpha) * mean_j, mean_j * dlogz - dalpha * mean_jpsi


class Tweedie(_ExtraFamily):
    """Tweedie responses with ``1 < power < 2`` (glmmTMB's ``tweedie``): compound
    Poisson–gamma, exact zeros and positive continuous values, ``Var(y) = phi mu^power``;
    glmmTMB's ``sigma()`` is ``phi``. An exponential dispersion model: its score and
    information in ``mu`` are the GLM ones with ``V(mu) = mu^power`` and dispersion ``phi``
    (carried by ``Lambda`` as a Gamma's); only the normalizing constant needs Dunn and Smyth's
    series (:func:`tweedie_log_series`). The power is optimized as ``logit(power - 1)`` (as
    glmmTMB's ``psi``).

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"log"`` (default), ``"identity"`` or ``"sqrt"``.
    power : float, optional
        the power, in (1, 2) (default 1.5).
    """

    name = "tweedie"
    r_name = "tweedie"
    canonical_link = "log"
    valid_links = ("log", "identity", "sqrt")
    has_dispersion = True
    natural_names = ("power",)
    #: glmmTMB's ``sigma()`` is the dispersion itself (not its square root)
    tmb_sigma_is_dispersion = True

    # the GLM pieces (V(mu) = mu^power, exact expected information)
    fisher_weights = Family.fisher_weights
    fisher_weights_deta = Family.fisher_weights_deta
    working_residual = Family.working_residual
    dloglik_dmu = Family.dloglik_dmu
    d2loglik_dmu2 = Family.d2loglik_dmu2

    def __init__(self, link: str | Link | type[Link] | None = None, power: float = 1.5) -> None:
        super().__init__(link, power=power)
        if not 1.0 < self.values[0] < 2.0:
            raise DataError(f"tweedie family: power must be in (1, 2), got {power!r}")

    def extra_names(self) -> list[str]:
        return ["logit(power - 1)"]

    def extra_values(self) -> np.ndarray:
        return np.array([special.logit(self.values[0] - 1.0)])

    def with_extra(self, values: np.ndarray) -> Family:
        new = copy.copy(self)
        new.values = (1.0 + float(special.expit(float(np.asarray(values)[0]))),)
        return new

    def extra_start(self, y, mu, wt) -> np.ndarray:
        return np.array([0.0])   # power 1.5

    def tmb_sigma(self, dispersion: float = 1.0) -> float:
        return float(dispersion)

    def variance(self, mu) -> np.ndarray:
        return _arr(mu) ** self.values[0]

    def variance_deriv(self, mu) -> np.ndarray:
        p = self.values[0]
        return p * _arr(mu) ** (p - 1.0)

    def unit_deviance(self, y, mu) -> np.ndarray:
        y, mu = _arr(y), _arr(mu)
        p = self.values[0]
        return 2.0 * (np.maximum(y, 0.0) ** (2.0 - p) / ((1.0 - p) * (2.0 - p))
                      - y * mu ** (1.0 - p) / (1.0 - p) + mu ** (2.0 - p) / (2.0 - p))

    def _constant(self, y: np.ndarray, wt: np.ndarray, phi) -> np.ndarray:
        """``log(series) - log(y)`` for ``y > 0``, 0 at ``y == 0`` (cached per data,
        dispersion and power: it does not depend on ``mu``)."""
        p = self.values[0]
        if np.ndim(phi) == 0:
            for ey, ephi, ep, value in _TWEEDIE_CACHE:
                if ey is y and ephi == float(phi) and ep == p:
                    return value
            out = np.zeros(y.shape)
            pos = y > 0
            out[pos] = tweedie_log_series(y[pos], float(phi), p) - np.log(y[pos])
            _TWEEDIE_CACHE.insert(0, (y, float(phi), p, out))
            del _TWEEDIE_CACHE[8:]
            return out
        phi_b = np.broadcast_to(phi, y.shape)
        out = np.zeros(y.shape)
        for value in np.unique(phi_b):   # per-row dispersions: one series per value
            rows = (phi_b == value) & (y > 0)
            out[rows] = tweedie_log_series(y[rows], float(value), p) - np.log(y[rows])
        return out

    def loglik_parameter_derivatives(self, y, mu, wt, dispersion):
        """The derivatives of :meth:`loglik` in ``log(phi)`` and ``logit(power - 1)`` per row at
        fixed ``mu``: the mean part's in closed form, the series' from
        :func:`tweedie_log_series_derivatives` (one series instead of four for the
        differences). ``None`` for per-row dispersions."""
        if np.ndim(dispersion) != 0:
            return None
        y, wt = self._prep(y, wt)
        mu = _arr(mu)
        phi, p = self._phi(float(dispersion)), self.values[0]
        d_logphi = np.zeros(y.shape)
        d_power = np.zeros(y.shape)
        pos = y > 0
        _, d_logphi[pos], d_power[pos] = tweedie_log_series_derivatives(y[pos], phi, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_mu = np.log(mu)
            a, b = mu ** (1.0 - p), mu ** (2.0 - p)
            mean_part = y * a / (1.0 - p) - b / (2.0 - p)
            dmean_dp = (y * (-a * log_mu / (1.0 - p) + a / (1.0 - p) ** 2)
                        - (-b * log_mu / (2.0 - p) + b / (2.0 - p) ** 2))
        d_logphi = wt * (d_logphi - mean_part / phi)
        # the optimizer's parameter is logit(power - 1): dp = (p - 1)(2 - p) d logit
        d_power = wt * (d_power + dmean_dp / phi) * ((p - 1.0) * (2.0 - p))
        keep = wt != 0
        return np.where(keep, d_logphi, 0.0), np.where(keep, d_power, 0.0)[:, None]

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        p = self.values[0]
        # y theta - kappa(theta) with theta = mu^(1-p) / (1-p), kappa = mu^(2-p) / (2-p)
        mean_part = (y * mu ** (1.0 - p) / (1.0 - p) - mu ** (2.0 - p) / (2.0 - p)) / phi
        return wt * (mean_part + self._constant(y, wt, phi))

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return np.isfinite(mu) & (mu > 0)

    def _validate_support(self, y, wt) -> None:
        bad = y < 0
        if np.any(bad):
            raise DataError(f"tweedie family: the response must not be negative; rows "
                            f"{_rows(np.flatnonzero(bad))} (0-based)")
        if y.size and not np.any((y == 0) & (wt > 0)) \
                and self.__dict__.get("_warned_for") is not y:
            self.__dict__["_warned_for"] = y   # once per response (not again for copies)
            warnings.warn(
                "tweedie family: the response has no zeros, so the power's estimate tends to "
                "2 (the gamma limit); its series is not evaluated beyond a power of about "
                "1.999, where the fit then stops: consider family='Gamma'", stacklevel=7)

    def mustart(self, y, wt=None) -> np.ndarray:
        y = _arr(y)
        return y + 0.1 * (y == 0) + 0.1 * np.mean(y) * (y == 0)

    def sample(self, mu, wt, dispersion, rng):
        """Compound Poisson-gamma: ``N ~ Poisson(mu^(2-p) / (phi (2-p)))`` gamma summands of
        shape ``(2-p)/(p-1)`` and scale ``phi (p-1) mu^(p-1)``."""
        mu, p = _arr(mu), self.values[0]
        phi = _arr(dispersion)
        n = rng.poisson(mu ** (2.0 - p) / (phi * (2.0 - p)))
        shape = n * (2.0 - p) / (p - 1.0)
        scale = np.broadcast_to(phi * (p - 1.0) * mu ** (p - 1.0), mu.shape)
        out = np.zeros(mu.shape)
        pos = n > 0
        out[pos] = rng.gamma(shape[pos], scale[pos])
        return out

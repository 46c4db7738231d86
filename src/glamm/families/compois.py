"""glmmTMB's Conway-Maxwell-Poisson family (``compois``) for the mean, and the CMP series
(normalizing constant, cumulants, the rate for a given mean). A count family with a parameter
of its own (``phi = 1 / nu``), as those of :mod:`glamm.families.extra`."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .extra_counts import _CountFamily
from .numeric import _arr, _cached
from .sampling import sample_by_inversion

#: the CMP series is summed until its terms at both ends are this many log units below the
#: largest (relative 1e-17)
_CMP_DROP = 39.0
#: widest half-window (terms on each side of the mode) of the series
_CMP_MAX_HALF = 1 << 16
#: most terms (rows x window) summed at once
_CMP_BLOCK = 1 << 20
#: the last few ``(nu, mu, moments)`` of :func:`cmp_moments_at_mean`: the log-likelihood and
#: its derivatives are evaluated at the same means many times (PIRLS, the Laplace terms)
_CMP_CACHE: list = []
_CMP_CACHE_SIZE = 4


#: ``log(j!)`` for ``j = 0, 1, ...``, grown on demand (the CMP series' terms)
_LOG_FACTORIALS = special.gammaln(np.arange(1.0, 4097.0))
#: larger arguments are evaluated by ``gammaln``
_LOG_FACTORIAL_TABLE_MAX = 1 << 22


def _log_factorial(j: np.ndarray) -> np.ndarray:
    """``log(j!)`` of whole numbers ``j >= 0`` (floats), by table look-up where it fits."""
    global _LOG_FACTORIALS
    top = float(np.max(j)) if j.size else 0.0
    if top >= _LOG_FACTORIAL_TABLE_MAX:
        return special.gammaln(j + 1.0)
    if top >= _LOG_FACTORIALS.size:
        size = 1 << int(math.ceil(math.log2(top + 1.0)))
        _LOG_FACTORIALS = special.gammaln(np.arange(1.0, size + 1.0))
    return _LOG_FACTORIALS[j.astype(np.intp)]


def _cmp_window(loglambda: np.ndarray, nu: np.ndarray, mode: np.ndarray, half: int):
    """The CMP series of the rows over ``mode - half, ..., mode + half``: the log of its sum
    and its mean, variance and third central moment, and whether both ends are negligible
    (the window starts at 0 when the modes are smaller than ``half``)."""
    left = int(min(half, np.max(mode))) if mode.size else half
    k = np.arange(-left, half + 1, dtype=float)
    j = mode[:, None] + k[None, :]
    inside = j >= 0
    jj = np.where(inside, j, 0.0)
    logt = jj * loglambda[:, None] - nu[:, None] * _log_factorial(jj)
    logt = np.where(inside, logt, -np.inf)
    top = np.max(logt, axis=1)
    w = np.exp(logt - top[:, None])
    s = np.sum(w, axis=1)
    p = w / s[:, None]
    kbar = p @ k
    d = k[None, :] - kbar[:, None]
    var = np.sum(p * d * d, axis=1)
    k3 = np.sum(p * d * d * d, axis=1)
    edge = -_CMP_DROP
    right_ok = logt[:, -1] - top < edge
    left_ok = (j[:, 0] <= 0) | (logt[:, 0] - top < edge)
    return top + np.log(s), mode + kbar, var, k3, right_ok & left_ok


def cmp_moments(loglambda, nu) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Conway-Maxwell-Poisson distribution ``P(y) = lambda^y / (y!)^nu / Z(lambda, nu)``:
    ``log Z`` and its first three derivatives in ``log(lambda)`` (the mean, the variance and
    the third central moment), by summing the series in log space around its mode
    ``floor(lambda^(1/nu))``, over a window widened for the rows whose end terms are not yet
    negligible (vectorized over rows; rows of similar spread share a window width).

    Parameters
    ----------
    loglambda : array_like
        ``log(lambda)``.
    nu : array_like
        the dispersion exponent ``nu > 0`` (``nu < 1``: overdispersed, ``nu > 1``:
        underdispersed, ``nu = 1``: Poisson).

    Returns
    -------
    logZ, mean, var, k3 : numpy.ndarray
        the log normalizing constant and the first three cumulants of ``y``.
    """
    loglambda, nu = np.broadcast_arrays(np.asarray(loglambda, dtype=float),
                                        np.asarray(nu, dtype=float))
    shape = loglambda.shape
    loglambda, nu = loglambda.ravel(), nu.ravel()
    out = [np.full(loglambda.size, np.nan) for _ in range(4)]
    logmode = np.minimum(loglambda / nu, 30.0)
    mode = np.floor(np.exp(logmode))
    # the spread, about sqrt(mode / nu) for a large mode; when lambda < 1 the terms fall at
    # least as fast as lambda^j (at most 1 / (1 - lambda), however small nu is). Only a
    # first guess: the window is widened until its ends are negligible
    spread = np.sqrt((mode + 1.0) / nu)
    with np.errstate(divide="ignore", over="ignore"):
        geometric = 1.0 / -np.expm1(np.minimum(loglambda, 0.0))
    spread = np.where(loglambda < 0.0, np.minimum(spread, geometric), spread)
    half = 16.0 * np.ceil(np.clip(9.0 * spread + 6.0, 16.0, _CMP_MAX_HALF) / 16.0)
    todo = np.flatnonzero(np.isfinite(loglambda) & (nu > 0))
    while todo.size:
        widen = []
        for h in np.unique(half[todo]):
            group = todo[half[todo] == h]
            block = max(1, _CMP_BLOCK // (2 * int(h) + 1))
            for start in range(0, group.size, block):
                rows = group[start:start + block]
                logz, mean, var, k3, ok = _cmp_window(loglambda[rows], nu[rows], mode[rows],
                                                      int(h))
                done = ok | (h >= _CMP_MAX_HALF)
                for o, v in zip(out, (logz, mean, var, k3), strict=True):
                    o[rows[done]] = v[done]
                widen.append(rows[~done])
        todo = np.concatenate(widen) if widen else todo[:0]
        half[todo] = np.minimum(2.0 * half[todo], _CMP_MAX_HALF)
    logz, mean, var, k3 = (o.reshape(shape) for o in out)
    return logz, mean, var, k3


def cmp_loglambda(mu, nu, tol: float = 1e-13, maxit: int = 100, start=None):
    """``log(lambda)`` of the CMP distribution with mean ``mu`` and exponent ``nu``, by
    Newton's method on ``log E[y] - log(mu)`` (its derivative in ``log(lambda)`` is
    ``Var / E``), with the moments at the solution.

    Parameters
    ----------
    mu : array_like
        positive means.
    nu : float or array_like
        the exponent, positive.
    tol : float, optional
        convergence tolerance on the Newton step.
    maxit : int, optional
        most Newton steps.
    start : array_like, optional
        a first guess of ``log(lambda)`` (default: from the large-mean approximation).

    Returns
    -------
    loglambda, logZ, var, k3 : numpy.ndarray
    """
    mu, nu = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(nu, dtype=float))
    # start from the large-mean approximation E[y] ~ lambda^(1/nu) - (nu - 1) / (2 nu)
    shifted = mu + (nu - 1.0) / (2.0 * nu)
    x = nu * np.log(np.where(shifted > 0.5 * mu, shifted, mu))
    if start is not None:
        x = np.where(np.isfinite(start), start, x)
    logmu = np.log(mu)
    for _ in range(maxit):
        logz, mean, var, k3 = cmp_moments(x, nu)
        step = np.clip((logmu - np.log(mean)) * mean / var, -5.0, 5.0)
        step = np.where(np.isfinite(step), step, 0.0)
        x = x + step
        if np.all(np.abs(step) <= tol * np.maximum(1.0, np.abs(x))):
            # log Z moved with the last (tiny) step to first order: d log Z = mean * step
            return x, logz + mean * step, var, k3
    logz, mean, var, k3 = cmp_moments(x, nu)
    return x, logz, var, k3


def _cmp_at_mean(mu: np.ndarray, nu: float):
    """:func:`cmp_loglambda` at the means ``mu``, remembered for the last few calls."""
    start = None
    for nu_c, mu_c, res in _CMP_CACHE:
        if mu_c.shape != mu.shape:
            continue
        if nu_c == nu and np.array_equal(mu_c, mu):
            return res
        if start is None:   # one Newton step in mu from a remembered solution, scaled to nu
            with np.errstate(all="ignore"):
                start = (res[0] + np.clip((mu - mu_c) / res[2], -1.0, 1.0)) * (nu / nu_c)
    res = cmp_loglambda(mu, nu, start=start)
    _CMP_CACHE.insert(0, (nu, mu.copy(), res))
    del _CMP_CACHE[_CMP_CACHE_SIZE:]
    return res


class ConwayMaxwellPoisson(_CountFamily):
    """Conway-Maxwell-Poisson counts parametrized by the mean (glmmTMB's ``compois``):
    ``P(y) = lambda^y / (y!)^nu / Z(lambda, nu)`` with ``lambda`` solved so that
    ``E[y] = mu``, and ``nu = 1 / phi`` (``phi > 1``: overdispersion, ``phi < 1``:
    underdispersion, ``phi = 1``: Poisson); glmmTMB's ``sigma()`` is ``phi``. The normalizing
    constant is summed to full precision (glmmTMB switches to an approximation when the
    mode ``lambda^(1/nu)`` exceeds 100 and ``mode * nu`` exceeds 200, where the two differ
    slightly).

    The derivatives in ``mu`` follow from ``d log(lambda) / d mu = 1 / Var(y)``:
    ``dl/dmu = (y - mu) / Var`` and ``d2l/dmu2 = -1 / Var - (y - mu) k3 / Var^3`` (``k3``
    the third cumulant, ``dVar/dmu = k3 / Var``); the expected information is ``1 / Var``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"log"`` (default), ``"identity"`` or ``"sqrt"``.
    phi : float, optional
        the dispersion ``1 / nu``, positive (default 1: Poisson).
    """

    name = "compois"
    r_name = "compois"
    canonical_link = "log"
    valid_links = ("log", "identity", "sqrt")
    natural_names = ("phi",)
    sigma_index = 0

    @property
    def nu(self) -> float:
        """The CMP exponent ``nu = 1 / phi``."""
        return 1.0 / self.values[0]

    def _moments(self, mu) -> tuple:
        return _cmp_at_mean(_arr(mu), self.nu)

    def variance(self, mu) -> np.ndarray:
        return self._moments(mu)[2]

    def _info_mu(self, mu, wt, phi) -> np.ndarray:
        return wt / self._moments(mu)[2]

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        loglambda, logz, _, _ = self._moments(mu)
        lfac = _cached(("poisson",), y, wt, lambda: special.gammaln(y + 1.0))
        return wt * (y * loglambda - self.nu * lfac - logz)

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        var = self._moments(mu)[2]
        return wt * (y - _arr(mu)) / var

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        _, _, var, k3 = self._moments(mu)
        return -wt * (1.0 / var + (y - _arr(mu)) * k3 / var**3)

    def extra_start(self, y, mu, wt) -> np.ndarray:
        return np.array([math.log(min(max(self._pearson_ratio(y, mu), 0.05), 20.0))])

    def sample(self, mu, wt, dispersion, rng):
        return sample_by_inversion(self, mu, rng)

"""The count families outside the exponential family, as glmmTMB has them: NB1
(``nbinom1``, ``Var = mu (1 + phi)``) and the generalized Poisson (``genpois``, ``Var = mu
phi``), on :class:`~glamm.families.extra._ExtraFamily` (their own parameter ``phi`` on the
log scale, exact scores and observed information, quasi-likelihood PIRLS weights) with the
shared count checks of :class:`_CountFamily`, which the Conway-Maxwell-Poisson family
(:mod:`glamm.families.compois`) also builds on. Both compute their log-density and its two
mean derivatives in one compiled pass where numba is there (:mod:`glamm.families._kernels`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..errors import DataError
from .base import Family
from .extra import _ExtraFamily, _rows, trigamma
from .numeric import _arr, _cached, _non_integer
from .sampling import sample_by_inversion


class _CountFamily(_ExtraFamily):
    """The shared parts of the count families with a parameter of their own (NB1, genpois,
    compois): positive means, non-negative whole responses, and a start from the mean
    squared Pearson residual."""

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return np.isfinite(mu) & (mu > 0)

    def _validate_support(self, y, wt) -> None:
        _check_counts(self, y)

    def mustart(self, y, wt=None) -> np.ndarray:
        y = _arr(y)
        return y + (y == 0) / 6.0

    @staticmethod
    def _pearson_ratio(y, mu) -> float:
        """Mean squared Pearson residual of a Poisson fit (1 when no mean is positive)."""
        ok = mu > 0
        return float(np.mean(((y - mu) ** 2 / mu)[ok])) if np.any(ok) else 1.0


# ----------------------------------------------------------------------------------- NB1
class NegativeBinomial1(_CountFamily):
    """NB1 counts (glmmTMB's ``nbinom1``): negative binomial with size ``mu / phi``, so
    ``Var(y) = mu (1 + phi)``; glmmTMB's ``sigma()`` is ``phi``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"log"`` (default), ``"identity"`` or ``"sqrt"``.
    phi : float, optional
        the overdispersion, positive (default 1).
    """

    name = "nbinom1"
    r_name = "nbinom1"
    canonical_link = "log"
    valid_links = ("log", "identity", "sqrt")
    natural_names = ("phi",)
    sigma_index = 0

    def variance(self, mu) -> np.ndarray:
        return _arr(mu) * (1.0 + self.values[0])

    _has_row_kernel = True

    def _row_kernel(self, k, y, mu, wt, phi, out) -> bool:
        lfac = _cached(("poisson-const",), y, wt, lambda: -special.gammaln(y + 1.0))
        k.nbinom1(y, mu, wt, lfac, self.values[0], out)
        return True

    def _loglik_numpy(self, y, mu, wt, phi) -> np.ndarray:
        ph = self.values[0]
        k = mu / ph
        lfac = _cached(("poisson",), y, wt, lambda: special.gammaln(y + 1.0))
        return wt * (special.gammaln(y + k) - special.gammaln(k) - lfac
                     - k * math.log1p(ph) + y * math.log(ph / (1.0 + ph)))

    def _dloglik_dmu_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        ph = self.values[0]
        k = _arr(mu) / ph
        return wt / ph * (special.digamma(y + k) - special.digamma(k) - math.log1p(ph))

    def _d2loglik_dmu2_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        ph = self.values[0]
        k = _arr(mu) / ph
        return wt / ph**2 * (trigamma(y + k) - trigamma(k))

    def extra_start(self, y, mu, wt) -> np.ndarray:
        excess = self._pearson_ratio(y, mu) - 1.0
        return np.array([math.log(min(max(excess, 0.05), 1e4))])

    def sample(self, mu, wt, dispersion, rng):
        mu, ph = _arr(mu), self.values[0]
        return rng.negative_binomial(mu / ph, 1.0 / (1.0 + ph)).astype(float)


def _check_counts(fam: Family, y: np.ndarray) -> None:
    for bad, what in ((y < 0, "negative counts"), (_non_integer(y), "non-integer counts")):
        if np.any(bad):
            idx = np.flatnonzero(bad)
            raise DataError(f"{fam.name} family: the response must be counts (whole numbers "
                            f">= 0); {what} in rows {_rows(idx)} (0-based)")


# ---------------------------------------------------------------------- generalized Poisson
class GeneralizedPoisson(_CountFamily):
    """Generalized Poisson counts (glmmTMB's ``genpois``; Consul's distribution with
    ``theta = mu / sqrt(phi)`` and ``lambda = 1 - 1 / sqrt(phi)``):
    ``log p(y) = log(theta) + (y - 1) log(theta + lambda y) - theta - lambda y - log(y!)``,
    mean ``mu``, ``Var(y) = mu phi`` (``phi < 1``: underdispersion, where counts with
    ``theta + lambda y <= 0`` have probability 0); glmmTMB's ``sigma()`` is ``phi``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"log"`` (default), ``"identity"`` or ``"sqrt"``.
    phi : float, optional
        the dispersion ratio ``Var / mean``, positive (default 1: Poisson).
    """

    name = "genpois"
    r_name = "genpois"
    canonical_link = "log"
    valid_links = ("log", "identity", "sqrt")
    natural_names = ("phi",)
    sigma_index = 0

    def variance(self, mu) -> np.ndarray:
        return _arr(mu) * self.values[0]

    def _theta_lambda(self, mu):
        s = math.sqrt(self.values[0])
        return _arr(mu) / s, 1.0 - 1.0 / s, s

    _has_row_kernel = True

    def _row_kernel(self, k, y, mu, wt, phi, out) -> bool:
        lfac = _cached(("poisson-const",), y, wt, lambda: -special.gammaln(y + 1.0))
        k.genpois(y, mu, wt, lfac, self.values[0], out)
        return True

    def _loglik_numpy(self, y, mu, wt, phi) -> np.ndarray:
        theta, lam, _ = self._theta_lambda(mu)
        inner = theta + lam * y
        lfac = _cached(("poisson",), y, wt, lambda: special.gammaln(y + 1.0))
        ll = np.log(theta) + special.xlogy(y - 1.0, np.where(inner > 0, inner, 1.0)) \
            - inner - lfac
        return wt * np.where(inner > 0, ll, -np.inf)

    def _dloglik_dmu_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        theta, lam, s = self._theta_lambda(mu)
        return wt / s * (1.0 / theta + (y - 1.0) / (theta + lam * y) - 1.0)

    def _d2loglik_dmu2_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        theta, lam, s = self._theta_lambda(mu)
        return -wt / s**2 * (1.0 / theta**2 + (y - 1.0) / (theta + lam * y) ** 2)

    def extra_start(self, y, mu, wt) -> np.ndarray:
        return np.array([math.log(min(max(self._pearson_ratio(y, mu), 1.0), 1e4))])

    def sample(self, mu, wt, dispersion, rng):
        return sample_by_inversion(self, mu, rng)

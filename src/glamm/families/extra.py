"""Response distributions outside the exponential family, as glmmTMB has them: NB1
(``nbinom1``), beta regression (``beta``), beta-binomial (``betabinomial``) and Student's t
(``t``).

Each has parameters of its own besides the mean (NB1's and the beta's ``phi``, the t's degrees
of freedom), estimated with the rest of the model through
:meth:`~glamm.families.base.Family.extra_names` and friends, on the log scale. The t also has
a dispersion (``sigma^2``, carried by ``Lambda`` as the Gaussian's). The log-densities carry
every normalizing constant (they equal R's ``dnbinom``, ``dbeta``, ``dt`` and glmmTMB's
``dbetabinom``); the prior weights multiply the log-density (glmmTMB's ``weights``), except
for the beta-binomial, where ``wt`` is the number of trials (as for the binomial).

They have no GLM variance function: ``variance`` is the quasi-likelihood one (used only to
start the fit and for Pearson residuals), the scores and the observed information are the
exact derivatives of the log-density, and the PIRLS weights are the expected information
(the beta's and the t's exactly; NB1's and the beta-binomial's by the quasi-likelihood
approximation ``mu_eta^2 / Var``), with the working residual ``score / weight`` so that PIRLS
converges to the true conditional mode. The links are never treated as canonical: the Laplace
log-determinant always uses the observed information, as glmmTMB.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from scipy import special

from ..errors import DataError
from .base import Family, _arr, _binomial_constants, _cached, _non_integer
from .links import Link

_LOG_PI = math.log(math.pi)


def _positive(family: str, name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{family} family: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise DataError(f"{family} family: {name} must be positive and finite, got {value!r}")
    return v


#: the asymptotic series of the trigamma function is used from this argument on
_TRIGAMMA_SHIFT = 10.0


def trigamma(x) -> np.ndarray:
    """The trigamma function ``psi'(x)`` for ``x > 0``: the recurrence
    ``psi'(x) = psi'(x + 1) + 1 / x^2`` (the same number of steps for all elements, enough
    for the smallest to reach 10), then the asymptotic series
    ``1/x + 1/(2x^2) + sum_k B_2k / x^(2k+1)`` to ``x^-11`` (relative error below 1e-14);
    many times faster than ``scipy.trigamma(x)``, which the PIRLS weights of NB1,
    the beta and the beta-binomial evaluate at every iteration.

    Parameters
    ----------
    x : array_like
        positive arguments.
    """
    x = np.asarray(x, dtype=float)
    lo = float(np.min(x)) if x.size else _TRIGAMMA_SHIFT
    shift = int(max(0.0, math.ceil(_TRIGAMMA_SHIFT - lo)))
    acc = np.zeros(x.shape)
    if shift:   # the same number of steps for every element: plain array arithmetic
        xs = x.copy()
        for _ in range(shift):
            acc += 1.0 / (xs * xs)
            xs += 1.0
        x = xs
    r = 1.0 / x
    r2 = r * r
    series = r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r2 * (-1.0 / 30.0 + r2 * (
        1.0 / 42.0 + r2 * (-1.0 / 30.0 + r2 * (5.0 / 66.0)))))))
    return acc + series


def _rows(idx: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (f", ... ({idx.size} in all)" if idx.size > limit else "")


class _ExtraFamily(Family):
    """Shared machinery of the families with parameters of their own, held on their natural
    scale in :attr:`values` (named by :attr:`natural_names`) and optimized on the log scale.

    Subclasses set ``natural_names``, implement ``_loglik``, ``dloglik_dmu`` and
    ``d2loglik_dmu2``, the quasi-likelihood ``variance`` and an expected information
    ``_info_mu`` (per unit prior weight, in ``mu``)."""

    natural_names: tuple[str, ...] = ()
    #: per parameter: what glmmTMB's ``sigma()`` reports (the index into ``values``), or None
    sigma_index: int | None = None
    newton_pirls = True

    def __init__(self, link: str | Link | type[Link] | None = None, **values: float) -> None:
        super().__init__(link)
        self.values = tuple(_positive(self.name, n, values.get(n, self._default(n)))
                            for n in self.natural_names)

    def _default(self, name: str) -> float:
        return 1.0

    def __getattr__(self, item: str):
        names = type(self).natural_names
        if item in names and "values" in self.__dict__:
            return self.__dict__["values"][names.index(item)]
        raise AttributeError(item)

    @property
    def link_is_canonical(self) -> bool:
        return False

    # the family's own parameters -------------------------------------------------------
    def extra_names(self) -> list[str]:
        return [f"log({n})" for n in self.natural_names]

    def extra_values(self) -> np.ndarray:
        return np.log(np.asarray(self.values, dtype=float))

    def with_extra(self, values: np.ndarray) -> Family:
        new = copy.copy(self)
        new.values = tuple(float(math.exp(float(v))) for v in np.asarray(values, dtype=float))
        return new

    def with_values(self, **values: float) -> Family:
        """A copy with some parameters replaced (natural scale, by name)."""
        new = copy.copy(self)
        new.values = tuple(_positive(self.name, n, values.get(n, v))
                           for n, v in zip(self.natural_names, self.values, strict=True))
        return new

    def _params(self) -> tuple:
        return (type(self), self.link.name, self.values)

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={v!r}" for n, v in zip(self.natural_names, self.values,
                                                      strict=True))
        return f"{type(self).__name__}({args}, link={self.link.name!r})"

    def tmb_sigma(self, dispersion: float = 1.0) -> float:
        """glmmTMB's ``sigma()`` for this family at these parameters."""
        if self.sigma_index is None:
            return math.sqrt(dispersion)
        return float(self.values[self.sigma_index])

    # deviance: -2 log-density (no saturated model is needed for IRLS step control) ------
    def unit_deviance(self, y, mu) -> np.ndarray:
        y, mu = _arr(y), _arr(mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -2.0 * self._loglik(y, mu, np.ones(np.broadcast(y, mu).shape), 1.0)

    def variance_deriv(self, mu) -> np.ndarray:
        h = 1e-6 * np.maximum(np.abs(_arr(mu)), 1e-3)
        return (self.variance(_arr(mu) + h) - self.variance(_arr(mu) - h)) / (2.0 * h)

    # weights and derivatives ------------------------------------------------------------
    def _info_mu(self, mu: np.ndarray, wt: np.ndarray, phi) -> np.ndarray:
        return wt / self.variance(mu)

    def fisher_weights(self, eta, mu, wt, dispersion=1.0, mu_eta=None):
        if mu_eta is None:
            mu_eta = self.link.mu_eta_at(eta, mu)
        mu = _arr(mu)
        return self._info_mu(mu, _arr(wt), self._phi(dispersion)) * mu_eta**2, mu_eta

    def fisher_weights_deta(self, eta, mu, wt, dispersion=1.0) -> np.ndarray:
        eta = _arr(eta)
        h = 1e-5 * np.maximum(1.0, np.abs(eta))

        def w(e):
            return self.fisher_weights(e, self.link.inverse(e), wt, dispersion)[0]

        with np.errstate(all="ignore"):
            return (w(eta + h) - w(eta - h)) / (2.0 * h)

    def working_residual(self, y, mu, eta, wt, dispersion, w, mu_eta) -> np.ndarray:
        score = self.dloglik_deta(y, mu, eta, wt, dispersion)
        return np.divide(score, w, out=np.zeros(np.broadcast(score, w).shape), where=w > 0)

    def weights_and_working(self, y, mu, eta, wt=None):
        y, wt = self._prep(y, wt)
        w, mu_eta = self.fisher_weights(eta, mu, wt)
        return w, self.working_residual(y, mu, eta, wt, 1.0, w, mu_eta)


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

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        ph = self.values[0]
        k = mu / ph
        lfac = _cached(("poisson",), y, wt, lambda: special.gammaln(y + 1.0))
        return wt * (special.gammaln(y + k) - special.gammaln(k) - lfac
                     - k * math.log1p(ph) + y * math.log(ph / (1.0 + ph)))

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        ph = self.values[0]
        k = _arr(mu) / ph
        return wt / ph * (special.digamma(y + k) - special.digamma(k) - math.log1p(ph))

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        ph = self.values[0]
        k = _arr(mu) / ph
        return wt / ph**2 * (trigamma(y + k) - trigamma(k))

    def extra_start(self, y, mu, wt) -> np.ndarray:
        excess = self._pearson_ratio(y, mu) - 1.0
        return np.array([math.log(min(max(excess, 0.05), 1e4))])


def _check_counts(fam: Family, y: np.ndarray) -> None:
    for bad, what in ((y < 0, "negative counts"), (_non_integer(y), "non-integer counts")):
        if np.any(bad):
            idx = np.flatnonzero(bad)
            raise DataError(f"{fam.name} family: the response must be counts (whole numbers "
                            f">= 0); {what} in rows {_rows(idx)} (0-based)")


# ---------------------------------------------------------------------------------- beta
class Beta(_ExtraFamily):
    """Beta regression (glmmTMB's ``beta_family``): ``y ~ Beta(mu phi, (1 - mu) phi)`` with
    mean ``mu`` and precision ``phi`` (``Var(y) = mu (1 - mu) / (1 + phi)``); glmmTMB's
    ``sigma()`` is ``phi``. The response must be strictly inside (0, 1).

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"logit"`` (default), ``"probit"``, ``"cloglog"`` or ``"cauchit"``.
    phi : float, optional
        the precision, positive (default 1).
    """

    name = "beta"
    r_name = "beta"
    canonical_link = "logit"
    valid_links = ("logit", "probit", "cloglog", "cauchit")
    natural_names = ("phi",)
    sigma_index = 0

    def variance(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return mu * (1.0 - mu) / (1.0 + self.values[0])

    def _logs(self, y, wt):
        return _cached(("beta",), y, wt, lambda: (np.log(y), np.log1p(-y)))

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        ph = self.values[0]
        a, b = mu * ph, (1.0 - mu) * ph
        ly, l1y = self._logs(y, wt)
        return wt * (special.gammaln(ph) - special.gammaln(a) - special.gammaln(b)
                     + (a - 1.0) * ly + (b - 1.0) * l1y)

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        ph = self.values[0]
        mu = _arr(mu)
        ly, l1y = self._logs(y, wt)
        return wt * ph * (ly - l1y - special.digamma(mu * ph) + special.digamma((1.0 - mu) * ph))

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        return -self._info_mu(_arr(mu), wt, 1.0)

    def _info_mu(self, mu, wt, phi) -> np.ndarray:
        ph = self.values[0]   # observed = expected: the second derivative is free of y
        # PIRLS asks for the Fisher and the observed weights at the same means: keep the last
        last = self.__dict__.get("_last_info")
        if last is not None and last[0] is mu and last[1] == ph:
            return wt * last[2]
        info = ph**2 * (trigamma(mu * ph) + trigamma((1.0 - mu) * ph))
        self.__dict__["_last_info"] = (mu, ph, info)
        return wt * info

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return (mu > 0) & (mu < 1)

    def _validate_support(self, y, wt) -> None:
        bad = (y <= 0) | (y >= 1)
        if np.any(bad):
            idx = np.flatnonzero(bad)
            raise DataError(
                f"beta family: the response must be strictly between 0 and 1; rows "
                f"{_rows(idx)} (0-based) have values {_values(y[idx])}; transform the "
                "response into (0, 1) first, e.g. (y * (n - 1) + 0.5) / n with n the number "
                "of rows (Smithson & Verkuilen 2006)")

    def mustart(self, y, wt=None) -> np.ndarray:
        return _arr(y).copy()

    def extra_start(self, y, mu, wt) -> np.ndarray:
        ratio = float(np.sum(mu * (1.0 - mu)) / max(float(np.sum((y - mu) ** 2)), 1e-12))
        return np.array([math.log(min(max(ratio - 1.0, 0.1), 1e6))])


def _values(v: np.ndarray, limit: int = 4) -> str:
    shown = ", ".join(f"{x:g}" for x in v[:limit])
    return shown + (", ..." if v.size > limit else "")


# -------------------------------------------------------------------------- beta-binomial
class BetaBinomial(_ExtraFamily):
    """Beta-binomial proportions (glmmTMB's ``betabinomial``): ``wt * y`` successes out of
    ``wt`` trials with success probability ``p ~ Beta(mu phi, (1 - mu) phi)``, so
    ``Var(wt y) = wt mu (1 - mu) (1 + (wt - 1) / (phi + 1))``; glmmTMB's ``sigma()`` is
    ``phi``. Responses as for the binomial (``cbind(successes, failures)`` or proportions with
    the trials as weights).

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"logit"`` (default), ``"probit"``, ``"cloglog"`` or ``"cauchit"``.
    phi : float, optional
        the precision of the success probabilities, positive (default 1).
    """

    name = "betabinomial"
    r_name = "betabinomial"
    canonical_link = "logit"
    valid_links = ("logit", "probit", "cloglog", "cauchit")
    natural_names = ("phi",)
    sigma_index = 0

    def variance(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return mu * (1.0 - mu)

    def _info_mu(self, mu, wt, phi) -> np.ndarray:
        inflation = 1.0 + (wt - 1.0) / (self.values[0] + 1.0)
        return wt / (mu * (1.0 - mu) * inflation)

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        n, k, const = _binomial_constants(y, wt)
        ph = self.values[0]
        a, b = mu * ph, (1.0 - mu) * ph
        return (const + special.gammaln(k + a) + special.gammaln(n - k + b) - special.gammaln(a)
                - special.gammaln(b) + special.gammaln(ph) - special.gammaln(n + ph))

    def unit_deviance(self, y, mu) -> np.ndarray:   # only through deviance_residuals
        raise NotImplementedError

    def deviance_residuals(self, y, mu, wt=None) -> np.ndarray:
        y, wt = self._prep(y, wt)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = -2.0 * self._loglik(y, _arr(mu), wt, 1.0)
        return np.where(wt == 0, 0.0, d)

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        n, k, _ = _binomial_constants(y, wt)
        ph = self.values[0]
        a, b = _arr(mu) * ph, (1.0 - _arr(mu)) * ph
        return ph * (special.digamma(k + a) - special.digamma(a)
                     - special.digamma(n - k + b) + special.digamma(b))

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        n, k, _ = _binomial_constants(y, wt)
        ph = self.values[0]
        a, b = _arr(mu) * ph, (1.0 - _arr(mu)) * ph
        return ph**2 * (trigamma(k + a) - trigamma(a)
                        + trigamma(n - k + b) - trigamma(b))

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return (mu > 0) & (mu < 1)

    def _validate_support(self, y, wt) -> None:
        for bad, what in (((y < 0) | (y > 1), "proportions outside [0, 1]"),
                          (_non_integer(wt), "non-integer numbers of trials"),
                          (_non_integer(wt * y), "non-integer numbers of successes")):
            if np.any(bad):
                raise DataError(f"betabinomial family: {what} in rows "
                                f"{_rows(np.flatnonzero(bad))} (0-based)")

    def mustart(self, y, wt=None) -> np.ndarray:
        y, wt = self._prep(y, wt)
        return (wt * y + 0.5) / (wt + 1.0)

    def extra_start(self, y, mu, wt) -> np.ndarray:
        big = wt > 1
        if not np.any(big):
            return np.array([math.log(10.0)])
        pearson = wt * (y - mu) ** 2 / (mu * (1.0 - mu))
        rho = float(np.sum(pearson[big] - 1.0) / np.sum(wt[big] - 1.0))
        rho = min(max(rho, 1e-3), 0.9)
        return np.array([math.log(1.0 / rho - 1.0)])


# ------------------------------------------------------------------------------ Student t
class StudentT(_ExtraFamily):
    """Student's t responses (glmmTMB's ``t_family``): ``(y - mu) / sigma ~ t(df)``, with the
    scale ``sigma`` a dispersion (``dispersion = sigma^2``; ``Lambda`` carries ``sigma`` as for
    the Gaussian) and the degrees of freedom ``df`` estimated (glmmTMB's ``psi = log(df)``);
    glmmTMB's ``sigma()`` is ``sigma``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"identity"`` (default), ``"log"`` or ``"inverse"``.
    df : float, optional
        the degrees of freedom, positive (default 10).
    """

    name = "t"
    r_name = "t"
    canonical_link = "identity"
    valid_links = ("identity", "log", "inverse")
    has_dispersion = True
    natural_names = ("df",)
    sigma_index = None

    def _default(self, name: str) -> float:
        return 10.0

    def variance(self, mu) -> np.ndarray:
        return np.ones_like(_arr(mu))

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        df = self.values[0]
        r2 = (y - mu) ** 2 / phi
        const = (special.gammaln(0.5 * (df + 1.0)) - special.gammaln(0.5 * df)
                 - 0.5 * (math.log(df) + _LOG_PI))
        return wt * (const - 0.5 * np.log(phi) - 0.5 * (df + 1.0) * np.log1p(r2 / df))

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        phi = self._phi(dispersion)
        df = self.values[0]
        r = y - _arr(mu)
        return wt * (df + 1.0) * r / (df * phi + r * r)

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        phi = self._phi(dispersion)
        df = self.values[0]
        r2 = (y - _arr(mu)) ** 2
        s = df * phi + r2
        return wt * (df + 1.0) * (r2 - df * phi) / (s * s)

    def _info_mu(self, mu, wt, phi) -> np.ndarray:
        df = self.values[0]
        return wt * (df + 1.0) / ((df + 3.0) * phi) * np.ones_like(mu)

    def mustart(self, y, wt=None) -> np.ndarray:
        y = _arr(y)
        if ((self.link.name == "inverse" and np.any(y == 0))
                or (self.link.name == "log" and np.any(y <= 0))):
            raise DataError(f"t family with {self.link.name} link: cannot find valid starting "
                            "values (the response has values outside the link's range)")
        return y.copy()

    def extra_start(self, y, mu, wt) -> np.ndarray:
        return np.array([math.log(10.0)])


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

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        theta, lam, _ = self._theta_lambda(mu)
        inner = theta + lam * y
        lfac = _cached(("poisson",), y, wt, lambda: special.gammaln(y + 1.0))
        ll = np.log(theta) + special.xlogy(y - 1.0, np.where(inner > 0, inner, 1.0)) \
            - inner - lfac
        return wt * np.where(inner > 0, ll, -np.inf)

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        theta, lam, s = self._theta_lambda(mu)
        return wt / s * (1.0 / theta + (y - 1.0) / (theta + lam * y) - 1.0)

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        theta, lam, s = self._theta_lambda(mu)
        return -wt / s**2 * (1.0 / theta**2 + (y - 1.0) / (theta + lam * y) ** 2)

    def extra_start(self, y, mu, wt) -> np.ndarray:
        return np.array([math.log(min(max(self._pearson_ratio(y, mu), 1.0), 1e4))])


# -------------------------------------------------------------------------------- Tweedie
#: Dunn & Smyth's series is summed over ``j`` within this many log units of its largest term
_SERIES_DROP = 40.0
#: rows per block of the vectorized series
_SERIES_CHUNK = 20_000
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
    y = np.asarray(y, dtype=float)
    if y.size > _SERIES_CHUNK:   # bounded memory: rows x window at a time
        flat = y.reshape(-1)
        parts = [tweedie_log_series(flat[i:i + _SERIES_CHUNK], phi, power)
                 for i in range(0, flat.size, _SERIES_CHUNK)]
        return np.concatenate(parts).reshape(y.shape)
    if y.size == 0:
        return np.zeros(y.shape)
    p = power
    alpha = (2.0 - p) / (p - 1.0)
    logz = (alpha * np.log(y) - alpha * math.log(p - 1.0) - (1.0 + alpha) * math.log(phi)
            - math.log(2.0 - p))   # log W_j = j logz - lgamma(j + 1) - lgamma(alpha j)
    jmax = np.maximum(1.0, y ** (2.0 - p) / (phi * (2.0 - p)))

    # the terms fall off like a Gaussian in j around jmax with variance ~ jmax / (1 + alpha)
    # ... (Stirling): a window of +-(c sqrt(jmax) + 10) terms covers the 40-log-unit drop
    half = np.ceil(np.sqrt(2.0 * _SERIES_DROP * jmax * (1.0 + 1.0 / alpha)) + 10.0)
    lo = np.maximum(1.0, np.floor(jmax) - half)
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
    return top + np.log(np.sum(np.exp(terms - top[..., None]), axis=-1))


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
    newton_pirls = False
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

    def mustart(self, y, wt=None) -> np.ndarray:
        y = _arr(y)
        return y + 0.1 * (y == 0) + 0.1 * np.mean(y) * (y == 0)


# ------------------------------------------------------------------- Conway-Maxwell-Poisson
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

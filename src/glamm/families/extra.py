"""Response distributions outside the exponential family, as glmmTMB has them: their base
class :class:`_ExtraFamily`, beta regression (``beta``), beta-binomial (``betabinomial``) and
Student's t (``t``); the count families NB1 (``nbinom1``) and the generalized Poisson
(``genpois``) are in :mod:`glamm.families.extra_counts`, the Tweedie and
Conway-Maxwell-Poisson families, built on the same base class, in
:mod:`glamm.families.tweedie` and :mod:`glamm.families.compois`.

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
from . import compiled
from .base import Family
from .distributions import Binomial
from .links import Link
from .numeric import _arr, _binomial_constants, _cached, _non_integer

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
    k = compiled.kernels()
    if k is not None and x.size and np.all(x > 0):   # (compiled: one loop, own steps each)
        flat = np.ascontiguousarray(x).reshape(-1)
        out = np.empty(flat.shape)
        k.trigamma(flat, out)
        return out.reshape(x.shape)
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

    Subclasses set ``natural_names``, implement ``_loglik_numpy``, ``_dloglik_dmu_numpy``
    and ``_d2loglik_dmu2_numpy`` (or override ``_loglik``, ``dloglik_dmu`` and
    ``d2loglik_dmu2`` directly), the quasi-likelihood ``variance`` and an expected
    information ``_info_mu`` (per unit prior weight, in ``mu``); with ``_has_row_kernel``
    ``_row_kernel`` fills all three in one compiled pass."""

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

    # compiled rows ------------------------------------------------------------------------
    #: whether :meth:`_row_kernel` has a compiled kernel (glamm.families._kernels)
    _has_row_kernel = False

    def _row_kernel(self, k, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, phi: float,
                    out: np.ndarray) -> bool:
        """Fill ``out`` (``3 x n``) with the log-density (before the zero-weight and
        mean-range rules of :meth:`loglik`), ``d log f / d mu`` and ``d2 log f / d mu2`` by
        the compiled kernels module ``k``; false where the family has none."""
        return False

    def _compiled_rows(self, y, mu, wt, phi) -> np.ndarray | None:
        """:meth:`_row_kernel`'s three rows, kept for the last rows, dispersion and
        parameters (PIRLS asks for all three at the same means); ``None`` without a kernel,
        numba, one-dimensional float rows or a scalar dispersion (the NumPy code then
        runs)."""
        if not self._has_row_kernel or type(phi) is not float:
            return None
        held = self.__dict__.get("_rows_of")
        if (held is not None and held[1] is mu and held[0] is y and held[2] is wt
                and held[3] == phi and held[4] == self.values):
            return held[5]
        k = compiled.kernels()
        if k is None or not compiled.rows_ok(y, mu, wt):
            return None
        out = np.empty((3, y.shape[0]))
        with np.errstate(all="ignore"):
            if not self._row_kernel(k, y, mu, wt, phi, out):
                return None
        self.__dict__["_rows_of"] = (y, mu, wt, phi, self.values, out)
        return out

    def _rows_at(self, y, mu, wt, dispersion) -> np.ndarray | None:
        """:meth:`_compiled_rows` for the public derivative methods' arguments."""
        if not self._has_row_kernel:
            return None
        y, wt = self._prep(y, wt)
        return self._compiled_rows(y, _arr(mu), wt, self._phi(dispersion))

    # the log-density and its mean derivatives: the compiled rows where the family has
    # them, else its NumPy code (``_loglik_numpy`` and friends; a family without a kernel
    # may override the public methods themselves, as the Tweedie and COM-Poisson do)
    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        rows = self._compiled_rows(y, mu, wt, phi)
        return rows[0] if rows is not None else self._loglik_numpy(y, mu, wt, phi)

    def _loglik_numpy(self, y, mu, wt, phi) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no log-density")

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        rows = self._rows_at(y, mu, wt, dispersion)
        return rows[1] if rows is not None else self._dloglik_dmu_numpy(y, mu, wt,
                                                                        dispersion)

    def _dloglik_dmu_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        return Family.dloglik_dmu(self, y, mu, wt, dispersion)

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        rows = self._rows_at(y, mu, wt, dispersion)
        return rows[2] if rows is not None else self._d2loglik_dmu2_numpy(y, mu, wt,
                                                                          dispersion)

    def _d2loglik_dmu2_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        return Family.d2loglik_dmu2(self, y, mu, wt, dispersion)

    # weights and derivatives ------------------------------------------------------------
    def _score_mu(self, y, mu, wt, dispersion) -> np.ndarray:
        """:meth:`dloglik_dmu`, kept for the last responses, means, weights, dispersion and
        parameters (by identity and value): PIRLS asks for it through the working response
        and again through the observed weights at the same means."""
        disp = id(dispersion) if np.ndim(dispersion) else float(dispersion)
        held = self.__dict__.get("_score_of")
        if (held is not None and held[0] is y and held[1] is mu and held[2] is wt
                and held[3] == disp and held[4] == self.values):
            return held[5]
        value = self.dloglik_dmu(y, mu, wt, dispersion)
        self.__dict__["_score_of"] = (y, mu, wt, disp, self.values, value)
        return value

    def dloglik_deta(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._score_mu(y, mu, wt, dispersion) * self.link.mu_eta_at(eta, _arr(mu))

    def d2loglik_deta2(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        d1 = self.link.mu_eta(eta)
        return (self.d2loglik_dmu2(y, mu, wt, dispersion) * d1 * d1
                + self._score_mu(y, mu, wt, dispersion) * self.link.d2mu_deta2(eta))

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

    _has_row_kernel = True

    def _row_kernel(self, k, y, mu, wt, phi, out) -> bool:
        ly, l1y = self._logs(y, wt)
        k.beta(ly, l1y, mu, wt, self.values[0], out)
        return True

    def _loglik_numpy(self, y, mu, wt, phi) -> np.ndarray:
        ph = self.values[0]
        a, b = mu * ph, (1.0 - mu) * ph
        ly, l1y = self._logs(y, wt)
        return wt * (special.gammaln(ph) - special.gammaln(a) - special.gammaln(b)
                     + (a - 1.0) * ly + (b - 1.0) * l1y)

    def _dloglik_dmu_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        ph = self.values[0]
        mu = _arr(mu)
        ly, l1y = self._logs(y, wt)
        return wt * ph * (ly - l1y - special.digamma(mu * ph) + special.digamma((1.0 - mu) * ph))

    def _d2loglik_dmu2_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
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

    def sample(self, mu, wt, dispersion, rng):
        mu, ph = _arr(mu), self.values[0]
        return rng.beta(mu * ph, (1.0 - mu) * ph)


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

    _has_row_kernel = True

    def _row_kernel(self, kern, y, mu, wt, phi, out) -> bool:
        n, k, const = _binomial_constants(y, wt)
        kern.betabinomial(n, k, const, mu, self.values[0], out)
        return True

    def _loglik_numpy(self, y, mu, wt, phi) -> np.ndarray:
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

    def _dloglik_dmu_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        n, k, _ = _binomial_constants(y, wt)
        ph = self.values[0]
        a, b = _arr(mu) * ph, (1.0 - _arr(mu)) * ph
        return ph * (special.digamma(k + a) - special.digamma(a)
                     - special.digamma(n - k + b) + special.digamma(b))

    def _d2loglik_dmu2_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
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

    def sample(self, mu, wt, dispersion, rng):
        mu, ph = _arr(mu), self.values[0]
        prob = rng.beta(mu * ph, (1.0 - mu) * ph)
        return Binomial.sample(self, prob, wt, dispersion, rng)


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

    _has_row_kernel = True

    def _constant(self) -> float:
        df = self.values[0]
        return (math.lgamma(0.5 * (df + 1.0)) - math.lgamma(0.5 * df)
                - 0.5 * (math.log(df) + _LOG_PI))

    def _row_kernel(self, k, y, mu, wt, phi, out) -> bool:
        k.student_t(y, mu, wt, phi, self.values[0], self._constant(), out)
        return True

    def _loglik_numpy(self, y, mu, wt, phi) -> np.ndarray:
        df = self.values[0]
        r2 = (y - mu) ** 2 / phi
        const = (special.gammaln(0.5 * (df + 1.0)) - special.gammaln(0.5 * df)
                 - 0.5 * (math.log(df) + _LOG_PI))
        return wt * (const - 0.5 * np.log(phi) - 0.5 * (df + 1.0) * np.log1p(r2 / df))

    def _dloglik_dmu_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        phi = self._phi(dispersion)
        df = self.values[0]
        r = y - _arr(mu)
        return wt * (df + 1.0) * r / (df * phi + r * r)

    def _d2loglik_dmu2_numpy(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
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

    def sample(self, mu, wt, dispersion, rng):
        mu = _arr(mu)
        return mu + np.sqrt(_arr(dispersion)) * rng.standard_t(self.values[0], mu.shape)

"""Response distributions (exponential-family "families") for generalized linear mixed models.

Each :class:`Family` pairs a distribution with a :class:`~glamm.families.links.Link` and
provides what a penalized IRLS / Laplace fit needs: the variance function, deviance pieces,
the full per-observation log-density, data checks, starting values, IRLS weights and the
observed first and second derivatives of the log-density with respect to ``eta``.

Conventions (the same as R's ``family()`` objects):

* ``y`` is the response; for the binomial it is the proportion of successes and ``wt`` the
  number of trials (0/1 responses have ``wt = 1``).
* ``wt`` are prior weights (default 1). In the deviance and the score they act as precision
  weights. In :meth:`Family.loglik` they follow R's ``family()$aic``: the Gaussian density has
  variance ``dispersion / wt``; the Poisson, Gamma, inverse Gaussian and negative binomial
  log-densities are multiplied by ``wt``; the binomial uses ``wt`` trials. Observations with
  ``wt == 0`` contribute 0 to the log-likelihood, the deviance and the derivatives.
* ``dispersion`` is the scale ``phi`` (``Var(y) = phi * V(mu) / wt``). Families without a
  free dispersion (binomial, Poisson, negative binomial) ignore it and use 1; the negative
  binomial has its shape (MASS's ``theta``) instead (``V(mu) = mu + mu^2 / shape``).
"""

from __future__ import annotations

import copy
import math

import numpy as np
from scipy import special

from ..errors import DataError
from . import compiled
from .base import Family
from .links import Link
from .numeric import _LOG_2PI, _arr, _binomial_constants, _cached, _non_integer, _ylogy

__all__ = [
    "Family",
    "Binomial",
    "Poisson",
    "Gaussian",
    "Gamma",
    "InverseGaussian",
    "NegativeBinomial",
]

#: relative tolerance for "whole number" checks (counts, successes, binomial trials)
class Binomial(Family):
    """Binomial proportions: ``wt * y ~ Binomial(wt, mu)``; ``V(mu) = mu (1 - mu)``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"logit"`` (default), ``"probit"``, ``"cloglog"``, ``"cauchit"`` or ``"log"``.
    """

    can_separate = True
    name = "binomial"
    r_name = "binomial"
    canonical_link = "logit"
    valid_links = ("logit", "probit", "cloglog", "cauchit", "log")

    def variance(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return mu * (1.0 - mu)

    def variance_deriv(self, mu) -> np.ndarray:
        return 1.0 - 2.0 * _arr(mu)

    def unit_deviance(self, y, mu) -> np.ndarray:
        y, mu = _arr(y), _arr(mu)
        return 2.0 * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        # R: dbinom(round(wt * y), round(wt), mu, log = TRUE)
        n, k, const = _binomial_constants(y, wt)
        if np.all((mu > 0.0) & (mu < 1.0)):  # the usual case: plain logs are safe and faster
            return const + k * np.log(mu) + (n - k) * np.log1p(-mu)
        return const + special.xlogy(k, mu) + special.xlog1py(n - k, -mu)

    def loglik_eta(self, y, eta, wt=None, dispersion=1.0) -> np.ndarray:
        if self.link.name != "logit":
            return super().loglik_eta(y, eta, wt, dispersion)
        y, wt = self._prep(y, wt)
        n, k, const = _binomial_constants(y, wt)
        # k log mu + (n - k) log(1 - mu) = k eta - n log(1 + exp(eta))
        return np.where(wt == 0, 0.0, const + k * eta - n * np.logaddexp(0.0, eta))

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return (mu >= 0) & (mu <= 1)   # the ends are limits (saturated model), not errors

    def valid_mu(self, mu) -> bool:
        mu = _arr(mu)   # R's validmu: strictly inside (0, 1)
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))

    def _validate_support(self, y, wt) -> None:
        self._fail_if((y < 0) | (y > 1), "the response (a proportion) must be in [0, 1]; values "
                      "outside [0, 1]")
        self._fail_if(_non_integer(wt), "the prior weights (numbers of trials) must be whole "
                      "numbers; non-integer weights")
        self._fail_if(_non_integer(wt * y), "the numbers of successes (weights * y) must be whole "
                      "numbers; non-integer successes")

    def mustart(self, y, wt=None) -> np.ndarray:
        y, wt = self._prep(y, wt)
        y = np.where(wt == 0, 0.0, y)
        return (wt * y + 0.5) / (wt + 1.0)

    def sample(self, mu, wt, dispersion, rng):
        mu, n = _arr(mu), np.broadcast_to(_arr(wt), np.shape(mu))
        trials = np.rint(n)
        if np.any(np.abs(n - trials) > 1e-8 * np.maximum(n, 1.0)):
            raise DataError("binomial family: simulating needs whole numbers of trials (the "
                            "weights); these are not integers")
        k = rng.binomial(trials.astype(np.int64), np.clip(mu, 0.0, 1.0))
        return np.divide(k, trials, out=np.zeros(mu.shape), where=trials > 0)


class _CountFamily(Family):
    """Shared support checks of the count families."""

    def _validate_support(self, y, wt) -> None:
        self._fail_if(y < 0, "the response (a count) must not be negative; negative counts")
        self._fail_if(_non_integer(y), "the response (a count) must be whole numbers; "
                      "non-integer counts")

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return np.isfinite(mu) & (mu >= 0)   # 0 is the saturated mean of a zero count

    def _eta_derivatives_compiled(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray):
        """``eta_derivatives`` by the compiled kernel (:func:`glamm.families._kernels.
        count_log_link`) where the family has one (:meth:`count_kernel_args`); ``None``
        without it, numba or one-dimensional float rows."""
        k = compiled.kernels()
        if k is None or not compiled.rows_ok(y, mu, wt):
            return None
        args = self.count_kernel_args(y, wt)
        if args is None:
            return None
        out = np.empty((3, y.shape[0]))
        k.count_log_link(y, mu, wt, *args, out)
        return out[0], out[1], out[2]

    def valid_mu(self, mu) -> bool:
        mu = _arr(mu)   # R's validmu: strictly positive
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


class Poisson(_CountFamily):
    """Poisson counts; ``V(mu) = mu``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"log"`` (default), ``"identity"`` or ``"sqrt"``.
    """

    name = "poisson"
    r_name = "poisson"
    canonical_link = "log"
    valid_links = ("log", "identity", "sqrt")

    def variance(self, mu) -> np.ndarray:
        return _arr(mu).copy()

    def variance_deriv(self, mu) -> np.ndarray:
        return np.ones_like(_arr(mu))

    def unit_deviance(self, y, mu) -> np.ndarray:
        y, mu = _arr(y), _arr(mu)
        return 2.0 * (_ylogy(y, mu) - (y - mu))

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        return wt * (special.xlogy(y, mu) - mu - _cached(("poisson",), y, wt,
                                                         lambda: special.gammaln(y + 1.0)))

    def eta_derivatives(self, y, mu, eta, wt=None, dispersion=1.0):
        """At the log link: ``wt (y log mu - mu - log y!)``, ``wt (y - mu)`` and ``-wt mu``."""
        if self.link.name != "log":
            return super().eta_derivatives(y, mu, eta, wt, dispersion)
        y, wt = self._prep(y, wt)
        mu = _arr(mu)
        rows = self._eta_derivatives_compiled(y, mu, wt)
        if rows is not None:
            return rows
        lgam = _cached(("poisson",), y, wt, lambda: special.gammaln(y + 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = wt * (special.xlogy(y, mu) - mu - lgam)
        ll = np.where(np.isfinite(mu), ll, -np.inf)
        return np.where(wt == 0, 0.0, ll), wt * (y - mu), -wt * mu

    def count_kernel_args(self, y, wt):
        if self.link.name != "log":
            return None
        return _cached(("poisson-const",), y, wt, lambda: -special.gammaln(y + 1.0)), \
            math.inf, True

    def loglik_eta(self, y, eta, wt=None, dispersion=1.0) -> np.ndarray:
        if self.link.name != "log":
            return super().loglik_eta(y, eta, wt, dispersion)
        y, wt = self._prep(y, wt)
        lgam = _cached(("poisson",), y, wt, lambda: special.gammaln(y + 1.0))
        eta = np.minimum(eta, 700.0)
        return np.where(wt == 0, 0.0, wt * (y * eta - np.exp(eta) - lgam))

    def mustart(self, y, wt=None) -> np.ndarray:
        return _arr(y) + 0.1

    def sample(self, mu, wt, dispersion, rng):
        return rng.poisson(_arr(mu)).astype(float)


class Gaussian(Family):
    """Normal responses; ``V(mu) = 1``, ``Var(y) = dispersion / wt``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"identity"`` (default), ``"log"`` or ``"inverse"``.
    """

    name = "gaussian"
    r_name = "gaussian"
    canonical_link = "identity"
    valid_links = ("identity", "log", "inverse")
    has_dispersion = True

    def variance(self, mu) -> np.ndarray:
        return np.ones_like(_arr(mu))

    def variance_deriv(self, mu) -> np.ndarray:
        return np.zeros_like(_arr(mu))

    def unit_deviance(self, y, mu) -> np.ndarray:
        r = _arr(y) - _arr(mu)
        return r * r

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        r = y - mu
        return -0.5 * (_LOG_2PI + np.log(phi) - np.log(wt)) - 0.5 * wt * r * r / phi

    def mustart(self, y, wt=None) -> np.ndarray:
        y = _arr(y)
        if ((self.link.name == "inverse" and np.any(y == 0))
                or (self.link.name == "log" and np.any(y <= 0))):
            raise DataError(f"gaussian family with {self.link.name} link: cannot find valid "
                            "starting values (the response has values outside the link's range)")
        return y.copy()

    def sample(self, mu, wt, dispersion, rng):
        mu = _arr(mu)
        sd = np.sqrt(_arr(dispersion) / np.broadcast_to(_arr(wt), mu.shape))
        return mu + sd * rng.standard_normal(mu.shape)


class Gamma(Family):
    """Gamma responses with shape ``1 / dispersion``; ``V(mu) = mu^2``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"inverse"`` (default), ``"identity"`` or ``"log"``.
    """

    name = "gamma"
    r_name = "Gamma"
    canonical_link = "inverse"
    valid_links = ("inverse", "identity", "log")
    has_dispersion = True

    def variance(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return mu * mu

    def variance_deriv(self, mu) -> np.ndarray:
        return 2.0 * _arr(mu)

    def unit_deviance(self, y, mu) -> np.ndarray:
        y, mu = _arr(y), _arr(mu)
        ratio = np.divide(y, mu, out=np.ones(np.broadcast(y, mu).shape), where=y != 0)
        return -2.0 * (np.log(ratio) - (y - mu) / mu)

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        # R: dgamma(y, shape = 1/phi, scale = mu * phi, log = TRUE) * wt
        shape = 1.0 / phi
        scale = mu * phi
        return wt * ((shape - 1.0) * np.log(y) - y / scale - special.gammaln(shape)
                     - shape * np.log(scale))

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return np.isfinite(mu) & (mu > 0)

    def _validate_support(self, y, wt) -> None:
        self._fail_if(y <= 0, "the response must be positive; values <= 0")

    def sample(self, mu, wt, dispersion, rng):
        mu = _arr(mu)
        shape = np.broadcast_to(_arr(wt), mu.shape) / _arr(dispersion)
        return rng.gamma(shape, mu / shape)


class InverseGaussian(Family):
    """Inverse Gaussian responses with shape ``lambda = 1 / dispersion``; ``V(mu) = mu^3``.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        ``"inverse_squared"`` (R's ``"1/mu^2"``, default), ``"inverse"``,
        ``"identity"`` or ``"log"``.
    """

    name = "inverse_gaussian"
    r_name = "inverse.gaussian"
    canonical_link = "inverse_squared"
    valid_links = ("inverse_squared", "inverse", "identity", "log")
    has_dispersion = True

    def variance(self, mu) -> np.ndarray:
        return _arr(mu) ** 3

    def variance_deriv(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return 3.0 * mu * mu

    def unit_deviance(self, y, mu) -> np.ndarray:
        y, mu = _arr(y), _arr(mu)
        r = y - mu
        return r * r / (y * mu * mu)

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        # R's inverse.gaussian()$aic: wt * log IG density(y; mu, lambda = 1/phi)
        r = y - mu
        return wt * (-0.5 * (_LOG_2PI + np.log(phi)) - 1.5 * np.log(y)
                     - r * r / (2.0 * phi * y * mu * mu))

    def mu_in_range(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return np.isfinite(mu) & (mu > 0)

    def _validate_support(self, y, wt) -> None:
        self._fail_if(y <= 0, "the response must be positive; values <= 0")

    def sample(self, mu, wt, dispersion, rng):
        mu = _arr(mu)
        return rng.wald(mu, np.broadcast_to(_arr(wt), mu.shape) / _arr(dispersion))


class NegativeBinomial(_CountFamily):
    """Negative binomial (NB2) counts with size ``shape``; ``V(mu) = mu + mu^2 / shape``
    (MASS's ``negative.binomial(theta)``: glamm calls it ``shape`` because ``theta`` names the
    random-effects parameters). It is a shape parameter, not a dispersion: ``dispersion``
    arguments are ignored.

    Parameters
    ----------
    shape : float, optional
        the size parameter, positive (default 1.0).
    link : str or Link or type[Link], optional
        ``"log"`` (default), ``"identity"`` or ``"sqrt"``.

    Raises
    ------
    DataError
        ``shape`` is not positive and finite, or the link is invalid.
    """

    name = "negative_binomial"
    canonical_link = "log"  # R's default; NB2's true canonical link is log(mu / (mu + shape))
    valid_links = ("log", "identity", "sqrt")
    has_shape = True

    def __init__(self, shape: float = 1.0, link: str | Link | type[Link] | None = None) -> None:
        super().__init__(link)
        self.shape = self._check_shape(shape)

    @staticmethod
    def _check_shape(shape: float) -> float:
        try:
            value = float(shape)
        except (TypeError, ValueError):
            raise DataError(f"negative_binomial family: shape must be a number, "
                            f"got {shape!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise DataError(f"negative_binomial family: shape must be positive and finite, "
                            f"got {shape!r}")
        return value

    @property
    def r_name(self) -> str:  # type: ignore[override]
        """R's family name, e.g. ``"Negative Binomial(2.5)"``."""
        return f"Negative Binomial({round(self.shape, 4):g})"

    @property
    def link_is_canonical(self) -> bool:
        return False

    def with_shape(self, shape: float) -> NegativeBinomial:
        """A copy with size ``shape``.

        Parameters
        ----------
        shape : float
            the new size, positive and finite.
        """
        new = copy.copy(self)
        new.shape = self._check_shape(shape)
        new.__dict__["_constants"] = []   # its own cache (the copy shared the list)
        return new

    def _params(self) -> tuple:
        return (type(self), self.link.name, self.shape)

    def __repr__(self) -> str:
        return f"NegativeBinomial(shape={self.shape!r}, link={self.link.name!r})"

    def variance(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return mu + mu * mu / self.shape

    def variance_deriv(self, mu) -> np.ndarray:
        return 1.0 + 2.0 * _arr(mu) / self.shape

    def unit_deviance(self, y, mu) -> np.ndarray:
        y, mu = _arr(y), _arr(mu)
        th = self.shape
        return 2.0 * (_ylogy(y, mu) - (y + th) * np.log((y + th) / (mu + th)))

    def _constant(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """``lgamma(y + shape) - lgamma(shape) - lgamma(y + 1)``, kept for the last few
        responses and shapes (compared by identity and value: PIRLS evaluates the density many
        times at one shape)."""
        th = self.shape
        held = self.__dict__.setdefault("_constants", [])
        for ey, ew, eth, value in held:
            if ey is y and ew is wt and eth == th:
                return value
        value = special.gammaln(y + th) - special.gammaln(th) - special.gammaln(y + 1.0)
        # (a zero-inflated model asks for the responses' and for zeros' in turn)
        held.insert(0, (y, wt, th, value))
        del held[4:]
        return value

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        # dnbinom(y, size = shape, mu = mu, log = TRUE) * wt
        th = self.shape
        return wt * (self._constant(y, wt) - th * np.log1p(mu / th)
                     + special.xlogy(y, mu / (mu + th)))

    def eta_derivatives(self, y, mu, eta, wt=None, dispersion=1.0):
        """At the log link: the log-density, ``wt shape (y - mu) / (shape + mu)`` and
        ``-wt mu shape (shape + y) / (shape + mu)^2``."""
        if self.link.name != "log":
            return super().eta_derivatives(y, mu, eta, wt, dispersion)
        y, wt = self._prep(y, wt)
        mu = _arr(mu)
        rows = self._eta_derivatives_compiled(y, mu, wt)
        if rows is not None:
            return rows
        th = self.shape
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = wt * (self._constant(y, wt) - th * np.log1p(mu / th)
                       + special.xlogy(y, mu / (mu + th)))
            d = th / (th + mu)
            d1 = wt * (y - mu) * d
            d2 = -wt * mu * (th + y) * d / (th + mu)
        ll = np.where(np.isfinite(mu) & (mu > 0), ll, -np.inf)
        return np.where(wt == 0, 0.0, ll), d1, d2

    def count_kernel_args(self, y, wt):
        if self.link.name != "log":
            return None
        return self._constant(y, wt), self.shape, False

    #: the size's gradient row by row at fixed eta (closed form at the log link, central
    #: differences of the family otherwise), not by refitting the modes
    analytic_extra_gradient = True

    def extra_derivatives(self, y, eta, wt, observed: bool):
        """At the log link with the observed information, per row the derivatives in
        ``log(size)`` at fixed ``eta`` of the log-density, the score and the observed weight:
        with ``k`` the size and ``s = k + mu``, ``k wt (digamma(y + k) - digamma(k) + log(k /
        s) + 1 - (k + y) / s)``, ``k wt (y - mu) mu / s^2`` and ``k wt mu (2 k mu + y mu - y
        k) / s^3``; ``None`` otherwise (central differences of the family)."""
        if not observed or self.link.name != "log":
            return None
        y, wt = self._prep(y, wt)
        mu = self.link.inverse(np.asarray(eta, dtype=float))
        k = self.shape
        s = k + mu
        c = k * wt
        with np.errstate(divide="ignore", invalid="ignore"):
            dlp = c * (special.digamma(y + k) - special.digamma(k) + np.log(k / s) + 1.0
                       - (k + y) / s)
            ds = c * (y - mu) * mu / (s * s)
            dw = c * mu * (2.0 * k * mu + y * mu - y * k) / (s * s * s)
        return dlp[:, None], ds[:, None], dw[:, None]

    def mustart(self, y, wt=None) -> np.ndarray:
        # MASS::negative.binomial()$initialize
        y = _arr(y)
        return y + (y == 0) / 6.0

    def sample(self, mu, wt, dispersion, rng):
        mu = _arr(mu)
        return rng.negative_binomial(self.shape, self.shape / (self.shape + mu)).astype(float)

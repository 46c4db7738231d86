"""The :class:`Family` interface shared by all response distributions (the numeric helpers
they use are in :mod:`glamm.families.numeric`; the distributions themselves in
:mod:`glamm.families.distributions`)."""

from __future__ import annotations

import abc
import copy
import math

import numpy as np

from ..errors import DataError
from .links import Link, get_link
from .numeric import _arr, _plural


class Family(abc.ABC):
    """Base class of response distributions.

    Parameters
    ----------
    link : str or Link or type[Link], optional
        the link, as a name (glamm's or R's, e.g. ``"logit"``, ``"1/mu^2"``), a
        :class:`~glamm.families.links.Link` instance or class; ``None`` (default) uses
        the family's canonical (default) link.

    Raises
    ------
    DataError
        the link is unknown or not valid for the family.

    Class attributes set by subclasses: ``name`` (glamm's name), ``r_name`` (R's family name),
    ``canonical_link``, ``valid_links`` (link names), ``can_separate`` (whether the data can
    be separated, as binary data), ``has_dispersion`` (whether a scale parameter is estimated)
    and ``has_shape`` (whether the family has its own shape parameter, set with
    :meth:`with_shape`). A subclass must implement the abstract methods
    :meth:`variance`, :meth:`variance_deriv`, :meth:`unit_deviance` and :meth:`_loglik` (the
    per-row log-density); everything else (deviance, scores, Fisher and observed weights) is
    derived from them and may be overridden for speed or for families without a GLM variance
    function.
    """

    name: str = ""
    r_name: str = ""
    canonical_link: str = ""
    valid_links: tuple[str, ...] = ()
    has_dispersion: bool = False
    has_shape: bool = False
    #: whether the data can be separated (coefficients without a finite estimate, as with a
    #: binary response): glmer then looks for the separating columns
    can_separate: bool = False
    #: whether the Laplace gradient may differentiate the family's own parameters row by row
    #: at fixed ``eta`` (:func:`glamm.glmm.gradient._own_parameter_gradient`)
    #: rather than by refitting the modes
    analytic_extra_gradient: bool = False
    #: whether the GLMM fit's start refines the GLM (fixed effects only) jointly with the
    #: family's own parameters (:func:`glamm.glmm.glm.fit_glm_own_parameters`; needs
    #: :meth:`extra_derivatives`)
    refine_glm_start: bool = False
    #: whether the GLMM fit's first search (glmm.fit.fast_stage) holds the family's own
    #: parameters at their start (good enough there; Newton then moves everything)
    hold_start_in_search: bool = False
    #: whether PIRLS takes Newton steps from the first iteration (the observed information
    #: where it is positive, Fisher's weight elsewhere; ``max(Fisher, observed)`` once a step
    #: overshoots): for families whose PIRLS weights only approximate the expected
    #: information (scoring then converges slowly), or whose log-density is concave in ``eta``
    newton_pirls: bool = False
    #: whether the log-density is concave in ``eta`` for every ``y`` (ordinal models): PIRLS
    #: then takes plain Newton steps, the observed information as its weights
    concave_loglik: bool = False

    def __init__(self, link: str | Link | type[Link] | None = None) -> None:
        self.link: Link = self._resolve_link(link)

    # ----------------------------------------------------------------- construction helpers

    def _resolve_link(self, link: str | Link | type[Link] | None) -> Link:
        if link is None:
            return get_link(self.canonical_link)
        try:
            obj = get_link(link)
        except DataError as exc:
            raise DataError(f"{self.name} family: {exc}") from None
        if obj.name not in self.valid_links:
            raise DataError(
                f"link {obj.name!r} is not valid for the {self.name} family; valid links: "
                + ", ".join(self.valid_links))
        return obj

    def with_link(self, link: str | Link | type[Link] | None) -> Family:
        """A copy of this family with another link.

        Parameters
        ----------
        link : str or Link or type[Link], optional
            as for the constructor; ``None`` means the canonical link.
        """
        new = copy.copy(self)
        new.link = self._resolve_link(link)
        return new

    def with_shape(self, shape: float) -> Family:
        """A copy with shape parameter ``shape`` (only for families with ``has_shape``).

        Parameters
        ----------
        shape : float
            the new shape.
        """
        raise DataError(f"the {self.name} family has no shape parameter")

    # ------------------------------------------------------- the family's own parameters
    # Besides a dispersion (``has_dispersion``, handled by the response model because
    # ``Lambda`` carries its square root), a family may have free parameters of its own: the
    # negative binomial's size, a beta precision, a t's degrees of freedom, a Tweedie power.
    # They are optimized on an unconstrained scale (usually the log) with the rest of the
    # model; the response model asks for them through these four methods.

    def extra_names(self) -> list[str]:
        """Names of the family's own free parameters, on their optimization scale (default:
        ``["log(shape)"]`` for a family with ``has_shape``, else none)."""
        return ["log(shape)"] if self.has_shape else []

    def extra_values(self) -> np.ndarray:
        """The current values of :meth:`extra_names`."""
        return np.array([math.log(self.shape)]) if self.has_shape else np.zeros(0)  # type: ignore[attr-defined]

    def with_extra(self, values: np.ndarray) -> Family:
        """A copy with the parameters ``values`` (scale of :meth:`extra_names`)."""
        if self.has_shape:
            return self.with_shape(math.exp(float(values[0])))
        return self

    def extra_start(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Starting values of the parameters from the responses and a GLM's means (default
        for a shape: the method of moments of the negative binomial, clipped to [0.05, 1e4];
        100 without overdispersion)."""
        if not self.has_shape:
            return np.zeros(0)
        excess = np.sum((y - mu) ** 2 - mu)
        shape0 = float(np.clip(np.sum(mu**2) / excess, 0.05, 1e4)) if excess > 0 else 100.0
        return np.array([math.log(shape0)])

    def loglik_parameter_derivatives(self, y, mu, wt, dispersion):
        """Per row, at fixed ``mu``, the derivative of :meth:`loglik` in ``log(dispersion)``
        (``None`` without a dispersion) and those in the parameters of :meth:`extra_names`
        (``n x m``), for families whose log-density is costly to difference (a series);
        ``None`` (default): the Laplace gradient takes central differences of :meth:`loglik`.
        """
        return None

    def count_kernel_args(self, y: np.ndarray, wt: np.ndarray
                          ) -> tuple[np.ndarray, float, bool] | None:
        """For the compiled count kernels (:mod:`glamm.families._kernels`; the zero parts
        build on them): the rows' data constants of the log-density, the size (``inf`` for
        Poisson) and whether the family is Poisson; ``None`` (default) where the family has
        no such kernel. Not public API."""
        return None

    def extra_derivatives(self, y, eta, wt, observed: bool):
        """Per row, the derivatives of the log-density, the score in ``eta`` and the weights
        (observed information if ``observed``, else Fisher's) in the parameters of
        :meth:`extra_names` at fixed ``eta``, ``n x m`` each, for the analytic Laplace
        gradient; ``None`` (default): it takes central differences of the family."""
        return None

    @property
    def link_name(self) -> str:
        """glamm's name of the current link."""
        return self.link.name

    @property
    def link_is_canonical(self) -> bool:
        """True if the link is the canonical link of the distribution, so that the observed
        and expected information in ``eta`` coincide."""
        return self.link.name == self.canonical_link

    def _params(self) -> tuple:
        return (type(self), self.link.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Family) and other._params() == self._params()

    def __hash__(self) -> int:
        return hash(self._params())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    # ------------------------------------------------------------------- argument handling

    def _prep(self, y, wt) -> tuple[np.ndarray, np.ndarray]:
        y = _arr(y)
        if wt is None:
            return y, np.ones(y.shape)
        wt = _arr(wt)
        if wt.shape == y.shape:
            return y, wt
        try:
            wt = np.broadcast_to(wt, y.shape)
        except ValueError:
            raise DataError(f"prior weights have shape {wt.shape}, "
                            f"the response has shape {y.shape}") from None
        return y, wt

    def _phi(self, dispersion) -> np.ndarray | float:
        if not self.has_dispersion:
            return 1.0
        if type(dispersion) is float:   # the common case, without array checks
            if not (0.0 < dispersion < math.inf):
                raise DataError(f"{self.name} family: the dispersion must be positive and "
                                f"finite, got {dispersion!r}")
            return dispersion
        phi = _arr(dispersion)
        if not np.all(np.isfinite(phi) & (phi > 0)):
            raise DataError(f"{self.name} family: the dispersion must be positive and finite, "
                            f"got {dispersion!r}")
        return phi if phi.ndim else float(phi)

    # ---------------------------------------------------------------- distribution pieces

    @abc.abstractmethod
    def variance(self, mu) -> np.ndarray:
        """Variance function ``V(mu)`` (``Var(y) = dispersion * V(mu) / wt``).

        Parameters
        ----------
        mu : array_like
            means.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def variance_deriv(self, mu) -> np.ndarray:
        """``dV / dmu``.

        Parameters
        ----------
        mu : array_like
            means.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def unit_deviance(self, y, mu) -> np.ndarray:
        """Unit deviance ``d(y, mu)`` (R's ``dev.resids(y, mu, 1)``).

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means.
        """
        raise NotImplementedError

    def deviance_residuals(self, y, mu, wt=None) -> np.ndarray:
        """Elementwise weighted unit deviances ``wt * d(y, mu)`` (R's ``dev.resids``); they sum
        to the deviance. (Signed residuals are ``sign(y - mu) * sqrt`` of these.)

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        """
        y, wt = self._prep(y, wt)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = wt * self.unit_deviance(y, _arr(mu))
        return np.where(wt == 0, 0.0, d)

    def deviance(self, y, mu, wt=None) -> float:
        """The deviance, ``sum(deviance_residuals(y, mu, wt))``.

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        """
        return float(np.sum(self.deviance_residuals(y, mu, wt)))

    @abc.abstractmethod
    def _loglik(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, phi) -> np.ndarray:
        raise NotImplementedError

    def loglik(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        """Per-observation full log-density, normalizing constants included, so that
        ``sum(loglik) == -aic / 2`` for R's ``family()$aic`` (without the ``+ 2`` R adds for
        an estimated dispersion) when given the same dispersion R plugs in.

        Parameters
        ----------
        y : array_like
            responses (proportions for the binomial).
        mu : array_like
            means.
        wt : array_like, optional
            prior weights (default ``None``: all 1); binomial numbers of trials.
        dispersion : float, optional
            scale ``phi`` (default 1.0); ignored by families without a
            dispersion.
        """
        y, wt = self._prep(y, wt)
        phi = self._phi(dispersion)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = self._loglik(y, _arr(mu), wt, phi)
        # outside the mean space (e.g. a negative Poisson mean under an identity link) the
        # density is 0: -inf, so PIRLS's step-halving and the optimizers step back
        ll = np.where(self.mu_in_range(mu), ll, -np.inf)
        return np.where(wt == 0, 0.0, ll)

    def loglik_eta(self, y, eta, wt=None, dispersion=1.0) -> np.ndarray:
        """:meth:`loglik` as a function of the linear predictor; canonical links override it
        with the natural-parameter form (one transcendental function per value), which
        quadrature evaluates for every observation and node."""
        return self.loglik(y, self.link.inverse(eta), wt, dispersion)

    def sample(self, mu, wt, dispersion, rng: np.random.Generator) -> np.ndarray:
        """Draw one response per row from the family at means ``mu`` (prior weights ``wt``:
        binomial trials, or dividing the dispersion of the Gaussian, Gamma and inverse
        Gaussian; the other families ignore them, as glmmTMB's ``simulate``), on the scale of
        the model's response (a binomial proportion of its trials). ``rng``: a NumPy
        ``Generator``. Families without a sampler raise :class:`DataError`."""
        raise DataError(f"simulating responses from the {self.name} family is not available")

    def mu_in_range(self, mu) -> np.ndarray:
        """Elementwise: ``mu`` is finite and inside the family's mean space.

        Parameters
        ----------
        mu : array_like
            means.
        """
        return np.isfinite(_arr(mu))

    def valid_mu(self, mu) -> bool:
        """True if every ``mu`` is finite and inside the family's mean space (R's
        ``validmu``).

        Parameters
        ----------
        mu : array_like
            means.
        """
        return bool(np.all(self.mu_in_range(mu)))

    # ----------------------------------------------------------------------- data checks

    def _fail_if(self, bad: np.ndarray, what: str) -> None:
        if np.any(bad):
            idx = np.flatnonzero(bad)
            raise DataError(f"{self.name} family: {what}: "
                            f"{_plural(idx.size, 'offending value')} "
                            f"(first at index {int(idx[0])})")

    def validate(self, y, wt=None) -> None:
        """Check the response and prior weights against the family's support.

        Parameters
        ----------
        y : array_like
            responses.
        wt : array_like, optional
            prior weights (default ``None``: all 1).

        Raises
        ------
        DataError
            naming the problem, the number of offending values and the (flat,
            0-based) index of the first one.
        """
        y, wt = self._prep(y, wt)
        self._fail_if(~np.isfinite(y), "the response has non-finite values (NaN or inf)")
        self._fail_if(~np.isfinite(wt), "the prior weights have non-finite values (NaN or inf)")
        self._fail_if(wt < 0, "prior weights must not be negative")
        self._validate_support(y, wt)

    def _validate_support(  # noqa: B027 - optional hook, not abstract: most families accept any y
        self, y: np.ndarray, wt: np.ndarray
    ) -> None:
        """Family-specific support checks; the default accepts every finite response."""

    def working_residual(self, y, mu, eta, wt, dispersion, w, mu_eta) -> np.ndarray:
        """The PIRLS working residual ``r`` (working response ``eta + r``) for the weights
        ``w``: ``score / w``, which is ``(y - mu) / mu_eta`` for an exponential family with
        its Fisher weights; families without a GLM variance function override it.

        Parameters
        ----------
        y, mu, eta, wt : ndarray
            responses, means, linear predictor and prior weights.
        dispersion : float or ndarray
            the dispersion.
        w : ndarray
            the PIRLS weights (from :meth:`fisher_weights`).
        mu_eta : ndarray
            ``d mu / d eta``.
        """
        return (y - mu) / mu_eta

    def mustart(self, y, wt=None) -> np.ndarray:
        """Starting means, as R's ``family()$initialize``.

        Parameters
        ----------
        y : array_like
            responses.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        """
        return _arr(y).copy()

    # ------------------------------------------------------------------ IRLS and Laplace

    def weights_and_working(self, y, mu, eta, wt=None) -> tuple[np.ndarray, np.ndarray]:
        """IRLS working weights and working residuals.

        Returns ``(w, r)`` with ``w = wt * mu_eta^2 / V(mu)`` and ``r = (y - mu) / mu_eta``
        (the working response is ``eta + r``, minus any offset).

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means.
        eta : array_like
            linear predictor (``mu = link.inverse(eta)``).
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        """
        y, wt = self._prep(y, wt)
        mu = _arr(mu)
        d = self.link.mu_eta(eta)
        return wt * d * d / self.variance(mu), (y - mu) / d

    def fisher_weights(self, eta, mu, wt, dispersion=1.0,
                       mu_eta=None) -> tuple[np.ndarray, np.ndarray]:
        """Fisher (expected-information) weights of the linear predictor and ``d mu / d eta``.

        Returns ``(w, mu_eta)`` with ``w = wt * mu_eta^2 / (V(mu) * dispersion)``, the weights
        of penalized IRLS (scoring). A family without a GLM variance function overrides this.

        Parameters
        ----------
        eta : array_like
            linear predictor.
        mu : array_like
            means (``link.inverse(eta)``).
        wt : array_like
            prior weights (an array of the shape of ``mu``).
        dispersion : float, optional
            scale (default 1.0; families without one use 1).
        mu_eta : array_like, optional
            ``d mu / d eta`` if already computed (default: from the link).
        """
        if mu_eta is None:
            mu_eta = self.link.mu_eta_at(eta, mu)
        return wt * mu_eta**2 / (self.variance(mu) * self._phi(dispersion)), mu_eta

    def fisher_weights_deta(self, eta, mu, wt, dispersion=1.0) -> np.ndarray:
        """Derivative in ``eta`` of the Fisher weights of :meth:`fisher_weights`:
        ``wt / phi * (2 mu_eta mu'' / V - mu_eta^3 V'(mu) / V^2)`` (``mu''`` the link's
        second derivative).

        Parameters
        ----------
        eta : array_like
            linear predictor.
        mu : array_like
            means (``link.inverse(eta)``).
        wt : array_like
            prior weights.
        dispersion : float, optional
            scale (default 1.0; families without one use 1).
        """
        mu_eta = self.link.mu_eta(eta)
        var = self.variance(mu)
        return wt / self._phi(dispersion) * (2.0 * mu_eta * self.link.d2mu_deta2(eta) / var
                                             - mu_eta**3 * self.variance_deriv(mu) / var**2)

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        """``d loglik / d mu`` per observation: ``wt (y - mu) / (dispersion V(mu))``.

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        dispersion : float, optional
            scale (default 1.0; ignored by families without one).
        """
        y, wt = self._prep(y, wt)
        mu = _arr(mu)
        return wt * (y - mu) / (self._phi(dispersion) * self.variance(mu))

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        """Observed ``d^2 loglik / d mu^2`` per observation:
        ``wt / dispersion * (-1 / V - (y - mu) V' / V^2)``.

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        dispersion : float, optional
            scale (default 1.0; ignored by families without one).
        """
        y, wt = self._prep(y, wt)
        mu = _arr(mu)
        v = self.variance(mu)
        dv = self.variance_deriv(mu)
        return wt / self._phi(dispersion) * (-1.0 / v - (y - mu) * dv / (v * v))

    def dloglik_deta(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        """Score of the per-observation log-likelihood with respect to ``eta``.

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means (``link.inverse(eta)``).
        eta : array_like
            linear predictor.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        dispersion : float, optional
            scale (default 1.0; ignored by families without one).
        """
        return self.dloglik_dmu(y, mu, wt, dispersion) * self.link.mu_eta_at(eta, _arr(mu))

    def eta_derivatives(self, y, mu, eta, wt=None, dispersion=1.0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`loglik`, :meth:`dloglik_deta` and :meth:`d2loglik_deta2` in one call (a
        family may share their work: the zero-inflated family asks for all three at the
        responses and at zero in every PIRLS iteration).

        Parameters
        ----------
        y, mu, eta : array_like
            responses, means and linear predictor.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        dispersion : float, optional
            scale (default 1.0; ignored by families without one).
        """
        return (self.loglik(y, mu, wt, dispersion), self.dloglik_deta(y, mu, eta, wt, dispersion),
                self.d2loglik_deta2(y, mu, eta, wt, dispersion))

    def d2loglik_deta2(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        """Observed second derivative of the per-observation log-likelihood in ``eta``:
        ``l''(mu) mu_eta^2 + l'(mu) d2mu_deta2``. At the canonical link it equals
        ``-w / dispersion`` (``w`` from :meth:`weights_and_working`) for every ``y``; at other
        links it does so only in expectation.

        Parameters
        ----------
        y : array_like
            responses.
        mu : array_like
            means (``link.inverse(eta)``).
        eta : array_like
            linear predictor.
        wt : array_like, optional
            prior weights (default ``None``: all 1).
        dispersion : float, optional
            scale (default 1.0; ignored by families without one).
        """
        d1 = self.link.mu_eta(eta)
        return (self.d2loglik_dmu2(y, mu, wt, dispersion) * d1 * d1
                + self.dloglik_dmu(y, mu, wt, dispersion) * self.link.d2mu_deta2(eta))

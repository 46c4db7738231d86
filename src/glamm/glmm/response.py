"""The response side of a GLMM (lme4's ``respModule``): the responses, their prior weights, the
family and the family's free parameters, apart from the predictor (``X``, ``Z``, ``Lambda``).

Everything that depends on the response distribution goes through :class:`ResponseModel`:
the log-likelihood, the PIRLS (Fisher) weights, the observed-information weights of the
Laplace log-determinant, the free response parameters (a log dispersion for the Gaussian,
Gamma and inverse Gaussian families; a log shape for the negative binomial) with their names
and starting values, and the scale ``sqrt(dispersion)`` that ``Lambda`` carries for families
with a dispersion. One family and one scalar dispersion today; per-row families and grouped
dispersions extend this class, not its callers.
"""

from __future__ import annotations

import numpy as np

#: a log dispersion or log shape beyond this overflows ``exp`` (a wild optimizer step)
_LOG_PARAMETER_LIMIT = 700.0


class ResponseModel:
    """Responses, prior weights and family of a GLMM, with the family's free parameters.

    Parameters
    ----------
    y : ndarray
        Responses (for the binomial: proportions of successes).
    wt : ndarray
        Prior weights times binomial trials: the ``wt`` of :class:`glamm.families.Family`.
    family : Family
        The family as given. A negative binomial's shape and a dispersion are free
        parameters, set by :meth:`set_parameters`; ``family`` then holds the current shape.

    Attributes
    ----------
    base_family : Family
        The family as given.
    family : Family
        The family at the current parameters (a negative binomial with its current shape).
    dispersion : float
        The current dispersion ``phi`` (1 for families without one).
    """

    def __init__(self, y: np.ndarray, wt: np.ndarray, family) -> None:
        family.validate(y, wt)
        self.y = y
        self.wt = wt
        self.base_family = family
        self.family = family
        self.dispersion = 1.0

    # ------------------------------------------------------------------ free parameters
    @property
    def has_shape(self) -> bool:
        """Whether the family has a shape parameter (the negative binomial)."""
        return bool(self.base_family.has_shape)

    @property
    def has_dispersion(self) -> bool:
        """Whether the family has a free dispersion (Gaussian, Gamma, inverse Gaussian)."""
        return bool(self.base_family.has_dispersion)

    @property
    def parameter_names(self) -> list[str]:
        """Names of the free response parameters, on the scale they are optimized on."""
        if self.has_shape:
            return ["log(shape)"]
        if self.has_dispersion:
            return ["log(dispersion)"]
        return []

    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    def start(self, glm) -> np.ndarray:
        """Starting values of the free parameters from a GLM fit without random effects
        (``glm``: a :class:`glamm.glmm.glm.GlmFit`): the negative binomial's shape by the method
        of moments (clipped to [0.05, 1e4]; 100 without overdispersion), the GLM's Pearson
        dispersion otherwise."""
        if self.has_shape:
            mu = glm.mu
            excess = np.sum((self.y - mu) ** 2 - mu)
            shape0 = float(np.clip(np.sum(mu**2) / excess, 0.05, 1e4)) if excess > 0 else 100.0
            return np.array([np.log(shape0)])
        if self.has_dispersion:
            return np.array([np.log(glm.dispersion)])
        return np.zeros(0)

    @staticmethod
    def parameters_ok(values: np.ndarray) -> bool:
        """Whether ``values`` (log scale) have usable positive exponentials."""
        return bool(np.all(np.abs(np.asarray(values, dtype=float)) < _LOG_PARAMETER_LIMIT))

    def set_parameters(self, values: np.ndarray) -> None:
        """Put the free parameters (log scale, :attr:`parameter_names` order) in place."""
        if self.has_shape:
            self.family = self.base_family.with_shape(float(np.exp(values[0])))
        elif self.has_dispersion:
            self.dispersion = float(np.exp(values[0]))

    def parameters(self) -> np.ndarray:
        """The current free parameters on the log scale."""
        if self.has_shape:
            return np.array([np.log(self.family.shape)])
        if self.has_dispersion:
            return np.array([np.log(self.dispersion)])
        return np.zeros(0)

    @property
    def shape(self) -> float | None:
        """The negative binomial's current shape (``None`` for other families)."""
        return float(self.family.shape) if self.has_shape else None

    @property
    def sigma(self) -> float:
        """lme4's ``sigma()``: ``sqrt(dispersion)``, 1 for families without a dispersion."""
        return float(np.sqrt(self.dispersion)) if self.has_dispersion else 1.0

    @property
    def lambda_scale(self) -> float:
        """The factor ``Lambda`` carries: ``sqrt(dispersion)`` for families with a dispersion
        (``theta`` is then relative to the residual scale, as in lme4), else 1."""
        return self.sigma

    # ------------------------------------------------------------------ per-row quantities
    def loglik(self, mu: np.ndarray) -> float:
        """The log-likelihood ``sum_i log p(y_i | mu_i)`` with all normalizing constants."""
        return float(np.sum(self.family.loglik(self.y, mu, self.wt, self.dispersion)))

    def fisher_weights(self, eta: np.ndarray, mu: np.ndarray,
                       mu_eta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """PIRLS (Fisher) weights ``wt mu_eta^2 / (V(mu) phi)`` and ``mu_eta`` at ``eta``."""
        return self.family.fisher_weights(eta, mu, self.wt, self.dispersion, mu_eta=mu_eta)

    def fisher_weights_deta(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """``d w / d eta`` of the Fisher weights per row (analytic)."""
        return self.family.fisher_weights_deta(eta, mu, self.wt, self.dispersion)

    def observed_weights(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Observed information ``-d2 log p / d eta2`` per row (equal to the Fisher weights
        at a canonical link)."""
        return -self.family.d2loglik_deta2(self.y, mu, eta, self.wt, self.dispersion)

    def score(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """``d log p / d eta`` per row."""
        return self.family.dloglik_deta(self.y, mu, eta, self.wt, self.dispersion)

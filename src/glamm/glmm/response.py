"""The response side of a GLMM (lme4's ``respModule``): the responses, their prior weights, the
family and the family's free parameters, apart from the predictor (``X``, ``Z``, ``Lambda``).

Everything that depends on the response distribution goes through :class:`ResponseModel`:
the log-likelihood, the PIRLS (Fisher) weights, the observed-information weights of the
Laplace log-determinant, the free response parameters with their names and starting values,
and the scale that ``Lambda`` carries. The free parameters are, in order: for each family (one,
or the components of a :class:`~glamm.families.mixed.MixedFamily`) a log shape (negative
binomial) or a log dispersion (Gaussian, Gamma, inverse Gaussian); then the coefficients
``delta`` of a residual variance function (``dispformula``): row ``i``'s dispersion is its
family's times ``exp(2 (D delta)_i)``, ``D`` from :class:`~glamm.lmm.dispersion.
DispersionDesign` (so ``D delta`` is on the log-SD scale, as nlme reports it).
"""

from __future__ import annotations

import numpy as np

from ..families.mixed import MixedFamily
from ..families.numeric import LOG_PARAMETER_LIMIT

#: a log-SD multiplier beyond this is a runaway step, not an estimate
_DELTA_LIMIT = 30.0


class ResponseModel:
    """Responses, prior weights and family of a GLMM, with the family's free parameters.

    Parameters
    ----------
    y : ndarray
        Responses (for the binomial: proportions of successes).
    wt : ndarray
        Prior weights times binomial trials: the ``wt`` of :class:`glamm.families.Family`.
    family : Family
        The family as given (a :class:`~glamm.families.mixed.MixedFamily` for per-row
        families). A negative binomial's shape and a dispersion are free parameters, set by
        :meth:`set_parameters`; ``family`` then holds the current shapes.
    dispersion_design : DispersionDesign, optional
        A residual variance function (``dispformula``) over the model's rows.

    Attributes
    ----------
    base_family : Family
        The family as given.
    family : Family
        The family at the current parameters (a negative binomial with its current shape).
    dispersion : float or ndarray
        The current dispersion ``phi``: a number for one family without a variance function
        (1 for families without a dispersion), else one value per row.
    """

    def __init__(self, y: np.ndarray, wt: np.ndarray, family, dispersion_design=None) -> None:
        family.validate(y, wt)
        self.y = y
        self.wt = wt
        self.base_family = family
        self.family = family
        self.mixed = isinstance(family, MixedFamily)
        #: the component families (one unless the family is mixed) and their rows
        self.components = list(family.families) if self.mixed else [family]
        if self.mixed:
            family.keep_parts(y, wt)
        self.labels = list(family.labels) if self.mixed else [""]
        self.component_rows = family.rows if self.mixed else [slice(None)]
        self.dispersion_design = dispersion_design
        self.n_delta = 0 if dispersion_design is None else dispersion_design.D.shape[1]
        # per-component dispersion (1 for families without one), the variance function's
        # coefficients, and the current parameter vector
        self.phi = np.ones(len(self.components))
        self.delta = np.zeros(self.n_delta)
        self.per_row = self.mixed or self.n_delta > 0
        self.dispersion: float | np.ndarray = np.ones(y.shape[0]) if self.per_row else 1.0
        self._values = np.zeros(self.n_parameters)
        if self.per_row:
            self._update_dispersion()

    # ------------------------------------------------------------------ free parameters
    def _kinds(self) -> list[str | None]:
        """Per component: ``"dispersion"`` (a free dispersion) or ``None``; a family's own
        parameters (:meth:`~glamm.families.Family.extra_names`) come after it."""
        return ["dispersion" if f.has_dispersion and not f.has_shape else None
                for f in self.components]

    @property
    def has_shape(self) -> bool:
        """Whether a family has parameters of its own (a negative binomial's size, ...)."""
        return any(f.extra_names() for f in self.components)

    @property
    def has_dispersion(self) -> bool:
        """Whether a family has a free dispersion (Gaussian, Gamma, inverse Gaussian)."""
        return any(f.has_dispersion and not f.has_shape for f in self.components)

    @property
    def parameter_names(self) -> list[str]:
        """Names of the free response parameters, on the scale they are optimized on: per
        family its log dispersion and its own parameters, then a variance function's."""
        names = []
        for fam, kind, label in zip(self.components, self._kinds(), self.labels, strict=True):
            tag = f" [{label}]" if self.mixed else ""
            if kind is not None:
                names.append(f"log({kind}){tag}")
            names += [f"{n}{tag}" for n in fam.extra_names()]
        if self.dispersion_design is not None:
            names += [f"log-SD:{n}" for n in self.dispersion_design.names]
        return names

    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    def start(self, glm) -> np.ndarray:
        """Starting values of the free parameters from a GLM fit without random effects
        (``glm``: a :class:`glamm.glmm.glm.GlmFit`): per family, the negative binomial's shape
        by the method of moments (clipped to [0.05, 1e4]; 100 without overdispersion) and the
        GLM's Pearson dispersion on the family's rows otherwise; a variance function starts
        at 0 (no heteroscedasticity)."""
        out: list[float] = []
        for fam, rows, kind in zip(self.components, self.component_rows, self._kinds(),
                                   strict=True):
            y, mu, wt = self.y[rows], glm.mu[rows], self.wt[rows]
            if kind == "dispersion":
                if not self.mixed:
                    out.append(float(np.log(glm.dispersion)))
                else:
                    pearson = np.sum(wt * (y - mu) ** 2 / fam.variance(mu)) / max(y.size, 1)
                    out.append(float(np.log(max(float(pearson), 1e-8))))
            out += [float(v) for v in fam.extra_start(y, mu, wt)]
        return np.concatenate([np.asarray(out, dtype=float), np.zeros(self.n_delta)])

    def parameters_ok(self, values: np.ndarray) -> bool:
        """Whether ``values`` (log scale) have usable positive exponentials."""
        values = np.asarray(values, dtype=float)
        k = values.size - self.n_delta
        return bool(np.all(np.abs(values[:k]) < LOG_PARAMETER_LIMIT)
                    and np.all(np.abs(values[k:]) < _DELTA_LIMIT))

    def set_parameters(self, values: np.ndarray) -> None:
        """Put the free parameters (log scale, :attr:`parameter_names` order) in place."""
        values = np.asarray(values, dtype=float)
        self._values = values.copy()
        i = 0
        new_families = list(self.components)
        changed = False
        for k, kind in enumerate(self._kinds()):
            if kind == "dispersion":
                self.phi[k] = float(np.exp(values[i]))
                i += 1
            n_extra = len(self.components[k].extra_names())
            if n_extra:
                new_families[k] = self.components[k].with_extra(values[i:i + n_extra])
                changed = True
                i += n_extra
        if changed:
            self.family = (self.base_family.with_families(new_families) if self.mixed
                           else new_families[0])
        self.delta = values[i:i + self.n_delta].copy()
        if self.per_row:
            self._update_dispersion()
        elif self.has_dispersion:
            self.dispersion = float(self.phi[0])

    def _update_dispersion(self) -> None:
        if self.mixed:
            disp = self.phi[self.base_family.index].copy()
        else:
            disp = np.full(self.y.shape[0], self.phi[0])
        if self.n_delta:
            assert self.dispersion_design is not None
            disp *= np.exp(2.0 * (self.dispersion_design.D @ self.delta))
        self.dispersion = disp

    def parameters(self) -> np.ndarray:
        """The current free parameters on the log scale."""
        return self._values.copy()

    def copy_state(self, other: "ResponseModel") -> None:
        """Take the parameters of ``other`` (a response model on the same data)."""
        self.set_parameters(other.parameters())

    @property
    def shape(self) -> float | None:
        """The negative binomial's current shape (``None`` without one; the first one's in
        a mixed response)."""
        for fam in self.current_components():
            shape = getattr(fam, "shape", None)   # a negative binomial's, or a zero part's
            if shape is not None:
                return float(shape)
        return None

    def current_components(self) -> list:
        """The component families at the current parameters."""
        return list(self.family.families) if self.mixed else [self.family]

    @property
    def sigma(self) -> float:
        """lme4's ``sigma()``: ``sqrt(dispersion)``, 1 for families without a dispersion (the
        reference level's for a variance function; the first family's with one, in a mixed
        response)."""
        for fam, phi in zip(self.components, self.phi, strict=True):
            if fam.has_dispersion and not fam.has_shape:
                return float(np.sqrt(phi))
        return 1.0

    @property
    def lambda_scale_moves(self) -> bool:
        """Whether :attr:`lambda_scale` follows the first free parameter (one family whose
        log dispersion is that parameter)."""
        return not self.mixed and self._kinds()[0] == "dispersion"

    @property
    def lambda_scale(self) -> float:
        """The factor ``Lambda`` carries: ``sqrt(dispersion)`` for one family with a
        dispersion (``theta`` is then relative to the residual scale, as in lme4), else 1 (a
        mixed response has no common residual scale: ``theta`` is absolute there)."""
        return 1.0 if self.mixed else self.sigma

    # ------------------------------------------------------------------ dispersion derivatives
    def log_dispersion_jacobian(self) -> np.ndarray | None:
        """``d log(phi_i) / d p_j`` for the free parameters ``p`` (``n x n_parameters``): 1 on
        a family's rows for its log dispersion, ``2 D`` for the variance function's
        coefficients; ``None`` when a parameter is a shape (no analytic derivative)."""
        if self.has_shape:
            return None
        n = self.y.shape[0]
        cols = []
        for rows, kind in zip(self.component_rows, self._kinds(), strict=True):
            if kind == "dispersion":
                col = np.zeros(n)
                col[rows] = 1.0
                cols.append(col[:, None])
        if self.dispersion_design is not None:
            cols.append(2.0 * self.dispersion_design.D)
        return np.hstack(cols) if cols else np.zeros((n, 0))

    def dispersion_derivatives(self, eta: np.ndarray, mu: np.ndarray, observed: bool,
                               eps: float = 1e-5, dlp: np.ndarray | None = None
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, the derivatives in ``log(phi_i)`` at fixed ``eta`` of the log-density, the
        score ``d log p / d eta`` and the weights of the Laplace log-determinant (observed
        information or Fisher weights), by central differences in each row's own dispersion
        (no refit: every row depends on its own ``phi_i`` only). The log-density's comes
        from the family where it has it (``Family.loglik_parameter_derivatives``; ``dlp``:
        already computed by the caller)."""
        fam, y, wt = self.family, self.y, self.wt
        phi = np.broadcast_to(np.asarray(self.dispersion, dtype=float), y.shape)
        up, down = phi * np.exp(eps), phi * np.exp(-eps)

        def weights(d: np.ndarray) -> np.ndarray:
            if observed:
                return -fam.d2loglik_deta2(y, mu, eta, wt, d)
            return fam.fisher_weights(eta, mu, wt, d)[0]

        scale = 1.0 / (2.0 * eps)
        if dlp is None:
            closed = fam.loglik_parameter_derivatives(y, mu, wt, self.dispersion)
            dlp = None if closed is None else closed[0]
        if dlp is None:
            dlp = (fam.loglik(y, mu, wt, up) - fam.loglik(y, mu, wt, down)) * scale
        ds = (fam.dloglik_deta(y, mu, eta, wt, up) - fam.dloglik_deta(y, mu, eta, wt, down)) \
            * scale
        dw = (weights(up) - weights(down)) * scale
        return dlp, ds, dw

    # ------------------------------------------------------------------ per-row quantities
    def loglik(self, mu: np.ndarray) -> float:
        """The log-likelihood ``sum_i log p(y_i | mu_i)`` with all normalizing constants."""
        return float(np.sum(self.family.loglik(self.y, mu, self.wt, self.dispersion)))

    def fisher_weights(self, eta: np.ndarray, mu: np.ndarray,
                       mu_eta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """PIRLS (Fisher) weights ``wt mu_eta^2 / (V(mu) phi)`` and ``mu_eta`` at ``eta``; a
        family with a second predictor (zero inflation) gives its own positive weights from
        the responses (``pirls_weights``)."""
        fam = self.family
        if hasattr(fam, "pirls_weights"):
            if mu_eta is None:
                mu_eta = fam.link.mu_eta(eta)
            return fam.pirls_weights(self.y, eta, mu, self.wt, self.dispersion), mu_eta
        return fam.fisher_weights(eta, mu, self.wt, self.dispersion, mu_eta=mu_eta)

    def working_residual(self, eta: np.ndarray, mu: np.ndarray, w: np.ndarray,
                         mu_eta: np.ndarray) -> np.ndarray:
        """PIRLS's working residual for the weights ``w`` (``(y - mu) / mu_eta`` for the
        exponential families, ``score / w`` otherwise)."""
        return self.family.working_residual(self.y, mu, eta, self.wt, self.dispersion, w, mu_eta)

    def fisher_weights_deta(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """``d w / d eta`` of the Fisher weights per row (analytic; by central differences
        for the weights of a family's ``pirls_weights``)."""
        fam = self.family
        if hasattr(fam, "pirls_weights"):
            h = 1e-4 * np.maximum(1.0, np.abs(eta))
            up, down = eta + h, eta - h
            return (fam.pirls_weights(self.y, up, fam.link.inverse(up), self.wt,
                                      self.dispersion)
                    - fam.pirls_weights(self.y, down, fam.link.inverse(down), self.wt,
                                        self.dispersion)) / (2.0 * h)
        return fam.fisher_weights_deta(eta, mu, self.wt, self.dispersion)


    def observed_weights(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Observed information ``-d2 log p / d eta2`` per row (equal to the Fisher weights
        at a canonical link)."""
        return -self.family.d2loglik_deta2(self.y, mu, eta, self.wt, self.dispersion)

    def score(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """``d log p / d eta`` per row."""
        return self.family.dloglik_deta(self.y, mu, eta, self.wt, self.dispersion)

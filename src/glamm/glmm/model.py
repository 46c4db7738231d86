"""The GLMM objective: conditional modes by PIRLS and the Laplace approximation.

Model: ``eta = X beta + Z Lambda u + offset``, ``mu = g^{-1}(eta)``, ``y | u`` from the family,
``u ~ N(0, I)``. For binomial, Poisson and negative binomial ``theta`` gives the random effects'
standard deviations directly; for families with a dispersion ``phi`` (Gaussian, Gamma, inverse
Gaussian) ``Lambda`` carries a factor ``sqrt(phi)``, so ``theta`` is relative to the residual
scale as in lme4 and an LMM. For fixed ``theta`` (and ``beta``) PIRLS finds the mode ``u*`` of
``log p(y | u) - |u|^2 / 2`` by penalized IRLS: each iteration is the penalized least-squares
problem of an LMM with working weights and response, solved through the same blocked Cholesky
factor (:class:`~glamm.linalg.factor.BlockedCholesky`), refilled in place.

The Laplace approximation to the marginal deviance is

    -2 log L(theta, beta) ~= -2 sum_i log p(y_i | u*) + |u*|^2 + log det(L L')

with ``L L' = Lambda' Z' W Z Lambda + I`` at the mode. ``W`` is the observed information
``-d2 log p / d eta2`` (the exact Laplace approximation, as glmmTMB) by default, or the Fisher
weights (lme4, MixedModels.jl) with ``laplace="expected"``; the two coincide for canonical
links. PIRLS itself always iterates with the Fisher weights (scoring), which is more robust.
``log p`` includes all normalizing constants (binomial coefficients, factorials), so the value
is comparable with glmmTMB's and with adaptive quadrature.

Two variants, as lme4 / MixedModels.jl:

- ``fast``: ``beta`` is updated inside PIRLS together with ``u`` (the objective depends on
  ``theta`` only; log det of the random-effects part only);
- full: ``beta`` is fixed and PIRLS updates ``u`` only; the optimizer moves (``theta``, ``beta``).
"""

from __future__ import annotations

import numpy as np

from ..errors import GlammError, PirlsError
from ..formula.design import ModelFrame
from ..linalg.factor import BlockedCholesky
from ..linalg.scalar_pls import ScalarTermPLS
from ..linalg.selinv import DiagonalInverse, re_inverse
from ..linalg.vector_pls import VectorTermPLS
from ..optim.params import ParameterBlock, ParameterLayout
from ..terms.design import RandomDesign
from ..terms.layout import ThetaLayout
from ..terms.loadings import LoadingMap
from .penalty import StudentTPenalty
from .pirls import (
    ConvergenceTest,
    PirlsSettings,
    halving_step,
    newton_weights,
)
from .response import ResponseModel


def full_parameters(layout: ThetaLayout, xnames, response: ResponseModel,
                    loadings: LoadingMap | None = None) -> ParameterLayout:
    """The parameter vector of a GLMM's full fit: ``theta`` (bounded, some on the log
    scale), ``beta``, the free loadings (with ``loadings``), the response parameters."""
    blocks = [
        ParameterBlock.free("theta", layout.names(), lower=layout.lower(),
                            log_scale=layout.log_scale_index()),
        ParameterBlock.free("beta", list(xnames)),
        ParameterBlock.free("response", response.parameter_names),
    ]
    if loadings is not None:
        blocks.insert(2, ParameterBlock.free("lambda", loadings.free_names()))
    return ParameterLayout(blocks)


class GeneralizedLinearMixedModel:
    """Laplace objective of a GLMM; holds two working LMM factors (``beta`` fixed / free).

    Parameters
    ----------
    frame : ModelFrame
        The numeric model (``glm_response=True`` frame).
    family : Family
        A :class:`glamm.families.Family` with its link.
    laplace : str
        ``"observed"`` (default): the log-determinant uses the observed information
        ``-d2 log p / d eta2`` at the mode, the exact Laplace approximation (glmmTMB's);
        ``"expected"``: the Fisher weights (lme4's and MixedModels.jl's). They differ only for
        non-canonical links (probit, cloglog, Gamma or Gaussian with a log link, negative
        binomial), by up to a few hundredths in log-likelihood.
    """

    def __init__(self, frame: ModelFrame, family, laplace: str = "observed",
                 loadings: LoadingMap | None = None, dispersion_design=None):
        self.frame = frame
        #: factor loadings (glamm.terms.loadings), or None
        self.loadings = loadings
        #: the information in the Laplace log-determinant: "observed" or "expected"
        self.laplace_information = laplace
        if laplace not in ("observed", "expected"):
            raise GlammError(f"laplace must be 'observed' or 'expected', got {laplace!r}")
        #: log-determinant with the observed information (exact Laplace approximation) rather
        #: than the Fisher weights; the two agree for canonical links
        self.observed_information = laplace == "observed" and not family.link_is_canonical
        self.y = frame.y
        # (the frame's own array when there are no trials, w * 1 being w: every model on the
        # frame, as the warm start's and a result's working copy, then shares it, and the
        # families' constants cached per (y, wt) array with it)
        self.wt = frame.weights * frame.trials if frame.trials is not None \
            else frame.weights if frame.weights.dtype == np.float64 else frame.weights * 1.0
        #: the response side: family, its free parameters and the per-row weights
        self.response = ResponseModel(self.y, self.wt, family, dispersion_design)
        self.X = frame.X
        self.offset = frame.offset
        self.n, self.p = self.X.shape
        self.reterms = frame.reterms
        self.design = RandomDesign(self.reterms)
        self.layout = ThetaLayout(self.reterms)
        self.n_theta = self.layout.n_theta
        #: the parameter vector of the full fit: theta, beta, response parameters
        self.parameters = full_parameters(self.layout, frame.xnames, self.response, loadings)
        #: PIRLS stopping rules (:class:`PirlsSettings`)
        self.pirls_settings = PirlsSettings()
        ps = [t.p for t in self.reterms]
        zero, one = np.zeros(self.n), np.ones(self.n)
        self.cp_u = self.design.crossproducts(np.zeros((self.n, 0)), zero, one)
        iso = [t.covariance.is_scaled_identity for t in self.reterms]
        self.fac_u = BlockedCholesky(self.cp_u.A, ps, iso=iso)
        self.cp_b = self.design.crossproducts(self.X, zero, one)
        self.fac_b = BlockedCholesky(self.cp_b.A, ps, iso=iso)
        #: one scalar random-effects term: PIRLS's iterations solve their system in one
        #: compiled pass (where the kernels are on), the blocked factor then factors at the mode
        self._scalar_pls = ScalarTermPLS(self.design) if ScalarTermPLS.applies(self.design) \
            else None
        #: one term with several columns per level: the same, with the log-determinant at
        #: the mode also from the compiled pass
        self._vector_pls = VectorTermPLS(self.design) if VectorTermPLS.applies(self.design) \
            else None
        #: the data are separated (set by glmm.diagnostics.separation_notes): a fit that finds
        #: no finite deviance is then reported as separation, not as a PIRLS failure
        self.separated = False
        #: optional penalty on the fixed effects (glmm.penalty.StudentTPenalty), added to the
        #: deviance the full fit minimizes
        self.penalty: StudentTPenalty | None = None
        # state of the last PIRLS run (warm start for the next one)
        self.u = np.zeros(sum(t.q for t in self.reterms))
        self.beta = np.zeros(self.p)
        self.eta: np.ndarray | None = None
        self.mu: np.ndarray | None = None
        self.theta: np.ndarray | None = None
        self.ldL2 = 0.0
        self.pirls_iterations = 0
        #: (eta, weights of the log-determinant) at the last mode
        self._mode_weights: tuple[np.ndarray, np.ndarray] | None = None
        #: the factorization at the last mode when PIRLS left it to factor_at_mode
        self._pending_factor: tuple | None = None
        if loadings is not None:
            self.set_loadings(loadings.values, force=True)

    # ------------------------------------------------------------------ pieces
    @property
    def family(self):
        """The family at the current response parameters (see :class:`ResponseModel`)."""
        return self.response.family

    @property
    def dispersion(self) -> float | np.ndarray:
        """The current dispersion (1 for families without one)."""
        return self.response.dispersion

    @property
    def lambda_scale(self) -> float:
        """``sqrt(dispersion)`` for families with a dispersion parameter, else 1: there
        ``theta`` is relative to the residual scale, as in lme4 (``b = sigma Lambda u``), which
        keeps it of order one whatever the units of the response."""
        return self.response.lambda_scale

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-term factors of the random effects' covariance: ``b_k = lambda_k u_k``."""
        scale = self.lambda_scale
        lams = self.layout.lambdas(theta)
        return lams if scale == 1.0 else [scale * lam for lam in lams]

    def random_effects(self, theta: np.ndarray, u: np.ndarray) -> list[np.ndarray]:
        """``b_k = (I kron lambda_k) u_k`` as ``(levels, p_k)`` arrays."""
        return self.design.random_effects(self.lambdas(theta), self.design.split_u(u))

    def _eta_re(self, lams: list[np.ndarray], u: np.ndarray) -> np.ndarray | float:
        """``Z Lambda u``, the random part of the linear predictor."""
        d = self.design
        return d.eta_re(d.random_effects(lams, d.split_u(u)))

    def set_z(self, k: int, z: np.ndarray) -> None:
        """Replace the values of term ``k``'s ``z`` (same shape): the design refills both
        cross-product sets and the factors are refreshed (PIRLS refills them with new weights
        anyway); the next PIRLS starts afresh."""
        self.design.set_z(k, z)
        self._pending_factor = None
        self.fac_u.refresh()
        self.fac_b.refresh()
        self.eta = self.mu = self.theta = None
        self.u = np.zeros_like(self.u)
        self.beta = np.zeros_like(self.beta)

    def set_loadings(self, free: np.ndarray, force: bool = False) -> None:
        """Put the free factor loadings in place: the loaded terms' ``z`` are rescaled row by
        row (:class:`~glamm.terms.loadings.LoadingMap`) and the factors refreshed. PIRLS keeps
        its warm start (the modes move little with the loadings)."""
        if self.loadings is None:
            return
        free = np.asarray(free, dtype=float)
        if not force and np.array_equal(free, self.loadings.values):
            return
        self._pending_factor = None   # (a factorization for the old values of z)
        for k, z in self.loadings.z_values(free):
            # PIRLS refills every cross-product block with its weights before using them
            self.design.set_z(k, z, refill=False)
        if self.loadings.x_cols:   # an sl() smooth: its fixed-effect columns are loaded too
            self.X = self.loadings.X_values(free)
            self.cp_b.set_X(self.X, refill=False)
        self.loadings.values = free.copy()

    def _pdev(self, mu: np.ndarray, u: np.ndarray) -> float:
        """Penalized deviance up to a constant: ``-2 log p(y | u) + |u|^2`` (the log-density's
        constants are cached by the family, so this is cheaper than the deviance residuals)."""
        return float(-2.0 * self.response.loglik(mu) + u @ u)

    def weight_derivative(self, eta: np.ndarray, observed: bool) -> np.ndarray:
        """``dw/deta`` of the curvature weights at ``eta``: the observed information
        ``w = -d2 log p / d eta2`` (``observed``) or the Fisher weights, differentiated
        observation by observation by central differences (relative step 1e-4, error ~1e-8
        relative; no PIRLS). For a canonical link this is minus the third derivative of the
        log-density. Used by the analytic Laplace and quadrature gradients."""
        fam = self.family
        step = 1e-4 * np.maximum(1.0, np.abs(eta))

        def weights(e: np.ndarray) -> np.ndarray:
            mu = fam.link.inverse(e)
            if observed:
                return self.response.observed_weights(e, mu)
            return self.response.fisher_weights(e, mu)[0]

        with np.errstate(all="ignore"):
            return (weights(eta + step) - weights(eta - step)) / (2.0 * step)

    def glm_start(self, family):
        """The GLM without random effects that starts a fit (:func:`glamm.glmm.glm.fit_glm`
        on this model's rows, for ``family``)."""
        from .glm import fit_glm

        return fit_glm(self.X, self.y, self.wt, self.offset, family)

    def factor_joint_fisher(self) -> None:
        """Factor the joint system (``fac_b``: random and fixed effects) with the Fisher
        weights and working response at the current mode (after :meth:`pirls`); its
        fixed-effects block gives rough standard errors. ``LinAlgError`` if it is not
        positive definite."""
        assert self.eta is not None and self.mu is not None and self.theta is not None
        w, mu_eta = self.response.fisher_weights(self.eta, self.mu)
        zwork = self.eta - self.offset + self.response.working_residual(
            self.eta, self.mu, w, mu_eta)
        self.cp_b.update(w, zwork)
        self.fac_b.refresh()
        self.fac_b.update(self.lambdas(self.theta), solve_only=True)

    # ------------------------------------------------------------------ PIRLS
    def _factor_step(self, cp, fac, lams, w: np.ndarray, zwork: np.ndarray,
                     b_fix: np.ndarray | None, solve_only: bool = False) -> None:
        """Refill the cross-products with weights ``w`` and working response ``zwork``
        (minus ``X b_fix`` when ``beta`` is held) and factor; ``LinAlgError`` if the
        penalized system is not positive definite."""
        if b_fix is not None:
            zwork = zwork - self.X @ b_fix
        cp.update(w, zwork)
        fac.refresh()
        fac.update(lams, solve_only=solve_only)

    def _one_term_solver(self, lams: list[np.ndarray]):
        """The compiled one-term solve (scalar or vector-valued term) and the ``lambda`` it
        takes (a number for a scalar term, the ``P x P`` factor otherwise)."""
        if self._scalar_pls is not None:
            return self._scalar_pls, lams[0][0, 0]
        assert self._vector_pls is not None
        return self._vector_pls, lams[0]

    def _pls_step(self, lams, w: np.ndarray, zwork: np.ndarray, b_fix: np.ndarray | None,
                  solve_only: bool, compiled: bool) -> tuple[np.ndarray, np.ndarray]:
        """One PIRLS iteration's penalized least-squares solve for weights ``w`` and working
        response ``zwork``: ``(u, beta)`` (``beta`` empty when ``b_fix`` holds it), by the
        compiled one-term pass (``compiled``) or the blocked factor. ``LinAlgError`` if the
        system is not positive definite."""
        if compiled:
            solver, lam = self._one_term_solver(lams)
            if b_fix is not None:
                return solver.solve(w, zwork - self.X @ b_fix, lam, None)
            return solver.solve(w, zwork, lam, self.X)
        cp, fac = (self.cp_b, self.fac_b) if b_fix is None else (self.cp_u, self.fac_u)
        self._factor_step(cp, fac, lams, w, zwork, b_fix, solve_only=solve_only)
        u_parts, beta = fac.solve_u_beta()
        return (np.concatenate(u_parts) if u_parts else np.zeros(0)), beta

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None,
              settings: PirlsSettings | None = None) -> float:
        """Conditional modes at ``theta`` (``beta`` fixed; ``None``: ``beta`` updated too, the
        fast variant). Leaves the state (``u``, ``beta``, ``eta``, ``mu``, ``ldL2``) at the mode
        and returns the penalized deviance there. ``settings``: stopping rules (default
        :attr:`pirls_settings`)."""
        settings = settings or self.pirls_settings
        link, fam = self.family.link, self.family
        lams = self.lambdas(theta)
        fast = beta is None
        cp, fac = (self.cp_b, self.fac_b) if fast else (self.cp_u, self.fac_u)
        one_term = self._scalar_pls or self._vector_pls
        compiled = one_term is not None and one_term.available()
        u = self.u.copy()
        b_fix = self.beta.copy() if fast else np.asarray(beta, dtype=float)
        cold = self.eta is None
        if not cold:   # warm start from the previous modes
            fixed = self.X @ b_fix + self.offset
            eta = fixed + self._eta_re(lams, u)
            mu = link.inverse(eta)
            pdev = self._pdev(mu, u)
            # outside the mean space (possible with non-canonical links such as a Poisson
            # identity link) the warm start is useless: start afresh
            cold = not np.isfinite(pdev)
        if cold:   # from the family's initial means
            mu = fam.mustart(self.y, self.wt)
            eta = link.link(mu)
            u[:] = 0.0
            pdev = np.inf
        converged = False
        test = ConvergenceTest(settings)
        iterations = 0
        # set once a step was taken that raised the deviance (within the rounding allowance):
        # the scoring step overshoots there (Fisher weights below half the observed
        # information, e.g. inverse Gaussian with a log link), and full steps would circle the
        # mode at that distance forever; from then on each row's weight is the larger of the
        # two, a step no longer than Newton's that converges fast to an accurate mode
        # a log-density concave in eta for every y (ordinal): plain Newton steps, the
        # observed information as the weights
        concave = bool(getattr(fam, "concave_loglik", False))
        # the families outside the exponential family (newton_pirls): Newton's steps (the
        # observed information as the weights, negative rows included: quadratic
        # convergence where Fisher's scoring is linear), the observed information only where
        # positive when the full Newton system is not positive definite (far from the mode),
        # the safeguarded weights once a step overshoots
        newton = (fam.newton_pirls or not fam.link_is_canonical) and not concave
        overshoot = False
        for _ in range(settings.maxiter):
            iterations += 1
            if concave:
                w, mu_eta = self.response.observed_weights(eta, mu), link.mu_eta(eta)
            else:
                w, mu_eta = self.response.fisher_weights(eta, mu)
            zwork = eta - self.offset + self.response.working_residual(eta, mu, w, mu_eta)
            kind = "safeguarded" if overshoot else ("newton" if newton else "")
            w_step, z_step = (newton_weights(self.response, self.offset, eta, mu, w, zwork, kind)
                              if kind
                              else (w, zwork))
            held = None if fast else b_fix
            try:
                u_new, beta_new = self._pls_step(lams, w_step, z_step, held,
                                                 kind == "newton", compiled)
            except np.linalg.LinAlgError as exc:   # degenerate weights (extreme parameters)
                if kind != "newton":
                    raise PirlsError("the penalized least-squares problem is singular") from exc
                try:
                    u_new, beta_new = self._pls_step(
                        lams, *newton_weights(self.response, self.offset, eta, mu, w, zwork,
                                             "positive"), held,
                        False, compiled)
                except np.linalg.LinAlgError as exc2:
                    raise PirlsError("the penalized least-squares problem is singular") \
                        from exc2
            def evaluate(u_try: np.ndarray, b_try: np.ndarray):
                eta_try = self.X @ b_try + self.offset + self._eta_re(lams, u_try)
                mu_try = link.inverse(eta_try)
                return self._pdev(mu_try, u_try), (eta_try, mu_try)

            found = halving_step(evaluate, u, u_new, b_fix, beta_new if fast else None, pdev)
            if found is None:
                if not np.isfinite(pdev):
                    raise PirlsError("PIRLS failed: the penalized deviance is not finite")
                converged = True  # no decrease possible: at the mode to rounding
                break
            u_try, b_try, pdev_try, (eta, mu) = found
            change = pdev - pdev_try
            overshoot = overshoot or change < 0.0
            converged = test(change, pdev_try, u_try - u, b_try - b_fix if fast else None)
            u, b_fix, pdev = u_try, b_try, pdev_try
            if converged:
                break
        if converged and not link.valid_eta(eta):
            # a mode outside the link's domain (a sqrt link's eta <= 0) is not a fit of the
            # model R defines (glm's valideta); it turns up where scoring can settle there
            raise PirlsError(f"the linear predictor at the mode is outside the {link.name} "
                             "link's domain")
        if not converged:
            raise PirlsError(
                f"PIRLS did not converge in {settings.maxiter} iterations (penalized deviance "
                f"{pdev:.6g}); the model may be too complex for the data or badly scaled"
            )
        # factor at the mode for the log determinant: with the observed information (the
        # exact Laplace approximation, as glmmTMB) or the Fisher weights (lme4)
        if self.observed_information:
            w = self.response.observed_weights(eta, mu)
        else:
            w, _ = self.response.fisher_weights(eta, mu)
        self._pending_factor = None
        if compiled:
            # one term: the log-determinant directly; the blocked factor is only needed by
            # the gradients and the conditional variances (factor_at_mode)
            solver, lam = self._one_term_solver(lams)
            ldl2 = solver.logdet(w, lam)
            if ldl2 is None:
                raise PirlsError("the observed information is not positive definite at the "
                                 "mode")
            self.ldL2 = ldl2
            self._pending_factor = (cp, fac, lams, w, eta, mu, None if fast else b_fix)
        else:
            self._factor_at(cp, fac, lams, w, eta, mu, None if fast else b_fix)
        self._mode_weights = (eta, w)
        self.u, self.beta, self.eta, self.mu = u, b_fix, eta, mu
        self.theta = np.asarray(theta, dtype=float).copy()
        self.pirls_iterations = iterations
        return pdev

    def _factor_at(self, cp, fac, lams, w: np.ndarray, eta: np.ndarray, mu: np.ndarray,
                   b_fix: np.ndarray | None) -> None:
        """Factor at the mode for the log-determinant: refill ``cp`` with the mode's weights
        ``w`` (and working response; net of ``X b_fix`` when ``beta`` is held) and factor
        ``fac``; sets :attr:`ldL2`."""
        zwork = eta - self.offset + self.response.working_residual(
            eta, mu, w, self.family.link.mu_eta(eta))
        if b_fix is not None:
            zwork = zwork - self.X @ b_fix
        # only the random-effects blocks: the log-determinant, the gradients' G^-1 and the
        # conditional variances need nothing else (and with observed weights X'WX may be
        # indefinite); the [X y] row is left as it was (whoever needs it refills everything,
        # as the next PIRLS iteration does)
        cp.update(w, zwork, re_only=True)
        fac.refresh()
        try:
            fac.update(lams, re_only=True)
        except np.linalg.LinAlgError as exc:
            raise PirlsError("the observed information is not positive definite at the "
                             "mode") from exc
        self.ldL2 = fac.logdet_re()

    def factor_at_mode(self) -> None:
        """Make the blocked factors hold the last PIRLS mode's factorization (``fac_u`` after
        a PIRLS with ``beta`` held, ``fac_b`` after one that moved it), which the analytic
        gradients and the conditional variances read. PIRLS factors there itself except for
        a single term (the compiled one-term solves), where it takes the log-determinant
        directly and leaves the factorization to this call (most evaluations need only the
        value)."""
        pending, self._pending_factor = self._pending_factor, None
        if pending is not None:
            ldl2 = self.ldL2
            self._factor_at(*pending)
            self.ldL2 = ldl2   # (the same number, by the blocked factor's arithmetic)

    def re_inverse_at_mode(self):
        """``G^{-1}`` for the factor of the last PIRLS mode with ``beta`` held (``fac_u``; see
        :func:`glamm.linalg.selinv.re_inverse`); for one term (compiled one-term solves)
        the diagonal or block-diagonal ``G`` directly, without the blocked factorization."""
        pending = self._pending_factor
        if pending is not None and pending[-1] is not None:
            _, _, lams, w = pending[:4]
            if self._scalar_pls is not None:
                return DiagonalInverse(self._scalar_pls.diagonal(w, lams[0][0, 0]))
            if self._vector_pls is not None:
                return self._vector_pls.inverse(w, lams[0])
        self.factor_at_mode()
        return re_inverse(self.fac_u)

    def working_copy(self) -> GeneralizedLinearMixedModel:
        """A model on the same data, in the same state (response parameters, penalty, PIRLS
        settings, the conditional modes PIRLS warm-starts from), whose evaluations leave this
        one untouched. Its factors are built afresh and hold numbers only after the next
        :meth:`pirls`."""
        loadings = None
        if self.loadings is not None:
            loadings = LoadingMap(self.loadings.spec, self.reterms, self.loadings.item,
                                  self.loadings.covariates, X=self.frame.X,
                                  x_cols=self.loadings.x_cols)
            loadings.values = self.loadings.values.copy()
        new = type(self)(self.frame, self.response.base_family,
                         laplace=self.laplace_information, loadings=loadings,
                         dispersion_design=self.response.dispersion_design)
        new.response.copy_state(self.response)
        new.penalty = self.penalty
        new.pirls_settings = self.pirls_settings
        new.separated = self.separated
        for name in ("u", "beta", "eta", "mu", "theta"):
            value = getattr(self, name)
            setattr(new, name, None if value is None else value.copy())
        new.ldL2, new.pirls_iterations = self.ldL2, self.pirls_iterations
        return new

    @property
    def mode_weights(self) -> np.ndarray | None:
        """The weights of the log-determinant (observed information or Fisher's) at the
        current mode, as PIRLS left them (``None`` before a PIRLS run)."""
        if self._mode_weights is None or self._mode_weights[0] is not self.eta:
            return None
        return self._mode_weights[1]

    # ------------------------------------------------------------------ objective
    def laplace(self) -> float:
        """``-2 log L`` by the Laplace approximation at the current state (after :meth:`pirls`)."""
        assert self.mu is not None, "laplace() needs a PIRLS fit first"
        return float(-2.0 * self.response.loglik(self.mu) + self.u @ self.u + self.ldL2)

    def objective_fast(self, theta: np.ndarray, settings: PirlsSettings | None = None) -> float:
        """The Laplace deviance with ``beta`` inside PIRLS (``inf`` where PIRLS fails)."""
        try:
            self.pirls(theta, None, settings)
        except PirlsError:
            return float("inf")
        return self.laplace()

    def objective(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """The Laplace deviance at (``theta``, ``beta``) (``inf`` where PIRLS fails)."""
        try:
            self.pirls(theta, beta)
        except PirlsError:
            return float("inf")
        val = self.laplace()
        return val if np.isfinite(val) else float("inf")

"""A GLMM whose rows stay in their partitions: PIRLS with each iteration a map-reduce.

:class:`PartitionedGLMM` is the in-memory :class:`~glamm.glmm.model.GeneralizedLinearMixedModel`
(the same parameters, optimizer stages, factor and Laplace value) with the work over rows
sent to the partitions: every PIRLS iteration asks each partition
(:class:`~glamm.scale.glmm_rows.PartitionRows`) for its log-likelihood and its blocks of
``A = [Z X z]' W [Z X z]`` at the trial modes, adds them, and solves the penalized
least-squares step on the driver. The evaluation at a trial point also fills ``A`` for the
next iteration, so an accepted step costs one pass. The partitions are reached through a
:class:`Partitions` (a list in memory, or Dask: :mod:`glamm.scale.dask_glmm`).

Derivatives for the Newton stage: the analytic gradient in one pass per gradient
(:mod:`glamm.scale.glmm_gradient`, which ships the selected inverse of ``G`` to the
partitions), or finite differences where the mode's and the log-determinant's weights
differ (``laplace="expected"`` with a non-canonical link). Families: the exponential
families with a dispersion or without (binomial, Poisson, Gaussian, Gamma, inverse
Gaussian), any link.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import numpy as np

from ..errors import ConvergenceWarning, GlammError, PirlsError
from ..glmm.glm import GlmFit, _no_valid_start, irls_step
from ..glmm.model import GeneralizedLinearMixedModel, full_parameters
from ..glmm.pirls import ConvergenceTest, PirlsSettings, halving_step
from ..glmm.response import ResponseModel
from ..linalg.blocks import BlockDiag, BlockSparse, copy_blocks
from ..linalg.factor import BlockedCholesky
from ..terms.design import RandomDesign
from ..terms.layout import ThetaLayout
from .glmm_rows import GlmSums, PassRequest, PassResult, merge_glm, merge_results
from .partials import PartitionedFrame


class Partitions(Protocol):
    """Where a partitioned model's rows are: ``map_reduce(method, merge, *args)`` calls
    ``method`` of every partition's :class:`~glamm.scale.glmm_rows.PartitionRows` with
    ``args`` and adds the results with ``merge``."""

    def map_reduce(self, method: str, merge: Any, *args: Any) -> Any: ...


class LocalPartitions:
    """Partitions held in this process (a list of ``PartitionRows``; tests and small
    data)."""

    def __init__(self, rows: list) -> None:
        self.rows = [r for r in rows if r is not None]

    def map_reduce(self, method: str, merge: Any, *args: Any) -> Any:
        return functools.reduce(merge, [getattr(r, method)(*args) for r in self.rows])


def supported_family(family: Any) -> str | None:
    """Why ``family`` cannot be fitted on partitioned data (``None``: it can)."""
    if getattr(family, "mixed", False) or type(family).__name__ == "MixedFamily":
        return "per-row families"
    if family.newton_pirls or family.concave_loglik or hasattr(family, "tmb_sigma") \
            or family.has_shape or family.extra_values().size:
        return (f"the {family.name} family (only the exponential families with at most a "
                "dispersion are: binomial, poisson, gaussian, Gamma, inverse_gaussian)")
    return None


def _refill(target: list[list], source: list[list]) -> None:
    """Copy the numbers of ``source`` into the blocks of ``target`` (the same pattern)."""
    for row_t, row_s in zip(target, source):
        for t, s in zip(row_t, row_s):
            if isinstance(t, BlockSparse):
                if t.nb != s.nb:
                    raise GlammError("the partitions' cross-products changed their pattern "
                                     "between passes (was the data changed during the fit?)")
                t.data[...] = s.data
                t.version += 1
            elif isinstance(t, BlockDiag):
                t.data[...] = s.data
            else:
                t[...] = s


class PartitionedGLMM(GeneralizedLinearMixedModel):
    """The Laplace objective of a GLMM on partitioned rows.

    Parameters
    ----------
    frame : PartitionedFrame
        The model's layout without rows (:func:`glamm.scale.partials.finish`).
    family : Family
        An exponential family (:func:`supported_family`) with its link.
    parts : Partitions
        The rows (:class:`LocalPartitions`, or Dask's).
    laplace : str
        ``"observed"`` (default) or ``"expected"``, as for the in-memory model.
    """

    frame: PartitionedFrame

    def __init__(self, frame: PartitionedFrame, family: Any, parts: Partitions,
                 laplace: str = "observed") -> None:
        why = supported_family(family)
        if why is not None:
            raise GlammError(f"{why} cannot be fitted on partitioned (Dask) data yet")
        if laplace not in ("observed", "expected"):
            raise GlammError(f"laplace must be 'observed' or 'expected', got {laplace!r}")
        self.frame = frame
        self.parts = parts
        self.loadings = None
        self.laplace_information = laplace
        self.observed_information = laplace == "observed" and not family.link_is_canonical
        # (the rows are in the partitions: the response model here holds the parameters)
        self.y = self.wt = self.offset = np.zeros(0)
        self.response = ResponseModel(self.y, self.wt, family)
        self.n, self.p = frame.n, len(frame.xnames)
        self.X = np.zeros((0, self.p))
        self.reterms = frame.reterms
        self.design = RandomDesign(self.reterms)
        self.layout = ThetaLayout(self.reterms)
        self.n_theta = self.layout.n_theta
        self.parameters = full_parameters(self.layout, frame.xnames, self.response)
        self.pirls_settings = PirlsSettings()
        self._ps = [t.p for t in self.reterms]
        self._iso = [t.covariance.is_scaled_identity for t in self.reterms]
        #: the driver's copies of A (beta held / free) and their factors, made by the first
        #: pass of each kind
        self._A: dict[bool, list[list]] = {}
        self._fac: dict[bool, BlockedCholesky] = {}
        self._scalar_pls = self._vector_pls = None
        self.separated = False
        self.penalty = None
        self.u = np.zeros(sum(t.q for t in self.reterms))
        self.beta = np.zeros(self.p)
        self.eta = self.mu = self.theta = None
        self.ldL2 = 0.0
        self.loglik_at_mode = float("nan")
        self.pirls_iterations = 0
        #: the number of passes over the partitions so far
        self.passes = 0
        self._mode_weights = None
        self._pending_factor = None

    # ------------------------------------------------------------------ the factors
    @property
    def fac_u(self) -> BlockedCholesky:   # type: ignore[override]
        return self._fac[True]

    @property
    def fac_b(self) -> BlockedCholesky:   # type: ignore[override]
        return self._fac[False]

    def _factor(self, held: bool, A: list[list]) -> BlockedCholesky:
        """The factor of ``A`` (beta ``held`` or not), its numbers refilled from ``A``."""
        if held not in self._A:
            self._A[held] = copy_blocks(A)
            self._fac[held] = BlockedCholesky(self._A[held], self._ps, iso=self._iso)
        else:
            _refill(self._A[held], A)
        fac = self._fac[held]
        fac.refresh()
        return fac

    def _pass(self, lams: list[np.ndarray] | None, u: np.ndarray, beta: np.ndarray,
              held: bool, weights: str | None = "fisher", re_only: bool = False
              ) -> PassResult:
        # weights: glmm_rows.WEIGHTS
        """One map-reduce over the partitions at the modes ``u`` (``lams=None``: the family's
        starting means)."""
        b = None if lams is None else self.design.random_effects(lams, self.design.split_u(u))
        req = PassRequest(beta=np.asarray(beta, dtype=float), b=b,
                          parameters=self.response.parameters(), weights=weights, held=held,
                          re_only=re_only)
        self.passes += 1
        out = self.parts.map_reduce("evaluate", merge_results, req)
        assert out is not None and out.n == self.n
        return out

    # ------------------------------------------------------------------ PIRLS
    def pirls(self, theta: np.ndarray, beta: np.ndarray | None = None,
              settings: PirlsSettings | None = None) -> float:
        """:meth:`GeneralizedLinearMixedModel.pirls` (the same steps, stopping rules and
        state), each iteration one pass over the partitions: Fisher scoring for canonical
        links, Newton's steps otherwise (the observed information as the weights; where
        that system is not positive definite, the observed information where positive), and
        once a step raised the deviance (within the rounding allowance) each row's weight
        the larger of Fisher's and the observed information."""
        settings = settings or self.pirls_settings
        lams = self.lambdas(theta)
        fast = beta is None
        held = not fast
        u = self.u.copy()
        b_fix = self.beta.copy() if fast else np.asarray(beta, dtype=float)
        newton = not self.family.link_is_canonical
        kind = "newton" if newton else "fisher"
        res: PassResult | None = None
        pdev = np.inf
        if self.eta is not None:   # warm start from the previous modes
            res = self._pass(lams, u, b_fix, held, kind)
            pdev = float(-2.0 * res.loglik + u @ u)
            if not np.isfinite(pdev):
                res = None
        if res is None:            # from the family's initial means
            u[:] = 0.0
            res = self._pass(None, u, b_fix, held, kind)
            pdev = np.inf
        converged = False
        test = ConvergenceTest(settings)
        iterations = 0
        for _ in range(settings.maxiter):
            iterations += 1
            u_new, beta_new = self._pls_solve(lams, held, res, kind, u, b_fix)
            def evaluate(u_try: np.ndarray, b_try: np.ndarray, kind: str = kind):
                res_try = self._pass(lams, u_try, b_try, held, kind)
                return float(-2.0 * res_try.loglik + u_try @ u_try), res_try

            found = halving_step(evaluate, u, u_new, b_fix, beta_new if fast else None, pdev)
            if found is None:
                if not np.isfinite(pdev):
                    raise PirlsError("PIRLS failed: the penalized deviance is not finite")
                converged = True   # no decrease possible: at the mode to rounding
                break
            u_try, b_try, pdev_try, res = found
            change = pdev - pdev_try
            if change < 0.0:
                kind = "safeguarded"   # (scoring overshot: see the docstring)
            converged = test(change, pdev_try, u_try - u, b_try - b_fix if fast else None)
            u, b_fix, pdev = u_try, b_try, pdev_try
            if converged:
                break
        if not converged:
            raise PirlsError(
                f"PIRLS did not converge in {settings.maxiter} iterations (penalized deviance "
                f"{pdev:.6g}); the model may be too complex for the data or badly scaled")
        if not res.valid:
            raise PirlsError(f"the linear predictor at the mode is outside the "
                             f"{self.family.link.name} link's domain")
        if self.observed_information:   # the exact Laplace approximation's weights
            res_ld = self._pass(lams, u, b_fix, held, weights="observed", re_only=True)
        elif kind != "fisher":         # (the last pass had other weights)
            res_ld = self._pass(lams, u, b_fix, held, re_only=True)
        else:
            res_ld = res
        assert res_ld.A is not None
        fac = self._factor(held, res_ld.A)
        try:
            fac.update(lams, re_only=True)
        except np.linalg.LinAlgError as exc:
            raise PirlsError("the observed information is not positive definite at the "
                             "mode") from exc
        self.ldL2 = fac.logdet_re()
        self.loglik_at_mode = res.loglik
        self.u, self.beta = u, b_fix
        # (the rows' linear predictor and means stay in the partitions: empty markers that
        # say the state is at a mode)
        self.eta = self.mu = np.zeros(0)
        self.theta = np.asarray(theta, dtype=float).copy()
        self.pirls_iterations = iterations
        return pdev

    def _pls_solve(self, lams: list[np.ndarray], held: bool, res: PassResult, kind: str,
                   u: np.ndarray, b_fix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One PIRLS iteration's penalized least-squares solve on the sums ``res`` (weights
        ``kind``): ``(u, beta)``. Newton's weights whose system is not positive definite are
        replaced by the observed information where positive (one more pass)."""
        assert res.A is not None
        fac = self._factor(held, res.A)
        try:
            fac.update(lams, solve_only=kind == "newton")
        except np.linalg.LinAlgError as exc:
            if kind != "newton":
                raise PirlsError("the penalized least-squares problem is singular") from exc
            positive = self._pass(lams, u, b_fix, held, "positive")
            assert positive.A is not None
            fac = self._factor(held, positive.A)
            try:
                fac.update(lams)
            except np.linalg.LinAlgError as exc2:
                raise PirlsError("the penalized least-squares problem is singular") from exc2
        u_parts, beta_new = fac.solve_u_beta()
        return (np.concatenate(u_parts) if u_parts else np.zeros(0)), beta_new

    def laplace(self) -> float:
        """``-2 log L`` by the Laplace approximation at the current state."""
        assert self.eta is not None, "laplace() needs a PIRLS fit first"
        return float(-2.0 * self.loglik_at_mode + self.u @ self.u + self.ldL2)

    def factor_joint_fisher(self) -> None:
        """The joint factor (``fac_b``) with the Fisher weights at the current mode (one
        pass)."""
        assert self.theta is not None
        res = self._pass(self.lambdas(self.theta), self.u, self.beta, held=False)
        assert res.A is not None
        self._factor(False, res.A).update(self.lambdas(self.theta), solve_only=True)

    def glm_start(self, family: Any, maxiter: int = 100, tol: float = 1e-10) -> GlmFit:
        """The starting GLM by IRLS with step-halving, each iteration one pass over the
        partitions (:func:`glamm.glmm.glm.fit_glm`'s scheme and stopping rule)."""
        import warnings

        sums: GlmSums = self.parts.map_reduce("glm_pass", merge_glm, None)
        dev_old = sums.deviance
        beta = np.zeros(self.p)
        converged = False
        it = 0
        for it in range(1, maxiter + 1):
            if not sums.ok:
                raise _no_valid_start(family)
            beta_new = np.linalg.lstsq(sums.XtWX, sums.XtWz, rcond=None)[0]
            def evaluate(b: np.ndarray):
                new = self.parts.map_reduce("glm_pass", merge_glm, b)
                return new.deviance, new

            beta, dev, sums = irls_step(evaluate, beta, beta_new, it == 1, dev_old, family)
            if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
                converged = True
                dev_old = dev
                break
            dev_old = dev
        if not converged:
            warnings.warn("the GLM used to start the fit did not converge", ConvergenceWarning,
                          stacklevel=2)
        disp = sums.pearson / max(self.n - self.p, 1) if family.has_dispersion else 1.0
        return GlmFit(beta=beta, eta=np.zeros(0), mu=np.zeros(0), deviance=dev_old,
                      loglik=float("nan"), dispersion=disp, converged=converged,
                      iterations=it)

    def derivatives(self, f: Any) -> Any:
        """The Newton stage's derivatives of ``f`` (the deviance over the full parameter
        vector): the analytic gradient (:mod:`glamm.scale.glmm_gradient`, one pass per
        gradient) where the mode and the Laplace log-determinant share their weights (a
        canonical link, or the observed information in both) and the dense part of ``G^-1``
        is affordable, else finite differences."""
        from ..glmm.gradient import analytic_gradient_affordable
        from ..optim.newton import FiniteDifferences
        from .glmm_gradient import PartitionedDerivatives

        shared = self.family.link_is_canonical or self.observed_information
        if shared and analytic_gradient_affordable(self):
            return PartitionedDerivatives(f, self)
        return FiniteDifferences(f)

    def working_copy(self) -> PartitionedGLMM:
        """A model on the same partitions in the same state, whose evaluations leave this
        one untouched."""
        new = PartitionedGLMM(self.frame, self.response.base_family, self.parts,
                              laplace=self.laplace_information)
        new.response.copy_state(self.response)
        new.pirls_settings = self.pirls_settings
        for name in ("u", "beta", "eta", "mu", "theta"):
            value = getattr(self, name)
            setattr(new, name, None if value is None else value.copy())
        new.ldL2, new.loglik_at_mode = self.ldL2, self.loglik_at_mode
        return new

    def set_z(self, k: int, z: np.ndarray) -> None:
        raise GlammError("the values of Z cannot be changed: the rows of a fit on "
                         "partitioned (Dask) data are in their partitions")

    def set_loadings(self, free: np.ndarray, force: bool = False) -> None:
        if free is not None and np.size(free):
            raise GlammError("factor loadings are not available on partitioned data")

"""Gaussian identity-link models with factor loadings, fitted on the profiled deviance.

For fixed ``theta`` and loadings such a model is an LMM, so ``beta`` and ``sigma`` are profiled
out exactly (Bates et al. 2015) and only ``[theta, lambda]`` are searched: each evaluation
rescales the loaded terms' ``z`` (and an ``sl()`` smooth's fixed columns), refills their
cross-products and refreshes the factor. The GLMM model is then put at the optimum (its
Gaussian Laplace deviance is exact), so results and standard errors work as for any fit.
"""

from __future__ import annotations

import numpy as np

from ..linalg.threads import single_threaded
from ..optim.backends import minimize, minimize_gradient
from ..optim.newton import newton_minimize
from ..optim.optsummary import OptSummary
from .derivatives import GradientDerivatives
from .fit import GlmmFitRecord, _warn
from .model import GeneralizedLinearMixedModel


def profiled_gaussian(family) -> bool:
    """Whether a model with loadings is fitted on the profiled LMM deviance
    (:func:`fit_gaussian_loadings`): Gaussian with the identity link."""
    return family.name == "gaussian" and family.link.name == "identity"


def profiled_loading_deviance(model: GeneralizedLinearMixedModel):
    """The ML deviance of a Gaussian identity-link model with loadings as a function of
    ``x = [theta, lambda]`` (its parameter layout's blocks), with ``beta`` and ``sigma``
    profiled out: an LMM on the model's frame whose loaded terms (and loaded fixed-effect
    columns) are refilled per evaluation. Returns ``(lmm, layout, deviance)``."""
    from ..lmm.model import LinearMixedModel

    loadings = model.loadings
    assert loadings is not None
    lmm = LinearMixedModel(model.frame, reml=False)
    layout = model.parameters.subset(["theta", "lambda"])

    def deviance(x: np.ndarray) -> float:
        part = layout.split(x)
        for k, z in loadings.z_values(part["lambda"]):
            lmm.design.set_z(k, z)
        if loadings.x_cols:   # an sl() smooth's fixed-effect columns
            lmm.cp.set_X(loadings.X_values(part["lambda"]))
        lmm.factor.refresh()
        return lmm.objective(part["theta"])

    return lmm, layout, deviance


def profiled_loading_gradient(model: GeneralizedLinearMixedModel, lmm, layout):
    """``g(x)``: the gradient of :func:`profiled_loading_deviance`'s deviance in
    ``x = [theta, lambda]``, analytically, at the point the deviance was last evaluated at
    (``g`` checks nothing: evaluate first).

    The ML profiled deviance is ``log det G + n (1 + log(2 pi pwrss / n))`` (less the log
    weights) with ``G = Lambda'Z'WZ Lambda + I``. A parameter moving ``Z Lambda`` by ``D`` (a
    variance parameter through ``dLambda``, a loading through the loaded rows of ``Z``) and
    ``X`` by ``dX`` (a loaded smooth's fixed columns) changes ``log det G`` by
    ``2 tr(G^-1 Lambda'Z'W D)`` (the entries of ``G^-1`` on the pattern of one row, from
    :mod:`glamm.linalg.selinv`) and, by the envelope theorem at the penalized least-squares
    solution ``(u, beta)``, ``pwrss`` by ``-2 r'W (D u + dX beta)``."""
    from ..linalg.selinv import re_inverse
    from .gradient import TraceWeights, loading_directions

    design = lmm.design
    loadings = model.loadings
    assert loadings is not None
    w = lmm.frame.weights
    yw = lmm.frame.y - lmm.frame.offset
    n = lmm.n

    def gradient(x: np.ndarray) -> np.ndarray:
        part = layout.split(x)
        theta = part["theta"]
        lams = lmm.lambdas(theta)
        V = design.rows(lams)
        C = design.cols
        u_parts, beta = lmm.factor.solve_u_beta()
        u_terms = [uk.reshape(t.nlevels, t.p) for uk, t in zip(u_parts, lmm.reterms)]
        X = loadings.X_values(part["lambda"]) if loadings.x_cols else lmm.frame.X
        u = np.concatenate(u_parts) if u_parts else np.zeros(0)
        r = yw - X @ beta - design.matvec(V, u)
        wr = w * r
        pwrss = lmm.factor.pwrss()
        traces = TraceWeights(design, V, C, w, re_inverse(lmm.factor))

        def along(parts: list, fixed: np.ndarray | None) -> float:
            a = np.zeros(n) if fixed is None else fixed.copy()
            for k, Vd in parts:
                a += np.einsum("ic,ic->i", Vd, u_terms[k][design.terms[k].refs])
            return 2.0 * traces.trace(parts) - 2.0 * n / pwrss * float(wr @ a)

        g = np.zeros(x.size)
        t_idx = layout.index("theta")
        pos = 0
        for k, (t, sl) in enumerate(zip(lmm.reterms, lmm.theta_slices)):
            dlams = t.covariance.jacobian(theta[sl])
            for r_ in range(sl.stop - sl.start):
                g[t_idx[pos]] = along([(k, design.z[k] @ dlams[r_])], None)
                pos += 1
        l_idx = layout.index("lambda")
        for r_, (parts, fixed) in loading_directions(model, lams, beta):
            g[l_idx[r_]] = along(parts, fixed)
        return g

    return gradient


class ProfiledDerivatives(GradientDerivatives):
    """Derivatives of the profiled deviance for Newton: the analytic gradient
    (:func:`profiled_loading_gradient`) and Hessians from its differences."""

    def __init__(self, deviance, gradient, record: OptSummary | None = None):
        super().__init__(deviance, record)
        self._gradient = gradient

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        self._at_point(x)
        return self._gradient(x)

    def steering_hessian(self, x: np.ndarray):
        return self.grad_hess(x, central=False)


def fit_gaussian_loadings(model: GeneralizedLinearMixedModel, start: np.ndarray | None = None,
                          optimizer: str = "bobyqa", blas_threads: int | None = 1,
                          **settings) -> GlmmFitRecord:
    """Fit a Gaussian identity-link model with factor loadings by the profiled deviance of the
    LMM: for fixed ``theta`` and loadings the model is an LMM, so ``beta`` and ``sigma`` are
    profiled out exactly (Bates et al. 2015) and only ``[theta, lambda]`` are searched, by
    L-BFGS-B and then Newton on the analytic gradient (:func:`profiled_loading_gradient`);
    each evaluation rescales the loaded terms' ``z``, refills their cross-products and
    refreshes the factor (no PIRLS, no pass over the other terms). Variances that end near
    zero are tried on the bound. ``model`` is then put at the optimum (the Gaussian Laplace
    deviance is exact, so it equals the LMM's), for the result and for standard errors from
    the Hessian in all parameters, computed on demand.

    Parameters
    ----------
    model : GeneralizedLinearMixedModel
        Gaussian family with the identity link, with loadings.
    start : ndarray, optional
        Starting ``theta``.
    optimizer : str
        Backend (see :func:`glamm.optim.backends.minimize`).
    blas_threads : int or None
        BLAS threads during the fit.
    **settings
        Optimizer settings.
    """
    from ..lmm.estimates import fixed_and_random

    loadings = model.loadings
    assert loadings is not None
    with single_threaded(blas_threads):
        lmm, layout, deviance = profiled_loading_deviance(model)
        theta_block = layout.block("theta")

        theta0 = model.layout.initial() if start is None else np.asarray(start, dtype=float)
        x0 = layout.assemble({"theta": np.maximum(theta0, theta_block.lower),
                              "lambda": loadings.values})
        opt = {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-8, **settings}
        # L-BFGS-B on the analytic gradient to a relative change of 1e-5, then Newton on the
        # gradient's differences (BOBYQA at full tolerance if Newton stalls). A derivative-free
        # start crawls where the variances are far from their start or the loadings are
        # sharply determined (the cognition model: 587 evaluations against 59; galamm's
        # semiparametric two-domain model: 27,000, still short of the maximum, against 300)
        grad = profiled_loading_gradient(model, lmm, layout)
        record = minimize_gradient(deviance, grad, x0, layout.lower(), ftol=1e-5)
        assert record.final is not None
        scale = np.maximum(np.abs(record.final) * 0.1, 0.01)
        derivs = ProfiledDerivatives(deviance, grad)
        res = newton_minimize(deviance, record.final, layout.lower(), record, scale=scale,
                              derivs=derivs)
        if res.fx <= record.fmin:
            record.final, record.fmin = res.x, res.fx
        record.converged = bool(res.converged)
        if not res.converged:
            again = minimize(deviance, record.final, layout.lower(), optimizer=optimizer,
                             log_index=layout.log_scale_index(), **opt)
            record.feval += again.feval
            record.converged = again.converged
            record.messages.append(f"Newton stalled; {again.optimizer} took over")
            if again.fmin <= record.fmin:
                record.final, record.fmin = again.final, again.fmin
        assert record.final is not None
        x, fx = record.final.copy(), record.fmin
        lo = layout.lower_of("theta")
        near = np.flatnonzero(np.isfinite(lo) & (x < lo + 1e-3) & (x > lo))
        if near.size:   # the deviance is flat at a zero variance: try the bound exactly
            trial = x.copy()
            trial[near] = lo[near]
            again = minimize(deviance, trial, layout.lower(), optimizer=optimizer, **opt)
            record.feval += again.feval
            if again.fmin <= fx:
                assert again.final is not None
                x, fx = again.final, again.fmin
                record.messages.append(f"theta{list(map(int, near))} set to the boundary "
                                       "(singular fit)")
        record.final, record.fmin = x, fx
        part = layout.split(x)
        deviance(x)
        beta, _ = fixed_and_random(lmm)
        sigma2 = lmm.factor.pwrss() / lmm.n
        model.response.set_parameters(np.array([np.log(sigma2)]))
        model.set_loadings(part["lambda"])
        model.objective(part["theta"], beta)
        full = OptSummary(optimizer=f"{record.optimizer} on the profiled deviance",
                          initial=x0, lower=layout.lower(), final=model.parameters.assemble(
                              {"theta": part["theta"], "beta": beta, "lambda": part["lambda"],
                               "response": np.array([np.log(sigma2)])}),
                          fmin=fx, feval=record.feval, returnvalue=record.returnvalue,
                          converged=record.converged, elapsed=record.elapsed,
                          messages=list(record.messages))
    _warn(full)
    return GlmmFitRecord(fast=record, full=full, names=model.parameters.names(),
                         base_family=model.response.base_family)

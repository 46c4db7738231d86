"""Fit a GLMM by the Laplace approximation: a fast fit over ``theta`` (``beta`` inside PIRLS),
then, unless ``fast=True``, a full fit over (``theta``, ``beta``, and the dispersion or
negative-binomial shape where the family has one) started from it, as lme4 and MixedModels.jl
do. Standard errors come from the Hessian of the Laplace deviance in all parameters.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvergenceWarning
from ..linalg.threads import single_threaded
from ..optim.backends import minimize
from ..optim.optsummary import OptSummary
from ..optim.newton import FiniteDifferences, newton_minimize
from .derivatives import AnalyticDerivatives, QuadratureDerivatives, choose_derivatives
from .glm import fit_glm
from .model import GeneralizedLinearMixedModel


@dataclass
class GlmmFitRecord:
    """The optimization records of a GLMM fit: ``fast`` (over ``theta``) and ``full`` (over all
    parameters; ``None`` for ``fast=True`` fits) and the parameter names of the full vector."""

    fast: OptSummary
    full: OptSummary | None
    names: list[str] = field(default_factory=list)
    #: Hessian of the deviance in all parameters at (or within a Newton step of) the optimum
    hessian: np.ndarray | None = None
    #: quadrature points per dimension (1: Laplace) and, for nagq > 1, the quadrature object
    nagq: int = 1
    quadrature: object | None = None
    #: the Laplace fit the quadrature fit started from
    laplace_loglik: float | None = None
    #: the family as given (before a negative binomial's shape was put in)
    base_family: object | None = None
    #: for a fit on rescaled columns (glmm/rescale.py): ``T`` with ``x_user = T x_internal``;
    #: ``hessian`` is then the internal one (covariances: ``T (2 H^-1) T'``)
    transform: np.ndarray | None = None


def _extra_names(family) -> list[str]:
    if getattr(family, "has_shape", False):
        return ["log(shape)"]
    if family.has_dispersion:
        return ["log(dispersion)"]
    return []


def extra_ok(extra: np.ndarray) -> bool:
    """A log dispersion or log shape whose exponential is a usable positive number (a wild
    optimizer step can propose one that overflows)."""
    return bool(np.all(np.abs(np.asarray(extra, dtype=float)) < 700.0))


def set_extra(model: GeneralizedLinearMixedModel, base_family, extra: np.ndarray) -> None:
    """Put the dispersion or shape parameter (log scale) into the model."""
    if getattr(base_family, "has_shape", False):
        model.family = base_family.with_shape(float(np.exp(extra[0])))
    elif base_family.has_dispersion:
        model.dispersion = float(np.exp(extra[0]))


def full_objective(model: GeneralizedLinearMixedModel, base_family):
    """``f(x)`` with ``x = [theta, beta, extra]``: the Laplace deviance (PIRLS over ``u``)."""
    nt, p = model.n_theta, model.p

    def f(x: np.ndarray) -> float:
        if not extra_ok(x[nt + p:]):
            return float("inf")
        set_extra(model, base_family, x[nt + p:])
        value = model.objective(x[:nt], x[nt:nt + p])
        if model.penalty is not None:
            value += model.penalty.deviance(x[nt:nt + p])
        return value

    return f


def fit_glmm(
    model: GeneralizedLinearMixedModel,
    fast: bool = False,
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
    blas_threads: int | None = 1,
    **settings,
) -> GlmmFitRecord:
    """Fit ``model`` in place (its state ends at the optimum) and return the records."""
    with single_threaded(blas_threads):
        return _fit(model, fast, start, optimizer, **settings)


def _fit(model, fast, start, optimizer, **settings) -> GlmmFitRecord:
    base_family = model.family
    glm = fit_glm(model.X, model.y, model.wt, model.offset, base_family)
    model.beta = glm.beta.copy()
    extra0 = np.zeros(0)
    if getattr(base_family, "has_shape", False):
        mu = glm.mu
        excess = np.sum((model.y - mu) ** 2 - mu)
        shape0 = float(np.clip(np.sum(mu**2) / excess, 0.05, 1e4)) if excess > 0 else 100.0
        extra0 = np.array([np.log(shape0)])
    elif base_family.has_dispersion:
        extra0 = np.array([np.log(glm.dispersion)])
    set_extra(model, base_family, extra0)

    lower = model.layout.lower()
    theta0 = model.layout.initial() if start is None else np.asarray(start, dtype=float)
    # the fast fit is the answer when fast=True; otherwise only the start of the Newton stage,
    # which needs it to about 1e-4
    fast_settings = {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-8} if fast else \
        {"ftol_rel": 1e-6, "ftol_abs": 0.0, "xtol_abs": 1e-3}
    if fast:
        fast_settings.update(settings)
    if not fast:
        # only a starting point for Newton: looser PIRLS too
        model.PIRLS_TOL, model.PIRLS_STEP_TOL = 1e-9, 1e-6
    nt = model.n_theta
    # the smooths' scales on the log scale (glamm.terms.layout); theta_s = 0 is tried below
    log_idx = model.layout.log_scale_index()

    def fast_objective(z: np.ndarray) -> float:
        # the dispersion or shape (log scale) is optimized here too: with theta relative to
        # the residual scale, a dispersion fixed at the GLM's (which absorbs the random
        # effects' variance) would leave theta far from its optimum
        if not extra_ok(z[nt:]):
            return float("inf")
        set_extra(model, base_family, z[nt:])
        return model.objective_fast(z[:nt])

    try:
        os_fast = minimize(fast_objective, np.concatenate([np.maximum(theta0, lower), extra0]),
                           np.concatenate([lower, np.full(extra0.size, -np.inf)]),
                           optimizer=optimizer, log_index=log_idx, **fast_settings)
    finally:
        model.PIRLS_TOL = GeneralizedLinearMixedModel.PIRLS_TOL
        model.PIRLS_STEP_TOL = GeneralizedLinearMixedModel.PIRLS_STEP_TOL
    if not np.isfinite(os_fast.fmin) and not getattr(model, "separated", False):
        # (with separation the coefficients diverge and PIRLS cannot settle; the caller has
        # already reported that, and the fit goes on as lme4's does)
        from ..errors import GlammError

        raise GlammError(
            "PIRLS could not find the conditional modes at any value tried (non-finite "
            "deviance even after step-halving); check the response against the family and "
            "link, and the scale of the covariates"
        )
    extra0 = os_fast.final[nt:]
    set_extra(model, base_family, extra0)
    for i in log_idx:   # a smooth shrunk towards linear: try it exactly linear
        if os_fast.final[i] < 1e-2:
            trial = os_fast.final[:nt].copy()
            trial[i] = 0.0
            val = model.objective_fast(trial)
            if val <= os_fast.fmin:
                os_fast.final[i], os_fast.fmin = 0.0, val
                os_fast.messages.append(f"theta[{i}] set to 0 (a linear smooth)")
    model.objective_fast(os_fast.final[:nt])
    os_fast.final = os_fast.final[:nt]
    names = model.layout.names() + list(model.frame.xnames) + _extra_names(base_family)
    if fast:
        _warn(os_fast)
        return GlmmFitRecord(fast=os_fast, full=None, names=names, base_family=base_family)

    # full fit from the fast optimum; initial steps: 0.1 for theta, ~ standard errors for beta
    p = model.p
    x0 = np.concatenate([os_fast.final, model.beta, extra0])
    lo = np.concatenate([lower, np.full(p + extra0.size, -np.inf)])
    se_beta = _fast_stderr(model)
    step = np.concatenate([np.full(nt, 0.1), np.where(np.isfinite(se_beta) & (se_beta > 0),
                                                      se_beta, 0.1), np.full(extra0.size, 0.1)])
    f = full_objective(model, base_family)
    os_full = OptSummary(optimizer="newton (finite-difference derivatives)", initial=x0.copy(),
                         lower=lo.copy())
    t0 = time.perf_counter()
    derivs = choose_derivatives(f, model)
    ok, x, fx, H, x_h = newton_minimize(f, x0, lo, os_full, scale=step, derivs=derivs)
    ok, x, fx, H, x_h = _rescue_and_boundary(
        f, (ok, x, fx, H, x_h), lo, nt, os_full, step, derivs, optimizer,
        {"ftol_rel": 1e-10, "ftol_abs": 0.0, "xtol_abs": 1e-8, "initial_step": step, **settings})
    os_full.final, os_full.fmin = x, fx
    if not np.isfinite(fx):
        from ..errors import GlammError

        raise GlammError(
            "PIRLS could not find the conditional modes with the fixed effects held at their "
            "values (non-finite deviance), so there is no valid fit to report; this happens "
            "with links whose derivative vanishes inside the data's range, such as a Poisson "
            "sqrt link with zero counts: try the canonical link")
    if isinstance(derivs, AnalyticDerivatives) or (
            H is not None and not np.array_equal(x, x_h)):
        # an approximate steering Hessian, or one taken away from the optimum: standard
        # errors compute the accurate one at the optimum, on demand
        H = None
    os_full.converged = ok
    os_full.returnvalue = "NEWTON_CONVERGED" if ok else "NEWTON_STALLED"
    os_full.elapsed = time.perf_counter() - t0
    f(x)  # leave the state at the optimum
    _warn(os_full)
    return GlmmFitRecord(fast=os_fast, full=os_full, names=names, hessian=H,
                         base_family=base_family)


def _rescue_and_boundary(f, result, lo: np.ndarray, nt: int, record: OptSummary,
                         scale: np.ndarray, derivs, optimizer: str, bobyqa_settings: dict):
    """After a Newton run: if it stalled, let BOBYQA take over and polish with Newton again;
    then, for variance parameters that ended just above zero, try them exactly on the bound
    (the deviance is flat there and both methods creep). Returns Newton's 5-tuple."""
    ok, x, fx, H, x_h = result
    if not ok:
        os_b = minimize(f, x, lo, optimizer=optimizer, **bobyqa_settings)
        record.feval += os_b.feval
        record.messages.append(f"Newton stalled; {os_b.optimizer} took over")
        ok, x, fx, H, x_h = newton_minimize(f, os_b.final, lo, record, scale=scale,
                                            derivs=derivs)
    near = np.flatnonzero(np.isfinite(lo[:nt]) & (x[:nt] > lo[:nt]) & (x[:nt] < lo[:nt] + 1e-3))
    if near.size:
        trial = x.copy()
        trial[near] = lo[near]
        alt = newton_minimize(f, trial, lo, record, scale=scale, derivs=derivs)
        if alt[2] <= fx:
            ok, x, fx, H, x_h = alt
            record.messages.append(f"theta{list(near)} set to the boundary (singular fit)")
    return ok, x, fx, H, x_h


def quadrature_objective(model: GeneralizedLinearMixedModel, base_family, quadrature):
    """``f(x)`` with ``x = [theta, beta, extra]``: ``-2`` times the quadrature log-likelihood."""
    nt, p = model.n_theta, model.p

    def f(x: np.ndarray) -> float:
        if not extra_ok(x[nt + p:]):
            return float("inf")
        set_extra(model, base_family, x[nt + p:])
        ll = quadrature.loglik(x[:nt], x[nt:nt + p])
        if not np.isfinite(ll):
            return float("inf")
        value = -2.0 * ll
        if model.penalty is not None:
            value += model.penalty.deviance(x[nt:nt + p])
        return value

    return f


def fit_agq(model: GeneralizedLinearMixedModel, nagq: int, optimizer: str = "bobyqa",
            blas_threads: int | None = 1, **settings) -> GlmmFitRecord:
    """Maximize the adaptive Gauss-Hermite log-likelihood, starting from the Laplace fit:
    Newton steps on the exact gradient (glmm.agq_derivatives), or on finite differences for
    families with a dispersion or shape parameter; BOBYQA if they stall, and a boundary check
    for variances near zero. Standard errors take the Hessian at the optimum, on demand."""
    from .agq import AdaptiveQuadrature

    quad = AdaptiveQuadrature(model, nagq)   # checks the model first (one grouping factor)
    laplace = fit_glmm(model, fast=False, optimizer=optimizer, blas_threads=blas_threads)
    base_family = laplace.base_family
    with single_threaded(blas_threads):
        nt, p = model.n_theta, model.p
        x0 = laplace.full.final.copy()
        lo = np.concatenate([model.layout.lower(), np.full(x0.size - nt, -np.inf)])
        f = quadrature_objective(model, base_family, quad)
        rec = OptSummary(optimizer=f"newton on AGQ({nagq}) (finite differences)",
                         initial=x0.copy(), lower=lo.copy())
        t0 = time.perf_counter()
        scale = np.maximum(np.abs(x0) * 0.1, 0.05)
        derivs = FiniteDifferences(f)
        if x0.size == nt + p:   # no dispersion or shape parameter
            # exact gradients (the nodes' movement included), steered by the analytic Hessian
            # at fixed nodes
            rec.optimizer = f"newton on AGQ({nagq}) (analytic gradient)"
            derivs = QuadratureDerivatives(f, model, quad)
        ok, x, fx, H, x_h = newton_minimize(f, x0, lo, rec, scale=scale, derivs=derivs)
        ok, x, fx, H, x_h = _rescue_and_boundary(
            f, (ok, x, fx, H, x_h), lo, nt, rec, scale, derivs, optimizer,
            {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-9, "initial_step": 0.1,
             **settings})
        H = None   # steering Hessians only: standard errors take the true one, on demand
        rec.final, rec.fmin, rec.converged = x, fx, ok
        rec.returnvalue = "NEWTON_CONVERGED" if ok else "NEWTON_STALLED"
        rec.elapsed = time.perf_counter() - t0
        f(x)
    _warn(rec)
    return GlmmFitRecord(fast=laplace.fast, full=rec, names=laplace.names, hessian=H,
                         nagq=nagq, quadrature=quad,
                         laplace_loglik=-0.5 * laplace.full.fmin)


def _fast_stderr(model: GeneralizedLinearMixedModel) -> np.ndarray:
    """Standard errors of ``beta`` from the fixed-effects block of the fast fit's factor."""
    fac = model.fac_b
    K = fac.K
    LXX = fac.L[K][K][:-1, :-1]
    if LXX.shape[0] == 0:
        return np.zeros(0)
    import scipy.linalg as sla

    Linv = sla.solve_triangular(LXX, np.eye(LXX.shape[0]), lower=True, check_finite=False)
    return np.sqrt(np.sum(Linv**2, axis=0))


def _warn(os_: OptSummary) -> None:
    if not os_.converged:
        warnings.warn(f"the optimizer did not converge ({os_.returnvalue})", ConvergenceWarning,
                      stacklevel=4)



"""Fit a GLMM by the Laplace approximation: a fast fit over ``theta`` (``beta`` inside PIRLS),
then, unless ``fast=True``, a full fit over (``theta``, ``beta``, and the dispersion or
negative-binomial shape where the family has one) started from it, as lme4 and MixedModels.jl
do. Standard errors come from the Hessian of the Laplace deviance in all parameters.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvergenceWarning, GlammError
from ..linalg.threads import single_threaded
from ..optim import kkt
from ..optim.backends import minimize
from ..optim.newton import FiniteDifferences, newton_minimize
from ..optim.optsummary import OptSummary
from .derivatives import AnalyticDerivatives, QuadratureDerivatives, choose_derivatives
from .glm import fit_glm_own_parameters
from .loading_start import glm_loading_start, rescaled_theta
from .model import GeneralizedLinearMixedModel
from .pirls import LOOSE_PIRLS, PirlsSettings
from .warm_start import WARM_STEP, warm_theta


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


@dataclass
class StartValues:
    """Where a GLMM fit starts: ``beta`` from a GLM without random effects, the response
    parameters from the same GLM, ``theta`` from the user or the covariance structures."""

    theta: np.ndarray
    beta: np.ndarray
    response: np.ndarray
    #: free factor loadings (empty without loadings)
    loadings: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _put_parameters(model: GeneralizedLinearMixedModel, part: dict[str, np.ndarray]) -> bool:
    """Put the response parameters and the free loadings of ``part`` into the model; false
    (and nothing changed) when the response parameters would overflow."""
    if not model.response.parameters_ok(part["response"]):
        return False
    model.response.set_parameters(part["response"])
    if "lambda" in part:
        model.set_loadings(part["lambda"])
    return True


def _deviance_function(model: GeneralizedLinearMixedModel, deviance):
    """``f(x)`` over the model's full parameter vector (:attr:`~GeneralizedLinearMixedModel.
    parameters`): puts the response parameters into the model, then ``deviance(theta, beta)``
    plus the fixed-effects penalty of a penalized fit. Non-finite values become ``inf``."""
    layout = model.parameters

    def f(x: np.ndarray) -> float:
        part = layout.split(x)
        if not _put_parameters(model, part):
            return float("inf")
        value = deviance(part["theta"], part["beta"])
        if not np.isfinite(value):
            return float("inf")
        if model.penalty is not None:
            value += model.penalty.deviance(part["beta"])
        return value

    return f


def full_objective(model: GeneralizedLinearMixedModel):
    """``f(x)`` over ``[theta, beta, response]``: the Laplace deviance (PIRLS over ``u``)."""
    return _deviance_function(model, model.objective)


def fit_glmm(
    model: GeneralizedLinearMixedModel,
    fast: bool = False,
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
    blas_threads: int | None = 1,
    **settings,
) -> GlmmFitRecord:
    """Fit ``model`` in place (its state ends at the optimum) and return the records.

    The stages, each a function below: :func:`start_values` (a GLM), :func:`fast_stage`
    (BOBYQA over ``theta`` and the response parameters, ``beta`` inside PIRLS; the answer when
    ``fast=True``), :func:`full_stage` (Newton over all parameters from there, with BOBYQA as
    the rescue and the boundary check of :func:`_rescue_and_boundary`).

    Parameters
    ----------
    model : GeneralizedLinearMixedModel
        The model; its state is left at the optimum.
    fast : bool
        Stop after the fast stage (lme4's ``nAGQ = 0``).
    start : ndarray, optional
        Starting ``theta`` (default: the covariance structures' own).
    optimizer : str
        Backend of the derivative-free stages (see :func:`glamm.optim.backends.minimize`).
    blas_threads : int or None
        BLAS threads during the fit (``None`` leaves the setting alone).
    **settings
        Optimizer settings (``ftol_rel``, ``xtol_abs``, ``maxfeval``, ...).
    """
    with single_threaded(blas_threads):
        init = start_values(model, start)
        warm = warm_theta(model) if start is None and not fast else None
        if warm is not None:
            init = dataclasses.replace(init, theta=np.maximum(warm, model.layout.lower()))
        os_fast, extras = fast_stage(model, init, optimizer, fast, settings,
                                     initial_step=WARM_STEP if warm is not None else None)
        if warm is not None:
            os_fast.messages.append("started from single-term fits")
        names = model.parameters.names()
        if fast:
            _warn(os_fast)
            return GlmmFitRecord(fast=os_fast, full=None, names=names,
                                 base_family=model.response.base_family)
        os_full, hessian = full_stage(model, os_fast, extras, optimizer, settings)
        _warn(os_full)
        return GlmmFitRecord(fast=os_fast, full=os_full, names=names, hessian=hessian,
                             base_family=model.response.base_family)


def start_values(model: GeneralizedLinearMixedModel, start: np.ndarray | None) -> StartValues:
    """``beta`` and the response parameters from a GLM fit without random effects; ``theta``
    from ``start`` or the covariance structures' initial values (raised to their bounds)."""
    response = model.response
    # (a family with a zero part starts from its count part's GLM)
    glm = model.glm_start(getattr(response.base_family, "start_family", response.base_family))
    extra0 = response.start(glm)
    beta0 = glm.beta.copy()
    family = response.family
    if family.refine_glm_start and not response.mixed \
            and extra0.size == family.extra_values().size:
        # the zero part and the count part's own parameters from a GLM of the whole model
        # (its rough zero-part guess can leave the Laplace fit's stages far to go)
        better = fit_glm_own_parameters(family, model.X, model.y, model.wt, model.offset,
                                        beta0, extra0)
        if better is not None:
            beta0, extra0 = better
    response.set_parameters(extra0)
    model.beta = beta0.copy()
    theta_block = model.parameters.block("theta")
    theta0 = model.layout.initial() if start is None else np.asarray(start, dtype=float)
    loadings = model.loadings.values.copy() if model.loadings is not None else np.zeros(0)
    return StartValues(theta=np.maximum(theta0, theta_block.lower), beta=beta0.copy(),
                       response=extra0, loadings=loadings)


def fast_stage(model: GeneralizedLinearMixedModel, init: StartValues, optimizer: str,
               final: bool, settings: dict, initial_step: float | None = None
               ) -> tuple[OptSummary, dict[str, np.ndarray]]:
    """BOBYQA over ``theta`` and the response parameters with ``beta`` updated inside PIRLS
    (the objective of lme4's ``nAGQ = 0``; a family with ``hold_start_in_search`` holds
    its response parameters at the start's unless this stage is the answer). When ``final``
    the result is the answer (tight tolerances, the user's ``settings``); otherwise only
    the start of :func:`full_stage`, needed to about 1e-4, so the optimizer and PIRLS run
    with loose tolerances. A smooth whose scale ended near zero is then tried exactly
    linear. Leaves the model at the optimum.
    Returns the record (its ``final`` holds ``theta``) and the other blocks it moved (the
    response parameters, and the free loadings of a model with loadings)."""
    # a model with factor loadings: the search holds them at their start values and a GLM
    # then estimates them (glmm/loading_start.py), unless this stage is the answer
    staged = not final and model.loadings is not None and not model.loadings.x_cols \
        and model.loadings.n_free > 0
    blocks = ["theta", "response"] if staged else ["theta", "lambda", "response"]
    if not final and model.response.family.hold_start_in_search:
        # (parameters the start already estimated, such as a zero part's or the ordinal
        # thresholds: the search holds them there and moves theta, Newton then moves
        # everything; in the search they would mostly be far-off trial points)
        blocks.remove("response")
    layout = model.parameters.subset(blocks)
    if final:
        opt_settings = {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-8, **settings}
        pirls = PirlsSettings()
    else:
        # (with loadings held for the GLM start, theta only needs to be roughly right: the
        # loadings move it anyway, and Newton finishes)
        # (families outside the exponential family have analytic gradients in their own
        # parameters: Newton finishes them from a rough start, as the loadings)
        # (ordinal thresholds and zero parts too: their gradients are analytic through the
        # same per-row path)
        family = model.response.family
        rough = (staged or hasattr(family, "tmb_sigma") or bool(family.concave_loglik)
                 or bool(family.analytic_extra_gradient))
        opt_settings = {"ftol_rel": 1e-4, "ftol_abs": 0.0, "xtol_abs": 1e-2} if rough \
            else {"ftol_rel": 1e-6, "ftol_abs": 0.0, "xtol_abs": 1e-3}
        if initial_step is not None:   # (from a warm start, already near the optimum)
            opt_settings["initial_step"] = initial_step
        pirls = LOOSE_PIRLS

    def fast_objective(z: np.ndarray) -> float:
        # the dispersion or shape (log scale) is optimized here too: with theta relative to
        # the residual scale, a dispersion fixed at the GLM's (which absorbs the random
        # effects' variance) would leave theta far from its optimum
        part = layout.split(z)
        part.setdefault("response", init.response)
        if not _put_parameters(model, part):
            return float("inf")
        return model.objective_fast(part["theta"], pirls)

    x0 = layout.assemble({"theta": init.theta, "response": init.response,
                          "lambda": init.loadings})
    os_fast = minimize(fast_objective, x0, layout.lower(), optimizer=optimizer,
                       log_index=layout.log_scale_index(), **opt_settings)
    if not np.isfinite(os_fast.fmin) and not model.separated:
        # (with separation the coefficients diverge and PIRLS cannot settle; the caller has
        # already reported that, and the fit goes on as lme4's does)
        raise GlammError(
            "PIRLS could not find the conditional modes at any value tried (non-finite "
            "deviance even after step-halving); check the response against the family and "
            "link, and the scale of the covariates"
        )
    assert os_fast.final is not None   # set by every minimize run
    best = layout.split(os_fast.final)
    extras = {name: best[name].copy() for name in best if name != "theta"}
    extras.setdefault("response", np.asarray(init.response, dtype=float).copy())
    model.response.set_parameters(extras["response"])
    if "lambda" in extras:
        model.set_loadings(extras["lambda"])
    theta = best["theta"].copy()
    state_at = None   # the theta the model's PIRLS state is at (None: unknown)
    if staged:
        model.objective_fast(theta)   # the modes at the search's optimum
        start = glm_loading_start(model)
        if start is not None:
            theta = rescaled_theta(model, theta, init.loadings, start)
            extras["lambda"] = start
        else:
            extras["lambda"] = init.loadings.copy()
        model.set_loadings(extras["lambda"])
        os_fast.fmin = model.objective_fast(theta)
        state_at = theta.copy()
    for i in model.parameters.block("theta").log_scale:
        # a smooth shrunk towards linear: try it exactly linear
        if theta[i] < 1e-2:
            trial = theta.copy()
            trial[i] = 0.0
            val = model.objective_fast(trial)
            state_at = trial
            if val <= os_fast.fmin:
                theta[i], os_fast.fmin = 0.0, val
                os_fast.messages.append(f"theta[{i}] set to 0 (a linear smooth)")
    if state_at is None or not np.array_equal(state_at, theta):
        model.objective_fast(theta)
    os_fast.final = theta
    return os_fast, extras


def full_stage(model: GeneralizedLinearMixedModel, os_fast: OptSummary,
               extras: dict[str, np.ndarray], optimizer: str, settings: dict
               ) -> tuple[OptSummary, np.ndarray | None]:
    """Newton over all parameters ``[theta, beta, response]`` from the fast stage's optimum
    (initial steps 0.1 for ``theta`` and the response parameters, about a standard error for
    ``beta``), on analytic gradients where affordable; BOBYQA if Newton stalls, then the
    boundary check. Leaves the model at the optimum. Returns the record and the Hessian if
    an accurate one was computed at the optimum (else ``None``: standard errors compute it)."""
    layout = model.parameters
    assert os_fast.final is not None   # set by fast_stage
    x0 = layout.assemble({"theta": os_fast.final, "beta": model.beta, **extras})
    lo = layout.lower()
    se_beta = _fast_stderr(model)
    step = layout.fill({b.name: 0.1 for b in layout.blocks})
    step[layout.slice("beta")] = np.where(np.isfinite(se_beta) & (se_beta > 0), se_beta, 0.1)
    f = full_objective(model)
    os_full = OptSummary(optimizer="newton (finite-difference derivatives)", initial=x0.copy(),
                         lower=lo.copy())
    t0 = time.perf_counter()
    derivs = choose_derivatives(f, model)
    ok, x, fx, H, x_h = newton_minimize(f, x0, lo, os_full, scale=step, derivs=derivs)
    ok, x, fx, H, x_h = _rescue_and_boundary(
        f, (ok, x, fx, H, x_h), lo, layout.lower_of("theta"), os_full, step, derivs, optimizer,
        {"ftol_rel": 1e-10, "ftol_abs": 0.0, "xtol_abs": 1e-8, "initial_step": step, **settings},
        model=model, interior_restart=True)
    os_full.final, os_full.fmin = x, fx
    if not np.isfinite(fx):
        raise GlammError(
            "PIRLS could not find the conditional modes with the fixed effects held at their "
            "values (non-finite deviance), so there is no valid fit to report; this happens "
            "with links whose derivative vanishes inside the data's range, such as a Poisson "
            "sqrt link with zero counts: try the canonical link")
    hessian: np.ndarray | None = H
    if isinstance(derivs, AnalyticDerivatives) or (
            H is not None and not np.array_equal(x, x_h)):
        # an approximate steering Hessian, or one taken away from the optimum: standard
        # errors compute the accurate one at the optimum, on demand
        hessian = None
    os_full.converged = ok
    os_full.returnvalue = "NEWTON_CONVERGED" if ok else "NEWTON_STALLED"
    os_full.elapsed = time.perf_counter() - t0
    f(x)  # leave the state at the optimum
    return os_full, hessian


def _rescue_and_boundary(f, result, lo: np.ndarray, theta_lower: np.ndarray, record: OptSummary,
                         scale: np.ndarray, derivs, optimizer: str, bobyqa_settings: dict, *,
                         model: GeneralizedLinearMixedModel, interior_restart: bool = False):
    """After a Newton run: if it stalled, let BOBYQA take over and polish with Newton again;
    then, for variance parameters that ended just above zero, try them exactly on the bound
    (the deviance is flat there and both methods creep); then leave bounds the KKT test does
    not support; last, with ``interior_restart``, refit a boundary fit from the variances'
    starting values (:func:`_interior_restart`). Returns Newton's 5-tuple."""
    ok, x, fx, H, x_h = _rescue(f, result, lo, record, scale, derivs, optimizer,
                                bobyqa_settings)
    near = np.flatnonzero(np.isfinite(theta_lower) & (x > theta_lower)
                          & (x < theta_lower + 1e-3))
    if near.size:
        trial = x.copy()
        trial[near] = lo[near]
        alt = newton_minimize(f, trial, lo, record, scale=scale, derivs=derivs)
        if alt[2] <= fx:
            ok, x, fx, H, x_h = alt
            record.messages.append(f"theta{list(map(int, near))} set to the boundary "
                                   "(singular fit)")
    result = _leave_unsupported_bounds(f, (ok, x, fx, H, x_h), lo, theta_lower, record, scale,
                                       derivs, optimizer, bobyqa_settings, model)
    if not interior_restart:
        return result
    return _interior_restart(f, result, lo, theta_lower, record, scale, derivs, model)


def _interior_restart(f, result, lo: np.ndarray, theta_lower: np.ndarray, record: OptSummary,
                      scale: np.ndarray, derivs, model: GeneralizedLinearMixedModel):
    """A fit with variance parameters on their bound that the KKT test supports is a local
    optimum, not necessarily the best: the deviance in a variance can rise from zero and fall
    again further in (a hurdle NB1 count part: glmmTMB's interior fit 0.2 log-likelihood
    units higher). Minimize again from those parameters at their starting values (the other
    parameters where they are) and keep the result if it is lower (beyond
    ``KKT_MIN_GAIN``); otherwise the model's state is left as it was."""
    ok, x, fx, H, x_h = result
    on, trial = kkt.interior_restart_point(x, lo, theta_lower.size, model.layout.initial(),
                                           scale)
    if not on.size or not np.isfinite(fx):
        return result
    restore = _keep_state(model, derivs)
    if not np.isfinite(derivs.value(trial)):
        restore()
        return result
    # (Newton only: where it stalls the restart is given up, not handed to BOBYQA)
    alt = newton_minimize(f, trial, lo, record, scale=scale, derivs=derivs)
    if alt[0] and alt[2] < fx - KKT_MIN_GAIN * (1.0 + abs(fx)):
        record.messages.append(f"theta{list(map(int, on))} on the bound was a local optimum: "
                               f"refitting from the starting values found a lower objective "
                               f"({fx:.8g} -> {alt[2]:.8g})")
        return alt
    restore()
    return result


def _rescue(f, result, lo: np.ndarray, record: OptSummary, scale: np.ndarray, derivs,
            optimizer: str, bobyqa_settings: dict):
    """A stalled Newton run handed to BOBYQA, then polished by Newton (Newton's 5-tuple)."""
    ok, x = result[0], result[1]
    if ok:
        return result
    os_b = minimize(f, x, lo, optimizer=optimizer, **bobyqa_settings)
    record.feval += os_b.feval
    record.messages.append(f"Newton stalled; {os_b.optimizer} took over")
    assert os_b.final is not None   # set by every minimize run
    return newton_minimize(f, os_b.final, lo, record, scale=scale, derivs=derivs)


#: gradient components (and curvatures) below this times ``1 + |deviance|`` count as 0 in the
#: KKT test of the bounds
KKT_TOL = 1e-6
#: the step (on theta's scale) of the difference of gradients that gives the curvature
KKT_CURVATURE_STEP = 1e-3
#: a re-optimization from inside counts only if it lowers the objective by more than this
#: times ``1 + |deviance|`` (less is the noise of a return to the same optimum)
KKT_MIN_GAIN = 1e-10


def _unsupported_theta_bounds(derivs, x: np.ndarray, fx: float, lo_theta: np.ndarray):
    """The KKT test (optim.kkt) of the theta bounds active at ``x``: the gradient, and where
    it vanishes (by symmetry, for a diagonal element of lambda whose column is otherwise 0)
    the curvature inwards, from a difference of gradients. Returns the indices not supported
    and a text describing the test of each active bound."""
    if not kkt.active_bounds(x, lo_theta).size:
        return np.zeros(0, dtype=int), []
    g = derivs.grad(x, fx)
    tol = KKT_TOL * (1.0 + abs(fx))
    curvature = np.full(x.size, np.nan)
    for i in kkt.inconclusive_bounds(x, g, lo_theta, tol):
        inside = x.copy()
        inside[i] += KKT_CURVATURE_STEP
        curvature[i] = (derivs.grad(inside)[i] - g[i]) / KKT_CURVATURE_STEP
    bad = kkt.unsupported_bounds(x, g, lo_theta, tol, curvature)
    notes = [f"theta[{i}] on its bound: gradient {g[i]:.3g}"
             + ("" if np.isnan(curvature[i]) else f", curvature {curvature[i]:.3g}")
             + (" (not supported)" if i in bad else " (supported)")
             for i in kkt.active_bounds(x, lo_theta)]
    return bad, notes


#: what the next PIRLS run starts from (glmm.model): a test that changes nothing restores it,
#: so the rest of the fit runs exactly as without the test (the dispersion or shape needs no
#: saving: every evaluation of the objective sets it first)
_WARM_STATE = ("u", "beta", "eta", "mu", "theta", "ldL2", "pirls_iterations")


def _keep_state(model: GeneralizedLinearMixedModel, derivs):
    """Save the model's PIRLS state and the derivative provider's caches (its attributes, and
    the quadrature's last nodes); returns a function that puts them back."""
    saved = {k: getattr(model, k) for k in _WARM_STATE}
    saved_derivs = dict(vars(derivs))
    quad = getattr(derivs, "quad", None)
    last = getattr(quad, "last", None)

    def restore() -> None:
        for k, v in saved.items():
            setattr(model, k, v)
        vars(derivs).update(saved_derivs)
        if quad is not None:
            quad.last = last

    return restore


def _leave_unsupported_bounds(f, result, lo: np.ndarray, theta_lower: np.ndarray,
                              record: OptSummary,
                              scale: np.ndarray, derivs, optimizer: str, bobyqa_settings: dict,
                              model: GeneralizedLinearMixedModel, rounds: int = 3):
    """Move the theta bounds the KKT test does not support into the interior (by their scale)
    and minimize again from there; the new optimum is kept only if it is lower (beyond
    ``KKT_MIN_GAIN``). Each test and its outcome go to ``record.messages``; a test that
    changes nothing leaves no trace in the model's state either."""
    ok, x, fx, H, x_h = result
    for _ in range(rounds):
        if not np.isfinite(fx):
            break
        restore = _keep_state(model, derivs)
        bad, notes = _unsupported_theta_bounds(derivs, x, fx, theta_lower)
        if notes:
            record.messages.append("KKT test: " + "; ".join(notes))
        if not bad.size:
            restore()
            break
        # a full scale inside, not just past the bound: where the curvature rejected the bound,
        # the deviance is concave in that element near 0 and Newton crawls there (on this
        # model with 25 or 31 points it stalls from 0.0125 and BOBYQA needs ~700 evaluations)
        trial = x.copy()
        trial[bad] = lo[bad] + scale[bad]
        for _ in range(12):   # shortened only where PIRLS fails
            if np.isfinite(derivs.value(trial)):
                break
            trial[bad] = lo[bad] + 0.5 * (trial[bad] - lo[bad])
        else:
            restore()
            record.messages.append(f"theta{list(map(int, bad))}: no finite objective found "
                                   "inside; the bound is kept")
            break
        alt = newton_minimize(f, trial, lo, record, scale=scale, derivs=derivs)
        alt = _rescue(f, alt, lo, record, scale, derivs, optimizer, bobyqa_settings)
        if not alt[2] < fx - KKT_MIN_GAIN * (1.0 + abs(fx)):   # (not a return to the bound)
            restore()
            record.messages.append(f"theta{list(map(int, bad))}: re-optimizing from inside "
                                   f"found no lower objective ({fx:.8g} -> {alt[2]:.8g}); "
                                   "the bound is kept")
            break
        record.messages.append(f"theta{list(map(int, bad))} moved inside and re-optimized: "
                               f"objective {fx:.8g} -> {alt[2]:.8g}")
        ok, x, fx, H, x_h = alt
    return ok, x, fx, H, x_h


def quadrature_objective(model: GeneralizedLinearMixedModel, quadrature):
    """``f(x)`` over ``[theta, beta, response]``: ``-2`` times the quadrature log-likelihood."""
    return _deviance_function(model, lambda theta, beta: -2.0 * quadrature.loglik(theta, beta))


def fit_agq(model: GeneralizedLinearMixedModel, nagq: int, optimizer: str = "bobyqa",
            blas_threads: int | None = 1, **settings) -> GlmmFitRecord:
    """Maximize the adaptive Gauss-Hermite log-likelihood, starting from the Laplace fit:
    Newton steps on the exact gradient (glmm.agq_derivatives), or on finite differences for
    families with a dispersion or shape parameter; BOBYQA if they stall, and a boundary check
    for variances near zero. Standard errors take the Hessian at the optimum, on demand."""
    from .agq import AdaptiveQuadrature

    quad = AdaptiveQuadrature(model, nagq)   # checks the model first (one grouping factor)
    laplace = fit_glmm(model, fast=False, optimizer=optimizer, blas_threads=blas_threads)
    with single_threaded(blas_threads):
        layout = model.parameters
        assert laplace.full is not None and laplace.full.final is not None  # fast=False
        x0 = laplace.full.final.copy()
        lo = layout.lower()
        f = quadrature_objective(model, quad)
        rec = OptSummary(optimizer=f"newton on AGQ({nagq}) (finite differences)",
                         initial=x0.copy(), lower=lo.copy())
        t0 = time.perf_counter()
        scale = np.maximum(np.abs(x0) * 0.1, 0.05)
        derivs = FiniteDifferences(f)
        steer = None
        # (exact gradients cover theta and beta: not a dispersion, shape or loadings)
        if layout.size_of("response") == 0 and model.loadings is None:
            # exact gradients (the nodes' movement included), steered by the analytic Hessian
            # at fixed nodes
            rec.optimizer = f"newton on AGQ({nagq}) (analytic gradient)"
            derivs = QuadratureDerivatives(f, model, quad)
        else:
            # finite differences: Newton is steered by the Laplace fit's Hessian (from its
            # analytic gradients, a few PIRLS runs) instead of a difference Hessian of the
            # quadrature deviance (1 + 2n + n(n - 1) evaluations); BFGS corrects it
            steer = _laplace_hessian(model, x0)
        ok, x, fx, H, x_h = newton_minimize(f, x0, lo, rec, scale=scale, derivs=derivs,
                                            hessian=steer)
        ok, x, fx, _, _ = _rescue_and_boundary(
            f, (ok, x, fx, H, x_h), lo, layout.lower_of("theta"), rec, scale, derivs, optimizer,
            {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-9, "initial_step": 0.1,
             **settings}, model=model)
        # steering Hessians only (the record's hessian stays None): standard errors take the
        # true one, on demand
        rec.final, rec.fmin, rec.converged = x, fx, ok
        rec.returnvalue = "NEWTON_CONVERGED" if ok else "NEWTON_STALLED"
        rec.elapsed = time.perf_counter() - t0
        f(x)
    _warn(rec)
    return GlmmFitRecord(fast=laplace.fast, full=rec, names=laplace.names, hessian=None,
                         nagq=nagq, quadrature=quad,
                         laplace_loglik=-0.5 * laplace.full.fmin, base_family=laplace.base_family)


def _laplace_hessian(model: GeneralizedLinearMixedModel, x: np.ndarray) -> np.ndarray | None:
    """The Laplace deviance's Hessian at ``x`` from forward differences of its analytic
    gradient (``None`` where the gradient is not analytic or not finite: Newton then takes
    its own difference Hessian)."""
    f = full_objective(model)
    derivs = choose_derivatives(f, model)
    if not isinstance(derivs, AnalyticDerivatives):
        return None
    _, H, _ = derivs.grad_hess(x, central=False)
    return H if np.all(np.isfinite(H)) else None


def _fast_stderr(model: GeneralizedLinearMixedModel) -> np.ndarray:
    """Rough standard errors of ``beta`` (the scale of Newton's first steps) from the
    fixed-effects block of the joint factor with the Fisher weights at the fast fit's mode
    (the model's state); NaN where that factor does not exist (a PIRLS failure, separation).
    (The factor is refilled here: PIRLS's own iterations need not leave it, and at the mode
    it factors only the random-effects blocks when they hold the observed information.)"""
    p = model.p
    if p == 0:
        return np.zeros(0)
    if model.eta is None or model.mu is None or model.theta is None:
        return np.full(p, np.nan)
    try:
        model.factor_joint_fisher()
    except np.linalg.LinAlgError:
        return np.full(p, np.nan)
    fac = model.fac_b
    LXX = fac.L[fac.K][fac.K][:-1, :-1]
    d = np.diag(LXX)
    if not np.all(np.isfinite(LXX)) or np.any(d <= 0):
        return np.full(p, np.nan)
    import scipy.linalg as sla

    Linv = sla.solve_triangular(LXX, np.eye(p), lower=True, check_finite=False)
    return np.sqrt(np.sum(Linv**2, axis=0))


def _warn(os_: OptSummary) -> None:
    if not os_.converged:
        warnings.warn(f"the optimizer did not converge ({os_.returnvalue})", ConvergenceWarning,
                      stacklevel=4)

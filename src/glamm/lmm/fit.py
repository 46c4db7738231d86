"""Fit an LMM: optimize the profiled deviance over ``theta`` and collect the estimates."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConvergenceWarning, GlammError
from ..linalg.threads import single_threaded
from ..optim.backends import minimize, minimize_gradient, minimize_lbfgs
from ..optim.optsummary import OptSummary
from .gradient import gradient_affordable
from .model import LinearMixedModel

#: initial BOBYQA step after a warm start (the start is then already close to the optimum)
WARM_STEP = 0.1
#: ``start="auto"`` warm-starts when a random-effects diagonal block of L is dense with at
#: least this many rows (the evaluations are then expensive enough to matter)
WARM_MIN_DENSE = 200


#: ``optimizer="auto"`` searches with the analytic gradient (:mod:`glamm.lmm.gradient`) when
#: the model has at least this many random effects or :func:`_expensive` holds; below, an
#: evaluation is so cheap (the one-term models' compiled pass takes microseconds) that the
#: gradient's own cost outweighs BOBYQA's extra evaluations
GRADIENT_MIN_Q = 1000
#: BLAS threads are limited during a fit (``blas_threads``) only when the factor has a dense
#: block of at least this many rows
THREAD_LIMIT_MIN = 64
#: one random-effects term: the compiled value and gradient (linalg/one_term.py) make the
#: gradient search cheaper than BOBYQA's extra evaluations at any size
ONE_TERM_GRADIENT = True
#: the gradient search's stopping rule: the projected gradient's largest component at most
#: this times the number of observations (the deviance's scale; a relative change of the
#: deviance, as BOBYQA's ``ftol_rel``, would stop on the first flat stretch)
GRADIENT_GTOL = 1e-7


def _expensive(model: LinearMixedModel) -> bool:
    L = model.factor.L
    return any(isinstance(L[k][k], np.ndarray) and L[k][k].shape[0] >= WARM_MIN_DENSE
               for k in range(model.factor.K))


def warm_start(model: LinearMixedModel) -> np.ndarray:
    """Starting ``theta`` from one cheap fit per random-effects term, each alone with the
    fixed effects (loose tolerance). Each such model has a block-diagonal factor, so all of
    them together cost far less than a few evaluations of a model with crossed terms, and
    starting the joint fit near its optimum saves most of BOBYQA's evaluations there."""
    parts = []
    for k in range(len(model.reterms)):
        sub = model.single_term_model(k)
        os_ = minimize(sub.objective_value, sub.theta_initial(), sub.theta_lower(),
                       ftol_rel=1e-6, ftol_abs=0.0, xtol_abs=1e-6)
        assert os_.final is not None   # set by every minimize run
        parts.append(os_.final)
    return np.concatenate(parts)


def optimize_theta(
    model: LinearMixedModel,
    start: np.ndarray | str | None = None,
    optimizer: str = "auto",
    blas_threads: int | None = 1,
    **settings,
) -> OptSummary:
    """Minimize the model's objective over ``theta`` (lower bounds from the covariance
    structures) and leave the model's factor at the optimum.

    After the optimizer stops, every diagonal element of ``theta`` that ended near its bound is
    tried at exactly zero, and kept there if that does not increase the objective (a singular
    fit on the boundary, as MixedModels.jl does).

    Parameters
    ----------
    model : LinearMixedModel
        The model to fit (any object with its ``theta_lower``, ``theta_initial``,
        ``layout``, ``objective`` and ``set_theta``, such as
        :class:`glamm.lmm.no_residual.MarginalModel`, when ``start`` is not ``"warm"``).
    start : ndarray or str, optional
        ``None`` (lme4's start: 1 on the diagonal of each ``lambda``, 0 elsewhere),
        ``"warm"`` (:func:`warm_start`), ``"auto"`` (warm when the factor has a dense
        random-effects block of at least :data:`WARM_MIN_DENSE` rows, as for InstEval, where
        it cuts BOBYQA's evaluations from 129 to 51; lme4's start otherwise) or an array in
        lme4's ``theta`` order.
    optimizer : str
        ``"auto"`` (default): nlopt's L-BFGS on the analytic gradient of the objective where
        it pays (:func:`uses_gradient`), then BOBYQA from its end if a parameter sits on its
        bound or the gradient there is not small; BOBYQA otherwise. Or a backend name for
        :func:`glamm.optim.backends.minimize` (``"bobyqa"``, ``"nelder_mead"``,
        ``"lbfgsb"``: numerical gradients).
    blas_threads : int or None
        BLAS threads during the fit (default 1; ``None`` leaves the library's setting); see
        :mod:`glamm.linalg.threads`.
    **settings
        ``ftol_rel``, ``ftol_abs``, ``xtol_abs``, ``initial_step``, ``maxfeval``.

    Returns
    -------
    OptSummary
        The optimizer's settings, trace and outcome.
    """
    if blas_threads is not None and _blas_matters(model):
        with single_threaded(blas_threads):
            return optimize_theta(model, start, optimizer, None, **settings)
    lower = model.theta_lower()
    if isinstance(start, str) and start == "auto":
        start = "warm" if _expensive(model) else None
    if isinstance(start, str):
        if start != "warm":
            raise GlammError(f"start must be None, 'auto', 'warm' or an array, got {start!r}")
        x0 = warm_start(model)
        settings.setdefault("initial_step", WARM_STEP)
    else:
        x0 = model.theta_initial() if start is None else np.asarray(start, dtype=float)
    if x0.shape != lower.shape:
        raise GlammError(f"start must have length {lower.shape[0]} (theta), got {x0.shape[0]}")
    x0 = np.maximum(x0, lower)
    log_idx = model.layout.log_scale_index()
    # (the value alone where the model has a faster way to it; the factor is set at the end)
    f = getattr(model, "objective_value", model.objective)
    if optimizer == "auto" and uses_gradient(model) and not len(log_idx):
        os_ = _gradient_search(model, x0, lower, settings)
    else:
        os_ = minimize(f, x0, lower, optimizer="bobyqa" if optimizer == "auto" else optimizer,
                       log_index=log_idx, **settings)
    if isinstance(start, str):
        os_.messages.append("started from single-term fits (start='warm')")
    assert os_.final is not None   # set by every minimize run
    theta = os_.final.copy()
    fmin = os_.fmin
    bounded = np.isfinite(lower)
    near = bounded & (theta - lower < 1e-5)
    # a smooth's scale optimized on the log scale only approaches 0 (a linear fit)
    near[log_idx] = theta[log_idx] < 1e-2
    for i in np.flatnonzero(near & (theta != lower)):
        trial = theta.copy()
        trial[i] = lower[i]
        val = model.objective(trial)
        if val <= fmin:
            theta, fmin = trial, val
            os_.messages.append(f"theta[{i}] set to its lower bound {lower[i]:g}")
    if optimizer == "auto" and not len(log_idx) and gradient_affordable(model) \
            and not uses_gradient(model):
        theta, fmin = _newton_polish(model, theta, fmin, lower, os_)
    os_.final, os_.fmin = theta, fmin
    model.set_theta(theta)
    if not os_.converged:
        warnings.warn(
            f"the optimizer did not converge ({os_.returnvalue}); estimates may be unreliable",
            ConvergenceWarning,
            stacklevel=3,
        )
    return os_


def _blas_matters(model) -> bool:
    """Whether the fit's BLAS calls are large enough for the thread setting to matter: a
    dense block of the factor with :data:`THREAD_LIMIT_MIN` rows or more (asking the BLAS
    libraries for their thread counts costs more than a small model's refit)."""
    fac = getattr(model, "factor", None)
    if fac is None:
        return True
    return any(isinstance(b, np.ndarray) and b.shape[0] >= THREAD_LIMIT_MIN
               for row in fac.L for b in row)


def uses_gradient(model) -> bool:
    """Whether ``optimizer="auto"`` searches with the analytic gradient: the gradient exists
    for the model (:func:`glamm.lmm.gradient.gradient_affordable`), and either the model has
    one random-effects term (value and gradient in one compiled pass) or its evaluations
    are expensive (at least :data:`GRADIENT_MIN_Q` random effects, or a dense block as in
    :func:`_expensive`)."""
    if not gradient_affordable(model):
        return False
    one = getattr(model, "_one_term", None)
    if one is not None and one.available() and ONE_TERM_GRADIENT:
        return True
    q = sum(t.q for t in model.reterms)
    return q >= GRADIENT_MIN_Q or _expensive(model)


def _gradient_search(model: LinearMixedModel, x0: np.ndarray, lower: np.ndarray,
                     settings: dict) -> OptSummary:
    """L-BFGS on the analytic gradient (value and gradient share one factorization), as
    mixedlm and MixedModels.jl search with a gradient: nlopt's for one random-effects term
    (its own overhead per step is a few microseconds, the evaluations' as small), SciPy's
    L-BFGS-B otherwise (it stops at the gradient tolerance in fewer evaluations). Then
    BOBYQA from its end when it did not converge or left a parameter on its bound. There
    the gradient says little: the objective is even in a scalar term's ``theta``, so its
    derivative vanishes at 0 whether or not the optimum is inside, and BOBYQA's model of
    the objective settles it (mixedlm falls back to COBYQA in the same cases).
    ``settings`` are BOBYQA's, for that second stage."""
    gtol = GRADIENT_GTOL * max(1.0, float(model.n))
    maxeval = settings.get("maxfeval", 100_000)
    one = getattr(model, "_one_term", None)
    if one is not None and one.available():
        # microseconds per evaluation: nlopt's L-BFGS, whose own cost per step is small
        first = minimize_lbfgs(model.value_and_gradient, x0, lower, gtol=gtol,
                               maxeval=maxeval)
        if not first.converged and np.isfinite(first.fmin):
            # (a fresh start from the best point: L-BFGS's memory can stall a line search)
            assert first.final is not None   # set by every minimize run
            again = minimize_lbfgs(model.value_and_gradient, first.final, lower, gtol=gtol,
                                   maxeval=maxeval)
            again.feval += first.feval
            again.initial = first.initial
            first = again
    else:
        # expensive evaluations: SciPy's L-BFGS-B, which needs fewer of them here
        last: list[np.ndarray] = []

        def value(theta: np.ndarray) -> float:
            val, g = model.value_and_gradient(theta)
            last[:] = [g]
            return val

        first = minimize_gradient(value, lambda theta: last[0], x0, lower, ftol=0.0,
                                  gtol=gtol, maxiter=maxeval)
    assert first.final is not None   # set by every minimize run
    on_bound = np.isfinite(lower) & (first.final - lower < 1e-4)
    if first.converged and not on_bound.any():
        return first
    settings = dict(settings)
    settings.setdefault("initial_step", WARM_STEP)
    second = minimize(model.objective, np.maximum(first.final, lower), lower,
                      optimizer="bobyqa", **settings)
    second.feval += first.feval
    second.optimizer = f"{first.optimizer}, then {second.optimizer}"
    why = "a parameter on its bound" if on_bound.any() else f"it stopped ({first.returnvalue})"
    second.messages.insert(0, f"L-BFGS on the analytic gradient first ({first.feval} "
                              f"evaluations), then BOBYQA: {why}")
    second.initial = first.initial
    return second


def _newton_polish(model: LinearMixedModel, theta: np.ndarray, fmin: float,
                   lower: np.ndarray, record: OptSummary, max_steps: int = 3
                   ) -> tuple[np.ndarray, float]:
    """Newton steps on the analytic gradient (its Jacobian by differences) from BOBYQA's
    end, for the small models BOBYQA fits: its stopping point wanders by about 1e-6 in
    ``theta`` with the summation order of the data (rows permuted, partitions of a Dask
    frame), which a few Newton steps remove. Only where every bounded parameter is inside
    and the Hessian is positive definite; a step is kept if it lowers the objective, or
    leaves it within its rounding while shrinking the gradient."""
    bounded = np.isfinite(lower)
    if np.any(bounded & (theta - lower < 1e-4)):
        return theta, fmin
    taken = 0
    for _ in range(max_steps):
        f0, g = model.value_and_gradient(theta)
        n = theta.shape[0]
        H = np.empty((n, n))
        for j in range(n):
            h = 1e-6 * max(1.0, abs(theta[j]))
            e = np.zeros(n)
            e[j] = h
            H[:, j] = (model.value_and_gradient(theta + e)[1]
                       - model.value_and_gradient(theta - e)[1]) / (2.0 * h)
        H = 0.5 * (H + H.T)
        try:
            c = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            break
        step = -np.linalg.solve(c.T, np.linalg.solve(c, g))
        trial = theta + step
        if np.any(bounded & (trial < lower)):
            break
        f1, g1 = model.value_and_gradient(trial)
        # (this close to the optimum the objective moves by its rounding, ~1e-13 relative;
        # a step within that is kept when it shrinks the gradient)
        if not (f1 < f0 or (f1 <= f0 + 1e-11 * abs(f0)
                            and np.max(np.abs(g1)) < np.max(np.abs(g)))):
            break
        theta, fmin = trial, min(f1, fmin) if f1 < fmin else f1
        taken += 1
        if np.max(np.abs(step)) < 1e-10:
            break
    if taken:
        record.messages.append(f"{taken} Newton step(s) on the analytic gradient after "
                               "BOBYQA")
    return theta, fmin

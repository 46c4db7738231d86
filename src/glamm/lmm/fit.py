"""Fit an LMM: optimize the profiled deviance over ``theta`` and collect the estimates."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConvergenceWarning, GlammError
from ..linalg.threads import single_threaded
from ..optim.backends import minimize
from ..optim.optsummary import OptSummary
from .model import LinearMixedModel

#: initial BOBYQA step after a warm start (the start is then already close to the optimum)
WARM_STEP = 0.1
#: ``start="auto"`` warm-starts when a random-effects diagonal block of L is dense with at
#: least this many rows (the evaluations are then expensive enough to matter)
WARM_MIN_DENSE = 200


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
        os_ = minimize(sub.objective, sub.theta_initial(), sub.theta_lower(), ftol_rel=1e-6,
                       ftol_abs=0.0, xtol_abs=1e-6)
        assert os_.final is not None   # set by every minimize run
        parts.append(os_.final)
    return np.concatenate(parts)


def optimize_theta(
    model: LinearMixedModel,
    start: np.ndarray | str | None = None,
    optimizer: str = "bobyqa",
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
        Backend name (see :func:`glamm.optim.backends.minimize`).
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
    if blas_threads is not None:
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
    os_ = minimize(f, x0, lower, optimizer=optimizer, log_index=log_idx, **settings)
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
    os_.final, os_.fmin = theta, fmin
    model.set_theta(theta)
    if not os_.converged:
        warnings.warn(
            f"the optimizer did not converge ({os_.returnvalue}); estimates may be unreliable",
            ConvergenceWarning,
            stacklevel=3,
        )
    return os_

"""Fit an LMM: optimize the profiled deviance over ``theta`` and collect the estimates."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConvergenceWarning
from ..optim.backends import minimize
from ..optim.optsummary import OptSummary
from .model import LinearMixedModel


def optimize_theta(
    model: LinearMixedModel,
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
    **settings,
) -> OptSummary:
    """Minimize the model's objective over ``theta`` (lower bounds from the covariance
    structures) and leave the model's factor at the optimum.

    After the optimizer stops, every diagonal element of ``theta`` that ended near its bound is
    tried at exactly zero, and kept there if that does not increase the objective (a singular
    fit on the boundary, as MixedModels.jl does)."""
    lower = model.theta_lower()
    x0 = model.theta_initial() if start is None else np.asarray(start, dtype=float)
    if x0.shape != lower.shape:
        raise ValueError(f"start must have length {lower.shape[0]} (theta), got {x0.shape[0]}")
    x0 = np.maximum(x0, lower)
    os_ = minimize(model.objective, x0, lower, optimizer=optimizer, **settings)
    theta = os_.final.copy()
    fmin = os_.fmin
    bounded = np.isfinite(lower)
    for i in np.flatnonzero(bounded & (theta - lower < 1e-5) & (theta != lower)):
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

"""Fit a GLMM on internally centred and scaled fixed-effects columns, report on the user's scale.

With a predictor on a scale far from the others (time in seconds, income in units), the
Laplace optimizer stops short of the optimum while reporting convergence (e.g.
``sim_binary_longitudinal`` with ``time`` multiplied by 1e5: 1.3e-4 short in log-likelihood;
shifted by 1e6 as well: 0.013). The fit then runs on ``X_int = X A`` instead, whose numeric
non-0/1 columns are centred (when there is an intercept) and scaled to standard deviation 1;
since ``X beta = X_int A^{-1} beta``, the estimates on the user's scale are
``beta = A beta_int``, their covariance ``A V_int A'`` and the Hessian of the deviance
``A^{-T} H_int A^{-1}`` (in the ``beta`` block; ``theta`` and the dispersion are unchanged).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..formula.design import ModelFrame


def rescaling_matrix(frame: ModelFrame) -> np.ndarray:
    """``A`` with ``X_int = X A``: numeric (not 0/1, not constant) parametric columns centred at
    their mean when the model has an intercept, and divided by their standard deviation; the
    intercept, 0/1 columns and the smooths' columns are left alone.

    Parameters
    ----------
    frame : ModelFrame
        The numeric model.
    """
    X = frame.X
    p = X.shape[1]
    A = np.eye(p)
    k = frame.n_parametric
    names = list(frame.xnames)
    icpt = names.index("(Intercept)") if "(Intercept)" in names[:k] else None
    binary = np.all((X == 0) | (X == 1), axis=0)
    sd = X.std(axis=0)
    mean = X.mean(axis=0)
    for j in range(k):
        if binary[j] or not sd[j] > 0:
            continue
        A[j, j] = 1.0 / sd[j]
        if icpt is not None:
            A[icpt, j] = -mean[j] / sd[j]
    return A


def needs_rescaling(frame: ModelFrame, model) -> bool:
    """Whether the parametric fixed-effects columns differ in scale by more than
    :data:`glamm.checks.SCALE_RATIO_WARN` (and no penalty, which is set on the user's scale,
    is put on the coefficients)."""
    from ..checks import badly_scaled_columns

    k = frame.n_parametric
    return getattr(model, "penalty", None) is None and \
        badly_scaled_columns(frame.X[:, :k], list(frame.xnames[:k])) is not None


def fit_rescaled(frame: ModelFrame, model, make_model: Callable, fit: Callable):
    """Run ``fit`` on a model of the rescaled columns and put the estimates into ``model``.

    Parameters
    ----------
    frame : ModelFrame
        The user's numeric model (that of ``model``).
    model : GeneralizedLinearMixedModel
        The model on the user's scale; left at the estimates (``theta``, ``beta``, the
        dispersion or shape, and the modes).
    make_model : callable
        ``make_model(frame) -> GeneralizedLinearMixedModel`` for the internal frame.
    fit : callable
        ``fit(model) -> GlmmFitRecord`` (a Laplace fit).

    Returns
    -------
    GlmmFitRecord
        The :class:`~glamm.glmm.fit.GlmmFitRecord` with its parameter vectors and Hessian on
        the user's scale.
    """
    from ..linalg.threads import single_threaded
    from .derivatives import choose_derivatives
    from .fit import full_objective

    A = rescaling_matrix(frame)
    inner = make_model(dataclasses.replace(frame, X=frame.X @ A))
    inner.separated = model.separated
    record = fit(inner)
    layout = inner.parameters
    T = np.eye(layout.size)
    beta = layout.slice("beta")
    T[beta, beta] = A
    if record.hessian is None:   # on the well-scaled problem (on the user's scale it is not
        # accurate enough to invert): standard errors come from T (2 H^-1) T'
        x_int = layout.assemble({"theta": inner.theta, "beta": inner.beta,
                                 "response": inner.response.parameters()})
        f = full_objective(inner)
        with single_threaded(1):
            _, record.hessian, _ = choose_derivatives(f, inner).grad_hess(x_int, central=False)
        f(x_int)
    record.transform = T
    if record.full is not None:
        record.full.final = T @ record.full.final
        record.full.initial = T @ record.full.initial
    model.response.copy_state(inner.response)
    model.pirls(inner.theta, A @ inner.beta)
    return record

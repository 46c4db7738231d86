"""The first- and second-order (KKT) test of lower bounds at the end of a minimization.

At a minimum of ``f`` subject to ``x >= lower``, a parameter may rest on its bound only if
``f`` does not decrease when it moves into the interior: its gradient component is ``>= 0``
(the gradient of ``-f``, the maximized objective, points out of the feasible region). Where
that component vanishes the first-order test says nothing, and the second-order term decides:
moving ``h`` inwards changes ``f`` by ``curvature * h^2 / 2``. That case is the usual one for a
diagonal element of a relative covariance factor ``lambda`` at 0 whose column has no other
nonzero element (always so for the last column): flipping the sign of a column of ``lambda``
flips the sign of the corresponding random effect and leaves the deviance unchanged, so the
deviance is even in that element and its gradient there is exactly 0. In ``s = theta_i^2``
the deviance is smooth and ``df/ds = curvature / 2``, so the second-order test is the KKT
test in the variance's own coordinate.
"""

from __future__ import annotations

import numpy as np


def active_bounds(x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Indices of the parameters resting on a finite lower bound."""
    x, lower = np.asarray(x, dtype=float), np.asarray(lower, dtype=float)
    return np.flatnonzero(np.isfinite(lower) & (x <= lower))


def inconclusive_bounds(x: np.ndarray, grad: np.ndarray, lower: np.ndarray,
                        tol: float) -> np.ndarray:
    """Indices of the active bounds whose gradient component is 0 to within ``tol``: the
    first-order test cannot tell whether they are supported (see :func:`unsupported_bounds`
    for the curvature that decides)."""
    idx = active_bounds(x, lower)
    return idx[np.abs(np.asarray(grad, dtype=float)[idx]) <= tol]


def unsupported_bounds(x: np.ndarray, grad: np.ndarray, lower: np.ndarray, tol: float,
                       curvature: np.ndarray | None = None) -> np.ndarray:
    """Indices of the active lower bounds that the KKT conditions do not support.

    Parameters
    ----------
    x : numpy.ndarray
        The end point of the minimization.
    grad : numpy.ndarray
        Gradient of the minimized objective at ``x``.
    lower : numpy.ndarray
        Lower bounds (``-inf`` for free parameters).
    tol : float
        Gradient components (and curvatures) within ``tol`` of 0 count as 0.
    curvature : numpy.ndarray, optional
        Second derivative of the objective along each coordinate, moving inwards from ``x``;
        consulted only where the gradient component is 0 to within ``tol`` (NaN elsewhere is
        fine). Without it such bounds count as supported.

    Returns
    -------
    numpy.ndarray
        Indices ``i`` on their bound where the objective decreases moving into the interior:
        ``grad[i] < -tol``, or ``|grad[i]| <= tol`` and ``curvature[i] < -tol``.
    """
    idx = active_bounds(x, lower)
    g = np.asarray(grad, dtype=float)[idx]
    out = g < -tol
    if curvature is not None:
        c = np.asarray(curvature, dtype=float)[idx]
        with np.errstate(invalid="ignore"):
            out |= (np.abs(g) <= tol) & (c < -tol)
    return idx[out]


def interior_restart_point(x: np.ndarray, lower: np.ndarray, n_theta: int, start: np.ndarray,
                           step: np.ndarray | float, tol: float = 1e-10
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Where to refit from when variance parameters (the first ``n_theta``, theta first in
    the layout) end on their lower bound: a bound the KKT test supports can still be a local
    optimum, the deviance rising from zero and falling again further in. Returns the indices
    on the bound (within ``tol``) and ``x`` with them at their starting values ``start``, at
    least ``step`` inside (an empty index array: nothing to refit)."""
    x, lower = np.asarray(x, dtype=float), np.asarray(lower, dtype=float)
    on = np.flatnonzero(np.isfinite(lower[:n_theta]) & (x[:n_theta] <= lower[:n_theta] + tol))
    trial = x.copy()
    trial[on] = np.maximum(np.asarray(start, dtype=float)[on],
                           lower[on] + np.broadcast_to(step, x.shape)[on])
    return on, trial

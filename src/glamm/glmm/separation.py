"""Detect (quasi-)complete separation in binomial GLMMs before fitting.

A 0/1 column of ``X`` (a factor level, an indicator) separates the data when every
observation in which it is 1 is a success, or every one is a failure: its coefficient then has
no finite maximum-likelihood estimate (with or without random effects, since a random
intercept cannot absorb it when the column is constant within none of the groups). glamm
reports such columns by name instead of returning a huge coefficient silently; after the fit,
fitted probabilities of numerically 0 or 1 are reported as well.
"""

from __future__ import annotations

import numpy as np


def separated_columns(X: np.ndarray, names: list[str], y: np.ndarray, wt: np.ndarray) -> list[str]:
    """Names of 0/1 columns of ``X`` whose rows with a 1 are all successes or all failures
    (ignoring the intercept and rows with zero weight)."""
    out = []
    active = wt > 0
    for j, name in enumerate(names):
        col = X[:, j]
        if name == "(Intercept)" or not np.all((col == 0) | (col == 1)):
            continue
        on = (col == 1) & active
        if not on.any() or on.sum() == active.sum():
            continue
        yy = y[on]
        if np.all(yy == 0) or np.all(yy == 1):
            out.append(name)
    return out


def extreme_fitted(mu: np.ndarray, tol: float = 1e-10) -> int:
    """Number of fitted probabilities within ``tol`` of 0 or 1."""
    return int(np.sum((mu < tol) | (mu > 1 - tol)))

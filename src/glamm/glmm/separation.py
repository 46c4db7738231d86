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


def threshold_columns(X: np.ndarray, names: list[str], y: np.ndarray, wt: np.ndarray
                      ) -> list[str]:
    """Names of numeric columns of ``X`` (not 0/1, not constant) that split the observations
    with a success from those with a failure at a threshold: every observation with a success
    has a value at least as large as every observation with a failure, or at most as large
    (complete or quasi-complete separation by that column alone; rows with zero weight are
    ignored, a binomial proportion strictly between 0 and 1 has both).

    Parameters
    ----------
    X : numpy.ndarray
        Fixed-effects matrix ``(n, p)``.
    names : list of str
        Its column names.
    y : numpy.ndarray
        Proportions of successes ``(n,)``.
    wt : numpy.ndarray
        Prior weights times trials ``(n,)``.
    """
    active = wt > 0
    succ, fail = active & (y > 0), active & (y < 1)
    if not succ.any() or not fail.any():
        return []
    Xs, Xf = X[succ], X[fail]
    binary = np.all((X == 0) | (X == 1), axis=0)
    constant = np.ptp(X[active], axis=0) == 0
    splits = (Xs.min(axis=0) >= Xf.max(axis=0)) | (Xs.max(axis=0) <= Xf.min(axis=0))
    return [names[j] for j in np.flatnonzero(splits & ~binary & ~constant)]


def separating_direction(X: np.ndarray, y: np.ndarray, wt: np.ndarray) -> np.ndarray | None:
    """A direction ``d`` in which the binomial log-likelihood increases without bound, or
    ``None`` when there is none (Konis's linear program for complete and quasi-complete
    separation): ``x_i' d >= 0`` for every row with a success, ``<= 0`` for every row with a
    failure (so ``= 0`` for proportions strictly between 0 and 1), with ``sum |x_i' d|``
    maximized over ``-1 <= d <= 1``; separation exists when the maximum is positive.

    Parameters
    ----------
    X : numpy.ndarray
        Fixed-effects matrix ``(n, p)``.
    y : numpy.ndarray
        Proportions of successes ``(n,)``.
    wt : numpy.ndarray
        Prior weights times trials ``(n,)``; rows with zero weight are ignored.

    Returns
    -------
    numpy.ndarray or None
        The direction (entries with ``|d_j| < 1e-8`` set to 0), or ``None``.
    """
    from scipy.optimize import linprog

    active = wt > 0
    Xa, ya = X[active], y[active]
    if Xa.shape[0] == 0 or Xa.shape[1] == 0:
        return None
    sign = np.where(ya >= 1, 1.0, np.where(ya <= 0, -1.0, 0.0))
    both = sign == 0.0
    one = ~both
    S = Xa[one] * sign[one, None]           # rows that must satisfy S d >= 0
    res = linprog(-S.sum(axis=0), A_ub=-S, b_ub=np.zeros(S.shape[0]),
                  A_eq=Xa[both] if both.any() else None,
                  b_eq=np.zeros(int(both.sum())) if both.any() else None,
                  bounds=[(-1.0, 1.0)] * Xa.shape[1], method="highs")
    if res.status != 0:
        return None
    scale = max(1.0, float(np.max(np.abs(S)))) if S.size else 1.0
    if -res.fun <= 1e-7 * scale * max(S.shape[0], 1):
        return None
    d = np.asarray(res.x, dtype=float)
    d[np.abs(d) < 1e-8] = 0.0
    return d if np.any(d) else None


def separation_message(X: np.ndarray, names: list[str], y: np.ndarray, wt: np.ndarray
                       ) -> str | None:
    """A sentence naming the column(s) that separate the outcomes, or ``None`` when the data
    are not separated (see :func:`separated_columns`, :func:`threshold_columns` and, for
    separation by a combination of columns such as a factor's reference level,
    :func:`separating_direction`)."""
    single = separated_columns(X, names, y, wt) + threshold_columns(X, names, y, wt)
    if single:
        return (f"the outcomes are separated by {', '.join(single)} (each alone splits the "
                "observations with a success from those with a failure)")
    d = separating_direction(X, y, wt)
    if d is None:
        return None
    active = wt > 0
    eta = X[active] @ d
    k = int(np.sum(np.abs(eta) > 1e-8))
    combo = " ".join(f"{'+' if v > 0 else '-'} {abs(v):.3g}*{names[j]}"
                     for j, v in enumerate(d) if v != 0).lstrip("+ ")
    return (f"the outcomes are separated by a combination of the columns "
            f"{', '.join(names[j] for j in np.flatnonzero(d))}: in the {k} observations where "
            f"{combo} is not 0 its sign gives the outcome (e.g. a factor level, possibly the "
            "reference level, in which every observation has the same outcome)")

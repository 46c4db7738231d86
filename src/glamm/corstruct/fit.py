"""The generalized least squares criterion profiled over ``beta`` and ``sigma``, and its
optimization (nlme's ``gls``).

With ``Var(y) = sigma^2 V``, ``V = S R S`` (``R`` block diagonal by group, ``S =
diag(exp(D delta))`` from a variance function), each group's block is factored ``V_g = L_g
L_g'`` and ``X`` and ``y`` are whitened, ``L_g^-1 [X_g y_g]``; then ``beta`` is ordinary least
squares on the whitened data and, with ``r`` its residual sum of squares,

- ML: ``-2 logLik = n log(2 pi r / n) + n + log|V|`` (``sigma^2 = r / n``),
- REML: ``(n - p) log(2 pi r / (n - p)) + (n - p) + log|V| + log|X' V^-1 X|``
  (``sigma^2 = r / (n - p)``),

nlme's ``gls`` likelihoods (Pinheiro and Bates 2000, sec. 5.1). The parameters searched are
the structure's unconstrained ``z`` and the variance function's ``delta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from ..linalg.threads import LARGE_BLOCK, large_block_threads
from ..optim.backends import minimize
from ..optim.optsummary import OptSummary
from .correlation import CorrelationStructure
from .groups import GroupLayout

_LOG_2PI = float(np.log(2.0 * np.pi))

#: groups at least this large are factored one at a time by LAPACK (Cholesky and triangular
#: solves), smaller ones in batches by NumPy
_LARGE_GROUP = 48


@dataclass
class GlsProblem:
    """The data of a GLS fit.

    Attributes
    ----------
    X, y : ndarray
        Fixed-effects matrix ``(n, p)`` and response ``(n,)``.
    layout : GroupLayout
        The groups of the correlation structure (one group of size 1 per row without one).
    structure : CorrelationStructure or None
        The correlation structure (``None``: independent rows).
    D : ndarray or None
        The variance function's design (log residual-SD multipliers ``D delta``).
    reml : bool
        REML (``True``) or ML.
    """

    X: np.ndarray
    y: np.ndarray
    layout: GroupLayout
    structure: CorrelationStructure | None
    D: np.ndarray | None
    reml: bool

    @property
    def n_z(self) -> int:
        return 0 if self.structure is None else self.structure.n_par

    @property
    def n_delta(self) -> int:
        return 0 if self.D is None else self.D.shape[1]

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(z, delta)`` of the full parameter vector."""
        return x[:self.n_z], x[self.n_z:]

    def scales(self, delta: np.ndarray) -> np.ndarray:
        """Each row's residual-SD multiplier ``exp(D delta)``."""
        if self.D is None:
            return np.ones(self.y.size)
        return np.exp(self.D @ delta)


@dataclass
class Profile:
    """The criterion and estimates at one parameter vector.

    Attributes
    ----------
    criterion : float
        ``-2`` times the (REML) log-likelihood.
    beta : ndarray
        Generalized least squares coefficients.
    sigma : float
        Profiled residual SD.
    rss : float
        Whitened residual sum of squares.
    logdet : float
        ``log|V|`` (relative covariance of the rows).
    RX : ndarray
        Upper-triangular factor of ``X' V^-1 X``.
    """

    criterion: float
    beta: np.ndarray
    sigma: float
    rss: float
    logdet: float
    RX: np.ndarray


def whiten(problem: GlsProblem, x: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``L^-1 M`` (``V = L L'`` blockwise, the rows of ``M`` those of the data) and ``log|V|``;
    ``None`` if a block is not positive definite."""
    z, delta = problem.split(x)
    s = problem.scales(delta)
    out = np.empty_like(M)
    logdet = 0.0
    for b, rows in enumerate(problem.layout.batches):
        k, m = rows.shape
        sb = s[rows]
        if m == 1 or problem.structure is None:
            flat = rows.ravel()
            out[flat] = M[flat] / s[flat, None]
            logdet += 2.0 * float(np.log(sb).sum())
            continue
        V = problem.structure.block(z, b) * (sb[:, :, None] * sb[:, None, :])
        if m >= _LARGE_GROUP:
            for g in range(k):
                try:
                    if m >= LARGE_BLOCK:
                        with large_block_threads():
                            L = sla.cholesky(V[g], lower=True, check_finite=False)
                    else:
                        L = sla.cholesky(V[g], lower=True, check_finite=False)
                except np.linalg.LinAlgError:
                    return None
                d = np.diagonal(L)
                if not np.all(d > 0):
                    return None
                out[rows[g]] = sla.solve_triangular(L, M[rows[g]], lower=True,
                                                    check_finite=False)
                logdet += 2.0 * float(np.log(d).sum())
            continue
        try:
            L = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            return None
        d = np.diagonal(L, axis1=1, axis2=2)
        if not np.all(d > 0):
            return None
        out[rows.ravel()] = np.linalg.solve(L, M[rows]).reshape(k * m, -1)
        logdet += 2.0 * float(np.log(d).sum())
    return out, logdet


def profile(problem: GlsProblem, x: np.ndarray) -> Profile | None:
    """The profiled criterion and the estimates at ``x = [z, delta]`` (``None`` where the
    covariance is not positive definite or the criterion not finite)."""
    if not np.all(np.isfinite(x)):
        return None
    X, y = problem.X, problem.y
    n, p = X.shape
    w = whiten(problem, x, np.column_stack([X, y]))
    if w is None:
        return None
    XY, logdet = w
    Q, RX = np.linalg.qr(XY[:, :p])
    qy = Q.T @ XY[:, p]
    beta = sla.solve_triangular(RX, qy, check_finite=False) if p else np.zeros(0)
    resid = XY[:, p] - XY[:, :p] @ beta
    rss = float(resid @ resid)
    nu = n - p if problem.reml else n
    if rss <= 0 or nu <= 0:
        return None
    crit = nu * (_LOG_2PI + np.log(rss / nu)) + nu + logdet
    if problem.reml and p:
        crit += 2.0 * float(np.log(np.abs(np.diagonal(RX))).sum())
    if not np.isfinite(crit):
        return None
    return Profile(float(crit), beta, float(np.sqrt(rss / nu)), rss, logdet, RX)


def criterion(problem: GlsProblem):
    """``f(x)``: the profiled criterion, ``inf`` where it is not defined."""

    def f(x: np.ndarray) -> float:
        if np.max(np.abs(x), initial=0.0) > 50:
            return float("inf")
        pr = profile(problem, x)
        return float("inf") if pr is None else pr.criterion

    return f


def starting_values(problem: GlsProblem) -> np.ndarray:
    """The best of the structure's candidate starts (``delta = 0``)."""
    zeros = np.zeros(problem.n_delta)
    if problem.structure is None:
        return zeros
    f = criterion(problem)
    cands = [np.concatenate([z, zeros]) for z in problem.structure.starts()]
    values = [f(c) for c in cands]
    return cands[int(np.argmin(values))]


def fit_gls(problem: GlsProblem, optimizer: str = "bobyqa",
            x0: np.ndarray | None = None, **settings) -> tuple[np.ndarray, OptSummary]:
    """Minimize the profiled criterion over ``x = [z, delta]``, then restart the optimizer at
    the optimum with a small step and keep the better point (the check of the optimum: a
    second run that moves means the first stopped early).

    Parameters
    ----------
    problem : GlsProblem
        The data and structure.
    optimizer : str
        A backend of :func:`glamm.optim.backends.minimize` (default BOBYQA).
    x0 : ndarray, optional
        Start (default: :func:`starting_values`).
    **settings
        Optimizer settings (``ftol_rel``, ``xtol_abs``, ``initial_step``, ``maxfeval``).

    Returns
    -------
    tuple of (ndarray, OptSummary)
        The optimum and the record of the first run (evaluations of both runs counted, the
        restart noted in ``messages``).
    """
    f = criterion(problem)
    if x0 is None:
        x0 = starting_values(problem)
    lower = np.full(x0.size, -np.inf)
    opt = {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-9, "initial_step": 0.5,
           **settings}
    record = minimize(f, x0, lower, optimizer=optimizer, **opt)
    assert record.final is not None
    if x0.size:
        again = minimize(f, record.final, lower, optimizer=optimizer,
                         **{**opt, "initial_step": 0.05})
        record.feval += again.feval
        if again.fmin < record.fmin - 1e-10 * max(1.0, abs(record.fmin)):
            record.messages.append(f"a restart at the optimum lowered the criterion by "
                                   f"{record.fmin - again.fmin:.3g}")
        if again.fmin < record.fmin:
            record.final, record.fmin = again.final, again.fmin
            record.converged = again.converged
    return np.asarray(record.final, dtype=float), record

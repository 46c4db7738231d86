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
from typing import Any

import numpy as np
import scipy.linalg as sla

from ..linalg.threads import dense_factor_threads
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
    #: random effects (nlme's ``lme`` with a correlation): the one term's ``z`` (``n x p``,
    #: its levels the layout's groups) and covariance structure, whose ``theta`` follow
    #: ``[z, delta]`` in the parameter vector; ``None`` for ``gls``
    Z: np.ndarray | None = None
    re_covariance: Any = None

    @property
    def n_z(self) -> int:
        return 0 if self.structure is None else self.structure.n_par

    @property
    def n_delta(self) -> int:
        return 0 if self.D is None else self.D.shape[1]

    @property
    def n_theta(self) -> int:
        return 0 if self.re_covariance is None else self.re_covariance.n_theta

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(z, delta)`` of the full parameter vector."""
        return x[:self.n_z], x[self.n_z:self.n_z + self.n_delta]

    def theta_of(self, x: np.ndarray) -> np.ndarray:
        """The random effects' ``theta`` of the full parameter vector (empty for gls)."""
        return x[self.n_z + self.n_delta:]

    def random_part(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """``Z_g lambda lambda' Z_g'`` for the groups ``rows`` (``(k, m)``), or ``None``."""
        if self.Z is None:
            return None
        lam = self.re_covariance.lambda_(self.theta_of(x))
        Zb = self.Z[rows]                                   # k x m x p
        W = Zb @ lam                                        # k x m x p
        return W @ np.swapaxes(W, 1, 2)

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
        if problem.Z is not None:   # random effects: V = S R S + Z lambda lambda' Z'
            try:
                extra = problem.random_part(x, rows)
            except np.linalg.LinAlgError:
                return None
            R = problem.structure.block(z, b) if problem.structure is not None and m > 1 \
                else np.broadcast_to(np.eye(m), (k, m, m))
            part = _whiten_batch(R * (sb[:, :, None] * sb[:, None, :]) + extra, M[rows])
            if part is None:
                return None
            out[rows.ravel()], ld = part
            logdet += ld
            continue
        if m == 1 or problem.structure is None:
            flat = rows.ravel()
            out[flat] = M[flat] / s[flat, None]
            logdet += 2.0 * float(np.log(sb).sum())
            continue
        R = problem.structure.block(z, b)
        if R.shape[0] == 1 and problem.D is None:   # one block for the whole batch
            part = _whiten_shared(R[0], M[rows])
            if part is None:
                return None
            out[rows.ravel()], ld = part
            logdet += k * ld
            continue
        V = R * (sb[:, :, None] * sb[:, None, :])
        if m >= _LARGE_GROUP:
            for g in range(k):
                try:
                    with dense_factor_threads(m):
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
        part = _whiten_batch(V, M[rows])
        if part is None:
            return None
        out[rows.ravel()], ld = part
        logdet += ld
    return out, logdet


def _whiten_batch(V: np.ndarray, MB: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``L_g^-1 MB_g`` for a batch of blocks ``V_g = L_g L_g'`` (``(k, m, m)``; ``MB`` is
    ``(k, m, c)``), stacked row by row, and ``sum log|V_g|``; ``None`` if a block is not
    positive definite."""
    k, m = V.shape[:2]
    try:
        L = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return None
    d = np.diagonal(L, axis1=1, axis2=2)
    if not np.all(d > 0):
        return None
    return np.linalg.solve(L, MB).reshape(k * m, -1), 2.0 * float(np.log(d).sum())


def _whiten_shared(R: np.ndarray, MB: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``L^-1`` applied to every group's ``(m, c)`` slice of ``MB`` (``(k, m, c)``) with one
    factor ``R = L L'``: a single triangular solve with ``k c`` right-hand sides. Returns the
    rows stacked group by group and ``log|R|``."""
    k, m, c = MB.shape
    try:
        L = sla.cholesky(R, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    d = np.diagonal(L)
    if not np.all(d > 0):
        return None
    rhs = MB.transpose(1, 0, 2).reshape(m, k * c)
    W = sla.solve_triangular(L, rhs, lower=True, check_finite=False)
    return W.reshape(m, k, c).transpose(1, 0, 2).reshape(k * m, c), 2.0 * float(np.log(d).sum())


def profile(problem: GlsProblem, x: np.ndarray) -> Profile | None:
    """The profiled criterion and the estimates at ``x = [z, delta]`` (``None`` where the
    covariance is not positive definite or the criterion not finite)."""
    if np.any(np.isnan(x)):   # infinite z: a structure's limit (CorrelationStructure.limits)
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
        finite = x[np.isfinite(x)]
        if np.max(np.abs(finite), initial=0.0) > 50:   # a wall for the optimizer
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
    """Minimize the profiled criterion over ``x = [z, delta]``, then check the optimum: the
    criterion one small step away along each coordinate (both ways) must not be lower; if it
    is, the optimizer restarts from the lower point and the better optimum is kept.

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
        The optimum and the optimizer's record (the check's evaluations counted, a restart
        noted in ``messages``).
    """
    f = criterion(problem)
    if x0 is None:
        x0 = starting_values(problem)
    x0 = np.clip(x0, -40.0, 40.0)   # a start at a structure's limit moves inside the wall
    lower = np.full(x0.size, -np.inf)
    opt = {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-9, "initial_step": 0.5,
           **settings}
    record = minimize(f, x0, lower, optimizer=optimizer, **opt)
    assert record.final is not None
    for _ in range(3):
        assert record.final is not None   # set by every minimize run
        lower_point = _lower_neighbour(f, record.final, record.fmin)
        record.feval += 2 * x0.size
        if lower_point is None:
            break
        again = minimize(f, lower_point, lower, optimizer=optimizer,
                         **{**opt, "initial_step": 0.05})
        record.feval += again.feval
        record.messages.append(f"restarted where a step from the optimum lowered the "
                               f"criterion; it fell by {record.fmin - again.fmin:.3g}")
        record.final, record.fmin = again.final, again.fmin
        record.converged = again.converged
    if problem.structure is not None:
        assert record.final is not None
        _try_limits(f, record, problem.structure.limits(record.final[:problem.n_z]))
    return np.asarray(record.final, dtype=float), record


def _try_limits(f, record: OptSummary, candidates: list[np.ndarray]) -> None:
    """Keep a structure's limit (``z`` infinite: ``Phi`` or a range of 0, a nugget of 0 or
    1) where the optimizer went towards it and the criterion there is no higher."""
    assert record.final is not None
    for z in candidates:
        x = record.final.copy()
        x[:z.size] = z
        value = f(x)
        record.feval += 1
        if value <= record.fmin:
            record.messages.append(f"correlation parameters at their limit {z.tolist()} "
                                   f"(unconstrained scale); the criterion fell by "
                                   f"{record.fmin - value:.3g}")
            record.final, record.fmin = x, value


def _lower_neighbour(f, x: np.ndarray, fx: float, step: float = 1e-3) -> np.ndarray | None:
    """The lowest of ``x +- step e_i`` if it lies below ``f(x)`` by more than round-off,
    else ``None``."""
    best, best_f = None, fx - 1e-9 * max(1.0, abs(fx))
    for i in range(x.size):
        for sign in (1.0, -1.0):
            y = x.copy()
            y[i] += sign * step
            v = f(y)
            if v < best_f:
                best, best_f = y, v
    return best

"""Krylov solvers for large symmetric positive definite operators given only as products:
preconditioned conjugate gradients for several right-hand sides at once and the stochastic
Lanczos quadrature (SLQ) estimate of a log-determinant.

Both run on blocks of vectors (one column per right-hand side or probe) so each step is one
operator product with an ``n x k`` block, which is what makes them cheap on a sparse Schur
complement (:mod:`glamm.lmm.approximate`). SLQ follows Ubaru, Chen and Saad (2017, "Fast
estimation of tr(f(A)) via stochastic Lanczos quadrature", SIAM J. Matrix Anal. Appl.): for a
probe ``z`` with ``|z|^2 = n``, ``z' log(M) z ~ n sum_i tau_i^2 log(theta_i)`` from the
eigenvalues ``theta_i`` and first eigenvector components ``tau_i`` of the Lanczos tridiagonal
matrix started at ``z / |z|``, and ``log det M = E[z' log(M) z]`` for Rademacher ``z``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

Operator = Callable[[np.ndarray], np.ndarray]


@dataclass
class CGResult:
    """Solutions and the work done by :func:`block_pcg`.

    Attributes
    ----------
    x : ndarray
        ``(n, k)`` solutions.
    iterations : int
        Iterations of the slowest column.
    residual : ndarray
        ``(k,)`` final relative residual norms ``|b - S x| / |b|``.
    """

    x: np.ndarray
    iterations: int
    residual: np.ndarray


def block_pcg(apply_S: Operator, apply_Pinv: Operator, B: np.ndarray,
              x0: np.ndarray | None = None, tol: float = 1e-10, maxiter: int = 1000
              ) -> CGResult:
    """Preconditioned conjugate gradients for ``S X = B``, one independent recursion per
    column of ``B``, all advanced by one block product per iteration.

    Parameters
    ----------
    apply_S : callable
        ``V -> S V`` for an ``(n, k)`` block (``S`` symmetric positive definite).
    apply_Pinv : callable
        ``V -> P^{-1} V`` for the preconditioner ``P`` (symmetric positive definite).
    B : ndarray
        ``(n, k)`` right-hand sides.
    x0 : ndarray, optional
        Starting solutions (default zero), e.g. the last evaluation's.
    tol : float
        Stop when every column's relative residual ``|b - S x| / |b|`` is below ``tol``
        (default 1e-10).
    maxiter : int
        Iteration limit (default 1000); the residual reached is reported either way.

    Returns
    -------
    CGResult
    """
    B = np.asarray(B, dtype=float)
    X = np.zeros_like(B) if x0 is None else np.array(x0, dtype=float)
    bnorm = np.linalg.norm(B, axis=0)
    bnorm[bnorm == 0.0] = 1.0
    R = B - apply_S(X) if x0 is not None else B.copy()
    Zp = apply_Pinv(R)
    Pd = Zp.copy()
    rz = np.einsum("ij,ij->j", R, Zp)
    it = 0
    rel = np.linalg.norm(R, axis=0) / bnorm
    while it < maxiter and np.any(rel > tol):
        active = rel > tol
        SP = apply_S(Pd)
        pSp = np.einsum("ij,ij->j", Pd, SP)
        alpha = np.where(active & (pSp > 0), rz / np.where(pSp > 0, pSp, 1.0), 0.0)
        X += Pd * alpha
        R -= SP * alpha
        Zp = apply_Pinv(R)
        rz_new = np.einsum("ij,ij->j", R, Zp)
        beta = np.where(active & (rz > 0), rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        Pd = Zp + Pd * beta
        rz = rz_new
        rel = np.linalg.norm(R, axis=0) / bnorm
        it += 1
    return CGResult(X, it, rel)


def rademacher_probes(n: int, k: int, seed: int) -> np.ndarray:
    """``(n, k)`` probes with independent entries ``+-1`` (seeded: the same probes for every
    evaluation, so the estimate is a smooth function of the operator)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n, k), dtype=np.int8).astype(float) * 2.0 - 1.0


def slq_quadratic_forms(apply_M: Operator, Z: np.ndarray, steps: int) -> np.ndarray:
    """``z' log(M) z`` for every column ``z`` of ``Z`` by ``steps`` Lanczos steps each (all
    columns at once: one block product per step).

    Parameters
    ----------
    apply_M : callable
        ``V -> M V`` for an ``(n, k)`` block (``M`` symmetric positive definite).
    Z : ndarray
        ``(n, k)`` probes.
    steps : int
        Lanczos steps (the quadrature has at most ``steps`` nodes; a column whose Krylov
        space is exhausted earlier, as for ``n <= steps``, stops there and is then exact).

    Returns
    -------
    ndarray
        ``(k,)`` quadrature values.
    """
    n, k = Z.shape
    steps = max(1, min(int(steps), n))
    norms = np.linalg.norm(Z, axis=0)
    Q = Z / norms
    Q_prev = np.zeros_like(Q)
    alphas = np.zeros((steps, k))
    betas = np.zeros((steps, k))
    beta_prev = np.zeros(k)
    alive = np.ones(k, dtype=bool)
    length = np.full(k, steps)
    for j in range(steps):
        W = apply_M(Q) - Q_prev * beta_prev
        a = np.einsum("ij,ij->j", Q, W)
        W -= Q * a
        # one pass of local re-orthogonalization against the last two vectors (cheap; keeps
        # the recursion from drifting in the few steps SLQ takes)
        c1 = np.einsum("ij,ij->j", Q, W)
        W -= Q * c1
        a = a + c1
        W -= Q_prev * np.einsum("ij,ij->j", Q_prev, W)
        b = np.linalg.norm(W, axis=0)
        alphas[j] = a
        betas[j] = b
        # a Krylov space exhausted (breakdown): that column's quadrature is complete
        done = alive & (b <= 1e-12 * np.maximum(np.abs(a), 1.0))
        length[done] = j + 1
        alive &= ~done
        if not alive.any() or j == steps - 1:
            break
        Q_prev, Q = Q, W / np.where(b > 0, b, 1.0)
        beta_prev = b
    out = np.empty(k)
    for c in range(k):
        m = int(length[c])
        theta, vecs = sla.eigh_tridiagonal(alphas[:m, c], betas[:m - 1, c])
        if np.any(theta <= 0):
            raise np.linalg.LinAlgError("operator not positive definite in SLQ")
        out[c] = norms[c] ** 2 * float(np.sum(vecs[0] ** 2 * np.log(theta)))
    return out

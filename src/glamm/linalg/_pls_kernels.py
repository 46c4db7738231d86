"""Compiled (numba) solve of the penalized least-squares system of one PIRLS iteration for a
model with a single random-effects term: scalar (behind :mod:`glamm.linalg.scalar_pls`) or
with several columns per level (behind :mod:`glamm.linalg.vector_pls`, which also takes the
log-determinant at the mode here).

Importing this module imports numba; :mod:`glamm.jit` does so on first use only. Not public
API.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._dense_kernels import chol_lower


@numba.njit(cache=True)
def scalar_term_pls(refs: np.ndarray, z: np.ndarray, X: np.ndarray, w: np.ndarray,
                    zw: np.ndarray, lam: float, nlevels: int, u: np.ndarray,
                    beta: np.ndarray) -> int:
    """Solve ``[lam^2 Z'WZ + I, lam Z'WX; lam X'WZ, X'WX] [u; beta] = [lam Z'W zw; X'W zw]``
    for ``Z`` the one column ``z`` scattered by the level codes ``refs`` (so ``Z'WZ`` is
    diagonal) by the Schur complement of the diagonal block; ``X`` may have no columns (the
    fixed effects held: ``u`` alone). Fills ``u`` (``nlevels``) and ``beta`` (``p``).

    Returns 0, or 1 when a diagonal pivot ``lam^2 a_g + 1`` is not positive, or 2 when the
    Schur complement in ``beta`` is not positive definite (where the blocked Cholesky factor
    raises ``LinAlgError``; PIRLS's Newton weights can be negative)."""
    n = refs.shape[0]
    p = X.shape[1]
    a = np.zeros(nlevels)             # sum w z^2 per level
    r = np.zeros(nlevels)             # sum w z zw per level
    C = np.zeros((nlevels, p))        # sum w z x' per level
    S = np.zeros((p, p))              # X'WX, then the Schur complement
    rhs = np.zeros(p)                 # X'W zw, then the reduced right-hand side
    for i in range(n):
        g = refs[i]
        wi = w[i]
        wz = wi * z[i]
        a[g] += wz * z[i]
        r[g] += wz * zw[i]
        wzw = wi * zw[i]
        for j in range(p):
            xij = X[i, j]
            C[g, j] += wz * xij
            rhs[j] += wzw * xij
            wx = wi * xij
            for k in range(j + 1):
                S[j, k] += wx * X[i, k]
    lam2 = lam * lam
    d = np.empty(nlevels)
    for g in range(nlevels):
        dg = lam2 * a[g] + 1.0
        if not dg > 0.0:
            return 1
        d[g] = dg
        if p:
            f = lam2 / dg
            for j in range(p):
                cj = f * C[g, j]
                rhs[j] -= cj * r[g]
                for k in range(j + 1):
                    S[j, k] -= cj * C[g, k]
    # Cholesky of S (lower triangle) and the two triangular solves for beta
    if not chol_lower(S, p):
        return 2
    for j in range(p):
        t = rhs[j]
        for k in range(j):
            t -= S[j, k] * beta[k]
        beta[j] = t / S[j, j]
    for j in range(p - 1, -1, -1):
        t = beta[j]
        for k in range(j + 1, p):
            t -= S[k, j] * beta[k]
        beta[j] = t / S[j, j]
    for g in range(nlevels):
        t = r[g]
        for j in range(p):
            t -= C[g, j] * beta[j]
        u[g] = lam * t / d[g]
    return 0


@numba.njit(cache=True)
def vector_term_pls(refs: np.ndarray, Z: np.ndarray, X: np.ndarray, w: np.ndarray,
                    zw: np.ndarray, lam: np.ndarray, nlevels: int, u: np.ndarray,
                    beta: np.ndarray) -> int:
    """:func:`scalar_term_pls` for one term with ``P`` columns per level (``Z`` is ``n x P``,
    ``lam`` its ``P x P`` factor): ``G_g = lam' A_g lam + I`` per level (``A_g`` the level's
    ``Z'WZ`` block) is factored, ``G_g = L_g L_g'``; with ``F_g = L_g^-1 lam' C_g`` (``C_g``
    the level's ``Z'WX``) and ``f_g = L_g^-1 lam' r_g`` (``r_g`` its ``Z'W zw``) the Schur
    complement is ``X'WX - sum F_g'F_g``, its right-hand side ``X'W zw - sum F_g'f_g``, and
    ``u_g = L_g^-T (f_g - F_g beta)``. Fills ``u`` (``nlevels * P``, level-major) and
    ``beta``; returns 0, 1 (a ``G_g`` not positive definite) or 2 (the Schur complement)."""
    n = refs.shape[0]
    P = Z.shape[1]
    p = X.shape[1]
    A = np.zeros((nlevels, P, P))     # lower triangle of Z'WZ per level
    r = np.zeros((nlevels, P))
    C = np.zeros((nlevels, P, p))
    S = np.zeros((p, p))
    rhs = np.zeros(p)
    for i in range(n):
        g = refs[i]
        wi = w[i]
        for a in range(P):
            wza = wi * Z[i, a]
            for b in range(a + 1):
                A[g, a, b] += wza * Z[i, b]
            r[g, a] += wza * zw[i]
            for j in range(p):
                C[g, a, j] += wza * X[i, j]
        wzw = wi * zw[i]
        for j in range(p):
            xij = X[i, j]
            rhs[j] += wzw * xij
            wx = wi * xij
            for k in range(j + 1):
                S[j, k] += wx * X[i, k]
    L = np.zeros((nlevels, P, P))
    F = np.zeros((nlevels, P, p))
    f = np.zeros((nlevels, P))
    M = np.zeros((P, P))
    T = np.zeros((P, p))
    t = np.zeros(P)
    for g in range(nlevels):
        # M = A_g lam (A_g symmetric, its lower triangle stored), then G = lam' M + I
        for a in range(P):
            for b in range(P):
                s = 0.0
                for c in range(P):
                    acv = A[g, a, c] if c <= a else A[g, c, a]
                    s += acv * lam[c, b]
                M[a, b] = s
        Lg = L[g]
        for a in range(P):
            for b in range(a + 1):
                s = 0.0
                for c in range(P):
                    s += lam[c, a] * M[c, b]
                Lg[a, b] = s + (1.0 if a == b else 0.0)
        if not chol_lower(Lg, P):
            return 1
        # T = lam' C_g, t = lam' r_g, then the forward solves with L_g
        for a in range(P):
            for j in range(p):
                s = 0.0
                for c in range(P):
                    s += lam[c, a] * C[g, c, j]
                T[a, j] = s
            s = 0.0
            for c in range(P):
                s += lam[c, a] * r[g, c]
            t[a] = s
        for a in range(P):
            for j in range(p):
                s = T[a, j]
                for c in range(a):
                    s -= Lg[a, c] * F[g, c, j]
                F[g, a, j] = s / Lg[a, a]
            s = t[a]
            for c in range(a):
                s -= Lg[a, c] * f[g, c]
            f[g, a] = s / Lg[a, a]
        for j in range(p):
            for c in range(P):
                rhs[j] -= F[g, c, j] * f[g, c]
            for k in range(j + 1):
                s = 0.0
                for c in range(P):
                    s += F[g, c, j] * F[g, c, k]
                S[j, k] -= s
    if not chol_lower(S, p):
        return 2
    for j in range(p):
        s = rhs[j]
        for k in range(j):
            s -= S[j, k] * beta[k]
        beta[j] = s / S[j, j]
    for j in range(p - 1, -1, -1):
        s = beta[j]
        for k in range(j + 1, p):
            s -= S[k, j] * beta[k]
        beta[j] = s / S[j, j]
    for g in range(nlevels):
        Lg = L[g]
        for a in range(P):
            s = f[g, a]
            for j in range(p):
                s -= F[g, a, j] * beta[j]
            t[a] = s
        for a in range(P - 1, -1, -1):
            s = t[a]
            for c in range(a + 1, P):
                s -= Lg[c, a] * u[g * P + c]
            u[g * P + a] = s / Lg[a, a]
    return 0


@numba.njit(cache=True)
def vector_term_logdet(refs: np.ndarray, Z: np.ndarray, w: np.ndarray, lam: np.ndarray,
                       nlevels: int) -> float:
    """``log det(Lambda'Z'WZ Lambda + I)`` for one term with ``P`` columns per level: the sum
    over levels of ``log det(lam' A_g lam + I)``; NaN where a level's matrix is not positive
    definite."""
    n = refs.shape[0]
    P = Z.shape[1]
    A = np.zeros((nlevels, P, P))
    for i in range(n):
        g = refs[i]
        wi = w[i]
        for a in range(P):
            wza = wi * Z[i, a]
            for b in range(a + 1):
                A[g, a, b] += wza * Z[i, b]
    M = np.zeros((P, P))
    G = np.zeros((P, P))
    total = 0.0
    for g in range(nlevels):
        for a in range(P):
            for b in range(P):
                s = 0.0
                for c in range(P):
                    acv = A[g, a, c] if c <= a else A[g, c, a]
                    s += acv * lam[c, b]
                M[a, b] = s
        for a in range(P):
            for b in range(a + 1):
                s = 0.0
                for c in range(P):
                    s += lam[c, a] * M[c, b]
                G[a, b] = s + (1.0 if a == b else 0.0)
        if not chol_lower(G, P):
            return np.nan
        for a in range(P):
            total += 2.0 * math.log(G[a, a])
    return total

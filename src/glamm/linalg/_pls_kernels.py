"""Compiled (numba) solve of the penalized least-squares system of one PIRLS iteration for a
model with a single scalar random-effects term, behind :mod:`glamm.linalg.scalar_pls`.

Importing this module imports numba; :mod:`glamm.jit` does so on first use only. Not public
API.
"""

from __future__ import annotations

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

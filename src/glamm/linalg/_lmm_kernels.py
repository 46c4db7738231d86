"""Compiled (numba) profiled-deviance pieces of an LMM with one random-effects term, behind
:mod:`glamm.linalg.one_term`. Importing this module imports numba; :mod:`glamm.jit` does so
on first use only. Not public API."""

from __future__ import annotations

import math

import numba
import numpy as np

from ._dense_kernels import chol_lower


@numba.njit(cache=True)
def one_term_pieces(A_zz: np.ndarray, A_xz: np.ndarray, A_xx: np.ndarray, lam: np.ndarray,
                    out: np.ndarray) -> bool:
    """``ldL2``, ``ldRX2`` and ``pwrss`` of ``[Z Lambda, X, y]`` for one term: ``A_zz``
    ``(m, p, p)`` per-level blocks of ``Z'WZ``, ``A_xz`` ``(k, m p)`` the ``[X y]' W Z``
    block, ``A_xx`` ``(k, k)`` ``[X y]' W [X y]`` (``k = p_X + 1``), ``lam`` the term's
    ``p x p`` factor. Per level, ``L_g`` = chol(``lam' A_gg lam + I``) and ``C_g =
    L_g^-1 lam' A_gx``; then ``R`` = chol(``A_xx - sum_g C_g' C_g``). Fills ``out`` with
    ``(ldL2, ldRX2, pwrss)``; false where a pivot is not positive."""
    m, p, _ = A_zz.shape
    k = A_xx.shape[0]
    S = A_xx.copy()
    M = np.empty((p, p))
    T = np.empty((p, p))
    C = np.empty((p, k))
    ld = 0.0
    for g in range(m):
        # M = lam' A_gg lam + I
        for a in range(p):
            for b in range(p):
                t = 0.0
                for c in range(p):
                    t += A_zz[g, a, c] * lam[c, b]
                T[a, b] = t
        for a in range(p):
            for b in range(a + 1):
                t = 0.0
                for c in range(p):
                    t += lam[c, a] * T[c, b]
                M[a, b] = t + (1.0 if a == b else 0.0)
        if not chol_lower(M, p):
            return False
        for j in range(p):
            ld += 2.0 * math.log(M[j, j])
        # C = L_g^-1 lam' A_gx  (A_gx = A_xz[:, g p : g p + p]')
        for a in range(p):
            for col in range(k):
                t = 0.0
                for c in range(p):
                    t += lam[c, a] * A_xz[col, g * p + c]
                C[a, col] = t
        for a in range(p):
            for col in range(k):
                t = C[a, col]
                for c in range(a):
                    t -= M[a, c] * C[c, col]
                C[a, col] = t / M[a, a]
        for i in range(k):
            for j in range(i + 1):
                t = 0.0
                for a in range(p):
                    t += C[a, i] * C[a, j]
                S[i, j] -= t
    # Cholesky of the [X y] block; the last pivot squared is the pwrss
    if not chol_lower(S, k - 1):
        return False
    ldx = 0.0
    last = S[k - 1, k - 1]
    for j in range(k - 1):
        ldx += 2.0 * math.log(S[j, j])
        t = S[k - 1, j]
        for c in range(j):
            t -= S[k - 1, c] * S[j, c]
        t /= S[j, j]
        S[k - 1, j] = t
        last -= t * t
    if not last > 0.0:
        return False
    out[0] = ld
    out[1] = ldx
    out[2] = last
    return True

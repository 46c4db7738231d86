"""Compiled (numba) profiled-deviance pieces of an LMM with one random-effects term, behind
:mod:`glamm.linalg.one_term`. Importing this module imports numba; :mod:`glamm.jit` does so
on first use only. Not public API."""

from __future__ import annotations

import math

import numba
import numpy as np

from ._dense_kernels import chol_lower, tri_inverse_lower


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
        ld_g = _level_step(A_zz, A_xz, lam, g, M, C, T, S)
        if ld_g < 0.0:
            return False
        ld += ld_g
    if not _xy_tail(S, k - 1, out):
        return False
    out[0] = ld
    return True


@numba.njit(cache=True)
def one_term_gradient(A_zz: np.ndarray, A_xz: np.ndarray, A_xx: np.ndarray, lam: np.ndarray,
                      dlam: np.ndarray, reml: bool, out: np.ndarray, g_ld: np.ndarray,
                      g_pw: np.ndarray, Ls: np.ndarray, Cs: np.ndarray) -> bool:
    """:func:`one_term_pieces` (into ``out``) and their derivatives in ``theta`` (``dlam``
    ``(n_theta, p, p)``, the term's ``d lambda / d theta``): ``g_ld`` of ``ldL2`` (plus
    ``ldRX2`` with ``reml``), ``g_pw`` of ``pwrss``, as :mod:`glamm.lmm.gradient` derives
    them, level by level (``G^-1`` is block diagonal with one term). ``Ls`` ``(m, p, p)``
    and ``Cs`` ``(m, p, k)`` are workspace for the levels' ``L_g`` and ``C_g``."""
    m, p, _ = A_zz.shape
    k = A_xx.shape[0]
    px = k - 1
    S = A_xx.copy()
    T = np.empty((p, p))
    ld = 0.0
    for g in range(m):
        ld_g = _level_step(A_zz, A_xz, lam, g, Ls[g], Cs[g], T, S)
        if ld_g < 0.0:
            return False
        ld += ld_g
    if not _xy_tail(S, px, out):
        return False
    out[0] = ld
    # beta: R_X' beta = r_y
    beta = np.empty(px)
    for j in range(px - 1, -1, -1):
        t = S[px, j]
        for i in range(j + 1, px):
            t -= S[i, j] * beta[i]
        beta[j] = t / S[j, j]
    # (R_X R_X')^-1, for the REML term
    Rinv = np.empty((px, px))
    tri_inverse_lower(S, Rinv, px)
    Cinv = np.empty((px, px))
    for i in range(px):
        for j in range(px):
            t = 0.0
            for c in range(max(i, j), px):
                t += Rinv[c, i] * Rinv[c, j]
            Cinv[i, j] = t
    Q = np.zeros((p, p))
    P = np.zeros((p, p))
    F = np.zeros((p, p))
    u = np.empty(p)
    lu = np.empty(p)
    Linv = np.empty((p, p))
    Minv = np.empty((p, p))
    W = np.empty((p, px))
    U = np.empty((p, px))
    LU = np.empty((p, px))
    CE = np.empty((p, px))
    for g in range(m):
        L = Ls[g]
        C = Cs[g]
        # u = L^-T (c_y - C_X beta), by back substitution
        for a in range(p - 1, -1, -1):
            t = C[a, px]
            for j in range(px):
                t -= C[a, j] * beta[j]
            for c in range(a + 1, p):
                t -= L[c, a] * u[c]
            u[a] = t / L[a, a]
        for c in range(p):
            t = 0.0
            for b in range(p):
                t += lam[c, b] * u[b]
            lu[c] = t
        # Z'W r on the level, and P += zr u'
        for a in range(p):
            t = A_xz[px, g * p + a]
            for j in range(px):
                t -= A_xz[j, g * p + a] * beta[j]
            for c in range(p):
                t -= A_zz[g, a, c] * lu[c]
            for b in range(p):
                P[a, b] += t * u[b]
        # M^-1 = L^-T L^-1
        tri_inverse_lower(L, Linv, p)
        for x in range(p):
            for b in range(p):
                t = 0.0
                for c in range(max(x, b), p):
                    t += Linv[c, x] * Linv[c, b]
                Minv[x, b] = t
        # Q[b, a] += sum_x Minv[x, b] (lam' A_gg)[x, a]
        for x in range(p):
            for a in range(p):
                t = 0.0
                for c in range(p):
                    t += lam[c, x] * A_zz[g, c, a]
                T[x, a] = t
        for b in range(p):
            for a in range(p):
                t = 0.0
                for x in range(p):
                    t += Minv[x, b] * T[x, a]
                Q[b, a] += t
        if not reml or px == 0:
            continue
        # U = M^-1 lam' A_gX, E = A_gX - A_gg lam U, F += U Cinv E'
        for x in range(p):
            for j in range(px):
                t = 0.0
                for c in range(p):
                    t += lam[c, x] * A_xz[j, g * p + c]
                W[x, j] = t
        for x in range(p):
            for j in range(px):
                t = 0.0
                for c in range(p):
                    t += Minv[x, c] * W[c, j]
                U[x, j] = t
        for c in range(p):
            for j in range(px):
                t = 0.0
                for x in range(p):
                    t += lam[c, x] * U[x, j]
                LU[c, j] = t
        for a in range(p):
            for j in range(px):
                t = A_xz[j, g * p + a]
                for c in range(p):
                    t -= A_zz[g, a, c] * LU[c, j]
                # (Cinv E')[l, a] for l = j below: store E first
                CE[a, j] = t
        for b in range(p):
            for a in range(p):
                t = 0.0
                for j in range(px):
                    for l2 in range(px):
                        t += U[b, j] * Cinv[j, l2] * CE[a, l2]
                F[b, a] += t
    n_theta = dlam.shape[0]
    for r in range(n_theta):
        s_ld = 0.0
        s_pw = 0.0
        for a in range(p):
            for b in range(p):
                d = dlam[r, a, b]
                if d != 0.0:
                    s_ld += 2.0 * d * Q[b, a]
                    if reml:
                        s_ld -= 2.0 * d * F[b, a]
                    s_pw -= 2.0 * d * P[a, b]
        g_ld[r] = s_ld
        g_pw[r] = s_pw
    return True


@numba.njit(cache=True, inline="always")
def _level_step(A_zz: np.ndarray, A_xz: np.ndarray, lam: np.ndarray, g: int, M: np.ndarray,
                C: np.ndarray, T: np.ndarray, S: np.ndarray) -> float:
    """Level ``g`` of a one-term model: ``M`` = chol(``lam' A_gg lam + I``) (lower, the upper
    triangle zeroed), ``C = M^-1 lam' A_gx`` and ``S -= C'C``; returns the level's
    ``log det`` (``-1`` where ``M`` is not positive definite; it is at least 0 otherwise)."""
    p = lam.shape[0]
    k = S.shape[0]
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
        return -1.0
    ld = 0.0
    for a in range(p):
        ld += 2.0 * math.log(M[a, a])
        for b in range(a + 1, p):
            M[a, b] = 0.0
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
    return ld


@numba.njit(cache=True, inline="always")
def _xy_tail(S: np.ndarray, px: int, out: np.ndarray) -> bool:
    """The Cholesky factor of the ``[X y]`` Schur complement ``S`` in place (``px`` fixed
    effects): ``out[1] = ldRX2`` and ``out[2] = pwrss`` (the last pivot squared); false
    where it is not positive definite."""
    if not chol_lower(S, px):
        return False
    ldx = 0.0
    last = S[px, px]
    for j in range(px):
        ldx += 2.0 * math.log(S[j, j])
        t = S[px, j]
        for c in range(j):
            t -= S[px, c] * S[j, c]
        t /= S[j, j]
        S[px, j] = t
        last -= t * t
    if not last > 0.0:
        return False
    out[1] = ldx
    out[2] = last
    return True

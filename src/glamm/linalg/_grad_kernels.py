"""Compiled (numba) pass over the first random-effects term's levels for the derivative of
``log det G`` in ``theta`` (:class:`glamm.linalg.lmm_gradient.TileSums`). Importing this
module imports numba; :mod:`glamm.jit` does so on first use only. Not public API."""

from __future__ import annotations

import numba
import numpy as np

from ._dense_kernels import tri_inverse_lower


@numba.njit(cache=True)
def first_term_sums(L00: np.ndarray, N00: np.ndarray, L_rf: np.ndarray, A_rf: np.ndarray,
                    lams: np.ndarray, ptr: np.ndarray, base: np.ndarray, tp: np.ndarray,
                    term: np.ndarray, S_RR: np.ndarray, Q0: np.ndarray, Q_rest: np.ndarray,
                    max_rows: int) -> None:
    """Add the first term's tiles to ``Q0`` (``p0 x p0``) and the rest-first tiles' share of
    the later terms to ``Q_rest[term]``, level ``c`` of the first term at a time.

    ``L00`` ``(m0, p0, p0)`` the factor's diagonal triangles; ``N00`` ``(m0, p0, p0)``
    ``lambda_0' A_cc``; per rest-first tile ``t`` (sorted by level, ``ptr`` the level
    pointers): ``L_rf[t]`` the factor's values and ``A_rf[t]`` the cross-products'
    (``p_max x p0``, ``tp[t]`` rows used), ``base[t]`` its first row in the rest, ``term[t]``
    its term; ``lams[k]`` each term's ``lambda`` (padded to ``p_max x p_max``; ``lams[0]``
    is ``p0 x p0``). ``S_RR`` is the dense inverse of the rest's ``G``, read from its lower
    triangle only. Per
    level, with ``W_c = B_c L00_c^-1`` (``B_c`` the factor's rows of the level) and ``T_c =
    S_RR[J, J] W_c`` over its rows ``J``: ``G^-1`` is ``L00_c^-T L00_c^-1 + W_c' T_c`` on
    the level's diagonal tile and ``-T_c`` on its rest-first tiles."""
    m0, p0, _ = L00.shape
    Ainv = np.empty((p0, p0))
    W = np.empty((max_rows, p0))
    T = np.empty((max_rows, p0))
    J = np.empty(max_rows, dtype=np.int64)
    S11 = np.empty((p0, p0))
    pm = L_rf.shape[1]
    M1 = np.empty((pm, p0))     # lambda_i' A_t
    M2 = np.empty((pm, p0))     # A_t lambda_0
    for c in range(m0):
        # Ainv = L00_c^-1 (lower triangular), by forward substitution on the identity
        tri_inverse_lower(L00[c], Ainv, p0)
        # the level's rows of the rest, and W there
        nr = 0
        for t in range(ptr[c], ptr[c + 1]):
            for a in range(tp[t]):
                J[nr] = base[t] + a
                for j in range(p0):
                    s = 0.0
                    for k in range(j, p0):
                        s += L_rf[t, a, k] * Ainv[k, j]
                    W[nr, j] = s
                nr += 1
        # T = S_RR[J, J] W (S_RR's lower triangle: the rows of J ascend within a term,
        # and the terms follow one another, so J ascends and (J[r], J[r2]) is below the
        # diagonal for r2 <= r)
        for r in range(nr):
            row = J[r]
            for j in range(p0):
                s = 0.0
                for r2 in range(nr):
                    col = J[r2]
                    v = S_RR[row, col] if col <= row else S_RR[col, row]
                    s += v * W[r2, j]
                T[r, j] = s
        # the diagonal tile: L00^-T L00^-1 + W'T
        for x in range(p0):
            for b in range(p0):
                s = 0.0
                for k in range(p0):
                    s += Ainv[k, x] * Ainv[k, b]
                for r in range(nr):
                    s += W[r, x] * T[r, b]
                S11[x, b] = s
        for b in range(p0):
            for a in range(p0):
                s = 0.0
                for x in range(p0):
                    s += S11[x, b] * N00[c, x, a]
                Q0[b, a] += s
        # the rest-first tiles: G^-1 = -T there
        r = 0
        for t in range(ptr[c], ptr[c + 1]):
            n_t = tp[t]
            k_t = term[t]
            for x in range(n_t):
                for a in range(p0):
                    s1 = 0.0
                    s2 = 0.0
                    for y in range(n_t):
                        s1 += lams[k_t, y, x] * A_rf[t, y, a]
                    for y in range(p0):
                        s2 += A_rf[t, x, y] * lams[0, y, a]
                    M1[x, a] = s1
                    M2[x, a] = s2
            for b in range(p0):
                for a in range(p0):
                    s = 0.0
                    for x in range(n_t):
                        s -= T[r + x, b] * M1[x, a]
                    Q0[b, a] += s
            for b in range(n_t):
                for a in range(n_t):
                    s = 0.0
                    for x in range(p0):
                        s -= T[r + b, x] * M2[a, x]
                    Q_rest[k_t, b, a] += s
            r += n_t


@numba.njit(cache=True)
def level_inverse_blocks(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                         S_RR: np.ndarray, p1: int, S11: np.ndarray, SR1: np.ndarray,
                         max_rows: int) -> None:
    """For :class:`glamm.linalg.selinv.SelectedInverse` with a dense ``S_RR``: per level
    ``c`` of the first term (columns ``c p1 .. c p1 + p1 - 1`` of ``W``, stored by column,
    the same rows ``J`` in each), ``T = S_RR[J, J] W[J, c]``; adds ``W[J, c]' T`` to
    ``S11[c]`` and stores ``Sigma_R1 = -T`` on ``W``'s pattern (``SR1`` aligned with
    ``data``)."""
    m1 = S11.shape[0]
    T = np.empty((max_rows, p1))
    for c in range(m1):
        s0 = indptr[c * p1]
        n = indptr[c * p1 + 1] - s0
        for i in range(n):
            ri = indices[s0 + i]
            for a in range(p1):
                base = indptr[c * p1 + a]
                t = 0.0
                for j in range(n):
                    t += S_RR[ri, indices[s0 + j]] * data[base + j]
                T[i, a] = t
        for a in range(p1):
            base = indptr[c * p1 + a]
            for i in range(n):
                SR1[base + i] = -T[i, a]
            for b in range(p1):
                t = 0.0
                for i in range(n):
                    t += data[base + i] * T[i, b]
                S11[c, a, b] += t

"""Compiled (numba) refill of the cross-products ``A = [Z X y]' W [Z X y]`` in one pass over
the rows, behind :meth:`glamm.linalg.crossprod.CrossProducts.update`. It forms the same
products and adds them in the same (row) order as the NumPy code's ``bincount`` and sparse
products, so the blocks it fills are equal to theirs bit for bit. Importing this module
imports numba; :mod:`glamm.jit` does so on first use only. Not public API."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def fill_crossproducts(refs: np.ndarray, Z: np.ndarray, col_off: np.ndarray,
                       pair_terms: np.ndarray, pair_pos: np.ndarray, w: np.ndarray,
                       XY: np.ndarray, diag: np.ndarray, diag_off: np.ndarray,
                       off: np.ndarray, off_off: np.ndarray, zxy: np.ndarray,
                       zxy_off: np.ndarray, XYw: np.ndarray, with_xy: bool) -> None:
    """Zero the outputs, then, row by row, add the row's terms of:

    - ``diag``: each term's ``Z_k'WZ_k`` blocks, ``(m_k, p_k, p_k)`` from ``diag_off[k]``
      (lower triangles; the caller mirrors them);
    - ``off``: each pair ``t`` of terms ``(i, j) = pair_terms[t]``, ``i > j``: ``Z_i'WZ_j``
      at the stored block ``pair_pos[t, row]``, ``(nb_t, p_i, p_j)`` from ``off_off[t]``;
    - ``zxy``: each term's ``Z_k' W [X y]``, ``(q_k, pxy)`` from ``zxy_off[k]``;
    - ``XYw``: ``W [X y]`` (``n x pxy``, overwritten).

    Without ``with_xy`` the last two are left alone (the random-effects blocks only).

    ``refs`` is ``(K, n)`` (level codes), ``Z`` the ``(n, P)`` values of all terms side by
    side, term ``k`` in columns ``col_off[k]:col_off[k + 1]``. Each product is formed as
    ``(z_a w) z_b`` and ``z_a (x_c w)``, as the NumPy code forms it."""
    diag[:] = 0.0
    off[:] = 0.0
    zxy[:] = 0.0
    n = w.shape[0]
    pxy = XY.shape[1] if with_xy else 0
    for r in range(n):
        wr = w[r]
        for c in range(pxy):
            XYw[r, c] = XY[r, c] * wr
    # one loop over the rows per term and per pair, scalar terms apart (loops of unknown
    # length inside the row loop cost more than the arithmetic)
    for k in range(refs.shape[0]):
        c0 = col_off[k]
        pk = col_off[k + 1] - c0
        d0, z0 = diag_off[k], zxy_off[k]
        if pk == 1:
            for r in range(n):
                za = Z[r, c0]
                lev = refs[k, r]
                diag[d0 + lev] += (za * w[r]) * za
                row = z0 + lev * pxy
                for c in range(pxy):
                    zxy[row + c] += za * XYw[r, c]
            continue
        for r in range(n):
            wr = w[r]
            lev = refs[k, r]
            for a in range(pk):
                za = Z[r, c0 + a]
                wza = za * wr
                base = d0 + (lev * pk + a) * pk
                for b in range(a + 1):
                    diag[base + b] += wza * Z[r, c0 + b]
                row = z0 + (lev * pk + a) * pxy
                for c in range(pxy):
                    zxy[row + c] += za * XYw[r, c]
    for t in range(pair_terms.shape[0]):
        i = pair_terms[t, 0]
        j = pair_terms[t, 1]
        ci = col_off[i]
        pi = col_off[i + 1] - ci
        cj = col_off[j]
        pj = col_off[j + 1] - cj
        o0 = off_off[t]
        if pi == 1 and pj == 1:
            for r in range(n):
                off[o0 + pair_pos[t, r]] += (Z[r, ci] * w[r]) * Z[r, cj]
            continue
        for r in range(n):
            wr = w[r]
            base = o0 + pair_pos[t, r] * pi * pj
            for a in range(pi):
                wza = Z[r, ci + a] * wr
                for b in range(pj):
                    off[base + a * pj + b] += wza * Z[r, cj + b]

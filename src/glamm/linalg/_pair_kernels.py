"""Compiled (numba) loops over the pairs of cross-product entries the blocked factor's
first-term update sums (:class:`glamm.linalg.kernels._FirstTermUpdate`), and the rank
update of a dense block by two sparse ones (:class:`glamm.linalg.kernels._PairUpdate`).
Importing this module imports numba; :mod:`glamm.jit` does so on first use only. Not public
API."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def gather_product(a: np.ndarray, fa: np.ndarray, b: np.ndarray, fb: np.ndarray,
                   out: np.ndarray) -> None:
    """``out[e] = a[fa[e]] * b[fb[e]]``."""
    for e in range(out.shape[0]):
        out[e] = a[fa[e]] * b[fb[e]]


@numba.njit(cache=True)
def pair_products(A: np.ndarray, ia: np.ndarray, B: np.ndarray, ib: np.ndarray,
                  inverse: np.ndarray, acc: np.ndarray) -> None:
    """``acc[inverse[e, i, j]] += A[ia[e], i, :] . B[ib[e], j, :]`` over the pairs ``e``
    (``acc`` zeroed first): the sums of block products :class:`_PairUpdate` subtracts."""
    acc[:] = 0.0
    pa, pk = A.shape[1], A.shape[2]
    pb = B.shape[1]
    for e in range(ia.shape[0]):
        a, b = ia[e], ib[e]
        base = e * pa * pb
        for i in range(pa):
            for j in range(pb):
                s = 0.0
                for k in range(pk):
                    s += A[a, i, k] * B[b, j, k]
                acc[inverse[base + i * pb + j]] += s


@numba.njit(cache=True)
def column_rank_update(A: np.ndarray, rows_a: np.ndarray, ptr_a: np.ndarray, B: np.ndarray,
                       rows_b: np.ndarray, ptr_b: np.ndarray, T: np.ndarray,
                       lower_only: bool) -> None:
    """``T -= A B'`` for a dense ``T`` and two block-sparse ``A``, ``B`` stored by column
    level (``ptr`` the column pointers, rows ascending within a column): for each column
    level, every pair of its blocks updates one tile of ``T``. With ``lower_only`` (a
    diagonal target, ``A`` = ``B``) only the pairs whose row in ``A`` is at or below the
    row in ``B``: in a column whose rows ascend, the blocks up to the same one."""
    pa, pk = A.shape[1], A.shape[2]
    pb = B.shape[1]
    if pa == 1 and pb == 1 and pk == 1:
        _scalar_rank_update(A[:, 0, 0], rows_a, ptr_a, B[:, 0, 0], rows_b, ptr_b, T,
                            lower_only)
        return
    for c in range(ptr_a.shape[0] - 1):
        for ea in range(ptr_a[c], ptr_a[c + 1]):
            ra = rows_a[ea]
            stop = ea + 1 if lower_only else ptr_b[c + 1]
            for eb in range(ptr_b[c], stop):
                rb = rows_b[eb]
                for i in range(pa):
                    for j in range(pb):
                        acc = 0.0
                        for k in range(pk):
                            acc += A[ea, i, k] * B[eb, j, k]
                        T[ra * pa + i, rb * pb + j] -= acc


@numba.njit(cache=True, inline="always")
def _scalar_rank_update(a: np.ndarray, rows_a: np.ndarray, ptr_a: np.ndarray, b: np.ndarray,
                        rows_b: np.ndarray, ptr_b: np.ndarray, T: np.ndarray,
                        lower_only: bool) -> None:
    """:func:`column_rank_update` for scalar blocks (one multiply per pair)."""
    for c in range(ptr_a.shape[0] - 1):
        for ea in range(ptr_a[c], ptr_a[c + 1]):
            ra = rows_a[ea]
            va = a[ea]
            stop = ea + 1 if lower_only else ptr_b[c + 1]
            for eb in range(ptr_b[c], stop):
                T[ra, rows_b[eb]] -= va * b[eb]

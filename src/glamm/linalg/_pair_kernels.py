"""Compiled (numba) loops over the pairs of cross-product entries the blocked factor's
first-term update sums (:class:`glamm.linalg.kernels._FirstTermUpdate`). Importing this module
imports numba; :mod:`glamm.jit` does so on first use only. Not public API."""

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

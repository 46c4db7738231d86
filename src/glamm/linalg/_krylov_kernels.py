"""Compiled (numba) sparse-times-block products for the Krylov solvers of the approximate LMM
(:mod:`glamm.lmm.approximate`): ``out = A X`` for a CSR matrix ``A`` and a C-ordered
``(n, k)`` block ``X``. Each stored entry reads one contiguous row of ``X``, so the product
streams memory once. :func:`csr_matmat_parallel` runs the rows in parallel (for large
products: starting the threads costs milliseconds on a busy machine). Importing this module
imports numba; :mod:`glamm.jit` does so on first use only. Not public API."""

from __future__ import annotations

import numba
import numpy as np


def _rows(indptr, indices, data, X, out, i):
    k = X.shape[1]
    row = out[i]
    row[:] = 0.0
    for jj in range(indptr[i], indptr[i + 1]):
        v = data[jj]
        src = X[indices[jj]]
        for c in range(k):
            row[c] += v * src[c]


_row = numba.njit(cache=True, inline="always")(_rows)


@numba.njit(cache=True)
def csr_matmat(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, X: np.ndarray,
               out: np.ndarray) -> None:
    """``out = A X`` with ``A`` given by its CSR arrays (``out`` overwritten)."""
    for i in range(indptr.shape[0] - 1):
        _row(indptr, indices, data, X, out, i)


@numba.njit(parallel=True, cache=True)
def csr_matmat_parallel(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                        X: np.ndarray, out: np.ndarray) -> None:
    """:func:`csr_matmat` with the rows in parallel."""
    for i in numba.prange(indptr.shape[0] - 1):
        _row(indptr, indices, data, X, out, i)

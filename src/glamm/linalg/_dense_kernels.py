"""Small dense helpers shared by the compiled kernels of :mod:`glamm.linalg` (numba, inlined
into their callers). Not public API."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def chol_lower(M: np.ndarray, n: int) -> bool:
    """Cholesky factor of the leading ``n x n`` block of ``M`` in place (lower triangle;
    the strict upper triangle is not read); false at a pivot that is not positive."""
    for j in range(n):
        s = M[j, j]
        for c in range(j):
            s -= M[j, c] * M[j, c]
        if not s > 0.0:
            return False
        piv = math.sqrt(s)
        M[j, j] = piv
        for i in range(j + 1, n):
            t = M[i, j]
            for c in range(j):
                t -= M[i, c] * M[j, c]
            M[i, j] = t / piv
    return True


@numba.njit(cache=True, inline="always")
def tri_inverse_lower(L: np.ndarray, out: np.ndarray, n: int) -> None:
    """``out`` = the inverse of the leading ``n x n`` lower triangle of ``L`` (forward
    substitution on the identity; the strict upper triangle of ``out`` is set to 0)."""
    for j in range(n):
        for i in range(n):
            if i < j:
                out[i, j] = 0.0
                continue
            t = 1.0 if i == j else 0.0
            for c in range(j, i):
                t -= L[i, c] * out[c, j]
            out[i, j] = t / L[i, i]

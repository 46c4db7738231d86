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

"""Compiled kernels for the families' hot loops, when numba is there.

A GLMM fit evaluates its family's log-density and two ``eta``-derivatives a few hundred times
on the same rows; for the count families and their zero-inflated and hurdle mixtures NumPy
needs some thirty array operations per evaluation, and at a few hundred rows their call
overhead is most of a small model's fit time. :mod:`glamm.families._kernels` does each
evaluation in one compiled loop (numba, a well-kept JIT compiler for NumPy code, compiled
on first use and cached on disk). The NumPy methods stay the reference: the families call
a kernel only for one-dimensional rows where one exists, and the tests compare the two.

``GLAMM_JIT=0`` in the environment turns the kernels off (the NumPy code runs instead), as
does a missing or broken numba (the switch is :mod:`glamm.jit`). Not public API.
"""

from __future__ import annotations

import numpy as np

from .. import jit

_FLOAT64 = np.dtype(np.float64)
_MODULE = "glamm.families._kernels"


def kernels():
    """The compiled kernels module (imported once, on first use), or ``None`` when numba is
    missing or the kernels are off (:mod:`glamm.jit`)."""
    return jit.load(_MODULE)


#: force the kernels on, off or back to the environment's choice (see :mod:`glamm.jit`)
use_kernels = jit.use_kernels


def rows_ok(*arrays: np.ndarray) -> bool:
    """Whether the arrays are one-dimensional float rows of one length (what the kernels
    take; quadrature's ``(n, K)`` node grids go through NumPy)."""
    shape = arrays[0].shape
    if len(shape) != 1:
        return False
    f64 = _FLOAT64
    for a in arrays:   # (a plain loop: this runs on every family call)
        if a.shape != shape or a.dtype != f64:
            return False
    return True

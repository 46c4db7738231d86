"""Compiled kernels for the families' hot loops, when numba is there.

A GLMM fit evaluates its family's log-density and two ``eta``-derivatives a few hundred times
on the same rows; for the count families and their zero-inflated and hurdle mixtures NumPy
needs some thirty array operations per evaluation, and at a few hundred rows their call
overhead is most of a small model's fit time. :mod:`glamm.families._kernels` does each
evaluation in one compiled loop (numba, a well-kept JIT compiler for NumPy code, compiled
on first use and cached on disk). The NumPy methods stay the reference: the families call
a kernel only for one-dimensional rows where one exists, and the tests compare the two.

``GLAMM_JIT=0`` in the environment turns the kernels off (the NumPy code runs instead), as
does a missing or broken numba. Not public API.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

_STATE: list[ModuleType | None] = []
_FLOAT64 = np.dtype(np.float64)


def kernels() -> ModuleType | None:
    """The compiled kernels module (imported once, on first use), or ``None`` when numba is
    missing or ``GLAMM_JIT`` is ``0``/``false``/``off``."""
    if not _STATE:
        module: ModuleType | None = None
        if os.environ.get("GLAMM_JIT", "1").strip().lower() not in ("0", "false", "no", "off"):
            try:
                from . import _kernels as module
            # (numba missing; or no writable cache directory, which numba reports when the
            # kernels are defined: either way the NumPy code runs)
            except Exception:
                module = None
        _STATE.append(module)
    return _STATE[0]


def use_kernels(flag: bool | None) -> None:
    """Force the kernels on (``True``, if numba is there), off (``False``) or back to the
    environment's choice (``None``); for tests and benchmarks."""
    _STATE.clear()
    if flag is False:
        _STATE.append(None)
    elif flag:
        try:
            from . import _kernels
        except Exception:
            _STATE.append(None)
        else:
            _STATE.append(_kernels)


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

"""The profiled deviance of an LMM with one random-effects term in one compiled pass: the
optimizers' evaluations need only ``ldL2``, ``ldRX2`` and ``pwrss``, which
:func:`glamm.linalg._lmm_kernels.one_term_pieces` computes from the cross-products level by
level without filling the blocked factor (whose per-block NumPy calls cost most of a small
model's evaluation). The blocked factor stays the reference (the tests compare the two) and
is what the estimates are read from. Used only when the compiled kernels are on
(:mod:`glamm.jit`). Not public API."""

from __future__ import annotations

import numpy as np

from .. import jit
from .blocks import BlockDiag

_MODULE = "glamm.linalg._lmm_kernels"


class OneTermDeviance:
    """``(ldL2, ldRX2, pwrss)`` at a term factor ``lambda`` from the cross-products ``A``
    (:class:`~glamm.linalg.crossprod.CrossProducts` blocks, read at each call: they may be
    refilled with a new response)."""

    def __init__(self, A: list):
        self.A = A
        self._out = np.empty(3)

    @staticmethod
    def applies(A: list) -> bool:
        """One random-effects term whose diagonal block is block diagonal."""
        return len(A) == 2 and isinstance(A[0][0], BlockDiag)

    @staticmethod
    def available() -> bool:
        return jit.load(_MODULE) is not None

    def pieces(self, lam: np.ndarray) -> tuple[float, float, float] | None:
        """``(ldL2, ldRX2, pwrss)``, or ``None`` where the system is not positive definite."""
        k = jit.load(_MODULE)
        assert k is not None, "OneTermDeviance needs the compiled kernels"
        A = self.A
        ok = k.one_term_pieces(A[0][0].data, A[1][0], A[1][1],
                               np.ascontiguousarray(lam, dtype=float), self._out)
        if not ok:
            return None
        return float(self._out[0]), float(self._out[1]), float(self._out[2])

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
        D = A[0][0]
        self._Ls = np.empty((D.m, D.p, D.p))
        self._Cs = np.empty((D.m, D.p, A[1][1].shape[0]))

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

    def pieces_and_gradients(self, lam: np.ndarray, dlam: np.ndarray, reml: bool
                             ) -> tuple[float, float, float, np.ndarray, np.ndarray] | None:
        """:meth:`pieces` and the derivatives in ``theta`` (``dlam``: the term's ``d lambda /
        d theta``, ``(n_theta, p, p)``) of ``ldL2`` (plus ``ldRX2`` with ``reml``) and of
        ``pwrss``; ``None`` where the system is not positive definite."""
        k = jit.load(_MODULE)
        assert k is not None, "OneTermDeviance needs the compiled kernels"
        A = self.A
        n_theta = dlam.shape[0]
        g_ld, g_pw = np.empty(n_theta), np.empty(n_theta)
        ok = k.one_term_gradient(A[0][0].data, A[1][0], A[1][1],
                                 np.ascontiguousarray(lam, dtype=float),
                                 np.ascontiguousarray(dlam, dtype=float), bool(reml),
                                 self._out, g_ld, g_pw, self._Ls, self._Cs)
        if not ok:
            return None
        return float(self._out[0]), float(self._out[1]), float(self._out[2]), g_ld, g_pw

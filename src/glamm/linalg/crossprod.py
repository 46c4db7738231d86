"""The cross-product matrix ``A = [Z X y]' W [Z X y]`` in blocks.

``A`` does not depend on ``theta``. For an LMM it is computed once; for a GLMM the working
weights ``W`` and the working response change in every PIRLS iteration, so
:class:`CrossProducts` keeps the index structures and refills the same arrays in place
(:meth:`CrossProducts.update`). Block ``(i, j)`` with ``i >= j`` is stored; the last block
index is the dense ``[X y]`` block. All sums over observations go through ``numpy.bincount``,
never a Python loop over rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .blocks import BlockDiag, BlockSparse


class CrossProducts:
    """Lower blocks of ``A`` for the given terms, fixed-effects matrix, response and weights.

    Attributes
    ----------
    A: list of rows, ``A[i][j]`` for ``j <= i`` (``BlockDiag``, ``BlockSparse`` or dense).
    """

    def __init__(self, reterms, X: np.ndarray, y: np.ndarray, w: np.ndarray):
        self.reterms = list(reterms)
        self.X = X
        K = len(self.reterms)
        self._pair_inverse: dict[tuple[int, int], np.ndarray] = {}
        A: list[list] = []
        for i, ti in enumerate(self.reterms):
            row = []
            for j in range(i):
                tj = self.reterms[j]
                key = tj.refs.astype(np.int64) * ti.nlevels + ti.refs  # column-major order
                uniq, inv = np.unique(key, return_inverse=True)
                self._pair_inverse[(i, j)] = inv.ravel()
                row.append(BlockSparse(rows=uniq % ti.nlevels, cols=uniq // ti.nlevels,
                                       data=np.empty((uniq.shape[0], ti.p, tj.p)),
                                       m_row=ti.nlevels, m_col=tj.nlevels))
            row.append(BlockDiag(np.empty((ti.nlevels, ti.p, ti.p))))
            A.append(row)
        pxy = X.shape[1] + 1
        A.append([np.empty((pxy, t.q)) for t in self.reterms] + [np.empty((pxy, pxy))])
        assert len(A) == K + 1
        self.A = A
        self._Zt = [_transposed_z(t) for t in self.reterms]
        # random intercepts (z == 1) need no products with z
        self._ones = [t.p == 1 and bool(np.all(t.z == 1.0)) for t in self.reterms]
        self._XY = np.empty((X.shape[0], X.shape[1] + 1))
        self._XY[:, :-1] = X
        self.update(w, y)

    def update(self, w: np.ndarray, y: np.ndarray) -> None:
        """Refill every block for weights ``w`` and response ``y`` (same arrays, in place)."""
        K = len(self.reterms)
        A = self.A
        for i, ti in enumerate(self.reterms):
            wz = w[:, None] if self._ones[i] else ti.z * w[:, None]
            for j in range(i):
                tj = self.reterms[j]
                inv = self._pair_inverse[(i, j)]
                block = A[i][j]
                block.version += 1
                nb = block.nb
                for a in range(ti.p):
                    for b in range(tj.p):
                        wts = wz[:, a] if self._ones[j] else wz[:, a] * tj.z[:, b]
                        block.data[:, a, b] = np.bincount(inv, weights=wts, minlength=nb)
            D = A[i][i].data
            for a in range(ti.p):
                for b in range(a + 1):
                    wts = wz[:, a] if self._ones[i] else wz[:, a] * ti.z[:, b]
                    v = np.bincount(ti.refs, weights=wts, minlength=ti.nlevels)
                    D[:, a, b] = v
                    D[:, b, a] = v
        XY = self._XY
        XY[:, -1] = y
        XYw = XY * w[:, None]
        for j, Zt in enumerate(self._Zt):
            A[K][j][...] = (Zt @ XYw).T
        A[K][K][...] = XY.T @ XYw


def _transposed_z(term) -> sp.csr_matrix:
    """``Z_k'`` of a term as a sparse ``(levels * p) x n`` matrix (built once)."""
    n, p = term.z.shape
    rows = (term.refs[:, None] * p + np.arange(p)[None, :]).ravel()
    cols = np.repeat(np.arange(n), p)
    return sp.csr_matrix((term.z.ravel(), (rows, cols)), shape=(term.q, n))


def crossprod_blocks(reterms, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[list]:
    """Lower blocks of ``A`` (see :class:`CrossProducts`), computed once."""
    return CrossProducts(reterms, X, y, w).A

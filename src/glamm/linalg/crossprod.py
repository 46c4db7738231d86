"""The cross-product matrix ``A = [Z X y]' W [Z X y]`` in blocks.

``A`` does not depend on ``theta``. For an LMM it is filled once; for a GLMM the working
weights ``W`` and the working response change in every PIRLS iteration, so
:class:`CrossProducts` keeps the index structures and refills the same arrays in place
(:meth:`CrossProducts.update`). Block ``(i, j)`` with ``i >= j`` is stored; the last block
index is the dense ``[X y]`` block. All sums over observations go through ``numpy.bincount``,
never a Python loop over rows.

The values of ``Z`` are read from the model's :class:`~glamm.terms.design.RandomDesign`; when
it replaces a term's values (``RandomDesign.set_z``) it asks every cross-product object made
from it to refill the blocks of that term (:meth:`CrossProducts.refill_term`). The pattern of
every block depends only on the level codes, so it never changes. Whoever refills ``A`` must
then call ``refresh()`` on the Cholesky factors built on it
(:meth:`glamm.linalg.factor.BlockedCholesky.refresh`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from .blocks import BlockDiag, BlockSparse

if TYPE_CHECKING:  # pragma: no cover
    from ..terms.design import RandomDesign


class CrossProducts:
    """Lower blocks of ``A`` for a random-effects design, fixed-effects matrix, response and
    weights.

    Parameters
    ----------
    design : RandomDesign or list of ReTerm
        The terms (level codes) and the current values of their ``z``; a list of terms is
        made into a design with the terms' own values.
    X : ndarray
        ``(n, p)`` fixed-effects matrix (``p`` may be 0).
    y, w : ndarray
        ``(n,)`` response and weights of the first fill.

    Attributes
    ----------
    A : list of list
        ``A[i][j]`` for ``j <= i`` (``BlockDiag``, ``BlockSparse`` or dense).
    """

    def __init__(self, design: RandomDesign | list, X: np.ndarray, y: np.ndarray,
                 w: np.ndarray):
        from ..terms.design import RandomDesign

        if not isinstance(design, RandomDesign):
            design = RandomDesign(design)
        self.design = design
        self.reterms = design.terms
        self.X = X
        K = len(self.reterms)
        self._pair_inverse: dict[tuple[int, int], np.ndarray] = {}
        A: list[list] = []
        for i, ti in enumerate(self.reterms):
            row: list[BlockSparse | BlockDiag] = []
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
        self._Zt: list[sp.csr_matrix] = [None] * K      # type: ignore[list-item]
        #: per term, the position in ``z.ravel()`` of each stored entry of ``Z_k'``
        self._zt_order: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * K
        self._ones: list[bool] = [False] * K
        for k in range(K):
            self._index_term(k)
        self._XY = np.empty((X.shape[0], X.shape[1] + 1))
        self._XY[:, :-1] = X
        self.update(w, y)

    def _index_term(self, k: int) -> None:
        """The structures read from term ``k``'s values: ``Z_k'`` (sparse) and whether the
        term is a random intercept (``z == 1``: no products with ``z`` needed)."""
        t, z = self.reterms[k], self.design.z[k]
        if self._Zt[k] is None:
            self._Zt[k], self._zt_order[k] = _transposed_z(t.refs, z.shape[1], t.q)
        # same sparsity whatever the values: only the stored numbers change
        self._Zt[k].data[:] = z.ravel()[self._zt_order[k]]
        self._ones[k] = t.p == 1 and bool(np.all(z == 1.0))

    def update(self, w: np.ndarray, y: np.ndarray, terms: tuple[int, ...] | None = None
               ) -> None:
        """Refill the blocks for weights ``w`` and response ``y`` (same arrays, in place).

        Parameters
        ----------
        w, y : ndarray
            ``(n,)`` weights and response (kept, by reference, for :meth:`refill_term`).
        terms : tuple of int, optional
            Refill only the blocks that involve these terms (their rows and columns of ``A``;
            for values of ``z`` that changed while ``w`` and ``y`` did not). Default: all.
        """
        self._w, self._y = w, y
        K = len(self.reterms)
        A = self.A
        zs = self.design.z
        for i, ti in enumerate(self.reterms):
            row_i = terms is None or i in terms
            todo = [j for j in range(i) if row_i or j in terms]   # type: ignore[operator]
            if not todo and not row_i:
                continue
            zi = zs[i]
            wz = w[:, None] if self._ones[i] else zi * w[:, None]
            if terms is not None and ti.nlevels == 1 and ti.p > 1:
                # a refill of a one-level term with several columns (a smooth's penalized
                # part carrying loadings): products instead of a bincount per column pair
                self._refill_one_level_row(i, todo, row_i, wz, zi)
                continue
            for j in todo:
                tj = self.reterms[j]
                zj = zs[j]
                inv = self._pair_inverse[(i, j)]
                block = A[i][j]
                block.version += 1
                nb = block.nb
                for a in range(ti.p):
                    for b in range(tj.p):
                        wts = wz[:, a] if self._ones[j] else wz[:, a] * zj[:, b]
                        block.data[:, a, b] = np.bincount(inv, weights=wts, minlength=nb)
            if not row_i:
                continue
            D = A[i][i].data
            for a in range(ti.p):
                for b in range(a + 1):
                    wts = wz[:, a] if self._ones[i] else wz[:, a] * zi[:, b]
                    v = np.bincount(ti.refs, weights=wts, minlength=ti.nlevels)
                    D[:, a, b] = v
                    D[:, b, a] = v
        XY = self._XY
        XY[:, -1] = y
        XYw = XY * w[:, None]
        for j, Zt in enumerate(self._Zt):
            if terms is None or j in terms:
                A[K][j][...] = (Zt @ XYw).T
        if terms is None:
            A[K][K][...] = XY.T @ XYw

    def _refill_one_level_row(self, i: int, todo: list[int], row_i: bool, wz: np.ndarray,
                              zi: np.ndarray) -> None:
        """Blocks ``A[i][j]`` (``j`` in ``todo``) and, with ``row_i``, ``A[i][i]`` for a term
        with one level: ``Z_j' (W z_i)`` through ``Z_j'`` and ``z_i' W z_i`` as dense products
        (the same sums as the bincounts, in another order)."""
        A = self.A
        pi = self.reterms[i].p
        for j in todo:
            tj = self.reterms[j]
            block = A[i][j]
            block.version += 1
            T = self._Zt[j] @ wz                    # (levels_j * p_j, p_i)
            T = T.reshape(tj.nlevels, tj.p, pi)[block.cols]   # the pairs present, in order
            block.data[...] = np.transpose(T, (0, 2, 1))
        if row_i:
            M = wz.T @ zi
            lower = np.tril(M)
            A[i][i].data[0] = lower + np.tril(M, -1).T   # exactly symmetric

    def release_rows(self) -> None:
        """Free the per-row index structures (``Z_k'``, the pair inverses, ``[X y]``: about
        64 bytes per row for two terms) once ``A`` is filled for good; :meth:`update`,
        :meth:`set_X` and :meth:`refill_term` are then unavailable. For models that never
        refill ``A`` and must fit in memory (the approximate LMM on tens of millions of
        rows)."""
        self._Zt = []
        self._zt_order = []
        self._pair_inverse = {}
        self._XY = np.empty((0, self._XY.shape[1]))
        self.released = True

    def set_X(self, X: np.ndarray, refill: bool = True) -> None:
        """New values of the fixed-effects matrix (same shape; factor loadings on an ``sl()``
        smooth's columns change them): ``refill`` refills the ``[X y]`` row of blocks with
        the last weights and response (a caller that refills everything next, as PIRLS does,
        skips it)."""
        self._XY[:, :-1] = X
        if not refill:
            return
        K = len(self.reterms)
        XYw = self._XY * self._w[:, None]
        for j, Zt in enumerate(self._Zt):
            self.A[K][j][...] = (Zt @ XYw).T
        self.A[K][K][...] = self._XY.T @ XYw

    def refill_term(self, k: int, refill: bool = True) -> None:
        """Term ``k``'s values changed in the design: re-index it and (``refill``) refill its
        blocks with the last weights and response (called by ``RandomDesign.set_z``; a caller
        that refills every block with new weights next, as PIRLS does, skips the refill)."""
        self._index_term(k)
        if refill:
            self.update(self._w, self._y, terms=(k,))


def _transposed_z(refs: np.ndarray, p: int, q: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sparsity of ``Z_k'`` (``(levels * p) x n``) and, for each stored entry, its
    position in ``z.ravel()`` (so new values are put in without rebuilding the matrix)."""
    n = refs.shape[0]
    rows = (refs[:, None] * p + np.arange(p)[None, :]).ravel()
    cols = np.repeat(np.arange(n), p)
    positions = np.arange(1, n * p + 1, dtype=float)   # 1-based: no stored zeros
    Zt = sp.csr_matrix((positions, (rows, cols)), shape=(q, n))
    order = Zt.data.astype(np.int64) - 1
    Zt.data = Zt.data.astype(float)
    return Zt, order


def crossprod_blocks(reterms, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[list]:
    """Lower blocks of ``A`` (see :class:`CrossProducts`) for the terms' own values, filled
    once (a convenience for tests and one-off uses; models keep their ``CrossProducts``)."""
    return CrossProducts(reterms, X, y, w).A

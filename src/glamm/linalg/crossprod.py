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

from .. import jit
from .blocks import BlockDiag, BlockSparse

_KERNELS = "glamm.linalg._crossprod_kernels"

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
        #: the compiled refill's index arrays and buffers (built on first use) and the
        #: terms' values side by side (rebuilt when a term's values change)
        self._fused: dict | None = None
        self._z_all: np.ndarray | None = None
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
        self._z_all = None

    def update(self, w: np.ndarray, y: np.ndarray, terms: tuple[int, ...] | None = None,
               re_only: bool = False) -> None:
        """Refill the blocks for weights ``w`` and response ``y`` (same arrays, in place).

        Parameters
        ----------
        w, y : ndarray
            ``(n,)`` weights and response (kept, by reference, for :meth:`refill_term`).
        terms : tuple of int, optional
            Refill only the blocks that involve these terms (their rows and columns of ``A``;
            for values of ``z`` that changed while ``w`` and ``y`` did not). Default: all.
        re_only : bool
            Refill only the random-effects blocks (``Z'WZ``), leaving the ``[X y]`` row as it
            was: enough for the factor's random-effects part (``BlockedCholesky.update`` with
            ``re_only``), e.g. the Laplace log-determinant at a PIRLS mode.
        """
        self._w, self._y = w, y
        if terms is None and self._update_compiled(w, y, re_only):
            return
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
        if re_only:
            return
        XYw = XY * w[:, None]
        for j, Zt in enumerate(self._Zt):
            if terms is None or j in terms:
                A[K][j][...] = (Zt @ XYw).T
        if terms is None:
            A[K][K][...] = XY.T @ XYw

    def _update_compiled(self, w: np.ndarray, y: np.ndarray, re_only: bool = False) -> bool:
        """All blocks for weights ``w`` and response ``y`` in one compiled pass over the rows
        (:func:`glamm.linalg._crossprod_kernels.fill_crossproducts`: the same sums in the
        same order as the NumPy code below, so the same numbers); false (nothing done) where
        the kernels are off. ``re_only``: as in :meth:`update`."""
        K = len(self.reterms)
        k = jit.load(_KERNELS) if K else None
        if k is None:
            return False
        f = self._fused if self._fused is not None else self._fused_layout()
        if self._z_all is None:
            self._z_all = np.ascontiguousarray(np.hstack(self.design.z), dtype=float)
        XY = self._XY
        XY[:, -1] = y
        k.fill_crossproducts(f["refs"], self._z_all, f["col_off"], f["pair_terms"],
                             f["pair_pos"], np.ascontiguousarray(w, dtype=float), XY,
                             f["diag"], f["diag_off"], f["off"], f["off_off"], f["zxy"],
                             f["zxy_off"], f["XYw"], not re_only)
        A = self.A
        for i, ti in enumerate(self.reterms):
            D = A[i][i].data
            D[...] = f["diag"][f["diag_off"][i]:f["diag_off"][i + 1]].reshape(D.shape)
            for a in range(ti.p):
                for b in range(a):
                    D[:, b, a] = D[:, a, b]
            if re_only:
                continue
            A[K][i][...] = f["zxy"][f["zxy_off"][i]:f["zxy_off"][i + 1]].reshape(
                ti.q, XY.shape[1]).T
        for t, (i, j) in enumerate(f["pair_terms"]):
            block = A[i][j]
            block.version += 1
            block.data[...] = f["off"][f["off_off"][t]:f["off_off"][t + 1]].reshape(
                block.data.shape)
        if not re_only:
            A[K][K][...] = XY.T @ f["XYw"]
        return True

    def _fused_layout(self) -> dict:
        """Index arrays and flat output buffers of the compiled refill (once per object)."""
        terms = self.reterms
        n = terms[0].refs.shape[0]
        pairs = sorted(self._pair_inverse)

        def offsets(sizes: list[int]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

        diag_off = offsets([t.nlevels * t.p * t.p for t in terms])
        off_off = offsets([self.A[i][j].data.size for i, j in pairs])
        zxy_off = offsets([t.q * self._XY.shape[1] for t in terms])
        self._fused = {
            "refs": np.ascontiguousarray(np.vstack([t.refs for t in terms]), dtype=np.int64),
            "col_off": offsets([t.p for t in terms]),
            "pair_terms": np.array(pairs, dtype=np.int64).reshape(-1, 2),
            "pair_pos": (np.ascontiguousarray(np.vstack([self._pair_inverse[key]
                                                         for key in pairs]), dtype=np.int64)
                         if pairs else np.zeros((0, n), dtype=np.int64)),
            "diag": np.empty(diag_off[-1]), "diag_off": diag_off,
            "off": np.empty(off_off[-1]), "off_off": off_off,
            "zxy": np.empty(zxy_off[-1]), "zxy_off": zxy_off,
            "XYw": np.empty_like(self._XY),
        }
        return self._fused

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


#: the last few patterns of ``Z_k'`` by level-code array (a refit or a bootstrap builds models
#: on the same codes again and again): ``id(refs) -> (refs, indices, indptr, order)``
_ZT_PATTERNS: dict[int, tuple] = {}


def _transposed_z(refs: np.ndarray, p: int, q: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sparsity of ``Z_k'`` (``(levels * p) x n``) and, for each stored entry, its
    position in ``z.ravel()`` (so new values are put in without rebuilding the matrix). The
    pattern of the last level-code arrays seen is reused (the codes are never modified in
    place); each call returns a matrix of its own."""
    n = refs.shape[0]
    hit = _ZT_PATTERNS.get(id(refs))
    if hit is not None and hit[0] is refs and hit[4] == (p, q):
        _, indices, indptr, order, _ = hit
        Zt = sp.csr_matrix((np.empty(order.shape[0]), indices, indptr), shape=(q, n))
        return Zt, order
    Zt, order = _build_transposed_z(refs, p, q)
    for arr in (Zt.indices, Zt.indptr, order):   # shared from now on
        arr.flags.writeable = False
    if len(_ZT_PATTERNS) >= 8:
        _ZT_PATTERNS.pop(next(iter(_ZT_PATTERNS)))
    _ZT_PATTERNS[id(refs)] = (refs, Zt.indices, Zt.indptr, order, (p, q))
    return Zt, order


def _build_transposed_z(refs: np.ndarray, p: int, q: int) -> tuple[sp.csr_matrix, np.ndarray]:
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

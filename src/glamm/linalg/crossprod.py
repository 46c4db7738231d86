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

import weakref
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
        #: the structures read from the level codes alone, shared with every other
        #: cross-product object on the same terms
        self._rows = _row_index(self.reterms)
        A: list[list] = []
        for i, ti in enumerate(self.reterms):
            row: list[BlockSparse | BlockDiag] = []
            for j in range(i):
                tj = self.reterms[j]
                rows, cols = self._rows.patterns[(i, j)]
                row.append(BlockSparse(rows=rows, cols=cols,
                                       data=np.empty((rows.shape[0], ti.p, tj.p)),
                                       m_row=ti.nlevels, m_col=tj.nlevels))
            row.append(BlockDiag(np.empty((ti.nlevels, ti.p, ti.p))))
            A.append(row)
        pxy = X.shape[1] + 1
        A.append([np.empty((pxy, t.q)) for t in self.reterms] + [np.empty((pxy, pxy))])
        assert len(A) == K + 1
        self.A = A
        #: per term, ``Z_k'`` (sparse; built on first use: the compiled refill needs none)
        self._Zt: list[sp.csr_matrix | None] = [None] * K
        #: per term, the position in ``z.ravel()`` of each stored entry of ``Z_k'``
        self._zt_order: list[np.ndarray | None] = [None] * K
        #: per term, whether ``Z_k'`` holds other values than the design's
        self._zt_stale: list[bool] = [True] * K
        self._ones: list[bool] = [False] * K
        #: the compiled refill's offsets and buffers (built on first use)
        self._fused: dict | None = None
        for k in range(K):
            self._index_term(k)
        #: ``[X y]`` (the last response in the last column; rebuilt after :meth:`compact`)
        self._XY: np.ndarray | None = None
        self.update(w, y)

    @property
    def _pair_inverse(self) -> dict[tuple[int, int], np.ndarray]:
        """Per pair of terms ``(i, j)``, each row's stored block in ``A[i][j]``."""
        return {key: self._rows.pair_pos[t] for t, key in enumerate(self._rows.pairs)}

    def _xy(self) -> np.ndarray:
        """``[X y]`` (made on first use, and again after :meth:`compact`)."""
        if self._XY is None:
            self._XY = np.empty((self.X.shape[0], self.X.shape[1] + 1))
            self._XY[:, :-1] = self.X
            if getattr(self, "_y", None) is not None:
                self._XY[:, -1] = self._y
        return self._XY

    def compact(self) -> None:
        """Drop the per-row arrays that only a refill reads and a refill rebuilds: ``[X y]``,
        the shared row index's level pairs and stacked codes, the design's values side by
        side (about 70 bytes a row for two scalar terms). For a model that fills ``A``
        once (an LMM on many rows); the next refill (a new response, new values of ``z``)
        makes them again, with the same values, so the same numbers, and keeps them."""
        self._XY = None
        self._rows.release_rows()
        self.design.release_z_all()

    def _index_term(self, k: int) -> None:
        """What is read from term ``k``'s values: whether the term is a random intercept
        (``z == 1``: no products with ``z`` needed); ``Z_k'`` takes the values on its next
        use (:meth:`_zt`)."""
        t, z = self.reterms[k], self.design.z[k]
        self._zt_stale[k] = True
        self._ones[k] = t.p == 1 and bool(np.all(z == 1.0))

    def _zt(self, k: int) -> sp.csr_matrix:
        """``Z_k'`` (``(levels * p) x n``) with the design's current values of term ``k``
        (its pattern built on first use; the NumPy refill, :meth:`set_X` and the refills of
        one term read it)."""
        t, z = self.reterms[k], self.design.z[k]
        Zt, order = self._Zt[k], self._zt_order[k]
        if Zt is None or order is None:
            Zt, order = _transposed_z(t.refs, z.shape[1], t.q)
            self._Zt[k], self._zt_order[k] = Zt, order
            self._zt_stale[k] = True
        if self._zt_stale[k]:
            # same sparsity whatever the values: only the stored numbers change
            Zt.data[:] = z.ravel()[order]
            self._zt_stale[k] = False
        return Zt

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
        XY = self._xy()
        XY[:, -1] = y
        if re_only:
            return
        XYw = XY * w[:, None]
        for j in range(K):
            if terms is None or j in terms:
                A[K][j][...] = (self._zt(j) @ XYw).T
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
        rows = self._rows
        XY = self._xy()
        XY[:, -1] = y
        XYw = np.empty_like(XY)   # (W [X y]: a temporary, not kept between refills)
        diag, off = rows.buffers(f["diag_off"][-1], f["off_off"][-1])
        k.fill_crossproducts(rows.refs, self.design.z_all(), f["col_off"], rows.pair_array,
                             rows.pair_pos, np.ascontiguousarray(w, dtype=float), XY,
                             diag, f["diag_off"], off, f["off_off"], f["zxy"],
                             f["zxy_off"], XYw, not re_only)
        A = self.A
        for i, ti in enumerate(self.reterms):
            D = A[i][i].data
            D[...] = diag[f["diag_off"][i]:f["diag_off"][i + 1]].reshape(D.shape)
            for a in range(ti.p):
                for b in range(a):
                    D[:, b, a] = D[:, a, b]
            if re_only:
                continue
            A[K][i][...] = f["zxy"][f["zxy_off"][i]:f["zxy_off"][i + 1]].reshape(
                ti.q, XY.shape[1]).T
        for t, (i, j) in enumerate(rows.pairs):
            block = A[i][j]
            block.version += 1
            block.data[...] = off[f["off_off"][t]:f["off_off"][t + 1]].reshape(
                block.data.shape)
        if not re_only:
            A[K][K][...] = XY.T @ XYw
        return True

    def _fused_layout(self) -> dict:
        """Offsets and the ``Z'W[X y]`` buffer of the compiled refill (once per object; the
        level codes, the rows' pairs and the other buffers are the shared
        :class:`_RowIndex`'s)."""
        terms = self.reterms
        pairs = self._rows.pairs

        def offsets(sizes: list[int]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

        diag_off = offsets([t.nlevels * t.p * t.p for t in terms])
        off_off = offsets([self.A[i][j].data.size for i, j in pairs])
        zxy_off = offsets([t.q * (self.X.shape[1] + 1) for t in terms])
        self._fused = {
            "col_off": offsets([t.p for t in terms]),
            "diag_off": diag_off, "off_off": off_off,
            "zxy": np.empty(zxy_off[-1]), "zxy_off": zxy_off,
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
            T = self._zt(j) @ wz                    # (levels_j * p_j, p_i)
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
        self._rows = None   # type: ignore[assignment]
        self._XY = np.empty((0, self.X.shape[1] + 1))
        self.released = True

    def set_X(self, X: np.ndarray, refill: bool = True) -> None:
        """New values of the fixed-effects matrix (same shape; factor loadings on an ``sl()``
        smooth's columns change them): ``refill`` refills the ``[X y]`` row of blocks with
        the last weights and response (a caller that refills everything next, as PIRLS does,
        skips it)."""
        self.X = X
        XY = self._xy()
        XY[:, :-1] = X
        if not refill:
            return
        K = len(self.reterms)
        XYw = XY * self._w[:, None]
        for j in range(K):
            self.A[K][j][...] = (self._zt(j) @ XYw).T
        self.A[K][K][...] = XY.T @ XYw

    def refill_term(self, k: int, refill: bool = True) -> None:
        """Term ``k``'s values changed in the design: re-index it and (``refill``) refill its
        blocks with the last weights and response (called by ``RandomDesign.set_z``; a caller
        that refills every block with new weights next, as PIRLS does, skips the refill)."""
        self._index_term(k)
        if refill:
            self.update(self._w, self._y, terms=(k,))


class _RowIndex:
    """What the cross-products of a list of terms read from the level codes alone, shared by
    every :class:`CrossProducts` on the same terms (a GLMM's two working sets, a result's
    working copy of its model): per pair of terms ``(i, j)``, ``i > j`` (``pairs``, in
    that order), the level pairs that occur (``patterns[(i, j)]``: the block's ``rows`` and
    ``cols``, by column and then row) and each row's pair (``pair_pos[t]``, ``(pairs, n)``),
    the level codes side by side for the compiled refill (``refs``, built on first use)
    and the refill's scratch buffers of the random-effects blocks (their values are copied
    into each object's blocks at once). Nobody modifies the arrays (they stay writeable:
    the compiled kernels are typed for writeable arrays)."""

    def __init__(self, terms: list):
        #: the terms' level codes (what the cache checks: the same arrays)
        self.codes = [t.refs for t in terms]
        self.nlevels = [t.nlevels for t in terms]
        n = terms[0].refs.shape[0] if terms else 0
        self.n = n
        self.pairs = [(i, j) for i in range(len(terms)) for j in range(i)]
        self.pair_array = np.array(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.patterns: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._pair_pos: np.ndarray | None = None
        self._refs: np.ndarray | None = None
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None
        self._index_pairs(keep_patterns=True)

    def _index_pairs(self, keep_patterns: bool) -> None:
        """``pair_pos`` (and, with ``keep_patterns``, ``patterns``) from the codes."""
        pair_pos = np.empty((len(self.pairs), self.n), dtype=np.int64)
        for t, (i, j) in enumerate(self.pairs):
            m_i = self.nlevels[i]
            key = self.codes[j].astype(np.int64) * m_i + self.codes[i]  # column-major order
            uniq, inv = np.unique(key, return_inverse=True)
            pair_pos[t] = inv.ravel()
            if keep_patterns:
                self.patterns[(i, j)] = (uniq % m_i, uniq // m_i)
        self._pair_pos = pair_pos

    @property
    def pair_pos(self) -> np.ndarray:
        """``(pairs, n)``: each row's stored block of each pair of terms."""
        if self._pair_pos is None:
            self._index_pairs(keep_patterns=False)   # (the same np.unique: the same codes)
        assert self._pair_pos is not None
        return self._pair_pos

    def release_rows(self) -> None:
        """Drop the per-row arrays (``pair_pos``, ``refs``, the buffers); they are made
        again on their next use."""
        self._pair_pos = self._refs = None
        self._buffers = None

    def matches(self, terms: list) -> bool:
        return len(terms) == len(self.codes) and all(
            t.refs is c and t.nlevels == m for t, c, m in zip(terms, self.codes, self.nlevels))

    @property
    def refs(self) -> np.ndarray:
        """``(K, n)`` level codes (int64) of the compiled refill (made on first use)."""
        if self._refs is None:
            self._refs = np.ascontiguousarray(np.vstack(self.codes), dtype=np.int64)
        return self._refs

    def buffers(self, n_diag: int, n_off: int) -> tuple[np.ndarray, np.ndarray]:
        """Scratch for the compiled refill's diagonal and pair blocks (sizes by the terms'
        ``p``, the same for every object on these terms)."""
        if self._buffers is None or self._buffers[0].shape[0] != n_diag \
                or self._buffers[1].shape[0] != n_off:
            self._buffers = (np.empty(n_diag), np.empty(n_off))
        return self._buffers


#: the row indexes in use, by the identities of their terms' level-code arrays (an entry
#: lives as long as a cross-product object holds it, and holds the arrays it is keyed by)
_ROW_INDEXES: weakref.WeakValueDictionary[tuple[int, ...], _RowIndex] = \
    weakref.WeakValueDictionary()


def _row_index(terms: list) -> _RowIndex:
    """The shared :class:`_RowIndex` of ``terms``, made if no object holds one."""
    key = tuple(id(t.refs) for t in terms)
    hit = _ROW_INDEXES.get(key)
    if hit is not None and hit.matches(terms):
        return hit
    index = _RowIndex(terms)
    _ROW_INDEXES[key] = index
    return index


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

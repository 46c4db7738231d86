"""Storage types for the blocks of the cross-product matrix ``A`` and its Cholesky factor ``L``.

Blocks are indexed by random-effects terms (each term's columns are ``levels x p``) plus one
final dense block for ``[X y]``. A block is one of:

- :class:`BlockDiag`: ``m`` dense ``p x p`` blocks on the diagonal (``Z_k' Z_k`` for any term; the
  factor's diagonal block of the first term, and of a term nested in earlier ones);
- :class:`BlockSparse`: a fixed pattern of ``p_i x p_j`` blocks at (row level, column level)
  pairs, stored column by column (cross-products of crossed or nested terms);
- ``numpy.ndarray``: dense (blocks that fill in, and everything touching ``[X y]``).

The pattern of a sparse block never changes after the symbolic phase; only its ``data`` is
refilled for each ``theta``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class BlockDiag:
    """``m`` diagonal blocks of size ``p x p``; ``data`` has shape ``(m, p, p)``."""

    data: np.ndarray

    @property
    def m(self) -> int:
        return self.data.shape[0]

    @property
    def p(self) -> int:
        return self.data.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        n = self.m * self.p
        return (n, n)

    def to_dense(self) -> np.ndarray:
        m, p = self.m, self.p
        out = np.zeros((m * p, m * p))
        idx = np.arange(m)[:, None] * p + np.arange(p)[None, :]
        out[idx[:, :, None], idx[:, None, :]] = self.data
        return out


@dataclass
class BlockSparse:
    """A sparse block matrix with ``p_row x p_col`` dense blocks at fixed level pairs.

    ``rows`` and ``cols`` are the level indices of the stored blocks, sorted by column and then
    row; ``data`` has shape ``(nb, p_row, p_col)``.
    """

    rows: np.ndarray
    cols: np.ndarray
    data: np.ndarray
    m_row: int
    m_col: int
    _csr_cache: tuple | None = field(default=None, repr=False)
    _coords_cache: tuple | None = field(default=None, repr=False)
    _dense_cache: tuple | None = field(default=None, repr=False)
    #: bumped by whoever refills ``data`` in place (the cross-products' refills, the factor's
    #: fills and divisions), to invalidate caches (:meth:`to_csr`, :meth:`to_dense`)
    version: int = 0

    @property
    def p_row(self) -> int:
        return self.data.shape[1]

    @property
    def p_col(self) -> int:
        return self.data.shape[2]

    @property
    def nb(self) -> int:
        return self.rows.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.m_row * self.p_row, self.m_col * self.p_col)

    @property
    def colptr(self) -> np.ndarray:
        return np.searchsorted(self.cols, np.arange(self.m_col + 1))

    def element_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column (element level) of every entry of ``data.ravel()`` (computed once;
        for ``1 x 1`` blocks with int64 levels, ``rows`` and ``cols`` themselves). Read-only
        by contract: callers never modify them."""
        if self._coords_cache is None:
            if self.p_row == 1 and self.p_col == 1 and self.rows.dtype == np.int64 \
                    and self.cols.dtype == np.int64:
                self._coords_cache = (self.rows, self.cols)
            else:
                self._coords_cache = self._element_coords()
        return self._coords_cache

    def _element_coords(self) -> tuple[np.ndarray, np.ndarray]:
        pr, pc = self.p_row, self.p_col
        er = (self.rows[:, None, None] * pr + np.arange(pr)[None, :, None]) + np.zeros(
            (1, 1, pc), dtype=np.int64
        )
        ec = (self.cols[:, None, None] * pc + np.arange(pc)[None, None, :]) + np.zeros(
            (1, pr, 1), dtype=np.int64
        )
        return er.ravel(), ec.ravel()

    def to_csr(self) -> sp.csr_matrix:
        """Element-level CSR matrix with the current values. The structure and the matrix
        object are built once; a call copies the current ``data`` into it, so a result is
        valid until the next call (callers use it at once, or keep it until they are told
        the values changed, as the factor's ``refresh`` is), and must not be modified. A
        block whose writers bump :attr:`version` (those of ``A`` and of the factor ``L``)
        skips the copy when ``version`` has not moved since the last call; a block at
        version 0 is copied every time."""
        if self._csr_cache is None:
            pattern = self._csr_pattern()
            mat = sp.csr_matrix((self.data.reshape(-1)[pattern.order], pattern.indices,
                                 pattern.indptr), shape=self.shape)
            self._csr_cache = (pattern, mat, self.version)
            return mat
        pattern, mat, version = self._csr_cache
        if version == self.version and version > 0:
            return mat
        np.take(self.data.reshape(-1), pattern.order, out=mat.data)
        self._csr_cache = (pattern, mat, self.version)
        return mat

    def _csr_pattern(self) -> _CsrPattern:
        """The CSR structure of this pattern, shared by every block on the same ``rows`` and
        ``cols`` arrays (a factor's block without fill and the block of ``A`` it copies, a
        GLMM's two working sets)."""
        key = (id(self.rows), id(self.cols), self.p_row, self.p_col, self.m_row, self.m_col)
        hit = _CSR_PATTERNS.get(key)
        if hit is not None and hit.rows is self.rows and hit.cols is self.cols:
            return hit
        er, ec = self.element_coords()
        order = np.lexsort((ec, er))
        indptr = np.searchsorted(er[order], np.arange(self.shape[0] + 1)).astype(np.int32)
        pattern = _CsrPattern(self.rows, self.cols, order, ec[order].astype(np.int32), indptr)
        _CSR_PATTERNS[key] = pattern
        return pattern

    def t_matvec(self, v: np.ndarray) -> np.ndarray:
        """``B' v`` straight from the blocks (no sparse matrix)."""
        pr, pc = self.p_row, self.p_col
        if pr == 1 and pc == 1:
            return np.bincount(self.cols, weights=self.data[:, 0, 0] * v[self.rows],
                               minlength=self.m_col)
        contrib = np.einsum("bij,bi->bj", self.data, v.reshape(self.m_row, pr)[self.rows])
        out = np.empty((self.m_col, pc))
        for j in range(pc):
            out[:, j] = np.bincount(self.cols, weights=contrib[:, j], minlength=self.m_col)
        return out.ravel()

    def to_dense(self, cached: bool = False) -> np.ndarray:
        """Dense copy. With ``cached`` the copy is reused until ``version`` changes (only for
        blocks whose refills bump ``version``, i.e. blocks of ``A``; the blocks of ``L`` change
        in place without it); do not modify a cached result."""
        if cached and self._dense_cache is not None and self._dense_cache[0] == self.version:
            return self._dense_cache[1]
        out = np.zeros(self.shape)
        er, ec = self.element_coords()
        out[er, ec] = self.data.reshape(-1)
        if cached:
            self._dense_cache = (self.version, out)
        return out

    def block_positions(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Index into ``data`` of the blocks at ``(rows, cols)``; all must be in the pattern."""
        key = self.cols.astype(np.int64) * self.m_row + self.rows
        want = np.asarray(cols, dtype=np.int64) * self.m_row + np.asarray(rows, dtype=np.int64)
        pos = np.searchsorted(key, want)
        if np.any(pos >= key.shape[0]) or np.any(key[np.minimum(pos, key.shape[0] - 1)] != want):
            raise AssertionError("block outside the symbolic pattern")
        return pos


class _CsrPattern:
    """A sparse block's element-level CSR structure: the order of its entries and CSR
    ``indices``/``indptr`` (read-only), for the block pattern ``rows``, ``cols`` (held, so
    the cache's keys stay valid while it lives)."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, order: np.ndarray,
                 indices: np.ndarray, indptr: np.ndarray):
        self.rows, self.cols, self.order = rows, cols, order
        self.indices, self.indptr = indices, indptr
        for arr in (order, indices, indptr):
            arr.flags.writeable = False


#: the CSR structures in use, by the identities of their blocks' pattern arrays (an entry
#: lives as long as a block's cached matrix holds it)
_CSR_PATTERNS: weakref.WeakValueDictionary[tuple, _CsrPattern] = weakref.WeakValueDictionary()


def copy_blocks(A: list[list]) -> list[list]:
    """A copy of the blocks of ``A`` that shares nothing with them."""
    def one(blk):
        if isinstance(blk, BlockSparse):
            return BlockSparse(rows=blk.rows.copy(), cols=blk.cols.copy(), data=blk.data.copy(),
                               m_row=blk.m_row, m_col=blk.m_col)
        if isinstance(blk, BlockDiag):
            return BlockDiag(blk.data.copy())
        return blk.copy()
    return [[one(b) for b in row] for row in A]


def to_dense(block) -> np.ndarray:
    """Dense copy of any block type."""
    if isinstance(block, np.ndarray):
        return block
    return block.to_dense()

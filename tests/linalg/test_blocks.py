"""The block storage types (glamm.linalg.blocks) against dense NumPy: shapes, dense copies,
the element-level CSR form, the cached dense copy and its invalidation by ``version``, and the
lookup of block positions in the fixed pattern."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla

from glamm.linalg.blocks import BlockDiag, BlockSparse, to_dense


def _sparse(rng, m_row=4, m_col=3, p_row=2, p_col=3, pairs=((0, 0), (3, 0), (1, 1), (2, 2),
                                                                (3, 2))):
    """A BlockSparse with blocks at ``pairs`` (row level, column level) given column-major."""
    rows, cols = np.array(pairs, dtype=np.int64).T
    data = rng.normal(size=(len(pairs), p_row, p_col))
    return BlockSparse(rows=rows, cols=cols, data=data, m_row=m_row, m_col=m_col)


def _dense_of_sparse(B: BlockSparse) -> np.ndarray:
    """Written out block by block."""
    out = np.zeros((B.m_row * B.p_row, B.m_col * B.p_col))
    for r, c, blk in zip(B.rows, B.cols, B.data):
        out[r * B.p_row:(r + 1) * B.p_row, c * B.p_col:(c + 1) * B.p_col] = blk
    return out


# --------------------------------------------------------------------------- BlockDiag
@pytest.mark.parametrize("m, p", [(1, 1), (5, 1), (4, 3), (1, 6)])
def test_blockdiag_shape_and_dense(m, p):
    data = np.random.default_rng(m * 10 + p).normal(size=(m, p, p))
    D = BlockDiag(data)
    assert (D.m, D.p, D.shape) == (m, p, (m * p, m * p))
    np.testing.assert_array_equal(D.to_dense(), sla.block_diag(*data))
    np.testing.assert_array_equal(to_dense(D), D.to_dense())


def test_blockdiag_dense_is_a_copy():
    D = BlockDiag(np.ones((2, 2, 2)))
    dense = D.to_dense()
    dense[0, 0] = 5.0
    assert D.data[0, 0, 0] == 1.0


# --------------------------------------------------------------------------- BlockSparse
def test_blocksparse_shapes():
    B = _sparse(np.random.default_rng(0))
    assert (B.p_row, B.p_col, B.nb, B.shape) == (2, 3, 5, (8, 9))
    # first block of every column level, and the end
    np.testing.assert_array_equal(B.colptr, [0, 2, 3, 5])


def test_blocksparse_colptr_with_an_empty_column():
    B = _sparse(np.random.default_rng(1), m_col=4, pairs=((0, 0), (2, 2), (1, 3)))
    np.testing.assert_array_equal(B.colptr, [0, 1, 1, 2, 3])


@pytest.mark.parametrize("p_row, p_col", [(1, 1), (2, 3), (3, 1)])
def test_blocksparse_dense_and_csr(p_row, p_col):
    B = _sparse(np.random.default_rng(2), p_row=p_row, p_col=p_col)
    want = _dense_of_sparse(B)
    np.testing.assert_array_equal(B.to_dense(), want)
    np.testing.assert_array_equal(to_dense(B), want)
    csr = B.to_csr()
    assert csr.shape == B.shape
    assert csr.nnz == B.data.size
    np.testing.assert_array_equal(csr.toarray(), want)
    csr.check_format(full_check=True)
    assert csr.has_sorted_indices


def test_blocksparse_element_coords_address_data():
    B = _sparse(np.random.default_rng(3))
    er, ec = B.element_coords()
    assert er.shape == ec.shape == (B.data.size,)
    np.testing.assert_array_equal(_dense_of_sparse(B)[er, ec], B.data.ravel())
    assert B.element_coords() is B.element_coords()   # computed once


def test_blocksparse_csr_follows_new_values():
    """The CSR structure is built once; each call carries the current ``data``."""
    rng = np.random.default_rng(4)
    B = _sparse(rng)
    B.to_csr()
    B.data[...] = rng.normal(size=B.data.shape)
    np.testing.assert_array_equal(B.to_csr().toarray(), _dense_of_sparse(B))


@pytest.mark.parametrize("p_row, p_col", [(1, 1), (2, 3), (3, 1)])
def test_blocksparse_t_matvec(p_row, p_col):
    rng = np.random.default_rng(6)
    B = _sparse(rng, p_row=p_row, p_col=p_col)
    v = rng.normal(size=B.shape[0])
    np.testing.assert_allclose(B.t_matvec(v), _dense_of_sparse(B).T @ v, rtol=1e-13,
                               atol=1e-14)


def test_blocksparse_cached_dense_follows_version():
    rng = np.random.default_rng(5)
    B = _sparse(rng)
    first = B.to_dense(cached=True)
    assert B.to_dense(cached=True) is first
    B.data[...] = rng.normal(size=B.data.shape)
    # documented: without a version bump the cached copy is reused ...
    assert B.to_dense(cached=True) is first
    # ... while an uncached copy always has the current values
    np.testing.assert_array_equal(B.to_dense(), _dense_of_sparse(B))
    B.version += 1
    fresh = B.to_dense(cached=True)
    assert fresh is not first
    np.testing.assert_array_equal(fresh, _dense_of_sparse(B))


def test_blocksparse_empty_pattern():
    B = BlockSparse(rows=np.zeros(0, dtype=np.int64), cols=np.zeros(0, dtype=np.int64),
                    data=np.zeros((0, 2, 1)), m_row=3, m_col=2)
    assert B.shape == (6, 2)
    np.testing.assert_array_equal(B.to_dense(), np.zeros((6, 2)))
    assert B.to_csr().nnz == 0
    np.testing.assert_array_equal(B.colptr, [0, 0, 0])
    assert B.block_positions(np.zeros(0), np.zeros(0)).shape == (0,)
    with pytest.raises(AssertionError):
        B.block_positions([0], [0])


def test_block_positions():
    B = _sparse(np.random.default_rng(6))
    pairs = list(zip(B.rows.tolist(), B.cols.tolist()))
    order = [3, 0, 4, 4, 1]
    rows = [pairs[i][0] for i in order]
    cols = [pairs[i][1] for i in order]
    np.testing.assert_array_equal(B.block_positions(np.array(rows), np.array(cols)), order)


@pytest.mark.parametrize("row, col", [(1, 0), (0, 1), (3, 1), (0, 2), (3, 3), (4, 2)])
def test_block_positions_outside_the_pattern(row, col):
    B = _sparse(np.random.default_rng(7))
    with pytest.raises(AssertionError, match="outside the symbolic pattern"):
        B.block_positions(np.array([0, row]), np.array([0, col]))


def test_to_dense_of_an_array_is_the_array():
    a = np.arange(6.0).reshape(2, 3)
    assert to_dense(a) is a

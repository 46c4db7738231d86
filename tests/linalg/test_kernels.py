"""The numeric operations of the blocked factor (glamm.linalg.kernels), one at a time, on
small hand-made blocks against dense NumPy. Each operation is built as the factor builds it
(target block, source blocks, term indices) and run with a list of per-term ``lambda``s."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

from glamm.linalg.blocks import BlockDiag, BlockSparse
from glamm.linalg.kernels import (
    _Chol,
    _Copy,
    _dense_cholesky,
    _DenseUpdate,
    _enumerate_pairs,
    _FillDiag,
    _FillFixed,
    _FillOff,
    _FirstTermUpdate,
    _lambda_sandwich,
    _PairUpdate,
    _RDiv,
    _sparse_or_dense,
)


# --------------------------------------------------------------------------- helpers
def _sym_blockdiag(rng, m, p) -> BlockDiag:
    data = rng.normal(size=(m, p, p))
    return BlockDiag(data @ np.transpose(data, (0, 2, 1)) + p * np.eye(p))


def _lower_blockdiag(rng, m, p) -> BlockDiag:
    data = np.tril(rng.normal(size=(m, p, p)))
    idx = np.arange(p)
    data[:, idx, idx] = rng.uniform(1.0, 2.0, size=(m, p))
    return BlockDiag(data)


def _random_sparse(rng, m_row, m_col, p_row, p_col, density=0.4, pattern=None) -> BlockSparse:
    """Random pattern (every column level has a block unless ``pattern`` is given)."""
    if pattern is None:
        P = rng.random((m_row, m_col)) < density
        P[rng.integers(0, m_row, size=m_col), np.arange(m_col)] = True
    else:
        P = pattern
    cols, rows = np.nonzero(P.T)          # column-major, sorted by column then row
    return BlockSparse(rows=rows.astype(np.int64), cols=cols.astype(np.int64),
                       data=rng.normal(size=(rows.size, p_row, p_col)), m_row=m_row,
                       m_col=m_col)


def _level_pattern(B: BlockSparse) -> np.ndarray:
    P = np.zeros((B.m_row, B.m_col), dtype=bool)
    P[B.rows, B.cols] = True
    return P


def _kron(m, lam):
    return np.kron(np.eye(m), lam)


def _lam(rng, p, iso=False):
    return rng.uniform(0.5, 2.0) * np.eye(p) if iso else rng.normal(size=(p, p)) + np.eye(p)


def _level_lower_mask(m, p) -> np.ndarray:
    """Elements in level blocks at or below the level diagonal."""
    lev = np.arange(m * p) // p
    return lev[:, None] >= lev[None, :]


# --------------------------------------------------------------------------- fills
@pytest.mark.parametrize("p, iso", [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize("dense_target", [False, True])
def test_fill_diag(p, iso, dense_target):
    rng = np.random.default_rng(p + 10 * iso)
    A = _sym_blockdiag(rng, 4, p)
    lam = _lam(rng, p, iso)
    L = np.full((4 * p, 4 * p), 7.0) if dense_target else BlockDiag(np.zeros((4, p, p)))
    _FillDiag(L, A, 1, iso).run([None, lam])
    want = _kron(4, lam).T @ A.to_dense() @ _kron(4, lam) + np.eye(4 * p)
    np.testing.assert_allclose(L if dense_target else L.to_dense(), want, rtol=1e-12)


@pytest.mark.parametrize("pr, pc, iso_i, iso_j", [(1, 1, False, False), (2, 3, False, False),
                                                   (2, 1, False, False), (1, 3, False, False),
                                                   (2, 3, True, False), (2, 3, False, True),
                                                   (2, 3, True, True)])
@pytest.mark.parametrize("target", ["dense", "sparse"])
def test_fill_off(pr, pc, iso_i, iso_j, target):
    rng = np.random.default_rng(pr * 7 + pc)
    A = _random_sparse(rng, 5, 4, pr, pc)
    li, lj = _lam(rng, pr, iso_i), _lam(rng, pc, iso_j)
    if target == "dense":
        L = np.full(A.shape, 3.0)
    else:   # a larger pattern (fill-in): the extra blocks must be zeroed
        extra = _level_pattern(A) | (rng.random((5, 4)) < 0.3)
        L = _random_sparse(rng, 5, 4, pr, pc, pattern=extra)
    _FillOff(L, A, 0, 1, iso_i, iso_j).run([li, lj])
    want = _kron(5, li).T @ A.to_dense() @ _kron(4, lj)
    np.testing.assert_allclose(L if target == "dense" else L.to_dense(), want, rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("p, iso", [(1, False), (2, False), (3, True)])
def test_fill_fixed(p, iso):
    rng = np.random.default_rng(p)
    A = rng.normal(size=(3, 5 * p))
    lam = _lam(rng, p, iso)
    L = np.zeros_like(A)
    op = _FillFixed(L, A, 0, p)
    op.iso = iso
    op.run([lam])
    np.testing.assert_allclose(L, A @ _kron(5, lam), rtol=1e-12)


def test_copy():
    A = np.arange(6.0).reshape(2, 3)
    L = np.zeros((2, 3))
    _Copy(L, A).run([])
    np.testing.assert_array_equal(L, A)
    assert not np.shares_memory(L, A)


# --------------------------------------------------------------------------- rank updates
def _brute_pairs(A: BlockSparse, B: BlockSparse, lower_only: bool):
    return sorted((a, b) for a in range(A.nb) for b in range(B.nb)
                  if A.cols[a] == B.cols[b] and (not lower_only or A.rows[a] >= B.rows[b]))


@pytest.mark.parametrize("lower_only", [False, True])
def test_enumerate_pairs(lower_only):
    rng = np.random.default_rng(3)
    A = _random_sparse(rng, 6, 5, 1, 1)
    B = A if lower_only else _random_sparse(rng, 4, 5, 2, 1)
    ia, ib = _enumerate_pairs(A, B, lower_only)
    assert list(zip(ia.tolist(), ib.tolist())) == _brute_pairs(A, B, lower_only)


@pytest.mark.parametrize("pa, pb, pc", [(1, 1, 1), (2, 3, 2), (1, 2, 1)])
@pytest.mark.parametrize("compiled", [True, False])
def test_pair_update_dense_target(pa, pb, pc, compiled):
    from glamm import jit

    rng = np.random.default_rng(pa + pb + pc)
    A = _random_sparse(rng, 5, 6, pa, pc)
    B = _random_sparse(rng, 4, 6, pb, pc)
    T = rng.normal(size=(5 * pa, 4 * pb))
    want = T - A.to_dense() @ B.to_dense().T
    jit.use_kernels(compiled)
    try:
        _PairUpdate(T, A, B, lower_only=False).run([])
    finally:
        jit.use_kernels(None)
    np.testing.assert_allclose(T, want, rtol=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_pair_update_lower_only_diagonal_target(p):
    """``T -= A A'`` on the level blocks at or below the diagonal; the rest is untouched."""
    rng = np.random.default_rng(p)
    A = _random_sparse(rng, 5, 6, p, 2)
    T0 = rng.normal(size=(5 * p, 5 * p))
    T = T0.copy()
    _PairUpdate(T, A, A, lower_only=True).run([])
    mask = _level_lower_mask(5, p)
    want = T0 - A.to_dense() @ A.to_dense().T
    np.testing.assert_allclose(T[mask], want[mask], rtol=1e-12)
    np.testing.assert_array_equal(T[~mask], T0[~mask])


def test_pair_update_blockdiag_and_sparse_targets():
    """Nested levels (each column level meets one row level): the products fill a BlockDiag
    and a BlockSparse target with the pattern of the product."""
    rng = np.random.default_rng(5)
    # rows of A: 3 coarse levels, each of 6 columns belongs to one
    A = _random_sparse(rng, 3, 6, 2, 1, pattern=np.eye(3, dtype=bool)[np.arange(6) // 2].T)
    D0 = rng.normal(size=(3, 2, 2))
    D = BlockDiag(D0.copy())
    _PairUpdate(D, A, A, lower_only=True).run([])
    np.testing.assert_allclose(D.to_dense(), sla.block_diag(*D0) - A.to_dense() @ A.to_dense().T,
                               rtol=1e-12)
    B = _random_sparse(rng, 4, 6, 1, 1)
    pattern = (_level_pattern(A).astype(int) @ _level_pattern(B).T.astype(int)) > 0
    T = _random_sparse(rng, 3, 4, 2, 1, pattern=pattern)
    T0 = T.to_dense()
    _PairUpdate(T, A, B, lower_only=False).run([])
    np.testing.assert_allclose(T.to_dense(), T0 - A.to_dense() @ B.to_dense().T, rtol=1e-12)


def test_pair_update_outside_a_blockdiag_target_is_refused():
    rng = np.random.default_rng(6)
    A = _random_sparse(rng, 3, 2, 1, 1, pattern=np.ones((3, 2), dtype=bool))
    with pytest.raises(AssertionError):
        _PairUpdate(BlockDiag(np.zeros((3, 1, 1))), A, A, lower_only=True)


def _first_term_case(rng, pa, pb, target, same):
    """Blocks of A below a scalar first term (``m0`` levels): ``A_a`` (rows of term a) and
    ``A_b`` (rows of term b), and the first diagonal block of L after its factorization."""
    m0, ma, mb = 8, 5, 4
    A_a = _random_sparse(rng, ma, m0, pa, 1)
    A_b = A_a if same else _random_sparse(rng, mb, m0, pb, 1)
    D = BlockDiag(rng.uniform(1.0, 3.0, size=(m0, 1, 1)))
    shape = (ma * pa, (ma if same else mb) * pb)
    if target == "dense":
        T = rng.normal(size=shape)
    else:
        pattern = (_level_pattern(A_a).astype(int) @ _level_pattern(A_b).T.astype(int)) > 0
        T = _random_sparse(rng, ma, ma if same else mb, pa, pb, pattern=pattern)
    return A_a, A_b, D, T


def _first_term_want(T0, A_a, A_b, D, lams, a, b, pa, pb):
    la = _kron(A_a.shape[0] // pa, lams[a]) if a is not None else np.eye(A_a.shape[0])
    lb = _kron(A_b.shape[0] // pb, lams[b]) if b is not None else np.eye(A_b.shape[0])
    Aa = A_a.to_dense() if isinstance(A_a, BlockSparse) else A_a
    Ab = A_b.to_dense() if isinstance(A_b, BlockSparse) else A_b
    w = 1.0 / D.data[:, 0, 0] ** 2
    return T0 - lams[0][0, 0] ** 2 * la.T @ (Aa * w) @ Ab.T @ lb


@pytest.mark.parametrize("pa, pb", [(1, 1), (2, 2), (1, 3), (2, 1)])
@pytest.mark.parametrize("sparse_a, sparse_b", [(True, True), (True, False), (False, True),
                                                (False, False)])
@pytest.mark.parametrize("iso", [False, True])
def test_first_term_update_dense_target(pa, pb, sparse_a, sparse_b, iso):
    rng = np.random.default_rng(pa * 3 + pb)
    A_a, A_b, D, T = _first_term_case(rng, pa, pb, "dense", same=False)
    lams = [np.array([[1.3]]), _lam(rng, pa, iso), _lam(rng, pb, iso)]
    want = _first_term_want(T, A_a, A_b, D, lams, 1, 2, pa, pb)
    op = _FirstTermUpdate(T, A_a, A_b, D, 1, 2, False, sparse_a, sparse_b)
    op.iso_a = op.iso_b = iso
    op.run(lams)
    np.testing.assert_allclose(T, want, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_first_term_update_sparse_and_blockdiag_targets(p):
    rng = np.random.default_rng(20 + p)
    A_a, A_b, D, T = _first_term_case(rng, p, p, "sparse", same=False)
    lams = [np.array([[0.7]]), _lam(rng, p), _lam(rng, p)]
    want = _first_term_want(T.to_dense(), A_a, A_b, D, lams, 1, 2, p, p)
    _FirstTermUpdate(T, A_a, A_b, D, 1, 2, False).run(lams)
    np.testing.assert_allclose(T.to_dense(), want, rtol=1e-11, atol=1e-12)
    # nested: A_a's column levels each meet one row level, so A_a A_a' is block diagonal
    A_n = _random_sparse(rng, 4, 8, p, 1, pattern=np.eye(4, dtype=bool)[np.arange(8) // 2].T)
    Dg = BlockDiag(rng.normal(size=(4, p, p)))
    want = _first_term_want(Dg.to_dense(), A_n, A_n, D, lams, 1, 1, p, p)
    _FirstTermUpdate(Dg, A_n, A_n, D, 1, 1, True).run(lams)
    np.testing.assert_allclose(Dg.to_dense(), want, rtol=1e-11, atol=1e-12)


def test_first_term_update_lower_only():
    rng = np.random.default_rng(30)
    A_a, _, D, T = _first_term_case(rng, 2, 2, "dense", same=True)
    T0 = T.copy()
    lams = [np.array([[1.1]]), _lam(rng, 2)]
    want = _first_term_want(T0, A_a, A_a, D, lams, 1, 1, 2, 2)
    _FirstTermUpdate(T, A_a, A_a, D, 1, 1, True).run(lams)
    mask = _level_lower_mask(5, 2)
    np.testing.assert_allclose(T[mask], want[mask], rtol=1e-11)
    np.testing.assert_array_equal(T[~mask], T0[~mask])


def test_first_term_update_fixed_row():
    """The ``[X y]`` row (``a``/``b`` None, a dense block of A, no lambda)."""
    rng = np.random.default_rng(31)
    A_b = _random_sparse(rng, 4, 8, 2, 1)
    A_K = rng.normal(size=(3, 8))
    D = BlockDiag(rng.uniform(1.0, 3.0, size=(8, 1, 1)))
    lams = [np.array([[0.9]]), _lam(rng, 2)]
    T = rng.normal(size=(3, 8))
    want = T - 0.81 * (A_K / D.data[:, 0, 0] ** 2) @ A_b.to_dense().T @ _kron(4, lams[1])
    _FirstTermUpdate(T, A_K, A_b, D, None, 1, False, False, True).run(lams)
    np.testing.assert_allclose(T, want, rtol=1e-11)
    T2 = rng.normal(size=(3, 3))
    want2 = T2 - 0.81 * (A_K / D.data[:, 0, 0] ** 2) @ A_K.T
    _FirstTermUpdate(T2, A_K, A_K, D, None, None, True, False, False).run(lams)
    np.testing.assert_allclose(T2, want2, rtol=1e-11)


def test_first_term_update_refresh():
    """``refresh`` picks up new values of A (same pattern); without it the old ones stay."""
    rng = np.random.default_rng(32)
    A_a, A_b, D, T = _first_term_case(rng, 1, 2, "dense", same=False)
    lams = [np.array([[1.2]]), _lam(rng, 1), _lam(rng, 2)]
    op = _FirstTermUpdate(T, A_a, A_b, D, 1, 2, False)
    A_a.data *= 2.0
    T0 = T.copy()
    op.run(lams)
    stale = T.copy()
    T[...] = T0
    op.refresh()
    op.run(lams)
    want = _first_term_want(T0, A_a, A_b, D, lams, 1, 2, 1, 2)
    np.testing.assert_allclose(T, want, rtol=1e-11)
    assert not np.allclose(stale, want)


@pytest.mark.parametrize("pa, pb", [(1, 1), (2, 3)])
def test_lambda_sandwich(pa, pb):
    rng = np.random.default_rng(pa + pb)
    P = rng.normal(size=(4 * pa, 3 * pb))
    la, lb = rng.normal(size=(pa, pa)), rng.normal(size=(pb, pb))
    np.testing.assert_allclose(_lambda_sandwich(P, la, pa, lb, pb),
                               _kron(4, la).T @ P @ _kron(3, lb), rtol=1e-12)
    np.testing.assert_allclose(_lambda_sandwich(P, None, pa, lb, pb), P @ _kron(3, lb))
    np.testing.assert_allclose(_lambda_sandwich(P, la, pa, None, pb), _kron(4, la).T @ P)
    np.testing.assert_array_equal(_lambda_sandwich(P, None, pa, None, pb), P)


def test_sparse_or_dense():
    rng = np.random.default_rng(40)
    B = _random_sparse(rng, 3, 4, 2, 1)
    assert sp.issparse(_sparse_or_dense(B, True))
    np.testing.assert_array_equal(_sparse_or_dense(B, True).toarray(), B.to_dense())
    np.testing.assert_array_equal(_sparse_or_dense(B, False), B.to_dense())
    a = np.ones((2, 2))
    assert _sparse_or_dense(a, True) is a


@pytest.mark.parametrize("kinds", [("sparse", "dense"), ("dense", "sparse"), ("dense", "dense")])
def test_dense_update(kinds):
    rng = np.random.default_rng(41)
    A = _random_sparse(rng, 5, 4, 2, 1) if kinds[0] == "sparse" else rng.normal(size=(10, 4))
    B = _random_sparse(rng, 3, 4, 1, 1) if kinds[1] == "sparse" else rng.normal(size=(3, 4))
    Ad = A.to_dense() if isinstance(A, BlockSparse) else A
    Bd = B.to_dense() if isinstance(B, BlockSparse) else B
    T = rng.normal(size=(10, 3))
    want = T - Ad @ Bd.T
    _DenseUpdate(T, A, B).run([])
    np.testing.assert_allclose(T, want, rtol=1e-12)


# --------------------------------------------------------------------------- factor, divide
@pytest.mark.parametrize("p", [1, 3])
def test_chol_blockdiag(p):
    D = _sym_blockdiag(np.random.default_rng(p), 4, p)
    want = np.linalg.cholesky(D.to_dense())
    _Chol(D).run([])
    np.testing.assert_allclose(D.to_dense(), want, rtol=1e-12)


def test_chol_dense_leaves_the_upper_part():
    rng = np.random.default_rng(50)
    X = rng.normal(size=(7, 7))
    S = X @ X.T + 7 * np.eye(7)
    D = S.copy()
    _Chol(D).run([])
    np.testing.assert_allclose(np.tril(D), np.linalg.cholesky(S), rtol=1e-12)
    iu = np.triu_indices(7, 1)
    np.testing.assert_array_equal(D[iu], S[iu])


def test_chol_reads_only_the_lower_triangle():
    rng = np.random.default_rng(51)
    X = rng.normal(size=(5, 5))
    S = X @ X.T + 5 * np.eye(5)
    D = np.tril(S) + np.triu(np.full((5, 5), 1e3), 1)
    _dense_cholesky(D)
    np.testing.assert_allclose(np.tril(D), np.linalg.cholesky(S), rtol=1e-12)


def test_chol_large_block_with_threads(monkeypatch):
    """The path for large blocks (several BLAS threads) gives the same factor."""
    from glamm.linalg import threads

    monkeypatch.setattr(threads, "LARGE_BLOCK", 4)
    monkeypatch.setattr(threads, "LARGE_THREADS", 2)
    rng = np.random.default_rng(52)
    X = rng.normal(size=(6, 6))
    S = X @ X.T + 6 * np.eye(6)
    D = S.copy()
    _Chol(D).run([])
    np.testing.assert_allclose(np.tril(D), np.linalg.cholesky(S), rtol=1e-12)


def test_chol_not_positive_definite():
    D = np.diag([1.0, -1.0, 2.0])
    with pytest.raises(np.linalg.LinAlgError, match="minor 2"):
        _dense_cholesky(D)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("target", ["dense", "sparse"])
def test_rdiv_blockdiag(p, target):
    rng = np.random.default_rng(p)
    D = _lower_blockdiag(rng, 4, p)
    T = rng.normal(size=(3, 4 * p)) if target == "dense" else _random_sparse(rng, 5, 4, 2, p)
    Td = T.copy() if target == "dense" else T.to_dense()
    _RDiv(T, D).run([])
    got = T if target == "dense" else T.to_dense()
    np.testing.assert_allclose(got, Td @ np.linalg.inv(D.to_dense()).T, rtol=1e-10)


@pytest.mark.parametrize("order", ["C", "F"])
def test_rdiv_dense(order):
    """``T D^{-T}`` in place, reading only the lower triangle of ``D`` (its upper part holds
    what the factorization left there) and leaving ``D`` as it was."""
    rng = np.random.default_rng(60)
    Lw = np.tril(rng.normal(size=(6, 6))) + 4 * np.eye(6)
    D = Lw + np.triu(np.full((6, 6), 50.0), 1)
    D0 = D.copy()
    T = np.asarray(rng.normal(size=(4, 6)), order=order)
    want = T @ np.linalg.inv(Lw).T
    _RDiv(T, D).run([])
    np.testing.assert_allclose(T, want, rtol=1e-10)
    np.testing.assert_array_equal(D, D0)


def test_rdiv_dense_empty_target():
    D = np.eye(3) * 2.0
    T = np.zeros((0, 3))
    _RDiv(T, D).run([])
    assert T.shape == (0, 3)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("compiled", [True, False])
def test_first_term_refresh_with_and_without_the_kernel(p, compiled):
    """After A is refilled (a GLMM reweighting) the refreshed constants give the update of
    the new values, by the compiled gather or by NumPy's."""
    from glamm import jit

    rng = np.random.default_rng(60 + p)
    A_a, A_b, D, T = _first_term_case(rng, p, p, "dense", same=False)
    lams = [np.array([[0.9]]), _lam(rng, p), _lam(rng, p)]
    jit.use_kernels(compiled)
    try:
        op = _FirstTermUpdate(T, A_a, A_b, D, 1, 2, False)
        A_a.data *= rng.uniform(0.5, 2.0, size=A_a.data.shape)   # new weights
        A_b.data *= rng.uniform(0.5, 2.0, size=A_b.data.shape)
        op.refresh()
        T0 = T.copy()
        want = _first_term_want(T0, A_a, A_b, D, lams, 1, 2, p, p)
        op.run(lams)
    finally:
        jit.use_kernels(None)
    np.testing.assert_allclose(T, want, rtol=1e-11, atol=1e-12)

"""CrossProducts (glamm.linalg.crossprod): the stored lower blocks of ``A = [Z X y]'W[Z X y]``
equal the dense product built from each term's ``refs`` and ``z``, for every model of the
catalogue (scalar, vector, crossed, nested, intercept-only terms taking the ``_ones``
shortcut, smooths' one-level terms, no fixed effects), and ``update(w, y)`` refills the same
arrays with the new values."""

from __future__ import annotations

import numpy as np
import pytest

from glamm.linalg.blocks import BlockDiag, BlockSparse, to_dense
from glamm.linalg.crossprod import CrossProducts, crossprod_blocks

from .helpers import MODELS, block_sizes, dense_A, offsets

RTOL = 1e-12


def assert_blocks_equal(A_blocks, model) -> None:
    """Every stored block ``A[i][j]`` (``j <= i``) equals its slice of the dense ``A``."""
    dense = dense_A(model)
    off = offsets(block_sizes(model))
    K = len(model.terms)
    assert len(A_blocks) == K + 1
    for i, row in enumerate(A_blocks):
        assert len(row) == i + 1
        for j, block in enumerate(row):
            want = dense[off[i]:off[i + 1], off[j]:off[j + 1]]
            assert block.shape == want.shape, (i, j)
            np.testing.assert_allclose(to_dense(block), want, rtol=RTOL, atol=1e-12,
                                       err_msg=f"block ({i}, {j})")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_blocks_equal_dense_cross_products(name):
    model = MODELS[name]()
    cp = CrossProducts(model.terms, model.X, model.y, model.w)
    assert_blocks_equal(cp.A, model)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_block_types(name):
    """Diagonal blocks of the terms are BlockDiag, blocks between two terms BlockSparse,
    the ``[X y]`` row dense; BlockSparse patterns are sorted by column, then row."""
    model = MODELS[name]()
    A = CrossProducts(model.terms, model.X, model.y, model.w).A
    K = len(model.terms)
    for i in range(K):
        assert isinstance(A[i][i], BlockDiag)
        assert A[i][i].data.shape == (model.terms[i].nlevels, model.ps[i], model.ps[i])
        for j in range(i):
            blk = A[i][j]
            assert isinstance(blk, BlockSparse)
            key = blk.cols * blk.m_row + blk.rows
            assert np.all(np.diff(key) > 0)
    assert all(isinstance(b, np.ndarray) for b in A[K])


def test_pattern_holds_only_level_pairs_that_occur():
    model = MODELS["crossed_sparse"]()
    A = CrossProducts(model.terms, model.X, model.y, model.w).A
    t0, t1 = model.terms
    pairs = set(zip(t1.refs.tolist(), t0.refs.tolist()))
    assert set(zip(A[1][0].rows.tolist(), A[1][0].cols.tolist())) == pairs


def test_intercept_terms_take_the_ones_shortcut():
    model = MODELS["nested_scalar_first"]()
    cp = CrossProducts(model.terms, model.X, model.y, model.w)
    assert cp._ones == [True, False, False]
    # a p == 1 term with a covariate is not an intercept
    slope = MODELS["scalar_slope"]()
    assert CrossProducts(slope.terms, slope.X, slope.y, slope.w)._ones == [False]


@pytest.mark.parametrize("name", ["scalar_intercept", "crossed_sparse", "nested_vector_first",
                                  "crossed3_vector", "smooth_vector", "no_fixed_effects"])
def test_update_refills_in_place(name):
    model = MODELS[name]()
    cp = CrossProducts(model.terms, model.X, model.y, model.w)
    arrays = [[b if isinstance(b, np.ndarray) else b.data for b in row] for row in cp.A]
    versions = [blk.version for row in cp.A for blk in row if isinstance(blk, BlockSparse)]
    rng = np.random.default_rng(99)
    model.w = rng.uniform(0.1, 3.0, size=model.w.shape)
    model.y = rng.normal(size=model.y.shape)
    cp.update(model.w, model.y)
    assert_blocks_equal(cp.A, model)
    for row, before in zip(cp.A, arrays):
        for blk, arr in zip(row, before):
            assert (blk if isinstance(blk, np.ndarray) else blk.data) is arr
    after = [blk.version for row in cp.A for blk in row if isinstance(blk, BlockSparse)]
    assert after == [v + 1 for v in versions]


def test_update_with_zero_weights_drops_rows():
    """Weight 0 removes an observation (as a GLMM's working weights may)."""
    model = MODELS["crossed_dense_slope"]()
    cp = CrossProducts(model.terms, model.X, model.y, model.w)
    model.w = model.w.copy()
    model.w[::3] = 0.0
    cp.update(model.w, model.y)
    assert_blocks_equal(cp.A, model)


def test_crossprod_blocks_is_the_constructor_s_blocks():
    model = MODELS["nested"]()
    A = crossprod_blocks(model.terms, model.X, model.y, model.w)
    assert_blocks_equal(A, model)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_refill_equals_the_numpy_refill_exactly(name):
    """The one-pass compiled refill (glamm.linalg._crossprod_kernels) adds the same products
    in the same order as the NumPy code: every block is equal bit for bit."""
    pytest.importorskip("numba")
    from glamm import jit

    model = MODELS[name]()
    rng = np.random.default_rng(5)
    w = rng.uniform(0.1, 3.0, size=model.w.shape)
    w[::7] = 0.0
    y = rng.normal(size=model.y.shape)
    out = []
    for on in (True, False):
        jit.use_kernels(on)
        try:
            cp = CrossProducts(model.terms, model.X, model.y, model.w)
            cp.update(w, y)
            out.append([[to_dense(b).copy() for b in row] for row in cp.A])
        finally:
            jit.use_kernels(None)
    for row_c, row_n in zip(*out):
        for bc, bn in zip(row_c, row_n):
            np.testing.assert_array_equal(bc, bn)


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("name", ["crossed_sparse", "nested_vector_first", "crossed3_vector"])
def test_re_only_refills_the_random_effects_blocks_alone(name, kernels):
    """``update(re_only=True)``: the ``Z'WZ`` blocks as a full refill gives them, the ``[X y]``
    row of blocks untouched."""
    from glamm import jit

    model = MODELS[name]()
    rng = np.random.default_rng(8)
    w, y = rng.uniform(0.1, 3.0, size=model.w.shape), rng.normal(size=model.y.shape)
    jit.use_kernels(kernels)
    try:
        cp = CrossProducts(model.terms, model.X, model.y, model.w)
        K = len(model.terms)
        xy_row = [to_dense(b).copy() for b in cp.A[K]]
        cp.update(w, y, re_only=True)
        partial = [[to_dense(b).copy() for b in row] for row in cp.A]
        cp.update(w, y)
        full = [[to_dense(b).copy() for b in row] for row in cp.A]
    finally:
        jit.use_kernels(None)
    for i in range(K):
        for j in range(i + 1):
            np.testing.assert_array_equal(partial[i][j], full[i][j])
    for before, after in zip(xy_row, partial[K]):
        np.testing.assert_array_equal(after, before)

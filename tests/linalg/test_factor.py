"""BlockedCholesky (glamm.linalg.factor) against dense NumPy.

For every model of the catalogue (the block structures and kernels it reaches are listed in
``helpers.MODELS``) and random, not lower-triangular ``lambda``s:

- ``L L'`` is the penalized cross-product matrix ``M`` and ``L`` is
  ``numpy.linalg.cholesky(M)`` (unique with a positive diagonal), including the structural
  zeros of the sparse blocks;
- ``logdet_re``, ``logdet_fixed``, ``pwrss``, ``solve_u_beta``, ``inverse_diag_blocks`` and
  ``dense_re_factor`` equal their dense definitions;
- a factor updated with other ``lambda``s first equals a fresh one (no state leaks between
  updates), and ``refresh`` after new weights gives the factor of the new ``A``.
"""

from __future__ import annotations

import numpy as np
import pytest

from glamm.linalg import factor as factor_mod
from glamm.linalg.blocks import BlockDiag, BlockSparse
from glamm.linalg.crossprod import CrossProducts
from glamm.linalg.factor import BlockedCholesky

from .helpers import (
    MODELS,
    block_sizes,
    dense_lambda,
    dense_M,
    dense_zxy,
    factor_dense,
    make_factor,
    random_lambdas,
)

RTOL = 1e-9
NAMES = sorted(MODELS)


def _setup(name: str, seed: int = 0):
    model = MODELS[name]()
    cp, fac = make_factor(model)
    lams = random_lambdas(np.random.default_rng(seed), model)
    fac.update(lams)
    return model, cp, fac, lams


def _q(model) -> int:
    return sum(t.q for t in model.terms)


# --------------------------------------------------------------------------- the factor itself
@pytest.mark.parametrize("name", NAMES)
def test_factor_is_the_cholesky_factor_of_M(name):
    model, _, fac, lams = _setup(name)
    M = dense_M(model, lams)
    L = factor_dense(fac, block_sizes(model))
    np.testing.assert_allclose(L @ L.T, M, rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(L, np.linalg.cholesky(M), rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_logdets_and_pwrss(name):
    model, _, fac, lams = _setup(name)
    M = dense_M(model, lams)
    q, pX = _q(model), model.X.shape[1]
    assert fac.logdet_re() == pytest.approx(np.linalg.slogdet(M[:q, :q])[1], rel=RTOL, abs=1e-9)
    # Schur complements of the random-effects block: X'WX - ... (ldRX2) and then y (pwrss)
    S = M[q:, q:] - M[q:, :q] @ np.linalg.solve(M[:q, :q], M[:q, q:])
    assert fac.logdet_fixed() == pytest.approx(np.linalg.slogdet(S[:pX, :pX])[1] if pX else 0.0,
                                               rel=RTOL, abs=1e-9)
    pwrss = S[-1, -1] - S[-1, :pX] @ np.linalg.solve(S[:pX, :pX], S[:pX, -1]) if pX \
        else S[-1, -1]
    assert fac.pwrss() == pytest.approx(pwrss, rel=RTOL)


@pytest.mark.parametrize("name", NAMES)
def test_solve_u_beta_minimizes_the_penalized_rss(name):
    """``(u, beta)`` solve min ||W^(1/2)(y - X beta - Z Lambda u)||^2 + ||u||^2 and the
    minimum is ``pwrss``."""
    model, _, fac, lams = _setup(name)
    q, pX = _q(model), model.X.shape[1]
    ZXy = dense_zxy(model)
    Zl = ZXy[:, :q] @ dense_lambda(model, lams)
    sw = np.sqrt(model.w)[:, None]
    design = np.vstack([np.hstack([sw * Zl, sw * model.X]),
                        np.hstack([np.eye(q), np.zeros((q, pX))])])
    rhs = np.concatenate([sw[:, 0] * model.y, np.zeros(q)])
    coef, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    u, beta = fac.solve_u_beta()
    assert [uk.shape for uk in u] == [(t.q,) for t in model.terms]
    assert beta.shape == (pX,)
    np.testing.assert_allclose(np.concatenate(u), coef[:q], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(beta, coef[q:], rtol=1e-8, atol=1e-10)
    resid = rhs - design @ coef
    assert fac.pwrss() == pytest.approx(resid @ resid, rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_inverse_diag_blocks(name):
    model, _, fac, lams = _setup(name)
    q = _q(model)
    inv = np.linalg.inv(dense_M(model, lams)[:q, :q])
    start = 0
    for k, t in enumerate(model.terms):
        got = fac.inverse_diag_blocks(k)
        assert got.shape == (t.nlevels, t.p, t.p)
        idx = start + np.arange(t.nlevels)[:, None] * t.p + np.arange(t.p)[None, :]
        want = inv[idx[:, :, None], idx[:, None, :]]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        start += t.q


@pytest.mark.parametrize("name", NAMES)
def test_dense_re_factor(name):
    model, _, fac, lams = _setup(name)
    q = _q(model)
    got = fac.dense_re_factor()
    np.testing.assert_allclose(got, np.linalg.cholesky(dense_M(model, lams)[:q, :q]),
                               rtol=RTOL, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_diag_block_diagonal(name):
    model, _, fac, lams = _setup(name)
    L = np.linalg.cholesky(dense_M(model, lams))
    got = np.concatenate([fac.diag_block_diagonal(k) for k in range(fac.K)])
    np.testing.assert_allclose(got, np.diag(L)[:_q(model)], rtol=RTOL)


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("name", NAMES)
def test_update_twice_equals_a_fresh_factor(name):
    model, cp, fac, _ = _setup(name, seed=1)
    lams2 = random_lambdas(np.random.default_rng(2), model)
    fac.update(lams2)
    fresh = BlockedCholesky(cp.A, model.ps, iso=model.iso)
    fresh.update(lams2)
    sizes = block_sizes(model)
    np.testing.assert_array_equal(factor_dense(fac, sizes), factor_dense(fresh, sizes))
    np.testing.assert_allclose(factor_dense(fac, sizes), np.linalg.cholesky(dense_M(model, lams2)),
                               rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_refresh_after_new_weights(name):
    """New weights and response refilled into ``A`` (a GLMM reweighting), ``refresh``, then
    ``update``: the factor of the new ``A``."""
    model, cp, fac, lams = _setup(name, seed=3)
    rng = np.random.default_rng(4)
    model.w = rng.uniform(0.2, 4.0, size=model.w.shape)
    model.y = rng.normal(size=model.y.shape)
    cp.update(model.w, model.y)
    fac.refresh()
    fac.update(lams)
    np.testing.assert_allclose(factor_dense(fac, block_sizes(model)),
                               np.linalg.cholesky(dense_M(model, lams)), rtol=RTOL, atol=1e-9)


def test_refresh_is_needed_by_the_first_term_shortcut():
    """Without ``refresh`` the first-term kernel keeps the products of the old ``A`` (so the
    test above can fail). Random-effects part only: with stale constants the ``[X y]`` block
    is not even positive definite."""
    model, cp, fac, lams = _setup("nested", seed=3)
    model.w = 2.0 * model.w
    cp.update(model.w, model.y)
    fac.update(lams, re_only=True)
    q = _q(model)
    want = np.linalg.cholesky(dense_M(model, lams)[:q, :q])
    assert not np.allclose(fac.dense_re_factor(), want)
    fac.refresh()
    fac.update(lams, re_only=True)
    np.testing.assert_allclose(fac.dense_re_factor(), want, rtol=RTOL)


@pytest.mark.parametrize("name", ["crossed_sparse", "nested_vector_first", "smooth_vector"])
def test_re_only_leaves_the_fixed_row(name):
    model, _, fac, lams = _setup(name, seed=6)
    K = fac.K
    before = [b.copy() for b in fac.L[K]]
    lams2 = random_lambdas(np.random.default_rng(7), model)
    fac.update(lams2, re_only=True)
    for b, old in zip(fac.L[K], before):
        np.testing.assert_array_equal(b, old)
    q = _q(model)
    np.testing.assert_allclose(fac.dense_re_factor(),
                               np.linalg.cholesky(dense_M(model, lams2)[:q, :q]), rtol=RTOL)
    assert fac.logdet_re() == pytest.approx(np.linalg.slogdet(dense_M(model, lams2)[:q, :q])[1],
                                            rel=RTOL)


@pytest.mark.parametrize("name", ["crossed_sparse", "nested_scalar_first", "crossed3_vector"])
def test_zero_lambda_for_one_term(name):
    """``theta`` on its boundary (a zero ``lambda``): that term's diagonal of ``L`` is 1."""
    model, _, fac, lams = _setup(name, seed=8)
    lams[-1] = np.zeros_like(lams[-1])
    fac.update(lams)
    np.testing.assert_allclose(fac.diag_block_diagonal(fac.K - 1), 1.0)
    np.testing.assert_allclose(factor_dense(fac, block_sizes(model)),
                               np.linalg.cholesky(dense_M(model, lams)), rtol=RTOL, atol=1e-9)


# --------------------------------------------------------------------------- symbolic phase
@pytest.mark.parametrize("name, types", [
    ("scalar_intercept", [["BlockDiag"], ["Dense", "Dense"]]),
    ("crossed_dense", [["BlockDiag"], ["Dense", "Dense"], ["Dense", "Dense", "Dense"]]),
    ("crossed_sparse", [["BlockDiag"], ["BlockSparse", "Dense"], ["Dense"] * 3]),
    ("nested", [["BlockDiag"], ["BlockSparse", "BlockDiag"],
                ["BlockSparse", "BlockSparse", "BlockDiag"], ["Dense"] * 4]),
    ("mixed_sparse_dense", [["BlockDiag"], ["Dense", "Dense"],
                            ["BlockSparse", "Dense", "Dense"], ["Dense"] * 4]),
])
def test_block_types(name, types):
    """The storage types the catalogue's models are meant to reach (else the tests above
    would not exercise the kernels they are meant to)."""
    _, _, fac, _ = _setup(name)
    assert fac.describe() == types


def test_kernels_reached_by_the_catalogue():
    """Every numeric kernel and every sparse/dense combination of the first-term shortcut
    occurs in some model of the catalogue."""
    seen = set()
    for name in NAMES:
        _, _, fac, _ = _setup(name)
        for op in fac.ops:
            kind = getattr(op, "kind", None)
            seen.add(type(op).__name__ + (str(kind) if kind is not None else ""))
            if type(op).__name__ == "_FirstTermUpdate" and not op.scalar:
                seen.add("_FirstTermUpdate-vector" + str(kind))
    want = {"_FillDiag", "_FillOff", "_FillFixed", "_Copy", "_Chol", "_RDiv", "_DenseUpdate",
            "_PairUpdate"} | {f"_FirstTermUpdate{k}" for k in
                              [(False, False), (False, True), (True, False), (True, True)]} | \
        {f"_FirstTermUpdate-vector{k}" for k in [(False, True), (True, False), (True, True)]}
    assert want <= seen, want - seen


def test_sparse_density_threshold(monkeypatch):
    """Off-diagonal blocks denser than SPARSE_DENSITY are stored densely (same factor)."""
    model, _, fac, lams = _setup("nested")
    monkeypatch.setattr(factor_mod, "SPARSE_DENSITY", 0.0)
    dense_fac = BlockedCholesky(CrossProducts(model.terms, model.X, model.y, model.w).A,
                                model.ps, iso=model.iso)
    assert dense_fac.describe()[2][0] == "Dense"
    dense_fac.update(lams)
    sizes = block_sizes(model)
    np.testing.assert_allclose(factor_dense(dense_fac, sizes), factor_dense(fac, sizes),
                               rtol=1e-12, atol=1e-12)


def test_not_positive_definite_raises():
    """Weights that make ``X'WX`` indefinite: the dense factorization reports it."""
    model = MODELS["vector"]()
    model.w = -model.w
    cp, fac = make_factor(model)
    with pytest.raises(np.linalg.LinAlgError):
        fac.update(random_lambdas(np.random.default_rng(0), model))


# --------------------------------------------------------------------------- block helpers
def _random_lower_blockdiag(rng, m, p):
    data = np.tril(rng.normal(size=(m, p, p)))
    idx = np.arange(p)
    data[:, idx, idx] = rng.uniform(1.0, 2.0, size=(m, p))
    return BlockDiag(data)


@pytest.mark.parametrize("p", [1, 3])
def test_solve_diag_helpers_blockdiag(p):
    rng = np.random.default_rng(p)
    D = _random_lower_blockdiag(rng, 5, p)
    Dd = D.to_dense()
    r = rng.normal(size=5 * p)
    R = rng.normal(size=(5 * p, 4))
    np.testing.assert_allclose(factor_mod._solve_diag_t(D, r), np.linalg.solve(Dd.T, r))
    np.testing.assert_allclose(factor_mod._solve_diag(D, R), np.linalg.solve(Dd, R))
    np.testing.assert_allclose(factor_mod._tmatvec(D, r), Dd.T @ r)


def test_solve_diag_helpers_dense_and_sparse():
    rng = np.random.default_rng(11)
    D = np.tril(rng.normal(size=(6, 6))) + 3 * np.eye(6)
    r = rng.normal(size=6)
    R = rng.normal(size=(6, 2))
    np.testing.assert_allclose(factor_mod._solve_diag_t(D, r), np.linalg.solve(D.T, r))
    np.testing.assert_allclose(factor_mod._solve_diag(D, R), np.linalg.solve(D, R))
    B = BlockSparse(rows=np.array([0, 2, 1]), cols=np.array([0, 0, 2]),
                    data=rng.normal(size=(3, 2, 2)), m_row=3, m_col=3)
    v = rng.normal(size=6)
    Y = rng.normal(size=(6, 3))
    np.testing.assert_allclose(factor_mod._tmatvec(B, v), B.to_dense().T @ v)
    np.testing.assert_allclose(factor_mod._matmat(B, Y), B.to_dense() @ Y)
    np.testing.assert_allclose(factor_mod._tmatvec(D, v), D.T @ v)
    np.testing.assert_allclose(factor_mod._matmat(D, Y), D @ Y)

"""The random-effects design (glamm.terms.design.RandomDesign): Z Lambda rows, Z b and the
products with Z Lambda against a dense Z, and replacing a term's z after the model is built
(``set_z``), which must give the objective of the model built with that z from the start."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, load_reference

import glamm
from glamm.families import get_family
from glamm.formula.design import build_model_frame
from glamm.glmm.agq import AdaptiveQuadrature
from glamm.glmm.gradient import laplace_gradient
from glamm.glmm.model import GeneralizedLinearMixedModel
from glamm.linalg.blocks import to_dense
from glamm.linalg.crossprod import CrossProducts
from glamm.lmm.model import LinearMixedModel
from glamm.terms.design import RandomDesign

#: galamm's loadings for sim_factor_gaussian (reference galamm_factor_gaussian)
GALAMM_LOADINGS = {"i1": 1.0, "i2": 0.771051049815424, "i3": 1.51272194253738}


def _dense_z(design: RandomDesign) -> np.ndarray:
    n = design.terms[0].refs.shape[0]
    Z = np.zeros((n, design.q))
    np.put_along_axis(Z, design.cols, design.z_rows(), axis=1)
    return Z


def _dense_lambda(design: RandomDesign, lams) -> np.ndarray:
    blocks = [np.kron(np.eye(t.nlevels), lam) for t, lam in zip(design.terms, lams)]
    out = np.zeros((design.q, design.q))
    for k, blk in enumerate(blocks):
        a, b = design.offsets[k], design.offsets[k + 1]
        out[a:b, a:b] = blk
    return out


@pytest.fixture(scope="module")
def crossed_slope():
    """Crossed terms, one of them vector-valued: (x | g) + (1 | h)."""
    rng = np.random.default_rng(3)
    n = 120
    data = pd.DataFrame({"g": pd.Categorical(rng.integers(0, 8, n)),
                         "h": pd.Categorical(rng.integers(0, 5, n)),
                         "x": rng.normal(size=n)})
    data["y"] = 1.0 + data["x"] + rng.normal(size=n)
    return data


def test_col_patterns_are_the_distinct_rows_of_cols(crossed_slope):
    """The integer-coded patterns equal ``np.unique(cols, axis=0)``: same rows, same order,
    same index per row (gradient.TraceWeights relies on both)."""
    frame = build_model_frame("y ~ x + (x | g) + (1 | h)", crossed_slope)
    design = RandomDesign(frame.reterms)
    patterns, index = design.col_patterns
    want, want_index = np.unique(design.cols, axis=0, return_inverse=True)
    np.testing.assert_array_equal(patterns, want)
    np.testing.assert_array_equal(index, want_index.reshape(-1))
    np.testing.assert_array_equal(patterns[index], design.cols)


def test_z_lambda_is_the_sparse_z_lambda_and_its_products_are_t_matvec_s(crossed_slope):
    frame = build_model_frame("y ~ x + (x | g) + (1 | h)", crossed_slope)
    design = RandomDesign(frame.reterms)
    lams = [np.array([[1.2, 0.0], [0.4, 0.7]]), np.array([[0.5]])]
    Z = _dense_z(design)
    for lams in ([np.array([[1.2, 0.0], [0.4, 0.7]]), np.array([[0.5]])],
                 [np.array([[0.3, 0.0], [-0.4, 1.1]]), np.array([[2.0]])]):
        V = design.rows(lams)
        ZL, ZLt = design.z_lambda(V)   # (the second pass refills the same matrices)
        np.testing.assert_allclose(ZL.toarray(), Z @ _dense_lambda(design, lams), rtol=1e-14)
        np.testing.assert_array_equal(ZLt.toarray(), ZL.toarray().T)
        M = np.random.default_rng(0).normal(size=(V.shape[0], 3))
        want = np.column_stack([design.t_matvec(V, M[:, j]) for j in range(3)])
        np.testing.assert_array_equal(ZLt @ M, want)   # the same sums in the same order
        x = np.random.default_rng(1).normal(size=design.q)
        np.testing.assert_allclose(ZL @ x, design.matvec(V, x), rtol=1e-14)


def test_rows_and_products_match_dense_z(crossed_slope):
    frame = build_model_frame("y ~ x + (x | g) + (1 | h)", crossed_slope)
    design = RandomDesign(frame.reterms)
    lams = [np.array([[1.2, 0.0], [0.4, 0.7]]), np.array([[0.5]])]
    Z, Lam = _dense_z(design), _dense_lambda(design, lams)
    ZL = Z @ Lam
    V = design.rows(lams)
    assert V.shape == (frame.n, design.P) == (frame.n, 3)
    np.testing.assert_allclose(np.take_along_axis(ZL, design.cols, axis=1), V)
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=design.q), rng.normal(size=frame.n)
    np.testing.assert_allclose(design.matvec(V, u), ZL @ u)
    np.testing.assert_allclose(design.t_matvec(V, v), ZL.T @ v)
    parts = design.split_u(u)
    assert [p.size for p in parts] == [t.q for t in design.terms]
    b = design.random_effects(lams, parts)
    assert [bk.shape for bk in b] == [(8, 2), (5, 1)]
    np.testing.assert_allclose(design.eta_re(b), ZL @ u)
    np.testing.assert_allclose(design.eta_re(b, terms=[1]), Z[:, 16:] @ (Lam @ u)[16:])
    # one row of spherical effects per "cluster", laid out like a row of Z
    U = rng.normal(size=(4, design.P))
    np.testing.assert_allclose(design.effects_by_row(U, lams), U @ design.lambda_block(lams).T)


def test_set_z_rejects_a_wrong_shape(crossed_slope):
    design = RandomDesign(build_model_frame("y ~ x + (x | g)", crossed_slope).reterms)
    with pytest.raises(ValueError, match="shape"):
        design.set_z(0, np.ones((5, 2)))


@pytest.mark.parametrize("k", [0, 1])
def test_partial_refill_equals_a_fresh_fill(crossed_slope, k):
    """After set_z only the blocks of term k are refilled; all of A must equal a fresh A."""
    frame = build_model_frame("y ~ x + (x | g) + (1 | h)", crossed_slope)
    rng = np.random.default_rng(k)
    w = rng.uniform(0.5, 2.0, frame.n)
    design = RandomDesign(frame.reterms)
    cp = design.crossproducts(frame.X, frame.y, w)
    new_z = rng.normal(size=design.z[k].shape)
    design.set_z(k, new_z)
    fresh_design = RandomDesign(frame.reterms)
    fresh_design.z[k] = new_z
    fresh = CrossProducts(fresh_design, frame.X, frame.y, w)
    for row, fresh_row in zip(cp.A, fresh.A):
        for blk, fresh_blk in zip(row, fresh_row):
            np.testing.assert_allclose(to_dense(blk), to_dense(fresh_blk), rtol=1e-13)


def _loaded_factor_data() -> pd.DataFrame:
    data = load_data("sim_factor_gaussian")
    data["zl"] = data["item"].astype(str).map(GALAMM_LOADINGS).astype(float)
    return data


@pytest.mark.parametrize("reml", [False, True])
def test_lmm_set_z_equals_the_model_built_with_that_z(reml):
    """Loadings put into the z of (1 | id) after the model is built: the objective is that of
    the model built with the loaded column (and galamm's deviance at galamm's estimates)."""
    data = _loaded_factor_data()
    model = LinearMixedModel(build_model_frame("y ~ 0 + item + (1 | id)", data), reml=reml)
    fresh = LinearMixedModel(build_model_frame("y ~ 0 + item + (0 + zl | id)", data), reml=reml)
    theta = np.array([1.5371007081058])
    before = model.objective(theta)
    model.set_z(0, data[["zl"]].to_numpy())
    for th in (theta, np.array([0.4]), np.array([2.5])):
        assert model.objective(th) == pytest.approx(fresh.objective(th), rel=1e-12)
    assert abs(model.objective(theta) - before) > 100.0
    if not reml:
        ref = load_reference("galamm_factor_gaussian")
        assert model.objective(theta) == pytest.approx(ref["deviance"], rel=1e-10)


def test_a_pickled_model_keeps_its_cross_products_in_step():
    """The design holds its cross-products by weak reference: a model still pickles, and
    the copy's set_z refills the copy's own cross-products."""
    import pickle

    data = _loaded_factor_data()
    model = LinearMixedModel(build_model_frame("y ~ 0 + item + (1 | id)", data), reml=False)
    fresh = LinearMixedModel(build_model_frame("y ~ 0 + item + (0 + zl | id)", data),
                             reml=False)
    theta = np.array([0.8])
    copy = pickle.loads(pickle.dumps(model))
    assert copy.objective(theta) == model.objective(theta)
    copy.set_z(0, data[["zl"]].to_numpy())
    assert copy.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)
    assert model.objective(theta) != copy.objective(theta)


def test_lmm_set_z_on_a_later_vector_term(crossed_slope):
    """Crossed terms: replacing the second, vector-valued term's z (the first term is scalar,
    so the factor's precomputed Schur complement must be refreshed)."""
    data = crossed_slope.copy()
    rng = np.random.default_rng(7)
    data["x2"] = rng.normal(size=len(data))
    model = LinearMixedModel(build_model_frame("y ~ x + (1 | g) + (x | h)", data), reml=False)
    fresh = LinearMixedModel(build_model_frame("y ~ x + (1 | g) + (x2 | h)", data), reml=False)
    assert [t.group for t in model.reterms] == ["g", "h"]
    theta = np.array([0.8, 1.1, -0.3, 0.6])
    model.objective(theta)
    model.set_z(1, fresh.reterms[1].z)
    assert model.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)


def test_glmm_set_z_equals_the_model_built_with_that_z():
    """The Laplace objective (both PIRLS variants), its analytic gradient and the quadrature
    log-likelihood after set_z equal those of the model built with the new z."""
    data = glamm.datasets.load("cbpp")
    rng = np.random.default_rng(11)
    data["zz"] = rng.uniform(0.5, 1.5, len(data))
    fam = get_family("binomial", None)
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    model = GeneralizedLinearMixedModel(build_model_frame(formula, data, glm_response=True),
                                        fam)
    fresh = GeneralizedLinearMixedModel(build_model_frame(
        formula.replace("(1 | herd)", "(0 + zz | herd)"), data, glm_response=True), fam)
    theta, beta = np.array([0.7]), np.array([-1.4, -1.0, -1.1, -1.5])
    model.objective(theta, beta)
    model.set_z(0, data[["zz"]].to_numpy())
    assert model.objective_fast(theta) == pytest.approx(fresh.objective_fast(theta), rel=1e-10)
    assert model.objective(theta, beta) == pytest.approx(fresh.objective(theta, beta), rel=1e-10)
    fresh.objective(theta, beta)
    np.testing.assert_allclose(laplace_gradient(model, theta, beta),
                               laplace_gradient(fresh, theta, beta), rtol=1e-8)
    quad, fresh_quad = AdaptiveQuadrature(model, 5), AdaptiveQuadrature(fresh, 5)
    assert quad.loglik(theta, beta) == pytest.approx(fresh_quad.loglik(theta, beta), rel=1e-10)


def test_set_z_of_a_one_level_term_with_several_columns():
    """A smooth's penalized part (one level, several columns) refilled through set_z, with
    row-varying values as loadings give it: the blocks equal those of a model built with
    those values (the refill takes dense products there)."""
    import dataclasses

    d = glamm.datasets.load("gamm4_sim1")
    frame = build_model_frame("y ~ s(x0) + (1 | fac)", d)
    lmm = LinearMixedModel(frame, reml=False)
    k = len(lmm.reterms) - 1
    assert lmm.reterms[k].nlevels == 1 and lmm.reterms[k].p > 1
    z = lmm.design.z[k] * np.linspace(0.5, 1.5, len(d))[:, None]
    lmm.set_z(k, z)
    terms = [dataclasses.replace(t, z=z) if i == k else t for i, t in enumerate(frame.reterms)]
    fresh = LinearMixedModel(dataclasses.replace(frame, reterms=terms), reml=False)

    def arr(b):
        return b if isinstance(b, np.ndarray) else b.data

    for row, row_fresh in zip(lmm.cp.A, fresh.cp.A):
        for b, b_fresh in zip(row, row_fresh):
            np.testing.assert_allclose(arr(b), arr(b_fresh), rtol=1e-13, atol=1e-12)
    theta = np.array([0.7, 1.3])
    assert lmm.objective(theta) == pytest.approx(fresh.objective(theta), rel=1e-12)

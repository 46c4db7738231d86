"""PIRLS's compiled solve for one vector-valued random-effects term (glamm.linalg.vector_pls)
against the blocked Cholesky factor it stands in for: the iteration solve, the
log-determinant and ``G^-1`` at the mode, and fits that give the same numbers either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm import jit, modular
from glamm.linalg.selinv import re_inverse

pytest.importorskip("numba")


def _data(seed: int = 5, n: int = 300, m: int = 17) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, m, n)
    x, v = rng.normal(size=n), rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], n)
    b = rng.normal(0, 0.6, (m, 2))
    eta = -0.2 + 0.5 * x + (f == "b") * 0.4 + b[g, 0] + b[g, 1] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)).astype(float),
                         "yb": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float),
                         "x": x, "v": v, "f": f,
                         "g": pd.Categorical([f"g{i:02d}" for i in g])})


def _model(formula: str, d: pd.DataFrame, family: str = "poisson"):
    frame = modular.build_model_frame(formula, d, glm_response=True)
    return modular.GeneralizedLinearMixedModel(frame, modular.get_family(family))


LAM = {2: np.array([[0.9, 0.0], [0.3, 0.5]]),
       3: np.array([[0.9, 0.0, 0.0], [0.3, 0.5, 0.0], [-0.2, 0.1, 0.4]])}


@pytest.mark.parametrize("formula", ["y ~ x + f + (1 + x | g)", "y ~ x + (0 + x + v | g)",
                                     "y ~ 1 + (1 + x + v | g)"])
@pytest.mark.parametrize("held", [False, True])
def test_compiled_solve_matches_the_blocked_factor(formula, held):
    d = _data()
    model = _model(formula, d)
    assert model._scalar_pls is None and model._vector_pls is not None
    assert model._vector_pls.available()
    rng = np.random.default_rng(11)
    n = len(d)
    w = rng.uniform(0.2, 3.0, n)
    zwork = rng.normal(size=n)
    b_fix = rng.normal(size=model.p) if held else None
    lam = LAM[model.reterms[0].p]
    cp, fac = (model.cp_u, model.fac_u) if held else (model.cp_b, model.fac_b)
    model._factor_step(cp, fac, [lam], w, zwork, b_fix, solve_only=True)
    u_ref, beta_ref = fac.solve_u_beta()
    net = zwork - model.X @ b_fix if held else zwork
    u, beta = model._vector_pls.solve(w, net, lam, None if held else model.X)
    np.testing.assert_allclose(u, u_ref[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(beta, beta_ref, rtol=1e-10, atol=1e-12)
    assert beta.shape == ((0,) if held else (model.p,))
    # the log-determinant and G^-1 of the same system
    assert model._vector_pls.logdet(w, lam) == pytest.approx(fac.logdet_re(), rel=1e-12)
    ref = re_inverse(fac)
    Ginv = model._vector_pls.inverse(w, lam)
    q = model.u.size
    rhs = rng.normal(size=(q, 2))
    np.testing.assert_allclose(Ginv.solve(rhs), ref.solve(rhs), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Ginv.solve(rhs[:, 0]), ref.solve(rhs[:, 0]), rtol=1e-9,
                               atol=1e-12)
    P = model.reterms[0].p
    i = np.repeat(np.arange(q), P)                      # every row against its own level
    j = (i // P) * P + np.tile(np.arange(P), q)
    np.testing.assert_allclose(Ginv.entries(i, j), ref.entries(i, j), rtol=1e-9, atol=1e-14)
    assert np.all(Ginv.entries(np.array([0]), np.array([P])) == 0.0)   # two levels


def test_not_positive_definite_is_a_linalg_error():
    d = _data()
    model = _model("y ~ x + (1 + x | g)", d)
    n = len(d)
    w = np.ones(n)
    w[d["g"].cat.codes.to_numpy() == 0] = -50.0
    with pytest.raises(np.linalg.LinAlgError, match="random effects"):
        model._vector_pls.solve(w, np.zeros(n), LAM[2], model.X)
    assert model._vector_pls.logdet(w, LAM[2]) is None
    w = np.full(n, -1e-3)
    with pytest.raises(np.linalg.LinAlgError, match="fixed effects"):
        model._vector_pls.solve(w, np.zeros(n), np.zeros((2, 2)), model.X)


def test_mode_is_left_unfactored_and_matches_the_blocked_factor():
    d = _data(seed=4)
    m = glamm.glmer("yb ~ x + f + (1 + x | g)", d, family="binomial")
    model = m.model
    model.pirls(m.theta, m.fixef.to_numpy())
    assert model._pending_factor is not None   # the blocked factorization was left undone
    ldl2 = model.ldL2
    Ginv = model.re_inverse_at_mode()
    rhs = np.random.default_rng(2).normal(size=(model.u.size, 3))
    fast = Ginv.solve(rhs)
    model.factor_at_mode()
    assert model.fac_u.logdet_re() == pytest.approx(ldl2, rel=1e-12)
    np.testing.assert_allclose(fast, re_inverse(model.fac_u).solve(rhs), rtol=1e-9)


@pytest.mark.parametrize("kw", [{}, {"nagq": 5}])
def test_fits_agree_with_and_without_the_kernels(kw):
    d = _data(seed=8)
    formula = "yb ~ x + f + (1 + x | g)"
    jit.use_kernels(True)
    try:
        fast = glamm.glmer(formula, d, family="binomial", **kw)
        jit.use_kernels(False)
        slow = glamm.glmer(formula, d, family="binomial", **kw)
    finally:
        jit.use_kernels(None)
    assert fast.loglik == pytest.approx(slow.loglik, rel=1e-10)
    np.testing.assert_allclose(fast.fixef.to_numpy(), slow.fixef.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fast.stderr.to_numpy(), slow.stderr.to_numpy(), rtol=1e-4)

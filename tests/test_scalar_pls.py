"""PIRLS's compiled solve for one scalar random-effects term (glamm.linalg.scalar_pls) against
the blocked Cholesky factor it stands in for, and fits that give the same numbers either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm import jit, modular

pytest.importorskip("numba")


def _data(seed: int = 5, n: int = 300, m: int = 17) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, m, n)
    x = rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], n)
    b = rng.normal(0, 0.7, m)
    eta = 0.3 + 0.5 * x + (f == "b") * 0.4 + b[g] * (1.0 + 0.5 * x)
    mu = np.exp(eta)
    return pd.DataFrame({"y": rng.poisson(mu).astype(float), "y_pos": rng.gamma(4.0, mu / 4.0),
                         "x": x, "f": f, "g": pd.Categorical([f"g{i:02d}" for i in g])})


def _model(formula: str, d: pd.DataFrame, family: str = "poisson"):
    frame = modular.build_model_frame(formula, d, glm_response=True)
    return modular.GeneralizedLinearMixedModel(frame, modular.get_family(family))


def _blocked(model, w, zwork, lam, b_fix):
    """The same solve by the blocked factor (PIRLS's general path)."""
    with_beta = b_fix is None
    cp, fac = (model.cp_b, model.fac_b) if with_beta else (model.cp_u, model.fac_u)
    model._factor_step(cp, fac, [np.array([[lam]])], w, zwork, b_fix, solve_only=True)
    u, beta = fac.solve_u_beta()
    return u[0], beta


@pytest.mark.parametrize("formula", ["y ~ x + f + (1 | g)", "y ~ x + (0 + x | g)",
                                     "y ~ 1 + (1 | g)"])
@pytest.mark.parametrize("held", [False, True])
def test_compiled_solve_matches_the_blocked_factor(formula, held):
    d = _data()
    model = _model(formula, d)
    assert model._scalar_pls is not None and model._scalar_pls.available()
    rng = np.random.default_rng(11)
    n = len(d)
    w = rng.uniform(0.2, 3.0, n)
    zwork = rng.normal(size=n)
    b_fix = rng.normal(size=model.p) if held else None
    lam = 0.8
    u_ref, beta_ref = _blocked(model, w, zwork, lam, b_fix)
    net = zwork - model.X @ b_fix if held else zwork
    u, beta = model._scalar_pls.solve(w, net, lam, None if held else model.X)
    np.testing.assert_allclose(u, u_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(beta, beta_ref, rtol=1e-10, atol=1e-12)
    assert beta.shape == ((0,) if held else (model.p,))


def test_not_positive_definite_is_a_linalg_error():
    d = _data()
    model = _model("y ~ x + (1 | g)", d)
    n = len(d)
    w = np.ones(n)
    # every row of one level with a large negative weight: that level's pivot is negative
    w[d["g"].cat.codes.to_numpy() == 0] = -50.0
    with pytest.raises(np.linalg.LinAlgError, match="random effects"):
        model._scalar_pls.solve(w, np.zeros(n), 1.0, model.X)
    # negative weights that leave the random-effects pivots positive but not X'WX - ...
    w = np.full(n, -1e-3)
    with pytest.raises(np.linalg.LinAlgError, match="fixed effects"):
        model._scalar_pls.solve(w, np.zeros(n), 0.0, model.X)


def test_only_one_scalar_term_uses_it():
    d = _data()
    d["h"] = pd.Categorical(np.arange(len(d)) % 5)
    assert _model("y ~ x + (1 | g)", d)._scalar_pls is not None
    assert _model("y ~ x + (1 + x | g)", d)._scalar_pls is None
    assert _model("y ~ x + (1 | g) + (1 | h)", d)._scalar_pls is None


@pytest.mark.parametrize("response,family,kw", [
    ("y", "poisson", {}), ("y", "poisson", {"nagq": 7}),
    # a non-canonical link: Newton steps in PIRLS, the observed information at the mode
    ("y_pos", "Gamma", {"link": "log"})])
def test_fits_agree_with_and_without_the_kernels(response, family, kw):
    # (families whose NumPy code is as accurate as their kernels: an NB1 near its Poisson
    # limit is not, and its standard errors differ by more than rounding)
    d = _data(seed=8)
    formula = f"{response} ~ x + f + (1 | g)"
    jit.use_kernels(True)
    try:
        fast = glamm.glmer(formula, d, family=family, **kw)
        jit.use_kernels(False)
        slow = glamm.glmer(formula, d, family=family, **kw)
    finally:
        jit.use_kernels(None)
    assert fast.loglik == pytest.approx(slow.loglik, rel=1e-10)
    np.testing.assert_allclose(fast.fixef.to_numpy(), slow.fixef.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-5)
    np.testing.assert_allclose(fast.stderr.to_numpy(), slow.stderr.to_numpy(), rtol=1e-4)


def test_mode_log_determinant_and_inverse_match_the_blocked_factor():
    from glamm.linalg.selinv import re_inverse

    d = _data(seed=4)
    m = glamm.glmer("y_pos ~ x + f + (1 | g)", d, family="Gamma", link="log")
    model = m.model
    theta, beta = m.theta, m.fixef.to_numpy()
    model.pirls(theta, beta)
    assert model._pending_factor is not None   # the blocked factorization was left undone
    ldl2 = model.ldL2
    Ginv = model.re_inverse_at_mode()
    rhs = np.random.default_rng(2).normal(size=(model.u.size, 3))
    fast_solve = Ginv.solve(rhs)
    idx = np.arange(model.u.size)
    fast_diag = Ginv.entries(idx, idx)
    model.factor_at_mode()
    assert model._pending_factor is None
    assert model.fac_u.logdet_re() == pytest.approx(ldl2, rel=1e-12)
    ref = re_inverse(model.fac_u)
    np.testing.assert_allclose(fast_solve, ref.solve(rhs), rtol=1e-10)
    np.testing.assert_allclose(fast_diag, ref.entries(idx, idx), rtol=1e-10)
    assert np.all(Ginv.entries(idx[:-1], idx[1:]) == 0.0)

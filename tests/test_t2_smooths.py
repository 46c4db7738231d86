"""Tensor-product smooths ``t2(x, z)`` in the mixed-model form (mgcv's t2 with gamm4's
random-effect split: one variance per penalized group) in lmer and glmer, against gamm4
(tests/reference/t2/make_t2.R), and galamm's ``t2l()`` on the latent scale."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

import glamm
from glamm.errors import FormulaError
from glamm.smooths.spec import parse_smooth

nan = np.nan
REF = Path(__file__).parent / "reference" / "t2"


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return pd.read_csv(REF / "t2sim.csv")


@pytest.fixture(scope="module")
def refs() -> dict:
    return json.loads((REF / "t2_refs.json").read_text())


GAUSSIAN = {
    "t2_ml": ("y ~ t2(x, z) + (1 | g)", False),
    "t2_reml": ("y ~ t2(x, z) + (1 | g)", True),
    "t2_k46_ml": ("y ~ t2(x, z, k = c(4, 6), bs = 'cr') + (1 | g)", False),
    "t2_k46_reml": ("y ~ t2(x, z, k = c(4, 6), bs = 'cr') + (1 | g)", True),
    "t2_y2_ml": ("y2 ~ t2(x, z) + (1 | g)", False),
    "t2_3d_ml": ("y2 ~ t2(x, z, w, k=4) + (1 | g)", False),
    "t2_tp_ml": ("y ~ t2(x, z, bs = c('tp', 'cr'), k = 6) + (1 | g)", False),
}


@pytest.mark.parametrize("case", list(GAUSSIAN))
def test_lmer_t2_matches_gamm4(sim, refs, case):
    """The same log-likelihood (ML and REML) and fitted values as gamm4's t2 fit: the margins'
    reparametrization, the groups, the constraint and the scaling are mgcv's."""
    formula, reml = GAUSSIAN[case]
    ref = refs[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # t2_y2_ml: the grouping variance is 0 (as gamm4's)
        m = glamm.lmer(formula, sim, reml=reml)
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert m.loglik >= ref["loglik"] - 1e-8 * abs(ref["loglik"])
    np.testing.assert_allclose(m.fitted(), ref["fitted"], atol=1e-4)
    # one random-effect term per penalized group (3 for two margins with null spaces)
    smooth_terms = [t.group for t in m.model.reterms if t.is_smooth]
    if case == "t2_3d_ml":   # three margins: 7 penalized groups, mgcv's order
        assert smooth_terms == [f"t2(x,z,w).{g}" for g in
                                ("rrr", "nrr", "rnr", "nnr", "rrn", "nrn", "rnn")]
    else:
        assert smooth_terms == ["t2(x,z).rr", "t2(x,z).nr", "t2(x,z).rn"]
    # predictions from the data reproduce the fit
    np.testing.assert_allclose(m.predict(sim), m.fitted(), rtol=1e-9, atol=1e-9)


def test_t2_smooth_table(sim, refs):
    """One row per t2 term, its edf the sum over the penalized groups' (gamm4's); the curve
    from smooth_estimates is the term's part of the fitted values."""
    for case in ("t2_ml", "t2_reml", "t2_k46_ml"):
        formula, reml = GAUSSIAN[case]
        m = glamm.lmer(formula, sim, reml=reml)
        table = m.smooth_table
        assert list(table.index) == ["t2(x,z)"]
        assert table.loc["t2(x,z)", "edf"] == pytest.approx(refs[case]["s_table"]["edf"],
                                                            rel=1e-4)
        assert 0 <= table.loc["t2(x,z)", "p-value"] <= 1
        assert m.edf["t2(x,z)"] == pytest.approx(table.loc["t2(x,z)", "edf"])
    est = m.smooth_estimates("t2(x,z)", x=sim[["x", "z"]])
    rest = m.fixef["(Intercept)"] + m.ranef["g"]["(Intercept)"].reindex(sim["g"]).to_numpy()
    np.testing.assert_allclose(est["estimate"] + rest, m.fitted(), rtol=1e-8, atol=1e-8)
    assert np.all(est["se"] > 0)


def test_t2_columns(sim):
    """Two cr margins of 5: 3x3 + 2x3 + 3x2 penalized columns and 2x2 - 1 fixed ones."""
    m = glamm.lmer("y ~ t2(x, z) + (1 | g)", sim, reml=False)
    assert [t.p for t in m.model.reterms if t.is_smooth] == [9, 6, 6]
    assert [n for n in m.fixef.index if n.startswith("t2")] == \
        ["t2(x,z)Fx1", "t2(x,z)Fx2", "t2(x,z)Fx3"]


def test_glmer_t2_matches_gamm4(sim, refs):
    ref = refs["t2_binomial"]
    m = glamm.glmer("yb ~ t2(x, z) + (1 | g)", sim, family="binomial")
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert m.loglik >= ref["loglik"] - 1e-8 * abs(ref["loglik"])
    np.testing.assert_allclose(m.fitted(), ref["fitted"], atol=1e-3)


def test_t2_parsing():
    s = parse_smooth("t2(x, z, k=c(4, 6), bs='cr')")
    assert (s.kind, s.margins, s.label) == ("t2", ((4, "cr", None), (6, "cr", None)), "t2(x,z)")
    assert parse_smooth("t2(x, z)").margins == ((5, "cr", None), (5, "cr", None))
    s = parse_smooth("t2(x, z, k=[4, 5], bs=['tp', 'ps'], m=2, factor='f')")
    assert (s.margins, s.factor, s.label) == (((4, "tp", 2), (5, "ps", 2)), "f", "t2(x,z):f")
    for bad, msg in [("t2(x)", "at least two"), ("t2(x, z, k=c(4, 5, 6))", "3 values for 2"),
                     ("t2(x, z, by=g)", "not available for t2"),
                     ("t2(x, z, full=TRUE)", "full=TRUE"),
                     ("t2(x, z, bs='re')", "not available"), ("t2(x, x)", "repeats")]:
        with pytest.raises(FormulaError, match=msg):
            parse_smooth(bad)


# --------------------------------------------------------------------------- t2l in galamm
def _items_data(seed: int, n_id: int = 60) -> pd.DataFrame:
    """Three items per subject; a smooth of two row-level covariates on the latent scale,
    loadings 1, 0.6, 1.5."""
    rng = np.random.default_rng(seed)
    n = 3 * n_id
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)),
                      "x": rng.uniform(0, 1, n), "w": rng.uniform(0, 1, n)})
    lam = d["item"].map({"a": 1.0, "b": 0.6, "c": 1.5}).to_numpy(dtype=float)
    f = np.sin(2 * np.pi * d["x"].to_numpy()) * d["w"].to_numpy()
    eta = rng.normal(scale=0.7, size=n_id)[np.repeat(np.arange(n_id), 3)]
    beta = d["item"].map({"a": 0.0, "b": 0.5, "c": -0.3}).to_numpy(dtype=float)
    d["y"] = beta + lam * (f + eta) + rng.normal(scale=0.3, size=n)
    return d


def _galamm(formula, d, lambda_, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.galamm(formula, d, load_var="item", factor="f", lambda_=lambda_, **kw)


T2L = "y ~ 0 + item + t2l(x, w, factor='f') + (0 + f | id)"


def _explicit_deviance(d: pd.DataFrame, lam: np.ndarray):
    """The profiled ML deviance of the loaded model with every column built and multiplied
    by the rows' loadings here (the t2 groups from the constructor, the random intercepts),
    as a function of the relative standard deviations (id, then the t2 groups)."""
    from glamm.smooths.construct import construct
    from glamm.smooths.spec import parse_smooth as ps

    parts = construct(ps("t2(x, w)"), d)
    Zs = [pd.get_dummies(d["id"]).to_numpy(dtype=float) * lam[:, None]]
    Zs += [p.X[:, :p.rank] * lam[:, None] for p in parts]
    X = np.column_stack([pd.get_dummies(d["item"]).to_numpy(dtype=float),
                         parts[0].X[:, parts[0].rank:] * lam[:, None]])
    y = d["y"].to_numpy()
    n = len(y)

    def deviance(theta: np.ndarray) -> float:
        V = np.eye(n) + sum(t ** 2 * Z @ Z.T for t, Z in zip(theta, Zs))
        L = np.linalg.cholesky(V)
        Xw, yw = np.linalg.solve(L, X), np.linalg.solve(L, y)
        beta = np.linalg.lstsq(Xw, yw, rcond=None)[0]
        r = yw - Xw @ beta
        sigma2 = r @ r / n
        return n * np.log(2 * np.pi * sigma2) + n + 2 * np.sum(np.log(np.diag(L)))

    return deviance


def test_t2l_with_fixed_loadings_is_the_explicitly_loaded_model():
    """Fixed loadings: the log-likelihood is the explicit model's at glamm's theta (every
    column of every group and the fixed columns times the loadings), and no theta does
    better; with loadings 1 it is lmer's t2 fit."""
    d = _items_data(4)
    lam_item = [[1.0], [0.6], [1.5]]
    m = _galamm(T2L, d, lam_item)
    assert m.smooth_labels == ["t2(x,w).rr:f", "t2(x,w).nr:f", "t2(x,w).rn:f"]
    lam = d["item"].map({"a": 1.0, "b": 0.6, "c": 1.5}).to_numpy(dtype=float)
    dev = _explicit_deviance(d, lam)
    theta = np.asarray(m.theta, dtype=float)
    assert m.loglik == pytest.approx(-0.5 * dev(theta), rel=1e-8)
    best = scipy.optimize.minimize(dev, theta, method="Nelder-Mead",
                                   options=dict(xatol=1e-7, fatol=1e-10, maxiter=400))
    assert m.loglik >= -0.5 * best.fun - 1e-8 * abs(m.loglik)
    ones = _galamm(T2L, d, [[1.0], [1.0], [1.0]])
    twin = glamm.lmer("y ~ 0 + item + t2(x, w) + (1 | id)", d, reml=False)
    assert ones.loglik == pytest.approx(twin.loglik, rel=1e-8)


def test_t2l_free_loadings():
    """Free loadings: the fit is at least as good as the one with the loadings fixed at its
    estimates (the same to 1e-7), near the true loadings."""
    d = _items_data(4)
    m = _galamm(T2L, d, [[1], [nan], [nan]])
    est = m.factor_loadings.iloc[:, 0].to_numpy()
    np.testing.assert_allclose(est, [1.0, 0.6, 1.5], atol=0.15)
    m0 = _galamm(T2L, d, est[:, None])
    assert m.loglik >= m0.loglik - 1e-8 * abs(m0.loglik)
    assert m.loglik == pytest.approx(m0.loglik, rel=1e-7)
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-9, atol=1e-9)
    # one smooth-table row for the loaded t2 term; its curve on the latent scale
    assert list(m.smooth_table.index) == ["t2(x,w):f"]
    assert list(m.galamm_smooth_table().index) == ["t2(x,w):f"]
    grid = pd.DataFrame({"x": [0.25, 0.75], "w": [0.9, 0.9]})
    est = m.smooth_estimates("t2(x,w):f", x=grid)["estimate"].to_numpy()
    assert est[0] > 0 > est[1]   # sin(2 pi x) w, centred


def test_t2l_gradient():
    """The analytic Laplace gradient (a binomial model) in theta, beta and the loadings,
    every group's columns and the fixed columns moving with the loadings."""
    from test_galamm import _gradients

    rng = np.random.default_rng(6)
    n_id = 60
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)),
                      "x": np.repeat(rng.uniform(0, 1, n_id), 3),
                      "w": rng.uniform(0, 1, 3 * n_id)})
    eta = np.sin(3 * d["x"]) * d["w"] * d["item"].map({"a": 1.0, "b": 0.7, "c": 1.3}) \
        .astype(float)
    d["y"] = (rng.uniform(size=len(d)) < 1 / (1 + np.exp(-eta))).astype(float)
    m = _galamm("y ~ 0 + item + t2l(x, w, k=4, factor='f') + (0 + f | id)", d,
                [[1], [nan], [nan]], family="binomial")
    g, num, _ = _gradients(m, 0.03)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_t2_input_errors(sim):
    from glamm.errors import DataError, GlammError

    with pytest.raises(FormulaError, match=r"te\(\) tensor-product smooths"):
        glamm.lmer("y ~ te(x, z) + (1 | g)", sim)
    with pytest.raises(FormulaError, match="only glamm.galamm"):
        glamm.lmer("y ~ t2(x, z, factor='f') + (1 | g)", sim)
    few = sim.assign(x=np.round(sim["x"] * 3))   # 4 distinct values
    with pytest.raises(DataError, match="needs k = 5 basis functions for x"):
        glamm.lmer("y ~ t2(x, z) + (1 | g)", few)
    d = _items_data(1, n_id=20)
    with pytest.raises(GlammError, match="not among the factors"):
        _galamm("y ~ 0 + item + t2l(x, w, factor='h') + (0 + f | id)", d, [[1], [nan], [nan]])

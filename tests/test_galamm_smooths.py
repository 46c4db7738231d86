"""Smooths on the latent scale (galamm's ``sl()``): smooth tables and curves of a galamm fit,
``sl(x, by=...)``, and the formula errors of latent smooths."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import glamm
from glamm.errors import FormulaError, GlammError

nan = np.nan


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.galamm(formula, data, **kw)


def _items_data(seed: int, n_id: int = 50, by: str | None = None) -> pd.DataFrame:
    """Three items per subject, the smooth of a row-level covariate on the latent scale:
    ``y = beta_item + lambda_item (f(x) + eta_id) + e`` with loadings 1, 0.6, 1.5 (``by``:
    ``"z"`` multiplies f by a numeric column, ``"g"`` gives each level of a factor its own f).
    """
    rng = np.random.default_rng(seed)
    n = 3 * n_id
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)),
                      "x": rng.uniform(0, 1, n),
                      "z": rng.uniform(0.5, 1.5, n),
                      "g": pd.Categorical(np.repeat(rng.choice(["u", "v"], n_id), 3))})
    lam = d["item"].map({"a": 1.0, "b": 0.6, "c": 1.5}).to_numpy(dtype=float)
    f = np.sin(2 * np.pi * d["x"].to_numpy())
    if by == "z":
        f = f * d["z"].to_numpy()
    elif by == "g":
        f = np.where(d["g"] == "u", f, np.cos(2 * np.pi * d["x"].to_numpy()))
    eta = rng.normal(scale=0.7, size=n_id)[np.repeat(np.arange(n_id), 3)]
    beta = d["item"].map({"a": 0.0, "b": 0.5, "c": -0.3}).to_numpy(dtype=float)
    d["y"] = beta + lam * (f + eta) + rng.normal(scale=0.3, size=n)
    return d


def _row_loadings(m, d: pd.DataFrame) -> np.ndarray:
    table = m.factor_loadings
    return d["item"].astype(str).map(dict(zip(table.index, table.iloc[:, 0]))).to_numpy(
        dtype=float)


# --------------------------------------------------------------------------- smooth tables
@pytest.fixture(scope="module")
def latent_fit():
    d = _items_data(11)
    m = _fit("y ~ 0 + item + sl(x, k=6, factor='f') + (0 + f | id)", d, load_var="item",
             factor="f", lambda_=[[1], [nan], [nan]])
    return m, d


def test_smooth_table_uses_the_loaded_design(latent_fit):
    """edf and the curve's standard errors of an sl() smooth against a dense computation with
    the loaded columns: ``P = C'V^-1 C + S`` over the smooth's random and fixed coefficients
    and the items (``C``: their columns times the rows' loadings, ``V``: the loaded random
    intercepts plus the residual), edf = trace of the smooth's block of ``P^-1 C'V^-1 C``."""
    m, d = latent_fit
    sm = m.smooths[0]
    lam = _row_loadings(m, d)
    Zs, Xs = sm.split(sm.X)
    items = pd.get_dummies(d["item"]).to_numpy(dtype=float)
    C = np.column_stack([Zs, Xs, items]) * lam[:, None]
    ids = pd.get_dummies(d["id"]).to_numpy(dtype=float) * lam[:, None]
    sigma2 = m.dispersion
    var_id, var_s = sigma2 * m.theta ** 2   # theta: the id term's, then the smooth's
    V = sigma2 * np.eye(len(d)) + var_id * ids @ ids.T
    info = C.T @ np.linalg.solve(V, C)
    pen = np.zeros_like(info)
    pen[:sm.rank, :sm.rank] = np.eye(sm.rank) / var_s
    Pinv = np.linalg.inv(info + pen)
    F = Pinv @ info
    k = sm.n_coef
    assert m.edf[sm.label] == pytest.approx(np.trace(F[:k, :k]), rel=1e-6)
    assert m.smooth_table.loc[sm.label, "edf"] == pytest.approx(np.trace(F[:k, :k]), rel=1e-6)
    # the curve on the latent scale: coefficients U D [b; beta0], covariance from P^-1
    grid = np.linspace(0.05, 0.95, 7)
    est = m.smooth_estimates(sm.label, x=grid)
    B = sm.design(pd.DataFrame({"x": grid})) @ sm.U * sm.D[None, :]
    se = np.sqrt(np.einsum("ij,jk,ik->i", B, Pinv[:k, :k], B))
    np.testing.assert_allclose(est["se"], se, rtol=1e-5)
    coef = np.concatenate([m._b[-1].ravel(), [m.fixef[n] for n in sm.fixed_names]])
    np.testing.assert_allclose(est["estimate"], B @ coef, rtol=1e-8, atol=1e-10)
    # galamm's own table leaves the smooth's columns unloaded, which is another information
    assert m.galamm_smooth_table().loc[sm.label, "F"] != pytest.approx(
        m.smooth_table.loc[sm.label, "F"], rel=0.05)


def test_smooth_results_of_a_binomial_latent_smooth(binary_latent_smooth_fit):
    """A Laplace fit (binomial) gives its smooth table and curve as well; chi-squared tests."""
    m = binary_latent_smooth_fit
    table = m.smooth_table
    assert list(table.columns) == ["edf", "Ref.df", "Chi.sq", "p-value"]
    assert 1.0 <= table.iloc[0]["edf"] <= 4.0 and 0.0 <= table.iloc[0]["p-value"] <= 1.0
    est = m.smooth_estimates("s(x):f", n=5)
    assert est.shape == (5, 3) and np.all(est["se"] > 0)
    assert "Approximate significance of smooth terms" in str(m)


@pytest.mark.slow
def test_cognition_smooth_against_galamm(cognition_fit):
    """The cognition model's smooth: the curve (on the latent scale) as galamm's, and galamm's
    table (its unloaded convention, galamm_smooth_table) to 1e-4; the table of the fitted
    model (loaded columns) has fewer effective degrees of freedom."""
    m, _ = cognition_fit
    ref = load_reference("galamm_cognition_d1_factor_smooth")["gam"]
    grid = ref["smooth_grids"]["s(x):loading"]
    est = m.smooth_estimates("s(x):loading", x=np.array(grid["x"]))
    np.testing.assert_allclose(est["estimate"], grid["fit"], rtol=1e-4, atol=1e-5)
    assert m.sp["s(x):loading"] == pytest.approx(ref["sp"]["s(x):loading"], rel=1e-3)
    theirs = m.galamm_smooth_table()
    edf, ref_df, stat, _ = ref["s_table"]["values"][0]
    assert theirs.loc["s(x):loading", "edf"] == pytest.approx(edf, rel=1e-4)
    assert theirs.loc["s(x):loading", "Ref.df"] == pytest.approx(ref_df, rel=1e-4)
    assert theirs.loc["s(x):loading", "F"] == pytest.approx(stat, rel=1e-4)
    ours = m.smooth_table.loc["s(x):loading"]
    assert 1.0 < ours["edf"] < edf - 1.0 and ours["p-value"] < 1e-10
    # galamm's standard errors come from its unloaded information: smaller than the model's
    assert np.all(est["se"].to_numpy() > np.array(grid["se"]))


# --------------------------------------------------------------------------- sl(x, by=...)
def _lmer_twin(m, d: pd.DataFrame, formula: str) -> tuple:
    """The galamm fit ``m`` as an lmer fit with its loadings written into the data (``l``:
    the row's loading, ``zl``: the numeric by times it), and the lmer objective at ``m``'s
    theta."""
    d = d.assign(l=_row_loadings(m, d))
    d["zl"] = d["z"] * d["l"]
    twin = glamm.lmer(formula, d, REML=False)
    return twin, -0.5 * twin.model.working_copy().objective(m.theta)


def test_numeric_by_is_the_smooth_with_explicitly_loaded_columns():
    """sl(x, by=z, factor=f): the smooth times z, loaded. At the loadings' estimates it is the
    lmer of s(x, by=z*lambda) + (0 + lambda | id): the same log-likelihood at the same theta,
    a fit at least as good, and the same smooth table (the loaded information, as lmer's)."""
    d = _items_data(5, by="z")
    m = _fit("y ~ 0 + item + sl(x, k=6, by=z, factor='f') + (0 + f | id)", d,
             load_var="item", factor="f", lambda_=[[1], [nan], [nan]])
    assert m.smooth_labels == ["s(x):z:f"]
    # a non-constant numeric by: no centring constraint, so the null space's two columns
    assert [n for n in m.fixef.index if n.startswith("s(")] == ["s(x):z:fFx1", "s(x):z:fFx2"]
    twin, at_theta = _lmer_twin(m, d, "y ~ 0 + item + s(x, k=6, by=zl) + (0 + l | id)")
    assert m.loglik == pytest.approx(at_theta, rel=1e-10)
    assert m.loglik >= twin.loglik - 1e-6 * abs(twin.loglik)
    assert m.loglik == pytest.approx(twin.loglik, rel=1e-6)
    ours, theirs = m.smooth_table.iloc[0], twin.smooth_table.iloc[0]
    assert ours["edf"] == pytest.approx(theirs["edf"], rel=1e-3)
    assert ours["F"] == pytest.approx(theirs["F"], rel=1e-3)
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-9, atol=1e-9)
    # the curve is the smooth of x alone (z = 1 unless given), on the latent scale
    grid = pd.DataFrame({"x": [0.2, 0.5], "z": [2.0, 2.0]})
    np.testing.assert_allclose(m.smooth_estimates("s(x):z:f", x=grid)["estimate"],
                               2 * m.smooth_estimates("s(x):z:f", x=grid["x"])["estimate"],
                               rtol=1e-10)


def _dense_loglik(m, d: pd.DataFrame) -> float:
    """The Gaussian log-likelihood of ``m`` from its estimates, with every column built here:
    each level's smooth (the frame's own basis at the data) and the random intercepts times
    the rows' loadings."""
    lam = _row_loadings(m, d)
    sigma2 = m.dispersion
    V = sigma2 * np.eye(len(d))
    for term, theta in zip(m.model.reterms, m.theta):
        if term.is_smooth:
            Zs, _ = term.smooth.split(term.smooth.X)
            Zs = Zs * lam[:, None]
        else:
            Zs = pd.get_dummies(d["id"]).to_numpy(dtype=float) * lam[:, None]
        V += sigma2 * theta ** 2 * Zs @ Zs.T
    X = pd.get_dummies(d["item"]).to_numpy(dtype=float)
    for sm in m.smooths:
        _, Xs = sm.split(sm.X)
        X = np.column_stack([X, Xs * lam[:, None]])
    r = d["y"].to_numpy() - X @ m.fixef.to_numpy()
    _, logdet = np.linalg.slogdet(V)
    return -0.5 * (len(d) * np.log(2 * np.pi) + logdet + r @ np.linalg.solve(V, r))


def test_factor_by_gives_one_loaded_smooth_per_level():
    """sl(x, by=g, factor=f): one centred smooth per level of g, every column of each loaded;
    the log-likelihood equals a dense computation with the loaded columns, and fixing the
    loadings at their estimates gives the same fit."""
    d = _items_data(8, by="g")
    m = _fit("y ~ 0 + item + sl(x, k=5, by=g, factor='f') + (0 + f | id)", d,
             load_var="item", factor="f", lambda_=[[1], [nan], [nan]])
    assert m.smooth_labels == ["s(x):gu:f", "s(x):gv:f"]
    loadings = m.model.loadings
    assert sorted(k for k, _ in loadings.terms) == [0, 1, 2]
    assert len(loadings.x_cols) == 2
    assert m.loglik == pytest.approx(_dense_loglik(m, d), rel=1e-9)
    fixed = m.factor_loadings.iloc[:, 0].to_numpy()[:, None]
    m0 = _fit("y ~ 0 + item + sl(x, k=5, by=g, factor='f') + (0 + f | id)", d,
              load_var="item", factor="f", lambda_=fixed)
    assert m.loglik >= m0.loglik - 1e-8 * abs(m0.loglik)
    assert m.loglik == pytest.approx(m0.loglik, rel=1e-7)
    assert list(m.smooth_table.index) == ["s(x):gu:f", "s(x):gv:f"]
    # predictions from new data load every level's smooth as the fit did
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.predict(d, re=False), m.predict(None, re=False), rtol=1e-9,
                               atol=1e-9)
    # each level's curve, on the latent scale, follows its own truth
    for label, truth in (("s(x):gu:f", np.sin), ("s(x):gv:f", np.cos)):
        est = m.smooth_estimates(label, x=np.linspace(0.1, 0.9, 9))
        target = truth(2 * np.pi * est["x"])
        assert np.corrcoef(est["estimate"], target)[0, 1] > 0.95


def test_factor_by_latent_smooth_gradient():
    """The analytic gradient with a factor by (a binomial model: the GLMM gradient), every
    level's penalized and unpenalized columns moving with the loadings."""
    from test_galamm import _gradients

    rng = np.random.default_rng(6)
    n_id = 60
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)),
                      "x": np.repeat(rng.uniform(0, 1, n_id), 3),
                      "z": rng.uniform(0.5, 1.5, 3 * n_id),
                      "g": pd.Categorical(np.repeat(rng.choice(["u", "v"], n_id), 3))})
    eta = np.sin(3 * d["x"]) * d["item"].map({"a": 1.0, "b": 0.7, "c": 1.3}).astype(float)
    d["y"] = (rng.uniform(size=len(d)) < 1 / (1 + np.exp(-eta))).astype(float)
    for by in ("g", "z"):
        m = _fit(f"y ~ 0 + item + sl(x, k=4, by={by}, factor='f') + (0 + f | id)", d,
                 family="binomial", load_var="item", factor="f", lambda_=[[1], [nan], [nan]])
        g, num, _ = _gradients(m, 0.03)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_latent_smooth_input_errors():
    d = _items_data(1, n_id=20)
    kw = dict(load_var="item", factor="f", lambda_=[[1], [nan], [nan]])
    with pytest.raises(FormulaError, match="names a latent factor"):
        glamm.galamm("y ~ 0 + item + sl(x, by=f, factor='f') + (0 + f | id)", d, **kw)
    with pytest.raises(FormulaError, match="unknown column 'w'"):
        glamm.galamm("y ~ 0 + item + sl(x, by=w, factor='f') + (0 + f | id)", d, **kw)
    with pytest.raises(FormulaError, match="needs factor="):
        glamm.galamm("y ~ 0 + item + t2l(x, z) + (0 + f | id)", d, **kw)
    # factor= belongs to galamm's latent variables
    with pytest.raises(FormulaError, match="only glamm.galamm"):
        glamm.lmer("y ~ s(x, factor='f') + (1 | id)", d)
    with pytest.raises(FormulaError, match="must be a str literal"):
        glamm.lmer("y ~ s(x, factor=1) + (1 | id)", d)
    with pytest.raises(GlammError, match="not among the factors"):
        glamm.galamm("y ~ 0 + item + sl(x, by=g, factor='h') + (0 + f | id)", d, **kw)


def _two_domain_data(seed: int, n_id: int = 60) -> pd.DataFrame:
    """Two domains, two items each: items a, b measure factor f1 (loadings 1, 0.6) and depend
    on sin(2 pi x); items c, d measure f2 (loadings 1, 1.8) and depend on cos(2 pi x)."""
    rng = np.random.default_rng(seed)
    items = ["a", "b", "c", "d"]
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 4).astype(str),
                      "item": pd.Categorical(np.tile(items, n_id)),
                      "x": rng.uniform(0, 1, 4 * n_id)})
    d["g"] = pd.Categorical(np.where(d["item"].isin(["a", "b"]), "u", "v"))
    d["gu"] = (d["g"] == "u").astype(float)
    d["gv"] = (d["g"] == "v").astype(float)
    lam = d["item"].map({"a": 1.0, "b": 0.6, "c": 1.0, "d": 1.8}).to_numpy(dtype=float)
    x = d["x"].to_numpy()
    f = np.where(d["g"] == "u", np.sin(2 * np.pi * x), np.cos(2 * np.pi * x))
    eta = rng.multivariate_normal([0, 0], [[0.5, 0.2], [0.2, 0.8]], size=n_id)
    e = np.where(d["g"] == "u", eta[np.repeat(np.arange(n_id), 4), 0],
                 eta[np.repeat(np.arange(n_id), 4), 1])
    d["y"] = 0.2 * d["gv"] + lam * (f + e) + rng.normal(scale=0.3, size=len(d))
    return d


def test_factor_by_with_one_latent_factor_per_level():
    """galamm's sl(x, by=g, factor=c('f1', 'f2')): level j's smooth is on factor j's latent
    scale, and random-effects columns such as gu:f1 (a covariate times a factor) carry that
    factor's loadings. The log-likelihood equals a dense computation with every column
    built here from the data and the estimated loadings."""
    d = _two_domain_data(21)
    lmat = [[1, 0], [nan, 0], [0, 1], [0, nan]]
    formula = "y ~ g + sl(x, k=5, by=g, factor=['f1', 'f2']) + (0 + gu:f1 + gv:f2 | id)"
    m = _fit(formula, d, load_var="item", factor=["f1", "f2"], lambda_=lmat)
    assert m.smooth_labels == ["s(x):gu:f1", "s(x):gv:f2"]
    # R's c() is accepted too, with the same fit
    m_c = _fit(formula.replace("['f1', 'f2']", 'c("f1", "f2")'), d, load_var="item",
               factor=["f1", "f2"], lambda_=lmat)
    assert m_c.loglik == pytest.approx(m.loglik, rel=1e-12)
    table = m.factor_loadings
    est = {"a": 1.0, "b": table.iloc[1, 0], "c": 1.0, "d": table.iloc[3, 2]}
    assert est["b"] == pytest.approx(0.6, abs=0.15) and est["d"] == pytest.approx(1.8, abs=0.3)
    lam = d["item"].astype(str).map(est).to_numpy(dtype=float)
    # dense log-likelihood: V = sigma^2 I + sum_k Z_k Lambda_k Lambda_k' Z_k' (the model's
    # Lambda_k are on the response scale: b = Lambda u, u ~ N(0, I))
    sigma2 = m.dispersion
    n = len(d)
    V = sigma2 * np.eye(n)
    ids = pd.get_dummies(d["id"]).to_numpy(dtype=float)
    lams = m.model.lambdas(m.theta)
    for k, term in enumerate(m.model.reterms):
        if term.is_smooth:
            Zs, _ = term.smooth.split(term.smooth.X)
            Z = Zs * lam[:, None]
            V += (lams[k][0, 0] ** 2) * Z @ Z.T
        else:
            cols = np.column_stack([d["gu"] * lam, d["gv"] * lam])   # the two loaded columns
            S = lams[k] @ lams[k].T
            V += (ids @ ids.T) * (cols @ S @ cols.T)
    X = np.column_stack([np.ones(n), d["gv"].to_numpy(dtype=float)])
    for sm in m.smooths:
        _, Xs = sm.split(sm.X)
        X = np.column_stack([X, Xs * lam[:, None]])
    r = d["y"].to_numpy() - X @ m.fixef.to_numpy()
    _, logdet = np.linalg.slogdet(V)
    dense = -0.5 * (n * np.log(2 * np.pi) + logdet + r @ np.linalg.solve(V, r))
    assert m.loglik == pytest.approx(dense, rel=1e-9)
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-9, atol=1e-9)


def test_factor_list_errors():
    d = _two_domain_data(2, n_id=15)
    kw = dict(load_var="item", factor=["f1", "f2"],
              lambda_=[[1, 0], [nan, 0], [0, 1], [0, nan]])
    with pytest.raises(FormulaError, match="names 2 latent factors, one per level"):
        glamm.galamm("y ~ g + sl(x, k=4, factor=['f1', 'f2']) + (0 + gu:f1 + gv:f2 | id)",
                     d, **kw)
    with pytest.raises(FormulaError, match="has 2 levels"):
        glamm.galamm("y ~ g + sl(x, k=4, by=g, factor=['f1', 'f2', 'f1']) "
                     "+ (0 + gu:f1 + gv:f2 | id)", d, **kw)
    with pytest.raises(GlammError, match="several latent factors"):
        glamm.galamm("y ~ g + (0 + f1:f2 | id)", d, **kw)


@pytest.mark.slow
def test_galamm_semiparametric_vignette_two_domains():
    """galamm's semiparametric vignette, domains 1 and 3 of cognition (11,200 rows, 13
    parameters): sl(x, by=domain, factor=c('ability1', 'ability3')) and loaded columns
    domain1:ability1, domain3:ability3 in (... | id/timepoint). galamm (factr 1e9) prints
    logLik 1217.8 and loadings 1.3986, 0.3013 / 0.9993, 1.0001, 1.9995 with SEs 0.002569,
    0.002007 / 0.0007676, 0.0007679, 0.0015686; glamm reaches a higher maximum (1243.31) with
    the same loadings to 3-4 digits."""
    cog = glamm.datasets.load("cognition")
    d = cog[cog["domain"].astype(str).isin(["1", "3"])].copy()
    d["domain"] = d["domain"].cat.remove_unused_categories()
    d["item"] = d["item"].cat.remove_unused_categories()
    d["domain1"] = (d["domain"].astype(str) == "1").astype(float)
    d["domain3"] = (d["domain"].astype(str) == "3").astype(float)
    lmat = [[1, 0], [nan, 0], [nan, 0], [0, 1], [0, nan], [0, nan], [0, nan]]
    m = _fit("y ~ domain + sl(x, by=domain, factor=c('ability1', 'ability3')) "
             "+ (0 + domain1:ability1 + domain3:ability3 | id/timepoint)", d,
             load_var="item", lambda_=lmat, factor=["ability1", "ability3"])
    assert m.loglik > 1243.3
    table = m.factor_loadings
    est = [table.iloc[1, 0], table.iloc[2, 0], table.iloc[4, 2], table.iloc[5, 2],
           table.iloc[6, 2]]
    np.testing.assert_allclose(est, [1.3986, 0.3013, 0.9993, 1.0001, 1.9995], atol=2e-3)
    se = [table.iloc[1, 1], table.iloc[2, 1], table.iloc[4, 3], table.iloc[5, 3],
          table.iloc[6, 3]]
    np.testing.assert_allclose(se, [0.002569, 0.002007, 0.0007676, 0.0007679, 0.0015686],
                               rtol=0.05)
    assert m.smooth_labels == ["s(x):domain1:ability1", "s(x):domain3:ability3"]

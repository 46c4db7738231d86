"""Smooths on the latent scale (galamm's ``sl()``): smooth tables and curves of a galamm fit,
``sl(x, by=...)``, and the formula errors of latent smooths."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import glamm

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
    B = sm.design(pd.DataFrame({"x": grid, "f": 1.0})) @ sm.U * sm.D[None, :]
    se = np.sqrt(np.einsum("ij,jk,ik->i", B, Pinv[:k, :k], B))
    np.testing.assert_allclose(est["se"], se, rtol=1e-5)
    coef = np.concatenate([m._b[-1].ravel(), [m.fixef[n] for n in sm.fixed_names]])
    np.testing.assert_allclose(est["estimate"], B @ coef, rtol=1e-8, atol=1e-10)
    # galamm's own table leaves the smooth's columns unloaded, which is another information
    assert m.galamm_smooth_table().loc[sm.label, "F"] != pytest.approx(
        m.smooth_table.loc[sm.label, "F"], rel=0.05)


def test_smooth_results_of_a_binomial_latent_smooth():
    """A Laplace fit (binomial) gives its smooth table and curve as well; chi-squared tests."""
    rng = np.random.default_rng(4)
    n_id = 60
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)),
                      "x": np.repeat(rng.uniform(0, 1, n_id), 3)})
    eta = np.sin(3 * d["x"]) * d["item"].map({"a": 1.0, "b": 0.7, "c": 1.3}).astype(float)
    d["y"] = (rng.uniform(size=len(d)) < 1 / (1 + np.exp(-eta))).astype(float)
    m = _fit("y ~ 0 + item + sl(x, k=5, factor='f') + (0 + f | id)", d, family="binomial",
             load_var="item", factor="f", lambda_=[[1], [nan], [nan]])
    table = m.smooth_table
    assert list(table.columns) == ["edf", "Ref.df", "Chi.sq", "p-value"]
    assert 1.0 <= table.iloc[0]["edf"] <= 4.0 and 0.0 <= table.iloc[0]["p-value"] <= 1.0
    est = m.smooth_estimates("s(x):f", n=5)
    assert est.shape == (5, 3) and np.all(est["se"] > 0)
    assert "Approximate significance of smooth terms" in str(m)


@pytest.fixture(scope="module")
def cognition_fit():
    cog = glamm.datasets.load("cognition")
    d = cog[cog["domain"].astype(str) == "1"].copy()
    d["item"] = d["item"].cat.remove_unused_categories()
    m = _fit("y ~ 0 + item + sl(x, factor='loading') + (0 + loading | id/timepoint)", d,
             load_var="item", factor="loading", lambda_=[[1], [nan], [nan]])
    return m, d


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

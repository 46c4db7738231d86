"""Smooth models on other data against gamm4 0.2-6 / mgcv 1.8-41, made by the committed R
script tests/reference/gamm_extra/make_gamm_extra.R (cubic regression and P-spline bases, a
factor ``by`` variable, binomial and Poisson GAMMs, smooths without any other random effect
against ``mgcv::gam(method = "REML")``), plus prediction, plotting, invariances and bad input.

GLMM references come from gamm4, whose lme4 fit stops slightly short: glamm's Laplace
log-likelihood is never lower, and its estimates are compared at 1e-3 there (the gap in
log-likelihood is up to 3e-5 units). The parametric standard errors compared are those of
gamm4's ``summary(m$gam)``: from ``Vp``, i.e. conditional on the smoothing parameters
(``parametric_table``); ``stderr`` of a GLMM stays lme4's (the Hessian in all parameters).
The smooth table's ``Ref.df`` follows gamm4 (equal to the edf); ``mgcv::gam`` uses its own
``edf1`` there, so only its criterion, coefficients and curves are compared.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.errors import DataError, FormulaError

DIR = Path(__file__).parent / "reference" / "gamm_extra"
CASES = sorted(p.stem for p in DIR.glob("*.json"))


@lru_cache(maxsize=None)
def data() -> pd.DataFrame:
    d = pd.read_csv(DIR / "data_sim1_extra.csv")
    for c in ("fac", "g3"):
        d[c] = d[c].astype(str).astype("category")
    return d


@lru_cache(maxsize=None)
def case(name: str):
    ref = json.loads((DIR / f"{name}.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ref.get("family"):
            m = glamm.glmer(ref["formula"], data(), family=ref["family"])
        else:
            m = glamm.lmer(ref["formula"], data(), reml=ref["method"] == "REML",
                           weights=ref.get("weights"))
    return m, ref


def _criterion(m, ref) -> tuple[float, float]:
    if ref.get("family") or ref.get("method") == "ML":
        return -2.0 * m.loglik, -2.0 * ref["logLik"]
    return m.reml_criterion, ref["REMLcrit"]


@pytest.mark.parametrize("name", CASES)
def test_criterion(name):
    m, ref = case(name)
    ours, theirs = _criterion(m, ref)
    assert ours <= theirs + 1e-6 * abs(theirs)
    assert ours >= theirs - 1e-6 * abs(theirs) - 1e-4


@pytest.mark.parametrize("name", CASES)
def test_parametric_and_smooths(name):
    m, ref = case(name)
    glmm = bool(ref.get("family"))
    rel = 1e-3 if glmm else 1e-4
    se_factor = 1.0
    if name.startswith("gam_") and ref["method"] == "ML":
        # with ML, mgcv's gam reports the scale as RSS / (n - edf) (and scales Vp by it);
        # glamm, like gamm4 and lme4, reports the ML estimate: compare through the ratio
        edf = m.frame.n_parametric + m.edf.sum()
        pearson = float(m.residuals() @ m.residuals()) / (m.nobs - edf)
        assert ref["scale"] == pytest.approx(pearson, rel=1e-5)
        se_factor = float(np.sqrt(ref["scale"]) / m.sigma)
    pt = m.parametric_table()
    for k, v in ref["parametric"]["estimate"].items():
        assert pt.loc[k, "Estimate"] == pytest.approx(v, rel=rel, abs=1e-3 * rel), k
        assert se_factor * pt.loc[k, "Std. Error"] == pytest.approx(
            ref["parametric"]["se"][k], rel=1e-3), k
    if not glmm:
        assert se_factor * m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    for label, g in ref["smooth_grids"].items():
        # other covariates of the smooth (and a numeric by) at the reference's values
        grid = pd.DataFrame({g["covariate"]: g["x"], **g.get("at", {})})
        est = m.smooth_estimates(label, x=grid)
        fit, se = np.array(g["fit"]), np.array(g["se"])
        assert np.max(np.abs(est["estimate"].to_numpy() - fit)) <= 1e-3 * np.ptp(fit), label
        np.testing.assert_allclose(se_factor * est["se"].to_numpy(), se, rtol=0.02,
                                   err_msg=label)
        assert m.edf[label] == pytest.approx(ref["edf_by_smooth"][label], rel=1e-3)


@pytest.mark.parametrize("name", [c for c in CASES if c.startswith("gamm4")])
def test_smooth_table_as_gamm4(name):
    m, ref = case(name)
    st = ref["s_table"]
    # (jsonlite writes a one-row table's names as a plain string)
    names = [st["rownames"]] if isinstance(st["rownames"], str) else st["rownames"]
    values = np.atleast_2d(np.array(st["values"], dtype=float))
    for row, label in zip(values, names):
        ours = m.smooth_table.loc[label]
        # (a smooth without a null space, bs="ts" here, is tested as a random effect: reTest)
        assert ours.iloc[1] == pytest.approx(row[1], rel=1e-3)
        assert ours.iloc[0] == pytest.approx(row[0], rel=1e-3)
        assert ours.iloc[2] == pytest.approx(row[2], rel=1e-3)
        assert ours.iloc[3] == pytest.approx(row[3], abs=1e-5)


def test_smooth_only_model_equals_mgcv_gam():
    m, ref = case("gam_cr_only_reml")
    assert not m.ngroups   # no grouping factor at all
    assert m.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)
    assert m.sp["s(x2)"] == pytest.approx(ref["sp"]["s(x2)"], rel=1e-4)


def test_prediction_on_new_data_reproduces_fitted():
    m, _ = case("gamm4_by_reml")
    d = data()
    np.testing.assert_allclose(m.predict(d), m.fitted(), rtol=1e-10, atol=1e-10)
    # population level keeps the smooths and drops (1 | fac)
    pop = m.predict(d, re=False)
    b_fac = m.ranef["fac"]["(Intercept)"]
    np.testing.assert_allclose(m.fitted() - pop, b_fac.loc[d["fac"].astype(str)].to_numpy(),
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.predict(None, re=False), pop, rtol=1e-10, atol=1e-10)


def test_smooth_estimates_default_grid_and_by_levels():
    m, _ = case("gamm4_by_reml")
    est = m.smooth_estimates("s(x2):g3b", n=25)
    assert list(est.columns) == ["x2", "estimate", "se"] and len(est) == 25
    assert est["x2"].iloc[0] == pytest.approx(data()["x2"].min())
    assert np.all(est["se"] > 0)
    with pytest.raises(glamm.GlammError, match="no smooth"):
        m.smooth_estimates("s(x9)")


def test_plot_smooth():
    import matplotlib

    matplotlib.use("Agg")
    m, _ = case("gamm4_cr_reml")
    ax = glamm.plot_smooth(m, "s(x2)")
    assert ax.get_xlabel() == "x2" and len(ax.lines) >= 2


def test_summary_shows_smooth_table():
    m, _ = case("gamm4_binomial")
    text = str(m)
    assert "Approximate significance of smooth terms:" in text
    assert "Chi.sq" in text and "s(x2)" in text
    m2, _ = case("gamm4_cr_reml")
    assert "Parametric coefficients:" in str(m2) and " F " in str(m2)


def test_invariant_to_row_order_and_level_labels():
    m, _ = case("gamm4_cr_reml")
    d = data().sample(frac=1.0, random_state=3).reset_index(drop=True)
    d["fac"] = d["fac"].cat.rename_categories(lambda s: f"L{s}")
    m2 = glamm.lmer("y ~ s(x0, bs='cr') + x1 + s(x2, bs='cr') + (1 | fac)", d)
    assert m2.reml_criterion == pytest.approx(m.reml_criterion, rel=1e-10)
    for label in ("s(x0)", "s(x2)"):
        assert m2.edf[label] == pytest.approx(m.edf[label], rel=1e-6)


def test_rescaling_the_response():
    m, _ = case("gam_cr_only_reml")
    d = data().copy()
    d["y10"] = 10.0 * d["y"]
    m10 = glamm.lmer("y10 ~ s(x2, bs='cr', k=12) + x1", d)
    assert m10.sigma == pytest.approx(10 * m.sigma, rel=1e-6)
    assert m10.sp["s(x2)"] == pytest.approx(m.sp["s(x2)"], rel=1e-5)
    g = np.linspace(0.1, 0.9, 7)
    np.testing.assert_allclose(m10.smooth_estimates("s(x2)", x=g)["estimate"],
                               10 * m.smooth_estimates("s(x2)", x=g)["estimate"], rtol=1e-5)


@pytest.mark.parametrize("formula,err,match", [
    ("y ~ s(nope) + (1 | fac)", FormulaError, "nope"),
    ("y ~ s(x2, bs='zz') + (1 | fac)", FormulaError, "bs='zz'|basis"),
    ("y ~ s(x2, k=x) + (1 | fac)", FormulaError, "k="),
    ("y ~ s(g3) + (1 | fac)", DataError, "numeric"),
    ("y ~ s(x2, q=3) + (1 | fac)", FormulaError, "unknown argument"),
    ("y ~ s(x2) + s(x2) + (1 | fac)", FormulaError, "more than once"),
    # constructs glamm does not fit say so
    ("y ~ (s(x0) | fac)", FormulaError, "contains a smooth"),
    ("y ~ s(x0):x1 + (1 | fac)", FormulaError, "term of its own"),
    ("y ~ x1 * s(x0) + (1 | fac)", FormulaError, "term of its own"),
    ("y ~ te(x0, x2) + (1 | fac)", FormulaError, "tensor-product"),
    ("y ~ s(x0, bs='re') + (1 | fac)", DataError, "numeric"),
])
def test_bad_smooth_terms(formula, err, match):
    with pytest.raises(err, match=match):
        glamm.lmer(formula, data())


def test_too_many_basis_functions_for_the_distinct_values():
    d = data().copy()
    d["few"] = np.round(d["x2"] * 3)   # 4 distinct values
    with pytest.raises(DataError, match="distinct values"):
        glamm.lmer("y ~ s(few, bs='cr', k=10) + (1 | fac)", d)


def test_quadrature_refuses_smooths_and_auto_falls_back_to_laplace():
    d = data()
    with pytest.raises(glamm.GlammError, match="smooth terms"):
        glamm.glmer("yb ~ s(x2, bs='cr') + (1 | fac)", d, family="binomial", nagq=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", glamm.SingularFitWarning)
        m = glamm.glmer("yb ~ s(x2, bs='cr') + (1 | fac)", d, family="binomial",
                        nagq="auto")
    assert m.nagq == 1


def test_glmm_prediction_with_smooths():
    m, _ = case("gamm4_binomial")
    d = data()
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-9, atol=1e-9)
    pop = m.predict(d, re=False)
    b = m.ranef["fac"]["(Intercept)"].loc[d["fac"].astype(str)].to_numpy()
    np.testing.assert_allclose(m.fitted("link") - pop, b, rtol=1e-8, atol=1e-8)


def test_json_export_has_the_smooth_table():
    m, ref = case("gamm4_cr_reml")
    out = m.to_dict()
    assert set(out["smooths"]) == {"s(x0)", "s(x2)"}
    assert out["smooths"]["s(x2)"]["statistic_name"] == "F"
    assert out["parametric"]["estimate"]["x1"] == pytest.approx(
        ref["parametric"]["estimate"]["x1"], rel=1e-4)


@pytest.mark.parametrize("formula,labels,xnames", [
    ("y ~ s(x0) - 1 + (1 | fac)", ["s(x0)"], ["s(x0)Fx1"]),
    ("y ~ x1 + s(x0)-1 + (1 | fac)", ["s(x0)"], ["x1", "s(x0)Fx1"]),
    ("y ~ s(x0, k=-1, bs='cr') + (1 | fac)", ["s(x0)"], ["(Intercept)", "s(x0)Fx1"]),
    ("y ~ s(x.a, bs='cr') + (1 | fac)", ["s(x.a)"], ["(Intercept)", "s(x.a)Fx1"]),
    ("y ~ s(`x.a`, bs='cr') + (1 | fac)", ["s(x.a)"], ["(Intercept)", "s(x.a)Fx1"]),
])
def test_formula_spellings(formula, labels, xnames):
    d = data().copy()
    d["x.a"] = d["x2"]
    m = glamm.lmer(formula, d)
    assert m.smooth_labels == labels and list(m.frame.xnames) == xnames


def test_shrinkage_smooth_shrunk_to_zero():
    """Regression: a ts/cs smooth of an unrelated covariate ends with sp = inf; its table row
    was a division by zero (gamm4: edf ~ 0, Ref.df = 9, F = 0, p = 1)."""
    m = glamm.lmer("y ~ s(x2, bs='cr') + s(x3, bs='ts') + (1 | fac)", data())
    row = m.smooth_table.loc["s(x3)"]
    assert np.isinf(m.sp["s(x3)"]) and row["edf"] < 1e-6
    assert row["Ref.df"] == 9 and row["F"] == 0 and row["p-value"] == 1
    assert "s(x3)" in str(m)


def test_missing_covariates_in_new_data_give_missing_predictions():
    m, _ = case("gamm4_cr_reml")
    nd = data().iloc[:4].copy()
    nd.loc[nd.index[1], "x2"] = np.nan
    nd.loc[nd.index[2], "x1"] = np.nan
    pred = m.predict(nd)
    assert np.isnan(pred[1]) and np.isnan(pred[2])
    np.testing.assert_allclose(pred[[0, 3]], m.fitted()[[0, 3]], rtol=1e-10)

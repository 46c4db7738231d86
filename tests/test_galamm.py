"""Models with factor loadings (glamm.galamm) against galamm's and glmmTMB's reference fits,
and galamm's input rules."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, load_reference

import glamm
from glamm.errors import DataError, GlammError

nan = np.nan
LOGLIK_RTOL = 1e-6
ESTIMATE_RTOL = 1e-4
SE_RTOL = 1e-3


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.galamm(formula, data, **kw)


def _ref_loadings(ref) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([[np.nan if v is None else v for v in row]
                       for row in ref["factor_loadings"]["values"]], dtype=float)
    return values[:, 0], values[:, 1]


CASES = {
    "galamm_factor_gaussian": dict(
        data="sim_factor_gaussian", formula="y ~ 0 + item + (0 + loading | id)",
        kw=dict(load_var="item", factor="loading", lambda_=[[1], [nan], [nan]])),
    "galamm_factor_binomial": dict(
        data="sim_factor_binomial", formula="y ~ 0 + item + (0 + ability | id)",
        kw=dict(family="binomial", load_var="item", factor="ability",
                lambda_=[[1], [nan], [nan], [nan], [nan]])),
}


@pytest.fixture(scope="module")
def fits():
    out = {}
    for case, spec in CASES.items():
        out[case] = _fit(spec["formula"], load_data(spec["data"]), **spec["kw"])
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_loglik_reaches_galamm(fits, case):
    ref = load_reference(case)
    m = fits[case]
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])


@pytest.mark.parametrize("case", list(CASES))
def test_loadings_and_standard_errors(fits, case):
    ref = load_reference(case)
    est, se = _ref_loadings(ref)
    table = fits[case].factor_loadings
    ours = table.iloc[:, 0].to_numpy()
    ours_se = table.iloc[:, 1].to_numpy()
    np.testing.assert_allclose(ours, est, rtol=ESTIMATE_RTOL)
    free = ~np.isnan(se)
    np.testing.assert_allclose(ours_se[free], se[free], rtol=SE_RTOL)
    assert np.all(np.isnan(ours_se[~free]))


@pytest.mark.parametrize("case", list(CASES))
def test_fixed_effects_and_variance(fits, case):
    ref = load_reference(case)
    m = fits[case]
    for name, value in ref["fixef"].items():
        # within 1e-4 relative, or 1e-4 standard errors for a coefficient near zero (itemi3 of
        # the binomial model is 0.0169 with SE 0.1: glamm 0.0169092, glmmTMB 0.0169097, glamm
        # here 0.0169064 at a log-likelihood within 4e-9 of the maximum)
        tol = max(ESTIMATE_RTOL * abs(value), ESTIMATE_RTOL * float(m.stderr[name]))
        assert abs(m.fixef[name] - value) <= tol, (name, m.fixef[name], value)
    sd = ref["varcorr"][0]["sd"][0]
    assert m.varcorr["sdcor"].iloc[0] == pytest.approx(sd, rel=ESTIMATE_RTOL)


def test_gaussian_loading_model_is_the_reduced_rank_lmm():
    """glmmTMB's rr(0 + item | id, d = 1) is the same one-factor model: same maximum."""
    ref = load_reference("tmb_rr_factor_gaussian")
    m = _fit(CASES["galamm_factor_gaussian"]["formula"], load_data("sim_factor_gaussian"),
             **CASES["galamm_factor_gaussian"]["kw"])
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-8)


def test_fixed_loadings_give_the_glmm_with_loaded_columns():
    """With every loading fixed, the model is a GLMM whose random-effect column holds the
    loadings: the objective at the same parameters is the same."""
    d = load_data("sim_factor_gaussian")
    lam = {"i1": 1.0, "i2": 0.5, "i3": 2.0}
    m = _fit("y ~ 0 + item + (0 + loading | id)", d, load_var="item", factor="loading",
             lambda_=[[1.0], [0.5], [2.0]])
    d2 = d.assign(zl=d["item"].astype(str).map(lam).astype(float))
    ref = glamm.lmer("y ~ 0 + item + (0 + zl | id)", d2, reml=False)
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-9)
    assert m.model.parameters.size_of("lambda") == 0


def test_loadings_are_invariant_to_row_order():
    d = load_data("sim_factor_gaussian")
    perm = np.random.default_rng(3).permutation(len(d))
    a = _fit(**{"formula": CASES["galamm_factor_gaussian"]["formula"], "data": d},
             **CASES["galamm_factor_gaussian"]["kw"])
    b = _fit(**{"formula": CASES["galamm_factor_gaussian"]["formula"],
                "data": d.iloc[perm]}, **CASES["galamm_factor_gaussian"]["kw"])
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10)
    np.testing.assert_allclose(b.loadings, a.loadings, rtol=1e-5)


def test_summary_and_vcov_blocks(fits):
    m = fits["galamm_factor_gaussian"]
    text = str(m)
    assert "Factor loadings:" in text and "lambda2" in text
    v = m.vcov_parameters("lambda")
    assert v.shape == (2, 2)
    np.testing.assert_allclose(np.sqrt(np.diag(v.to_numpy())), m.loading_stderr)
    with pytest.raises(GlammError, match="parm must be"):
        m.vcov_parameters("x")


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def small():
    return load_data("sim_factor_gaussian")


def test_lambda_rows_must_match_the_levels(small):
    with pytest.raises(GlammError, match="3 levels"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small, load_var="item",
                     factor="loading", lambda_=[[1], [nan]])


def test_lambda_as_a_dict_by_level(small):
    m = _fit("y ~ 0 + item + (0 + loading | id)", small, load_var="item", factor="loading",
             lambda_={"i1": 1, "i2": nan, "i3": nan})
    ref = load_reference("galamm_factor_gaussian")
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])
    with pytest.raises(GlammError, match="missing levels"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small, load_var="item",
                     factor="loading", lambda_={"i1": 1, "i2": nan})


def test_factor_name_that_is_a_data_column(small):
    with pytest.raises(GlammError, match="also a column"):
        glamm.galamm("y ~ 0 + item + (0 + y | id)", small, load_var="item", factor="y",
                     lambda_=[[1], [nan], [nan]])


def test_factor_without_a_fixed_loading(small):
    with pytest.raises(GlammError, match="not identified"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small, load_var="item",
                     factor="loading", lambda_=[[nan], [nan], [nan]])


def test_factor_used_in_no_term_and_unknown_load_var(small):
    with pytest.raises(GlammError, match="appear in no random-effects term"):
        glamm.galamm("y ~ 0 + item + (1 | id)", small, load_var="item", factor="loading",
                     lambda_=[[1], [nan], [nan]])
    with pytest.raises(DataError, match="load_var 'nope'"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small, load_var="nope",
                     factor="loading", lambda_=[[1], [nan], [nan]])


def test_reml_is_refused(small):
    with pytest.raises(GlammError, match="REML is not defined"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small, load_var="item",
                     factor="loading", lambda_=[[1], [nan], [nan]], REML=True)


def test_numeric_load_var_uses_sorted_values(small):
    d = small.assign(k=small["item"].astype(str).str[1].astype(int))
    m = _fit("y ~ 0 + item + (0 + loading | id)", d, load_var="k", factor="loading",
             lambda_=[[1], [nan], [nan]])
    assert list(m.factor_loadings.index) == ["1", "2", "3"]
    ref = load_reference("galamm_factor_gaussian")
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])


def test_data_frame_unchanged(small):
    before = small.copy()
    _fit("y ~ 0 + item + (0 + loading | id)", small, load_var="item", factor="loading",
         lambda_=[[1], [nan], [nan]])
    pd.testing.assert_frame_equal(small, before)


def _gradients(m, shift: float):
    """The analytic gradient of the deviance (theta, beta, loadings; central differences for
    the response parameters) and central differences of the deviance, at the estimates
    moved by ``shift``, on a working copy (the fitted model stays as it is). Returns
    ``(analytic, numeric, parameter layout)``."""
    from glamm.glmm.derivatives import AnalyticDerivatives
    from glamm.glmm.fit import full_objective

    model = m._working_model()[0]
    x = m._parameter_vector() + shift
    f = full_objective(model)
    g = AnalyticDerivatives(f, model).grad(x)
    h = 1e-5
    num = np.array([(f(x + e) - f(x - e)) / (2 * h) for e in np.eye(x.size) * h])
    return g, num, model.parameters


@pytest.mark.parametrize("case", list(CASES))
def test_analytic_gradient_in_the_loadings(fits, case):
    """The Laplace gradient in theta, beta and the free loadings against central differences of
    the deviance, away from the optimum."""
    g, num, _ = _gradients(fits[case], 0.05)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_predictions_on_the_fitted_rows_reproduce_the_fit(fits):
    m = fits["galamm_factor_binomial"]
    d = load_data("sim_factor_binomial")
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(m.predict(d, type="response"), m.fitted(), rtol=1e-10)
    pop = m.predict(d, re=False)
    np.testing.assert_allclose(pop, m.frame.X @ m.fixef.to_numpy(), rtol=1e-12)
    with pytest.raises(GlammError, match="marginal"):
        m.predict(d, type="marginal")


def test_irtsim_sub300_loadings_shared_by_two_grouping_terms():
    """One loading vector multiplies the school and the sid:school latent variables."""
    ref = load_reference("galamm_irtsim_sub300_lmm")
    d = load_data("IRTsim_sub300")
    d["item"] = pd.Categorical(d["item"].astype(str))
    m = _fit("y ~ 0 + item + (0 + abil.sid | school/sid)", d, load_var="item",
             factor="abil.sid", lambda_=[[1], [nan], [nan]])
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])
    est, se = _ref_loadings(ref)
    np.testing.assert_allclose(m.factor_loadings.iloc[:, 0], est, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(m.loading_stderr, se[1:], rtol=SE_RTOL)
    sds = {row["group"]: row["sd"][0] for row in ref["varcorr"]}
    ours = dict(zip(m.varcorr["group"], m.varcorr["sdcor"]))
    for group, sd in sds.items():
        assert ours[group] == pytest.approx(sd, rel=ESTIMATE_RTOL)


def test_irtsim_binomial_bundled_example():
    ref = load_reference("galamm_irtsim_binomial")
    m = _fit("y ~ item + (0 + ability | school/sid)", glamm.datasets.load("IRTsim"),
             family="binomial", load_var="item", factor="ability",
             lambda_=[[1], [nan], [nan], [nan], [nan]])
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])
    est, se = _ref_loadings(ref)
    np.testing.assert_allclose(m.factor_loadings.iloc[:, 0], est, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(m.loading_stderr, se[1:], rtol=SE_RTOL)


@pytest.mark.slow
def test_kypssim_two_factors_crossed_schools():
    """Two factors with fixed zeros, crossed middle and high schools. Our log-likelihood is
    1.7e-7 above galamm's; the two loadings near zero (0.044 and 0.021, SEs 0.15) are where the
    likelihood is flattest and differ from galamm's by up to 3e-3 relative (1e-3 SEs), so they
    are compared in standard errors."""
    ref = load_reference("galamm_kypssim")
    m = _fit("esteem ~ time + (0 + ms | mid) + (0 + hs | hid) + (1 | sid)",
             glamm.datasets.load("KYPSsim"), load_var="time", factor=["ms", "hs"],
             lambda_=[[1, 0], [nan, 0], [nan, 1], [nan, nan]])
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])
    values = np.array([[np.nan if v is None else v for v in row]
                       for row in ref["factor_loadings"]["values"]], dtype=float)
    est = values[:, [0, 2]]
    se = values[:, [1, 3]]
    ours = m.factor_loadings[["ms", "hs"]].to_numpy()
    free = ~np.isnan(se)
    assert np.all(np.abs(ours[free] - est[free]) <= np.maximum(ESTIMATE_RTOL * np.abs(est[free]),
                                                              1e-3 * se[free]))


def _latcov(**kw):
    return _fit("y ~ type + x:response + (0 + loading | id)",
                glamm.datasets.load("latent_covariates"), load_var="type", factor="loading",
                lambda_=[[1], [nan], [nan]], **kw)


def test_factor_interactions_latent_by_observed():
    """The response item's loading is lambda3 + lambda4 * x (galamm's factor_interactions)."""
    ref = load_reference("galamm_latcov_interaction")
    m = _latcov(factor_interactions=["~1", "~1", "~x"])
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])
    est, se = _ref_loadings(ref)
    np.testing.assert_allclose(m.factor_loadings.iloc[:, 0], est, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(m.loading_stderr, se[1:], rtol=SE_RTOL)
    assert list(m.factor_loadings.index)[-1] == "response:x"
    assert "lambda4_x" in str(m)
    d = glamm.datasets.load("latent_covariates")
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-10, atol=1e-12)
    for name, value in ref["fixef"].items():
        tol = max(ESTIMATE_RTOL * abs(value), ESTIMATE_RTOL * float(m.stderr[name]))
        assert abs(m.fixef[name] - value) <= tol, (name, m.fixef[name], value)


def test_latcov_without_interaction_matches_galamm_and_glmmtmb_rr():
    m = _latcov()
    for case in ("galamm_latcov", "tmb_rr_latcov"):
        ref = load_reference(case)
        assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"]), case
    est, _ = _ref_loadings(load_reference("galamm_latcov"))
    np.testing.assert_allclose(m.factor_loadings.iloc[:, 0], est, rtol=ESTIMATE_RTOL)


def test_factor_interactions_input_errors(small):
    with pytest.raises(GlammError, match="3 levels"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small, load_var="item",
                     factor="loading", lambda_=[[1], [nan], [nan]],
                     factor_interactions=["~1", "~1"])
    with pytest.raises(GlammError, match="no intercept"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small.assign(x=1.0),
                     load_var="item", factor="loading", lambda_=[[1], [nan], [nan]],
                     factor_interactions=["~1", "~1", "~0 + x"])
    with pytest.raises(GlammError, match="formula string"):
        glamm.galamm("y ~ 0 + item + (0 + loading | id)", small, load_var="item",
                     factor="loading", lambda_=[[1], [nan], [nan]],
                     factor_interactions=["~1", "~1", 3])


def test_json_export_and_anova_between_galamm_fits():
    import json

    m1 = _latcov(factor_interactions=["~1", "~1", "~x"])
    m0 = _latcov()
    d = json.loads(json.dumps(m1.to_dict()))
    assert d["load_var"] == "type" and d["factor_loadings"]["rows"][-1] == "response:x"
    assert d["factor_loadings"]["values"][0][1] is None   # a fixed loading has no SE
    table = glamm.anova(m0, m1)
    assert table["Df"].iloc[1] == 1
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (m1.loglik - m0.loglik), rel=1e-10)


def test_kypssim_constrained_model_reaches_the_interior_maximum():
    """galamm's default start stops this model on the boundary (hid variance 0, logLik
    -9688.54, the vignette's value); started at the full model's estimates it reaches
    -9682.0309. glamm from its own default start must reach at least that."""
    best = load_reference("galamm_kypssim_constr1_start")
    stuck = load_reference("galamm_kypssim_constr1")
    m = _fit("esteem ~ time + (0 + ms | mid) + (0 + hs | hid) + (1 | sid)",
             glamm.datasets.load("KYPSsim"), load_var="time", factor=["ms", "hs"],
             lambda_=[[1, 0], [nan, 0], [0, 1], [0, nan]])
    assert m.loglik >= best["logLik"] - LOGLIK_RTOL * abs(best["logLik"])
    assert m.loglik > stuck["logLik"] + 6.0
    assert not m.is_singular


def test_unidentified_loadings_have_no_standard_errors():
    """A factor_interactions covariate constant on its level (c = 2) makes the level's loading
    and the interaction loading one parameter: the Hessian is rank deficient there (the
    profiled one, from differences of deviances, shows a tiny positive eigenvalue), which is
    said plainly instead of printing numbers. (Pure noise, used here before, is no such case:
    a zero latent variance is not the maximum there, see test_galamm_results.)"""
    d = glamm.datasets.load("latent_covariates").assign(c=2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = glamm.galamm("y ~ type + x:response + (0 + loading | id)", d, load_var="type",
                         factor="loading", lambda_=[[1], [nan], [nan]],
                         factor_interactions=["~1", "~1", "~c"])
        se = m.loading_stderr
    assert np.isfinite(se[0]) and np.all(np.isnan(se[1:]))
    assert any("rank deficient" in str(w.message) for w in caught)
    assert any("not identified" in note for note in m.notes)


def test_wald_confidence_intervals(fits):
    m = fits["galamm_factor_gaussian"]
    ci = m.confint("lambda", level=0.95)
    half = 1.959963984540054 * m.loading_stderr
    np.testing.assert_allclose(ci.iloc[:, 0], m.loadings - half, rtol=1e-12)
    np.testing.assert_allclose(ci.iloc[:, 1], m.loadings + half, rtol=1e-12)
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    beta = m.confint("beta")
    assert beta.shape == (3, 2) and np.all(beta.iloc[:, 0] < m.fixef.to_numpy())


def test_galamm_without_loadings_is_the_laplace_glmm():
    d = load_data("sim_factor_binomial")
    a = _fit("y ~ 0 + item + (1 | id)", d, family="binomial")
    b = glamm.glmer("y ~ 0 + item + (1 | id)", d, family="binomial")
    assert a.loglik == b.loglik
    with pytest.raises(GlammError, match="lambda_ missing"):
        glamm.galamm("y ~ 0 + item + (0 + f | id)", d, load_var="item", factor="f")


def test_loading_table_columns(fits):
    assert list(fits["galamm_factor_gaussian"].factor_loadings.columns) == ["loading", "SE"]


@pytest.mark.slow
def test_smooth_on_the_latent_scale(cognition_fit):
    """galamm's sl(): the smooth's unpenalized and penalized columns carry the loadings."""
    m, d = cognition_fit
    ref = load_reference("galamm_cognition_d1_factor_smooth")
    assert m.loglik >= ref["logLik"] - LOGLIK_RTOL * abs(ref["logLik"])
    est, se = _ref_loadings(ref)
    np.testing.assert_allclose(m.factor_loadings.iloc[:, 0], est, rtol=ESTIMATE_RTOL)
    np.testing.assert_allclose(m.loading_stderr, se[1:], rtol=SE_RTOL)
    # the smooth's fixed column (its sign is arbitrary in mgcv's basis)
    assert abs(m.fixef["s(x):loadingFx1"]) == pytest.approx(
        abs(ref["fixef"]["s(x):loadingFx1"]), rel=1e-3)
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-9, atol=1e-9)
    pop = m.predict(d, re=False)
    np.testing.assert_allclose(m.predict(None, re=False), pop, rtol=1e-9, atol=1e-9)
    # the summary shows the formula as written
    assert "sl(x, factor='loading')" in str(m) and m.formula.count("sl(") == 1


def test_latent_smooth_formula_errors(small):
    with pytest.raises(GlammError, match="needs factor="):
        glamm.galamm("y ~ 0 + item + sl(id) + (0 + loading | id)", small, load_var="item",
                     factor="loading", lambda_=[[1], [nan], [nan]])
    with pytest.raises(GlammError, match="not among the factors"):
        glamm.galamm("y ~ 0 + item + sl(id, factor='other') + (0 + loading | id)", small,
                     load_var="item", factor="loading", lambda_=[[1], [nan], [nan]])


def test_latent_smooth_gradient(binary_latent_smooth_fit):
    """The analytic gradient in the loadings includes their effect through the loaded
    fixed-effect columns of an sl() smooth (a binomial model, so the GLMM gradient is used)."""

    m = binary_latent_smooth_fit
    g, num, _ = _gradients(m, 0.03)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_rows_without_a_load_var_level_are_left_out(small):
    d = small.copy()
    d["item"] = d["item"].astype(object)
    d.loc[[0, 5], "item"] = None
    m = _fit("y ~ 1 + (0 + loading | id)", d, load_var="item", factor="loading",
             lambda_=[[1], [nan], [nan]])
    assert m.nobs == len(d) - 2 and m.n_dropped_na == 2
    ref = _fit("y ~ 1 + (0 + loading | id)", d.drop(index=[0, 5]), load_var="item",
               factor="loading", lambda_=[[1], [nan], [nan]])
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-10)


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_families_with_loadings(family):
    """Every family runs with loadings; the gradient in the loadings is exact (Poisson and a
    negative binomial with its shape as a response parameter)."""

    rng = np.random.default_rng(7)
    d = pd.DataFrame({"id": np.repeat(np.arange(120), 3), "item": np.tile([1, 2, 3], 120)})
    eta = 0.3 + np.array([1.0, 0.6, 1.4])[d["item"] - 1] * rng.normal(size=120)[d["id"]]
    d["y"] = rng.poisson(np.exp(eta))
    m = _fit("y ~ 0 + factor(item) + (0 + f | id)", d, family=family, load_var="item",
             factor="f", lambda_=[[1], [nan], [nan]])
    assert np.all(np.isfinite(m.loading_stderr))
    g, num, layout = _gradients(m, 0.03)
    # theta, beta and the loadings (the analytic part; a log shape far out on a flat deviance,
    # as here for Poisson-like counts, takes central differences of its own)
    analytic = np.concatenate([layout.index(b) for b in ("theta", "beta", "lambda")])
    np.testing.assert_allclose(g[analytic], num[analytic], rtol=1e-4, atol=1e-4)


def test_unused_load_var_categories_have_no_row():
    """The issue's example subsets cognition with .query(); the item categorical keeps the other
    domains' categories, which occur in no row and get no row of lambda_."""
    cog = glamm.datasets.load("latent_covariates")
    d = cog[cog["type"] != "response"]
    assert len(d["type"].cat.categories) == 3
    m = _fit("y ~ 0 + type + (0 + loading | id)", d, load_var="type", factor="loading",
             lambda_=[[1], [nan]])
    assert list(m.factor_loadings.index) == ["measurement1", "measurement2"]

"""Results of galamm fits (glamm.galamm): ranef, predict, anova against lmer/glmer fits,
vcov(parm=...), galamm's start list, the loading matrix as a DataFrame, glmmTMB's rr()
references, and input that used to pass silently or crash."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, load_reference

import glamm
from glamm.errors import DataError, GlammError

nan = np.nan
LOADINGS = {"i1": 1.0, "i2": 0.5, "i3": 2.0}


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _galamm(formula, data, **kw):
    return _quiet(glamm.galamm, formula, data, **kw)


def _sim(family: str = "gaussian", n_id: int = 120, seed: int = 1) -> pd.DataFrame:
    """Three items measuring one latent variable per id (loadings 1, 0.7, 1.4), a covariate
    ``x``, prior weights ``w``, an offset ``o``; binomial data as ``cbind(s, f)``."""
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3),
                      "item": pd.Categorical(np.tile(["i1", "i2", "i3"], n_id))})
    d["x"] = rng.normal(size=len(d))
    d["w"] = rng.uniform(0.5, 2.0, len(d))
    d["o"] = 0.2 * rng.normal(size=len(d))
    eta = 0.2 + 0.3 * d["x"] + np.array([1.0, 0.7, 1.4])[d["item"].cat.codes] * \
        rng.normal(size=n_id)[d["id"]]
    if family == "gaussian":
        d["y"] = eta + 0.5 * rng.normal(size=len(d))
    else:
        d["n"] = rng.integers(1, 6, size=len(d))
        d["s"] = rng.binomial(d["n"], 1.0 / (1.0 + np.exp(-eta)))
        d["f"] = d["n"] - d["s"]
    return d


def _loaded(d: pd.DataFrame, loadings: dict[str, float], col: str = "zl") -> pd.DataFrame:
    """``d`` with a column holding each row's loading (the explicitly multiplied design)."""
    return d.assign(**{col: d["item"].astype(str).map(loadings).astype(float)})


# --------------------------------------------------------------------------- fixed loadings
def _same_results(m, r, newdata):
    """A galamm fit with every loading fixed against the GLMM/LMM with the loaded column."""
    assert m.loglik == pytest.approx(r.loglik, rel=1e-8)
    assert m.npar == r.npar and m.aic == pytest.approx(r.aic, rel=1e-8)
    np.testing.assert_allclose(m.fixef.to_numpy(), r.fixef.to_numpy(), rtol=1e-5, atol=1e-7)
    ours, theirs = m.ranef["id"].to_numpy(), r.ranef["id"].to_numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.ranef_condvar["id"].to_numpy(),
                               r.ranef_condvar["id"].to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(m.fitted(), r.fitted(), rtol=1e-5, atol=1e-7)
    for kind in ("pearson", "deviance", "response"):
        np.testing.assert_allclose(m.residuals(kind), r.residuals(kind), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.predict(newdata), m.fitted("link"), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.predict(newdata, re=False),
                               r.predict(_loaded(newdata, LOADINGS), re=False),
                               rtol=1e-5, atol=1e-7)


def test_fixed_loadings_gaussian_with_weights_and_offset_is_the_lmm():
    d = _sim()
    m = _galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g",
                lambda_=[[1.0], [0.5], [2.0]], weights="w", offset="o")
    r = _quiet(glamm.lmer, "y ~ x + (0 + zl | id)", _loaded(d, LOADINGS), reml=False,
               weights="w", offset="o")
    _same_results(m, r, d)


def test_fixed_loadings_cbind_binomial_is_the_glmm():
    d = _sim("binomial")
    m = _galamm("cbind(s, f) ~ x + (0 + g | id)", d, family="binomial", load_var="item",
                factor="g", lambda_=[[1.0], [0.5], [2.0]])
    r = _quiet(glamm.glmer, "cbind(s, f) ~ x + (0 + zl | id)", _loaded(d, LOADINGS),
               family="binomial")
    _same_results(m, r, d)


def test_fixed_loadings_with_a_covariate_in_the_same_term():
    """(0 + g + x | id): only the factor's column carries the loadings."""
    d = _sim()
    m = _galamm("y ~ x + (0 + g + x | id)", d, load_var="item", factor="g",
                lambda_=[[1.0], [0.5], [2.0]])
    r = _quiet(glamm.lmer, "y ~ x + (0 + zl + x | id)", _loaded(d, LOADINGS), reml=False)
    assert m.loglik == pytest.approx(r.loglik, rel=1e-8)


def test_two_fixed_factors_in_one_term():
    d = _sim()
    lam = [[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]]
    m = _galamm("y ~ x + (0 + a + b | id)", d, load_var="item", factor=["a", "b"],
                lambda_=lam)
    d2 = _loaded(_loaded(d, {"i1": 1.0, "i2": 0.5, "i3": 0.0}, "za"),
                 {"i1": 0.0, "i2": 0.0, "i3": 1.0}, "zb")
    r = _quiet(glamm.lmer, "y ~ x + (0 + za + zb | id)", d2, reml=False)
    assert m.loglik == pytest.approx(r.loglik, rel=1e-8)


# --------------------------------------------------------------------------- anova
@pytest.fixture(scope="module")
def gaussian_fit():
    d = load_data("sim_factor_gaussian")
    m = _galamm("y ~ 0 + item + (0 + loading | id)", d, load_var="item", factor="loading",
                lambda_=[[1], [nan], [nan]])
    return m, d


def test_anova_galamm_against_lmer_of_the_same_data(gaussian_fit):
    """Loadings all fixed at 1 is the random-intercept LMM: a nested model whose ML
    log-likelihood is on the same scale (all constants) as galamm's."""
    m, d = gaussian_fit
    ones = _galamm("y ~ 0 + item + (0 + loading | id)", d, load_var="item", factor="loading",
                   lambda_=[[1], [1], [1]])
    ml = _quiet(glamm.lmer, "y ~ 0 + item + (1 | id)", d, reml=False)
    assert ones.loglik == pytest.approx(ml.loglik, rel=1e-10)
    table = glamm.anova(ml, m)
    assert list(table["npar"]) == [ml.npar, m.npar] and table["Df"].iloc[1] == 2
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (m.loglik - ml.loglik), rel=1e-10)
    reml = _quiet(glamm.lmer, "y ~ 0 + item + (1 | id)", d)
    refitted = glamm.anova(m, reml)
    assert refitted.attrs["refitted"] == ["m1"]
    assert refitted["logLik"].iloc[0] == pytest.approx(ml.loglik, rel=1e-9)
    with pytest.raises(GlammError, match="REML and ML"):
        glamm.anova(m, reml, refit=False)


def test_anova_binomial_galamm_against_glmer_and_lmer():
    d = load_data("sim_factor_binomial")
    m = _galamm("y ~ 0 + item + (0 + ability | id)", d, family="binomial", load_var="item",
                factor="ability", lambda_=[[1], [nan], [nan], [nan], [nan]])
    g = _quiet(glamm.glmer, "y ~ 0 + item + (1 | id)", d, family="binomial")
    assert glamm.anova(g, m)["Df"].iloc[1] == 4
    lmm = _quiet(glamm.lmer, "y ~ 0 + item + (1 | id)", d, reml=False)
    with pytest.raises(GlammError, match="non-Gaussian"):
        glamm.anova(lmm, m)


# --------------------------------------------------------------------------- vcov, confint
def test_vcov_takes_galamm_parm(gaussian_fit):
    m, _ = gaussian_fit
    pd.testing.assert_frame_equal(m.vcov(parm="lambda"), m.vcov_parameters("lambda"))
    beta = m.vcov()
    pd.testing.assert_frame_equal(pd.DataFrame(m.vcov), beta)
    assert list(beta.index) == list(m.fixef.index)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), m.stderr, rtol=1e-12)
    joint = m.vcov(["theta", "lambda"])
    assert list(joint.index) == list(m.theta_names) + m.loading_names
    np.testing.assert_allclose(joint.iloc[1:, 1:], m.vcov("lambda"), rtol=1e-12)
    assert type(m.vcov * 2) is pd.DataFrame
    with pytest.raises(GlammError, match="heteroscedastic"):
        m.vcov(parm="weights")


def test_confint_of_several_blocks(gaussian_fit):
    m, _ = gaussian_fit
    ci = m.confint(["lambda", "theta"])
    assert list(ci.index) == m.loading_names + list(m.theta_names)
    np.testing.assert_allclose(ci.iloc[:2].to_numpy(), m.confint("lambda").to_numpy())
    mid = ci.mean(axis=1).to_numpy()
    np.testing.assert_allclose(mid, np.concatenate([m.loadings, m.theta]), rtol=1e-12)


# --------------------------------------------------------------------------- start
def test_start_as_galamm_list():
    d = _sim(n_id=80)
    kw = dict(load_var="item", factor="g", lambda_=[[1], [nan], [nan]])
    base = _galamm("y ~ x + (0 + g | id)", d, **kw)
    m = _galamm("y ~ x + (0 + g | id)", d, start={"theta": [0.5], "beta": [0.0, 0.0],
                                                  "lambda": [0.6, 1.2]}, **kw)
    assert m.loglik == pytest.approx(base.loglik, rel=1e-9)
    b = _galamm("cbind(s, f) ~ x + (0 + g | id)", _sim("binomial", n_id=80),
                family="binomial", start={"lambda": [0.6, 1.2]}, **kw)
    assert np.all(np.isfinite(b.loadings))


@pytest.mark.parametrize("start, message", [
    ({"lambda": [0.5]}, r"start\['lambda'\] needs 2 value"),
    ({"theta": [1.0, 2.0]}, r"start\['theta'\] needs 1 value"),
    ({"beta": [1.0, 2.0, 3.0]}, r"start\['beta'\] needs 2 value"),
    ({"weights": [1.0]}, "unknown entries"),
    (np.ones(4), r"start \(theta\) needs 1 value"),
    ({"lambda": [nan, 1.0]}, "missing or infinite"),
])
def test_start_of_the_wrong_size_is_named(start, message):
    with pytest.raises(GlammError, match=message):
        glamm.galamm("y ~ x + (0 + g | id)", _sim(n_id=30), load_var="item", factor="g",
                     lambda_=[[1], [nan], [nan]], start=start)


def test_start_without_loadings_goes_to_the_glmm():
    s = glamm.datasets.load("sleepstudy")
    m = _galamm("Reaction ~ Days + (Days | Subject)", s, start={"beta": [250, 10]})
    ref = load_reference("galamm_sleepstudy_slope_start")
    assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    with pytest.raises(GlammError, match="needs 2 value"):
        _galamm("Reaction ~ Days + (Days | Subject)", s, start={"beta": [250]})
    with pytest.raises(GlammError, match="needs 3 value"):
        _galamm("Reaction ~ Days + (Days | Subject)", s, start={"theta": [1.0]})


# --------------------------------------------------------------------------- lambda_ forms
def test_lambda_as_a_data_frame_is_matched_by_level_and_factor():
    d = _sim(n_id=80)
    d["item2"] = d["item"].astype(str).map({"i1": "a", "i2": "a", "i3": "b"})
    d = d.assign(it=d["item"].astype(str) + d["item2"])   # four items: i1a, i2a, i3b
    ref = _galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g",
                  lambda_=[[1], [nan], [nan]])
    permuted = pd.DataFrame({"g": [nan, 1.0, nan]}, index=["i3", "i1", "i2"])
    m = _galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g", lambda_=permuted)
    assert list(m.factor_loadings.index) == ["i1", "i2", "i3"]
    np.testing.assert_allclose(m.loadings, ref.loadings, rtol=1e-6)
    series = _galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g",
                     lambda_=pd.Series([nan, nan, 1.0], index=["i2", "i3", "i1"]))
    np.testing.assert_allclose(series.loadings, ref.loadings, rtol=1e-6)
    with pytest.raises(GlammError, match="does not match the levels"):
        glamm.galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g",
                     lambda_=pd.DataFrame({"g": [1, nan, nan]}, index=["a", "b", "c"]))


def test_lambda_data_frame_columns_follow_the_factor_names():
    d = _sim(n_id=60)
    lam = pd.DataFrame({"b": [0.0, 0.0, 1.0], "a": [1.0, 0.5, 0.0]})
    m = _galamm("y ~ x + (0 + a + b | id)", d, load_var="item", factor=["a", "b"],
                lambda_=lam)
    np.testing.assert_allclose(m.factor_loadings[["a", "b"]].to_numpy(),
                               [[1.0, 0.0], [0.5, 0.0], [0.0, 1.0]])
    with pytest.raises(GlammError, match="name them as the factors"):
        glamm.galamm("y ~ x + (0 + a + b | id)", d, load_var="item", factor=["a", "b"],
                     lambda_=lam.rename(columns={"b": "c"}))


# --------------------------------------------------------------------------- bad input
def test_factor_must_be_names():
    with pytest.raises(GlammError, match="factor must be a name"):
        glamm.galamm("y ~ x + (0 + g | id)", _sim(n_id=30), load_var="item", factor=3,
                     lambda_=[[1], [nan], [nan]])


def test_factor_in_the_fixed_effects_is_refused_even_when_collinear():
    """f's placeholder column (ones) is dropped next to the intercept; the model would then
    silently lack the loaded fixed effect."""
    with pytest.raises(GlammError, match="dropped as collinear"):
        glamm.galamm("y ~ x + g + (0 + g | id)", _sim(n_id=30), load_var="item",
                     factor="g", lambda_=[[1], [nan], [nan]])


def test_free_loading_without_observations():
    d = _sim(n_id=30)
    d.loc[d["item"] == "i3", "y"] = nan
    with pytest.raises(DataError, match=r"lambda\[i3,g\].*no observations"):
        glamm.galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g",
                     lambda_=[[1], [nan], [nan]])
    m = _galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g",
                lambda_=[[1], [nan], [0.5]])   # fixed: nothing to identify
    assert m.nobs == 60


def test_weights_and_offset_values_follow_the_rows_kept():
    """Rows without a load_var level are left out; weights and offset given as values (not
    column names) lose the same rows."""
    d = _sim(n_id=40)
    d["item"] = d["item"].astype(object)
    d.loc[[0, 4], "item"] = None
    kw = dict(load_var="item", factor="g", lambda_=[[1], [nan], [nan]])
    ref = _galamm("y ~ x + (0 + g | id)", d, weights="w", offset="o", **kw)
    m = _galamm("y ~ x + (0 + g | id)", d, weights=d["w"].to_numpy(), offset=list(d["o"]),
                **kw)
    assert m.nobs == len(d) - 2
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)


def test_predict_names_a_missing_load_var_value():
    d = _sim(n_id=40)
    m = _galamm("y ~ x + (0 + g | id)", d, load_var="item", factor="g",
                lambda_=[[1], [nan], [nan]])
    new = d.head(3).assign(item=pd.Categorical([None, "i2", "i3"]))
    with pytest.raises(DataError, match="missing in 1 row"):
        m.predict(new)


# --------------------------------------------------------------------------- glmmTMB rr()
@pytest.mark.parametrize("case, data, family, n_items", [
    ("tmb_rr_factor_binomial", "sim_factor_binomial", "binomial", 5),
    ("tmb_rr_factor_gaussian", "sim_factor_gaussian", "gaussian", 3),
])
def test_one_factor_model_matches_glmmtmb_rr(case, data, family, n_items):
    """glmmTMB's rr(0 + item | id, d = 1): the same one-factor model (loadings scaled so the
    first is 1, latent variance psi)."""
    ref = load_reference(case)
    m = _galamm("y ~ 0 + item + (0 + f | id)", load_data(data), family=family,
                load_var="item", factor="f", lambda_=[[1]] + [[nan]] * (n_items - 1))
    assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-8)
    implied = ref["implied_one_factor"]
    np.testing.assert_allclose(m.factor_loadings["f"], list(implied["loadings"].values()),
                               rtol=1e-4)
    assert m.varcorr["sdcor"].iloc[0] == pytest.approx(implied["sd_eta"], rel=1e-4)
    # (glmmTMB stops 2e-8 below our log-likelihood; its Gaussian item means differ by ~2e-4 SE)
    diff = np.abs(m.fixef.to_numpy() - list(ref["fixef"]["cond"].values()))
    assert np.all(diff <= 1e-3 * m.stderr.to_numpy())
    np.testing.assert_allclose(m.stderr.to_numpy(), list(ref["fixef_se"]["cond"].values()),
                               rtol=1e-3)
    assert m.aic == pytest.approx(ref["AIC"], rel=1e-8) and m.npar == ref["logLik_df"]


def test_residuals_default_to_galamm_pearson(gaussian_fit):
    m, _ = gaussian_fit
    np.testing.assert_array_equal(m.residuals(), m.residuals("pearson"))
    np.testing.assert_allclose(m.residuals(scaled=True), m.residuals() / m.sigma, rtol=1e-12)


def test_latent_covariates_match_glmmtmb_rr_loadings():
    ref = load_reference("tmb_rr_latcov")
    m = _galamm("y ~ type + x:response + (0 + loading | id)",
                glamm.datasets.load("latent_covariates"), load_var="type", factor="loading",
                lambda_=[[1], [nan], [nan]])
    implied = ref["implied_one_factor"]
    np.testing.assert_allclose(m.factor_loadings["loading"],
                               list(implied["loadings"].values()), rtol=1e-4)
    assert m.varcorr["sdcor"].iloc[0] == pytest.approx(implied["sd_eta"], rel=1e-4)
    assert m.npar == ref["logLik_df"]


# --------------------------------------------------------------------------- zero variance
def _one_factor(y: np.ndarray, n_id: int) -> pd.DataFrame:
    return pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                         "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)), "y": y})


@pytest.mark.parametrize("seed, n_id, other_start, loadings", [
    # from loadings of 1 the fit ran into a zero variance, where the loadings have no effect
    (100, 60, [-1.0, 0.7], [-5.4997, 1.1553]),
    # ... or drifted along the ridge towards it (variance 0.006, loadings 24 and 74)
    (102, 80, [-0.5, -2.0], [-0.6767, -3.0384]),
])
def test_fit_leaves_a_vanishing_latent_variance(seed, n_id, other_start, loadings):
    """A weak factor (variance 0.08) with three items: along the loadings of the
    second-order score at a zero variance the likelihood rises to the maximum (also reached
    from other starts; 2.4 and 0.09 log-likelihood units above where the fit stopped)."""
    rng = np.random.default_rng(seed)
    eta = np.sqrt(0.08) * rng.normal(size=n_id)
    y = np.tile([-1.0, 0.0, 1.0], n_id) + np.tile([1.0, 1.15, 1.3], n_id) * \
        np.repeat(eta, 3) + rng.normal(size=3 * n_id)
    d = _one_factor(y, n_id)
    kw = dict(load_var="item", factor="f", lambda_=[[1], [nan], [nan]])
    m = _galamm("y ~ 0 + item + (0 + f | id)", d, **kw)
    other = _galamm("y ~ 0 + item + (0 + f | id)", d, start={"lambda": other_start}, **kw)
    assert m.loglik >= other.loglik - 1e-9 * abs(other.loglik)
    np.testing.assert_allclose(m.loadings, loadings, rtol=1e-3)
    assert not m.is_singular


@pytest.mark.parametrize("family", ["gaussian", "binomial"])
def test_pure_noise_is_no_zero_variance_maximum(family):
    """With free loadings, a chance factor always beats a zero variance (the top eigenvalue
    of the items' covariance exceeds their mean variance): the fit must not stop at zero."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=450) if family == "gaussian" else \
        (rng.uniform(size=450) < 0.5).astype(float)
    d = _one_factor(y, 150)
    m = _galamm("y ~ 0 + item + (0 + f | id)", d, family=family, load_var="item", factor="f",
                lambda_=[[1], [nan], [nan]])
    fit0 = glamm.lmer if family == "gaussian" else glamm.glmer
    extra = {"reml": False} if family == "gaussian" else {"family": family}
    null = _quiet(fit0, "y ~ 0 + item + (1 | id)", d, **extra)
    assert m.loglik > null.loglik + 1e-3

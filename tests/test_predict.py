"""``LmerResult.predict``, aliased fixed-effects columns and rows dropped for missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import load_data

import glamm
from glamm.errors import DataError

SLOPE = ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True)
MODELS = {
    "sleepstudy_slope": SLOPE,
    "sleepstudy_uncorr": ("sleepstudy", "Reaction ~ Days + (Days || Subject)", False),
    "penicillin": ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", False),
    "pastes": ("Pastes", "strength ~ 1 + (1 | batch/cask)", True),
    "dyestuff2_singular": ("Dyestuff2", "Yield ~ 1 + (1 | Batch)", False),
}


def _X_sleepstudy(data):
    return np.column_stack([np.ones(len(data)), data["Days"].to_numpy(float)])


# --------------------------------------------------------------------------- fitted data
@pytest.mark.parametrize("key", list(MODELS))
def test_predict_without_newdata_is_fitted(key, fit):
    m = fit(*MODELS[key])
    p = m.predict()
    np.testing.assert_array_equal(p, m.fitted())
    assert p is not m.fitted()  # a copy
    p[0] += 1.0
    assert m.predict()[0] == m.fitted()[0]


@pytest.mark.parametrize("key", list(MODELS))
def test_predict_on_training_data_is_fitted(key, fit):
    dataset, formula, reml = MODELS[key]
    m = fit(*MODELS[key])
    data = load_data(dataset)
    np.testing.assert_allclose(m.predict(data), m.fitted(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("key", list(MODELS))
def test_fitted_plus_residuals_is_response(key, fit):
    dataset, formula, reml = MODELS[key]
    m = fit(*MODELS[key])
    y = load_data(dataset)[formula.split("~")[0].strip()].to_numpy(float)
    np.testing.assert_allclose(m.fitted() + m.residuals(), y, rtol=1e-13)
    assert m.fitted().shape == (m.nobs,)


def test_fitted_is_x_beta_plus_z_b(fit):
    """fitted = X beta + Z b computed by hand from the conditional modes."""
    m = fit(*SLOPE)
    data = load_data("sleepstudy")
    b = m.ranef["Subject"].loc[data["Subject"].astype(str)].to_numpy()
    zb = b[:, 0] + b[:, 1] * data["Days"].to_numpy(float)
    want = _X_sleepstudy(data) @ m.fixef.to_numpy() + zb
    np.testing.assert_allclose(m.fitted(), want, rtol=1e-12)


def test_predict_rows_follow_newdata_order(fit):
    m = fit(*SLOPE)
    data = load_data("sleepstudy")
    perm = np.random.default_rng(0).permutation(len(data))
    np.testing.assert_allclose(m.predict(data.iloc[perm]), m.fitted()[perm], rtol=1e-12)
    sub = data.iloc[[5, 100, 17]]
    np.testing.assert_allclose(m.predict(sub), m.fitted()[[5, 100, 17]], rtol=1e-12)


def test_predict_newdata_grouping_as_int_or_string(fit):
    """Subject given as int or plain strings in newdata finds the same levels."""
    m = fit(*SLOPE)
    data = load_data("sleepstudy")
    for conv in (lambda s: s.astype(str).astype(int), lambda s: s.astype(str).astype(object)):
        nd = data.assign(Subject=conv(data["Subject"]))
        np.testing.assert_allclose(m.predict(nd), m.fitted(), rtol=1e-12)


def test_predict_new_covariate_values(fit):
    m = fit(*SLOPE)
    nd = pd.DataFrame({"Days": [0.0, 2.5, 20.0], "Subject": ["308", "308", "372"]})
    fe = m.fixef
    r = m.ranef["Subject"]
    want = [
        fe["(Intercept)"] + r.loc["308", "(Intercept)"],
        fe["(Intercept)"] + r.loc["308", "(Intercept)"] + 2.5 * (fe["Days"] + r.loc["308", "Days"]),
        fe["(Intercept)"] + r.loc["372", "(Intercept)"] + 20 * (fe["Days"] + r.loc["372", "Days"]),
    ]
    np.testing.assert_allclose(m.predict(nd), want, rtol=1e-12)


# --------------------------------------------------------------------------- population level
def test_re_false_is_x_beta(fit):
    m = fit(*SLOPE)
    data = load_data("sleepstudy")
    want = _X_sleepstudy(data) @ m.fixef.to_numpy()
    np.testing.assert_allclose(m.predict(re=False), want, rtol=1e-13)
    np.testing.assert_allclose(m.predict(data, re=False), want, rtol=1e-13)


def test_re_false_needs_no_grouping_column(fit):
    m = fit(*SLOPE)
    nd = pd.DataFrame({"Days": [0.0, 1.0, 9.0]})
    want = m.fixef["(Intercept)"] + m.fixef["Days"] * nd["Days"].to_numpy()
    np.testing.assert_allclose(m.predict(nd, re=False), want, rtol=1e-13)
    with pytest.raises(DataError, match="Subject"):
        m.predict(nd)


def test_re_false_intercept_only_models(fit):
    for key in ("penicillin", "pastes", "dyestuff2_singular"):
        m = fit(*MODELS[key])
        np.testing.assert_allclose(m.predict(re=False), np.full(m.nobs, m.fixef["(Intercept)"]),
                                   rtol=1e-13)


# --------------------------------------------------------------------------- new levels
def test_new_level_raises(fit):
    m = fit(*SLOPE)
    nd = pd.DataFrame({"Days": [1.0, 2.0], "Subject": ["308", "999"]})
    with pytest.raises(DataError) as info:
        m.predict(nd)
    msg = str(info.value)
    assert "999" in msg and "Subject" in msg and "allow_new_levels" in msg


def test_new_level_allowed_gives_population_prediction(fit):
    m = fit(*SLOPE)
    nd = pd.DataFrame({"Days": [1.0, 2.0, 7.0], "Subject": ["308", "999", "abc"]})
    p = m.predict(nd, allow_new_levels=True)
    pop = m.predict(nd, re=False)
    np.testing.assert_allclose(p[1:], pop[1:], rtol=1e-13)
    known = m.predict(nd.iloc[:1])
    np.testing.assert_allclose(p[:1], known, rtol=1e-13)
    assert p[0] != pytest.approx(pop[0])


def test_new_level_in_one_of_crossed_factors(fit):
    """A new plate keeps the sample effect (only the unseen level gets zero)."""
    m = fit(*MODELS["penicillin"])
    nd = pd.DataFrame({"plate": ["zz", "a"], "sample": ["A", "A"]})
    with pytest.raises(DataError, match="plate"):
        m.predict(nd)
    p = m.predict(nd, allow_new_levels=True)
    fe = m.fixef["(Intercept)"]
    s = m.ranef["sample"].loc["A", "(Intercept)"]
    pl = m.ranef["plate"].loc["a", "(Intercept)"]
    np.testing.assert_allclose(p, [fe + s, fe + s + pl], rtol=1e-13)


def test_new_nested_level(fit):
    """cask 'd' of batch 'A' is new for 'cask:batch' but batch A is known."""
    m = fit(*MODELS["pastes"])
    nd = pd.DataFrame({"batch": ["A", "A"], "cask": ["d", "a"]})
    with pytest.raises(DataError, match="cask:batch"):
        m.predict(nd)
    p = m.predict(nd, allow_new_levels=True)
    fe = m.fixef["(Intercept)"]
    bA = m.ranef["batch"].loc["A", "(Intercept)"]
    aA = m.ranef["cask:batch"].loc["a:A", "(Intercept)"]
    np.testing.assert_allclose(p, [fe + bA, fe + bA + aA], rtol=1e-13)


# --------------------------------------------------------------------------- aliased columns
def test_rank_deficient_column_is_dropped():
    data = load_data("sleepstudy")
    data["Days2"] = 2.0 * data["Days"]
    m = glamm.lmer("Reaction ~ Days + Days2 + (1 | Subject)", data)
    ref = glamm.lmer("Reaction ~ Days + (1 | Subject)", data)
    assert m.dropped_columns == ["Days2"]
    assert ref.dropped_columns == []
    assert list(m.fixef.index) == ["(Intercept)", "Days"]
    assert list(m.vcov.index) == ["(Intercept)", "Days"]
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(m.stderr.to_numpy(), ref.stderr.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-10)
    assert m.sigma == pytest.approx(ref.sigma, rel=1e-10)
    assert m.npar == ref.npar
    assert m.df_resid == ref.df_resid
    np.testing.assert_allclose(m.fitted(), ref.fitted(), rtol=1e-10)
    np.testing.assert_allclose(m.predict(data), ref.predict(data), rtol=1e-10)
    np.testing.assert_allclose(m.predict(data, re=False), ref.predict(data, re=False), rtol=1e-10)


def test_rank_deficient_keeps_first_of_aliased_pair():
    """The column that is a combination of earlier ones is the one dropped (lme4's rule)."""
    data = load_data("sleepstudy")
    data["Days2"] = 2.0 * data["Days"]
    m = glamm.lmer("Reaction ~ Days2 + Days + (1 | Subject)", data, reml=False)
    assert m.dropped_columns == ["Days"]
    ref = glamm.lmer("Reaction ~ Days + (1 | Subject)", data, reml=False)
    assert m.fixef["Days2"] == pytest.approx(ref.fixef["Days"] / 2.0, rel=1e-10)
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)


def test_rank_deficient_linear_combination():
    data = load_data("sleepstudy")
    data["a"] = np.where(data["Days"] < 5, 1.0, 0.0)
    data["b"] = 1.0 - data["a"]  # a + b = intercept
    m = glamm.lmer("Reaction ~ Days + a + b + (1 | Subject)", data, reml=False)
    ref = glamm.lmer("Reaction ~ Days + a + (1 | Subject)", data, reml=False)
    assert m.dropped_columns == ["b"]
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-10)


# --------------------------------------------------------------------------- missing values
def test_missing_values_dropped_and_counted():
    data = load_data("sleepstudy")
    data.loc[[3, 50], "Days"] = np.nan
    data.loc[[7], "Reaction"] = np.nan
    data.loc[[50], "Reaction"] = np.nan  # same row as a missing Days: counted once
    m = glamm.lmer("Reaction ~ Days + (Days | Subject)", data, reml=False)
    ref = glamm.lmer("Reaction ~ Days + (Days | Subject)", data.dropna(), reml=False)
    assert m.n_dropped_na == 3
    assert m.nobs == 177
    assert m.fitted().shape == (177,) and m.residuals().shape == (177,)
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(m.fitted(), ref.fitted(), rtol=1e-10)
    # AIC/BIC use the rows actually used
    assert m.bic == pytest.approx(-2 * m.loglik + np.log(177) * m.npar, rel=1e-13)
    # predicting the complete rows reproduces the fitted values
    complete = data.dropna()
    np.testing.assert_allclose(m.predict(complete), m.fitted(), rtol=1e-10)


def test_missing_in_grouping_column_dropped():
    data = load_data("sleepstudy")
    data["Subject"] = data["Subject"].astype(object)
    data.loc[[0, 1, 2], "Subject"] = np.nan
    m = glamm.lmer("Reaction ~ Days + (1 | Subject)", data)
    assert m.n_dropped_na == 3
    assert m.nobs == 177
    assert m.ngroups == {"Subject": 18}


# --------------------------------------------------------------------------- offsets
def test_formula_offset_in_predict():
    data = load_data("sleepstudy")
    data["off"] = 0.5 * data["Days"] ** 2
    m = glamm.lmer("Reaction ~ Days + offset(off) + (Days | Subject)", data)
    np.testing.assert_allclose(m.predict(data), m.fitted(), rtol=1e-12)
    pop = _X_sleepstudy(data) @ m.fixef.to_numpy() + data["off"].to_numpy()
    np.testing.assert_allclose(m.predict(data, re=False), pop, rtol=1e-12)
    np.testing.assert_allclose(m.predict(re=False), pop, rtol=1e-12)


def test_offset_argument_array_fits_like_formula_offset():
    data = load_data("sleepstudy")
    data["off"] = 0.5 * data["Days"] ** 2
    a = glamm.lmer("Reaction ~ Days + offset(off) + (Days | Subject)", data)
    b = glamm.lmer("Reaction ~ Days + (Days | Subject)", data, offset=data["off"].to_numpy())
    assert b.loglik == pytest.approx(a.loglik, rel=1e-12)
    np.testing.assert_allclose(b.fitted(), a.fitted(), rtol=1e-10)
    np.testing.assert_allclose(b.predict(), a.predict(), rtol=1e-10)


def test_offset_column_argument_used_by_predict_newdata():
    data = load_data("sleepstudy")
    data["off"] = 0.5 * data["Days"] ** 2
    m = glamm.lmer("Reaction ~ Days + (Days | Subject)", data, offset="off")
    np.testing.assert_allclose(m.predict(data), m.fitted(), rtol=1e-12)


def test_array_offset_cannot_be_rebuilt_for_newdata():
    data = load_data("sleepstudy")
    m = glamm.lmer("Reaction ~ Days + (Days | Subject)", data,
                   offset=0.5 * data["Days"].to_numpy() ** 2)
    np.testing.assert_allclose(m.predict(), m.fitted(), rtol=1e-12)
    with pytest.raises(glamm.DataError, match="offset given as an array"):
        m.predict(data)


def test_new_factor_level_in_a_covariate_is_an_error_and_missing_gives_nan():
    """R stops with "factor f has new level"; glamm must not silently use the reference level
    (formulaic alone would give all-zero dummy columns). A missing covariate gives NaN."""
    data = load_data("sleepstudy")
    data["f"] = np.where(data["Days"] < 5, "early", "late")
    m = glamm.lmer("Reaction ~ Days + f + (1 | Subject)", data)
    new = data.head(3).copy()
    with pytest.raises(glamm.DataError, match="level.*'f'"):
        m.predict(new.assign(f="middle"))
    pred = m.predict(new.assign(f=[None, "early", "late"]))
    assert np.isnan(pred[0]) and np.all(np.isfinite(pred[1:]))
    slope = glamm.lmer("Reaction ~ Days + (0 + f | Subject)", data)
    with pytest.raises(glamm.DataError, match="level"):
        slope.predict(new.assign(f="middle"))

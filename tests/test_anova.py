"""Likelihood-ratio tables (glamm.anova), checked against lme4's anova(m0, m1) on sleepstudy:

    m0: Reaction ~ Days + (1 | Subject)     npar 4, logLik -897.04
    m1: Reaction ~ Days + (Days | Subject)  npar 6, logLik -875.97, Chisq 42.139, Df 2,
                                            Pr(>Chisq) 7.07e-10
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glamm
from glamm.errors import DataError, GlammError
from glamm.inference.anova import COLUMNS, REFIT_NOTE, refit_ml
from glamm.results.summary import format_anova

INT = "Reaction ~ Days + (1|Subject)"
SLOPE = "Reaction ~ Days + (Days|Subject)"
# lme4 1.1-31 (tests/reference/ref/lmer_sleepstudy_slope_ml.json)
LOGLIK_SLOPE_ML = -875.969672244495


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return glamm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def ml_fits(sleep):
    return glamm.lmer(INT, sleep, reml=False), glamm.lmer(SLOPE, sleep, reml=False)


@pytest.fixture(scope="module")
def reml_fits(sleep):
    return glamm.lmer(INT, sleep), glamm.lmer(SLOPE, sleep)


def test_table_layout(ml_fits):
    df = glamm.anova(*ml_fits)
    assert list(df.columns) == COLUMNS
    assert list(df.index) == ["m0", "m1"]
    assert df["npar"].tolist() == [4, 6]
    assert np.isnan(df["Chisq"].iloc[0]) and pd.isna(df["Df"].iloc[0])
    assert np.isnan(df["Pr(>Chisq)"].iloc[0])
    assert df.attrs["formulas"] == {"m0": INT, "m1": SLOPE}
    assert "note" not in df.attrs
    assert df.attrs["refitted"] == []


def test_likelihood_ratio_statistic(ml_fits):
    m0, m1 = ml_fits
    df = glamm.anova(m0, m1)
    chisq = df.loc["m1", "Chisq"]
    assert chisq == pytest.approx(2.0 * (m1.loglik - m0.loglik), rel=1e-12)
    assert df.loc["m1", "Df"] == 2
    assert df.loc["m1", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(chisq, 2), rel=1e-10)
    # lme4's printed values
    assert chisq == pytest.approx(42.139, abs=1e-3)
    assert df.loc["m1", "Pr(>Chisq)"] == pytest.approx(7.072e-10, rel=1e-3)
    assert df.loc["m1", "logLik"] == pytest.approx(LOGLIK_SLOPE_ML, rel=1e-6)
    assert df.loc["m0", "logLik"] == pytest.approx(-897.04, abs=0.01)
    np.testing.assert_allclose(df["deviance"], -2.0 * df["logLik"])
    np.testing.assert_allclose(df["AIC"], [m0.aic, m1.aic])
    np.testing.assert_allclose(df["BIC"], [m0.bic, m1.bic])


def test_rows_sorted_by_npar(ml_fits):
    m0, m1 = ml_fits
    df = glamm.anova(m1, m0)  # labels follow the input order: the slope model is "m0" here
    assert list(df.index) == ["m1", "m0"]  # ... and the intercept model ("m1") comes first
    assert df["npar"].tolist() == [4, 6]
    assert list(df.attrs["formulas"].values()) == [INT, SLOPE]
    assert df["Chisq"].iloc[1] == pytest.approx(2.0 * (m1.loglik - m0.loglik))


def test_names(ml_fits):
    df = glamm.anova(*ml_fits, names=["intercept", "slope"])
    assert list(df.index) == ["intercept", "slope"]
    with pytest.raises(GlammError, match="2 models"):
        glamm.anova(*ml_fits, names=["only-one"])


def test_reml_inputs_are_refitted_by_ml(reml_fits):
    r0, r1 = reml_fits
    df = glamm.anova(r0, r1)
    assert df.attrs["note"] == REFIT_NOTE == "refitting model(s) with ML (instead of REML)"
    assert df.attrs["refitted"] == ["m0", "m1"]
    assert df.attrs["method"] == "ML"
    assert df.loc["m1", "logLik"] == pytest.approx(LOGLIK_SLOPE_ML, rel=1e-6)
    assert df.loc["m1", "Chisq"] == pytest.approx(42.139, abs=1e-3)
    # the inputs are not changed by the refit
    assert r1.reml and r1.loglik == pytest.approx(-871.81, abs=0.01)
    text = format_anova(df)
    assert text.splitlines()[0] == REFIT_NOTE
    assert "m1: " + SLOPE in text


def test_mixed_methods_refit_only_reml(ml_fits, reml_fits):
    df = glamm.anova(ml_fits[0], reml_fits[1])
    assert df.attrs["refitted"] == ["m1"]
    assert df.loc["m1", "logLik"] == pytest.approx(LOGLIK_SLOPE_ML, rel=1e-6)


def test_refit_false(ml_fits, reml_fits):
    df = glamm.anova(*reml_fits, refit=False)
    assert "note" not in df.attrs
    assert df.attrs["method"] == "REML"
    assert df.loc["m1", "logLik"] == pytest.approx(reml_fits[1].loglik)
    with pytest.raises(GlammError, match="REML and ML"):
        glamm.anova(ml_fits[0], reml_fits[1], refit=False)


def test_refit_ml(reml_fits, ml_fits):
    r = refit_ml(reml_fits[1])
    assert not r.reml
    assert r.loglik == pytest.approx(ml_fits[1].loglik, rel=1e-8)
    np.testing.assert_allclose(r.fixef, ml_fits[1].fixef, rtol=1e-5)
    assert refit_ml(ml_fits[1]) is ml_fits[1]


def test_different_nobs_raises(sleep, ml_fits):
    fewer = sleep.drop(index=[0, 1, 2])
    m_small = glamm.lmer(SLOPE, fewer, reml=False)
    with pytest.raises(DataError, match=r"m0: 180, m1: 177"):
        glamm.anova(ml_fits[0], m_small)


def test_different_response_raises(sleep, ml_fits):
    other = sleep.copy()
    other["Reaction"] = other["Reaction"] * 1.01
    m_other = glamm.lmer(SLOPE, other, reml=False)
    with pytest.raises(DataError, match="different response"):
        glamm.anova(ml_fits[0], m_other)


def test_single_model_gives_its_f_tests(ml_fits):
    # (tests/test_inference_lmm.py checks the numbers against lmerTest)
    table = glamm.anova(ml_fits[0])
    assert list(table.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert "Type III" in str(table)


def test_non_model_arguments(ml_fits):
    with pytest.raises(TypeError):
        glamm.anova()
    with pytest.raises(TypeError, match="argument 2"):
        glamm.anova(ml_fits[0], "not a model")


def test_three_models(sleep, ml_fits):
    null = glamm.lmer("Reaction ~ 1 + (1|Subject)", sleep, reml=False)
    df = glamm.anova(ml_fits[1], null, ml_fits[0])
    assert list(df.index) == ["m1", "m2", "m0"]
    assert df["Df"].tolist()[1:] == [1, 2]
    assert df.loc["m2", "Chisq"] == pytest.approx(2 * (ml_fits[0].loglik - null.loglik))

"""GLMM printing, GLMs without random effects, likelihood-ratio tests of GLMMs and the
``--family`` option of the CLI.

R reference values were computed on this machine with R 4.2.2 and lme4 1.1-31 (MASS for
glm.nb), data(cbpp) from lme4 and data(sleepstudy):

    glm(cbind(incidence, size - incidence) ~ period, binomial, data = cbpp)
    glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial, data = cbpp)
    anova(glmer_fit, glm_fit)
    glm(Reaction ~ Days, Gamma, data = sleepstudy)
    glm.nb(incidence ~ period + offset(log(size)), data = cbpp)

and are hard-coded below (R is not needed to run the tests).
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glamm
from glamm import cli
from glamm.errors import DataError, GlammError
from glamm.glm_api import GlmResult, glm
from glamm.results.summary import format_anova, format_glm, format_glmer

CBPP_GLMM = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
CBPP_GLM = "cbind(incidence, size - incidence) ~ period"

# R: glm(cbind(incidence, size - incidence) ~ period, binomial, data = cbpp), printed with
# digits = 15 (coef(g), sqrt(diag(vcov(g))), logLik(g), AIC(g), BIC(g), deviance(g))
R_GLM_COEF = [-1.26902348936715, -1.17076272514038, -1.30140533385642, -1.78227863534165]
R_GLM_SE = [0.144919762428695, 0.291467787718858, 0.312881171641315, 0.413056442968482]
R_GLM_LOGLIK = -99.0291994893634  # df = 4
R_GLM_AIC = 206.058398978727
R_GLM_BIC = 214.159805741667
R_GLM_RESID_DEVIANCE = 114.101691440856

# R: lme4 1.1-31 glmer of CBPP_GLMM (BOBYQA stops about 3e-4 short of glamm's optimum in
# logLik, so comparisons with it use loose tolerances)
R_GLMM_LOGLIK = -92.0265663895303  # df = 5
R_GLMM_PEARSON_QUANTILES = [-2.38163600, -0.78893538, -0.20262705, 0.51425413, 2.87908806]
R_ANOVA_CHISQ = 14.005  # anova(glmer, glm): Df 1, Pr(>Chisq) 0.0001823


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    data = glamm.datasets.load("cbpp")
    data["prop"] = data["incidence"] / data["size"]
    return data


@pytest.fixture(scope="module")
def glmm(cbpp):
    return glamm.glmer(CBPP_GLMM, cbpp, family="binomial")


@pytest.fixture(scope="module")
def glm0(cbpp):
    return glm(CBPP_GLM, cbpp, family="binomial")


def _line(text: str, startswith: str) -> str:
    hits = [ln for ln in text.splitlines() if ln.lstrip().startswith(startswith)]
    assert hits, f"no line starting with {startswith!r} in:\n{text}"
    return hits[0]


def _next_line(text: str, line: str) -> str:
    lines = text.splitlines()
    return lines[lines.index(line) + 1]


# --------------------------------------------------------------------------- format_glmer
def test_glmer_summary_header(glmm):
    text = format_glmer(glmm)
    lines = text.splitlines()
    assert lines[0] == ("Generalized linear mixed model fit by maximum likelihood "
                        "(Laplace Approximation) ['GlmerResult']")
    assert lines[1] == " Family: binomial  ( logit )"
    assert lines[2] == "Formula: " + CBPP_GLMM
    assert "fast" not in lines[0]
    assert repr(glmm) == text and glmm.summary() == text


def test_glmer_summary_fit_criteria(glmm):
    text = format_glmer(glmm)
    header = _line(text, "AIC")
    assert header.split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    values = _next_line(text, header).split()
    assert float(values[2]) == pytest.approx(R_GLMM_LOGLIK, abs=2e-3)
    assert float(values[3]) == pytest.approx(-2 * R_GLMM_LOGLIK, abs=4e-3)  # -2 logLik
    assert float(values[0]) == pytest.approx(194.05, abs=0.01)  # lme4: 194.1
    assert float(values[1]) == pytest.approx(204.18, abs=0.01)  # lme4: 204.2
    assert values[4] == "51"


def test_glmer_summary_scaled_residuals(glmm):
    text = format_glmer(glmm)
    header = _line(text, "Min")
    assert _line(text, "Scaled residuals:")
    shown = [float(v) for v in _next_line(text, header).split()]
    expect = np.quantile(glmm.residuals("pearson"), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(shown, expect, atol=1e-4)
    np.testing.assert_allclose(shown, R_GLMM_PEARSON_QUANTILES, atol=2e-3)


def test_glmer_summary_random_effects_and_nobs(glmm):
    text = format_glmer(glmm)
    assert _line(text, "Groups").split() == ["Groups", "Name", "Variance", "Std.Dev."]
    herd = _line(text, "herd").split()
    assert herd[:2] == ["herd", "(Intercept)"]
    assert float(herd[2]) == pytest.approx(0.4123, abs=1e-3)  # lme4: 0.4123, SD 0.6421
    assert float(herd[3]) == pytest.approx(0.6421, abs=1e-3)
    assert "Residual" not in text  # the binomial has no dispersion parameter
    assert "Number of obs: 56, groups:  herd, 15" in text


def test_glmer_summary_fixed_effects(glmm):
    text = format_glmer(glmm)
    header = _line(text, "Estimate")
    assert header.split() == ["Estimate", "Std.", "Error", "z", "value", "Pr(>|z|)"]
    block = text.split("Fixed effects:")[1].split("Correlation of Fixed Effects:")[0]
    ct = glmm.coef_table()
    for name in ct.index:
        row = _line(block, name + " ").split()
        assert row[0] == name
        assert float(row[1]) == pytest.approx(ct.loc[name, "Estimate"], abs=1e-4)
        assert float(row[2]) == pytest.approx(ct.loc[name, "Std. Error"], abs=1e-4)
        assert float(row[3]) == pytest.approx(ct.loc[name, "z value"], abs=1e-3)
        assert float(row[4]) == pytest.approx(ct.loc[name, "Pr(>|z|)"], rel=1e-3)
    # lme4: -1.3983, -0.9919, -1.1282, -1.5797 (z -6.048, -3.272, -3.495, -3.743)
    assert float(_line(block, "(Intercept)").split()[1]) == pytest.approx(-1.3983, abs=1e-3)
    assert float(_line(block, "period4").split()[1]) == pytest.approx(-1.5797, abs=1e-3)
    assert _line(block, "(Intercept)").split()[-1] == "***"
    assert _line(block, "period2").split()[-1] == "**"  # p = 0.0012 (lme4: 0.001068)
    assert "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1" in block


def test_glmer_summary_correlations(glmm):
    text = format_glmer(glmm)
    tail = text.split("Correlation of Fixed Effects:")[1].strip().splitlines()
    assert tail[0].split() == ["(Intr)", "perid2", "perid3"]
    row = tail[1].split()
    assert row[0] == "period2"
    assert float(row[1]) == pytest.approx(-0.363, abs=0.005)  # lme4: -0.363
    V = glmm.vcov.to_numpy()
    assert float(row[1]) == pytest.approx(V[1, 0] / np.sqrt(V[0, 0] * V[1, 1]), abs=5e-4)


def test_glmer_summary_no_notes_for_regular_fit(glmm):
    text = format_glmer(glmm)
    assert "singular" not in text
    assert "failed to converge" not in text


def test_glmer_summary_notes(glmm):
    m = copy.copy(glmm)
    m.is_singular = True
    m.optsum = dataclasses.replace(glmm.optsum, converged=False, returnvalue="MAXEVAL_REACHED",
                                   messages=["stopped early"])
    text = format_glmer(m)
    assert "boundary (singular) fit" in text
    assert "(see GlmerResult.is_singular" in text
    assert "Model failed to converge: MAXEVAL_REACHED" in text
    assert text.rstrip().splitlines()[-1] == "  stopped early"


def test_glmer_summary_fast(cbpp):
    m = glamm.glmer(CBPP_GLMM, cbpp, family="binomial", fast=True)
    first = format_glmer(m).splitlines()[0]
    assert m.fast
    assert "Laplace Approximation" in first and "fast" in first and "nAGQ = 0" in first


def test_glmer_summary_probit_link(cbpp):
    m = glamm.glmer(CBPP_GLMM, cbpp, family="binomial", link="probit", fast=True)
    assert format_glmer(m).splitlines()[1] == " Family: binomial  ( probit )"


def test_glmer_summary_negative_binomial_shape(cbpp):
    m = glamm.glmer("incidence ~ period + offset(np.log(size)) + (1 | herd)", cbpp,
                    family="negative_binomial")
    text = format_glmer(m)
    assert text.splitlines()[1] == " Family: negative_binomial  ( log )"
    shape = _line(text, "Shape:")
    assert float(shape.split()[1]) == pytest.approx(m.shape, rel=1e-4)
    assert "Residual" not in text


def test_glmer_summary_dispersion_row():
    sleep = glamm.datasets.load("sleepstudy")
    m = glamm.glmer("Reaction ~ Days + (1 | Subject)", sleep, family="Gamma", link="log")
    text = format_glmer(m)
    residual = _line(text, "Residual").split()
    assert float(residual[1]) == pytest.approx(m.dispersion, rel=1e-2)
    shown = [float(v) for v in _next_line(text, _line(text, "Min")).split()]
    expect = np.quantile(m.residuals("pearson") / np.sqrt(m.dispersion), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(shown, expect, atol=1e-4)


# --------------------------------------------------------------------------- glm()
def test_glm_matches_r(glm0):
    assert isinstance(glm0, GlmResult)
    assert list(glm0.fixef.index) == ["(Intercept)", "period2", "period3", "period4"]
    # four decimals as printed by R, then the full values
    np.testing.assert_array_equal(np.round(glm0.fixef.to_numpy(), 4),
                                  [-1.2690, -1.1708, -1.3014, -1.7823])
    np.testing.assert_allclose(glm0.fixef, R_GLM_COEF, rtol=1e-7)
    np.testing.assert_allclose(glm0.stderr, R_GLM_SE, rtol=1e-6)
    assert glm0.loglik == pytest.approx(R_GLM_LOGLIK, rel=1e-9)
    assert glm0.aic == pytest.approx(R_GLM_AIC, rel=1e-9)
    assert glm0.bic == pytest.approx(R_GLM_BIC, rel=1e-9)
    assert glm0.residual_deviance == pytest.approx(R_GLM_RESID_DEVIANCE, rel=1e-9)
    assert glm0.deviance == pytest.approx(-2 * R_GLM_LOGLIK, rel=1e-9)
    assert glm0.npar == 4 and glm0.nobs == 56 and glm0.df_resid == 52
    assert glm0.dispersion == 1.0 and glm0.converged
    assert (glm0.family, glm0.link, glm0.formula) == ("binomial", "logit", CBPP_GLM)


def test_glm_coef_table_and_vcov(glm0):
    ct = glm0.coef_table()
    assert list(ct.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    # R: z -8.75673178108849, p 2.00993178726359e-18 for the intercept
    assert ct.loc["(Intercept)", "z value"] == pytest.approx(-8.75673178108849, rel=1e-6)
    assert ct.loc["period4", "Pr(>|z|)"] == pytest.approx(1.59707735940576e-05, rel=1e-5)
    V = glm0.vcov.to_numpy()
    np.testing.assert_allclose(V, V.T)
    np.testing.assert_allclose(np.sqrt(np.diag(V)), glm0.stderr)


def test_glm_proportions_with_weights(cbpp, glm0):
    g = glm("prop ~ period", cbpp, family="binomial", weights="size")
    np.testing.assert_allclose(g.fixef, glm0.fixef, rtol=1e-10)
    assert g.loglik == pytest.approx(glm0.loglik, rel=1e-12)


def test_glm_fitted_residuals_predict(cbpp, glm0):
    mu = glm0.fitted()
    np.testing.assert_allclose(glm0.residuals("response"), cbpp["prop"].to_numpy() - mu)
    np.testing.assert_allclose(glm0.predict(type="response"), mu)
    new = pd.DataFrame({"period": pd.Categorical(["1", "4"], categories=["1", "2", "3", "4"])})
    b = glm0.fixef
    np.testing.assert_allclose(glm0.predict(new),
                               [b["(Intercept)"], b["(Intercept)"] + b["period4"]])
    dev = glm0.residuals("deviance")
    assert float(np.sum(dev**2)) == pytest.approx(R_GLM_RESID_DEVIANCE, rel=1e-9)


def test_glm_summary(glm0):
    text = format_glm(glm0)
    assert repr(glm0) == text
    assert text.splitlines()[0] == \
        "Generalized linear model fit by maximum likelihood ['GlmResult']"
    assert " Family: binomial  ( logit )" in text.splitlines()
    assert "Number of obs: 56" in text
    assert _line(text, "Estimate").split() == ["Estimate", "Std.", "Error", "z", "value",
                                               "Pr(>|z|)"]
    assert _line(text, "period3").split()[1] == "-1.3014"
    assert "(Dispersion parameter for binomial family taken to be 1)" in text
    assert "Residual deviance: 114.102 on 52 degrees of freedom" in text
    assert "Random effects" not in text


def test_glm_gamma_matches_r():
    sleep = glamm.datasets.load("sleepstudy")
    g = glm("Reaction ~ Days", sleep, family="Gamma")
    # R: glm(Reaction ~ Days, Gamma, data = sleepstudy)
    np.testing.assert_allclose(g.fixef, [0.0039138728224, -0.0001177372285], rtol=1e-7)
    np.testing.assert_allclose(g.stderr, [7.833906122e-05, 1.345696192e-05], rtol=1e-6)
    assert g.loglik == pytest.approx(-943.883261897, rel=1e-9)
    assert g.npar == 3  # two coefficients and the dispersion
    assert list(g.coef_table().columns)[2:] == ["t value", "Pr(>|t|)"]
    assert "estimated as" in format_glm(g)


def test_glm_negative_binomial_estimates_shape(cbpp):
    g = glm("incidence ~ period + offset(np.log(size))", cbpp, family="negative_binomial")
    # R: MASS::glm.nb(incidence ~ period + offset(log(size)), data = cbpp)
    assert g.shape == pytest.approx(2.050818121, rel=1e-4)
    assert g.shape_estimated and g.npar == 5
    assert g.loglik == pytest.approx(-87.4393247075, abs=1e-6)
    np.testing.assert_allclose(g.fixef, [-1.517071669, -1.014735969, -1.031641053, -1.601773528],
                               atol=1e-4)
    assert _line(format_glm(g), "Shape:")


def test_glm_rejects_random_effects(cbpp):
    with pytest.raises(DataError, match="glmer"):
        glm(CBPP_GLMM, cbpp)


# --------------------------------------------------------------------------- anova
def test_anova_glm_null_against_glmm(glm0, glmm):
    df = glamm.anova(glm0, glmm)
    assert list(df.index) == ["m0", "m1"]
    assert df["npar"].tolist() == [4, 5]
    assert df.loc["m1", "Df"] == 1
    chisq = df.loc["m1", "Chisq"]
    assert chisq == pytest.approx(2.0 * (glmm.loglik - glm0.loglik), rel=1e-12)
    assert chisq == pytest.approx(R_ANOVA_CHISQ, abs=2e-3)
    assert df.loc["m1", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(chisq, 1), rel=1e-10)
    assert df.loc["m0", "logLik"] == pytest.approx(R_GLM_LOGLIK, rel=1e-9)
    np.testing.assert_allclose(df["AIC"], [glm0.aic, glmm.aic])
    assert df.attrs["method"] == "ML" and "note" not in df.attrs
    assert df.attrs["formulas"] == {"m0": CBPP_GLM, "m1": CBPP_GLMM}
    text = format_anova(df)
    assert "m1: " + CBPP_GLMM in text
    assert _line(text, "m1 ").split()[-1] == "***"


def test_anova_order_and_refit_flag_ignored(glm0, glmm):
    df = glamm.anova(glmm, glm0, refit=False, names=["glmm", "glm"])
    assert list(df.index) == ["glm", "glmm"]
    assert df.loc["glmm", "Chisq"] == pytest.approx(2.0 * (glmm.loglik - glm0.loglik))
    assert glamm.anova(glmm, glm0, refit=True).attrs["refitted"] == []


def test_anova_cbind_and_weighted_proportions_are_the_same_data(cbpp, glmm):
    g = glm("prop ~ period", cbpp, family="binomial", weights="size")
    df = glamm.anova(g, glmm)
    assert df["Chisq"].iloc[1] == pytest.approx(2.0 * (glmm.loglik - g.loglik))


def test_anova_rejects_lmm_with_glmm(cbpp, glmm, glm0):
    lmm = glamm.lmer("prop ~ period + (1 | herd)", cbpp, reml=False)
    with pytest.raises(GlammError, match="cannot compare linear mixed models"):
        glamm.anova(lmm, glmm)
    with pytest.raises(GlammError, match="cannot compare linear mixed models"):
        glamm.anova(glm0, lmm, names=["null", "lmm"])


def test_anova_glmm_different_data(cbpp, glmm):
    other = cbpp.copy()
    other.loc[0, "incidence"] = 5.0
    m = glamm.glmer(CBPP_GLMM, other, family="binomial", fast=True)
    with pytest.raises(DataError, match="different response"):
        glamm.anova(glmm, m)
    fewer = glm(CBPP_GLM, cbpp.iloc[4:], family="binomial")
    with pytest.raises(DataError, match="m0: 52, m1: 56"):
        glamm.anova(fewer, glmm)


# --------------------------------------------------------------------------- CLI
def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_family_binomial(capsys):
    code, out, err = run(capsys, "fit", CBPP_GLMM, "--data", "cbpp", "--family", "binomial")
    assert code == 0, err
    assert out.startswith("Generalized linear mixed model fit by maximum likelihood "
                          "(Laplace Approximation)")
    assert " Family: binomial  ( logit )" in out
    assert "Number of obs: 56, groups:  herd, 15" in out
    assert "z value" in out
    assert err == ""


def test_cli_family_json(capsys, glmm):
    code, out, err = run(capsys, "fit", CBPP_GLMM, "--data", "cbpp", "--family", "binomial",
                         "--json")
    assert code == 0, err
    d = json.loads(out)
    assert (d["family"], d["link"], d["nobs"]) == ("binomial", "logit", 56)
    assert d["ngroups"] == {"herd": 15}
    assert set(d["fixef"]) == {"(Intercept)", "period2", "period3", "period4"}
    assert d["loglik"] == pytest.approx(glmm.loglik, rel=1e-8)
    assert d["loglik"] == pytest.approx(R_GLMM_LOGLIK, abs=2e-3)


def test_cli_link_and_fast(capsys):
    code, out, err = run(capsys, "fit", CBPP_GLMM, "--data", "cbpp", "--family", "binomial",
                         "--link", "probit", "--fast", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["link"] == "probit"
    assert "fast" in d["method"]


def test_cli_glmm_options_need_family(capsys):
    code, out, err = run(capsys, "fit", "Reaction ~ Days + (1 | Subject)", "--data",
                         "sleepstudy", "--fast")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "--family" in err
    code, _, err = run(capsys, "fit", "Reaction ~ Days + (1 | Subject)", "--data",
                       "sleepstudy", "--link", "log")
    assert code == 2 and "--link needs --family" in err
    code, _, err = run(capsys, "fit", CBPP_GLMM, "--data", "cbpp", "--family", "binomial",
                       "--reml")
    assert code == 2 and "maximum likelihood" in err


def test_cli_bad_family(capsys):
    code, out, err = run(capsys, "fit", CBPP_GLMM, "--data", "cbpp", "--family", "binomal")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "binomial" in err

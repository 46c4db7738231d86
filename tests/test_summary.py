"""The printed lme4-style summary (glamm.results.summary.format_lmer) and its number formatting.

Expected numbers are lme4 1.1-31's for the same fits (tests/reference/ref/lmer_*.json):
sleepstudy ML logLik -875.97, Subject SDs 23.78 and 5.717, correlation 0.08, residual SD 25.59.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.errors import ConvergenceWarning, SingularFitWarning
from glamm.results.summary import abbreviate, format_anova, format_column, format_lmer

SLOPE = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return glamm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def slope_ml(sleep):
    return glamm.lmer(SLOPE, sleep, reml=False)


@pytest.fixture(scope="module")
def slope_reml(sleep):
    return glamm.lmer(SLOPE, sleep)


def _line(text: str, startswith: str) -> str:
    hits = [ln for ln in text.splitlines() if ln.lstrip().startswith(startswith)]
    assert hits, f"no line starting with {startswith!r} in:\n{text}"
    return hits[0]


# --------------------------------------------------------------------------- sleepstudy ML
def test_ml_header_and_formula(slope_ml):
    text = format_lmer(slope_ml)
    lines = text.splitlines()
    assert lines[0] == "Linear mixed model fit by maximum likelihood ['LmerResult']"
    assert lines[1].startswith("Formula: Reaction ~ Days + (Days")
    assert "REML criterion" not in text
    assert "rows with missing values dropped" not in text


def test_ml_fit_criteria(slope_ml):
    text = format_lmer(slope_ml)
    header = _line(text, "AIC")
    assert header.split() == ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    values = text.splitlines()[text.splitlines().index(header) + 1].split()
    assert values[2] == "-875.97"
    assert float(values[0]) == pytest.approx(1763.94, abs=0.01)
    assert float(values[1]) == pytest.approx(1783.10, abs=0.01)
    assert float(values[3]) == pytest.approx(1751.94, abs=0.01)
    assert values[4] == "174"


def test_random_effects_table(slope_ml):
    text = format_lmer(slope_ml)
    assert _line(text, "Groups").split() == ["Groups", "Name", "Variance", "Std.Dev.", "Corr"]
    intercept = _line(text, "Subject").split()
    assert intercept[:2] == ["Subject", "(Intercept)"]
    assert intercept[3].startswith("23.78")
    assert len(intercept) == 4  # no correlation on the first row of a term
    days = _line(text, "Days  ").split()  # the random-effects row, not the fixed-effects one
    assert days[0] == "Days"
    assert days[2] == "5.717"
    assert days[3] == "0.08"
    residual = _line(text, "Residual").split()
    assert residual[2].startswith("25.59")
    assert "Number of obs: 180, groups:  Subject, 18" in text


def test_random_effects_variances_match_varcorr(slope_ml):
    text = format_lmer(slope_ml)
    intercept = _line(text, "Subject").split()
    assert float(intercept[2]) == pytest.approx(slope_ml.varcorr["vcov"].iloc[0], abs=0.01)


def test_fixed_effects_table(slope_ml):
    text = format_lmer(slope_ml)
    assert _line(text, "Estimate").split() == ["Estimate", "Std.", "Error", "t", "value"]
    block = text.split("Fixed effects:")[1]
    row = _line(block, "(Intercept)").split()
    assert row[1:] == ["251.405", "6.632", "37.906"]
    row = _line(block, "Days").split()
    assert row[1:] == ["10.467", "1.502", "6.968"]


def test_correlation_of_fixed_effects(slope_ml):
    text = format_lmer(slope_ml)
    assert "Correlation of Fixed Effects:" in text
    tail = text.split("Correlation of Fixed Effects:")[1].strip().splitlines()
    assert tail[0].split() == ["(Intr)"]
    assert tail[1].split() == ["Days", "-0.138"]


def test_scaled_residual_quantiles(slope_ml):
    text = format_lmer(slope_ml)
    assert _line(text, "Min").split() == ["Min", "1Q", "Median", "3Q", "Max"]
    lines = text.splitlines()
    shown = [float(v) for v in lines[lines.index(_line(text, "Min")) + 1].split()]
    scaled = slope_ml.residuals() / slope_ml.sigma
    expect = np.quantile(scaled, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(shown, expect, atol=1e-4)
    assert shown[0] == pytest.approx(-3.9416, abs=2e-4)  # lme4 prints -3.9416


def test_regular_fit_has_no_notes(slope_ml):
    text = format_lmer(slope_ml)
    assert "singular" not in text
    assert "failed to converge" not in text


def test_repr_and_summary_are_the_formatted_text(slope_ml):
    assert repr(slope_ml) == format_lmer(slope_ml)
    assert slope_ml.summary() == format_lmer(slope_ml)


# --------------------------------------------------------------------------- REML
def test_reml_criterion_line(slope_reml):
    text = format_lmer(slope_reml)
    assert text.splitlines()[0] == "Linear mixed model fit by REML ['LmerResult']"
    line = _line(text, "REML criterion at convergence:")
    assert float(line.split(":")[1]) == pytest.approx(1743.628, abs=1e-3)
    assert "df.resid" not in text
    days = _line(text, "Days  ").split()
    assert days[2] == "5.922"  # lme4's REML slope SD
    assert days[3] == "0.07"


# --------------------------------------------------------------------------- notes
def test_singular_fit_note():
    data = glamm.datasets.load("Dyestuff2")
    with pytest.warns(SingularFitWarning):
        m = glamm.lmer("Yield ~ 1 + (1|Batch)", data, reml=False)
    text = format_lmer(m)
    assert "boundary (singular) fit" in text
    assert text.rstrip().splitlines()[-1].startswith("(see LmerResult.is_singular")
    batch = _line(text, "Batch").split()
    assert float(batch[2]) == 0.0 and float(batch[3]) == 0.0
    assert "Correlation of Fixed Effects" not in text  # only one coefficient
    assert "-81.437" in text  # lme4: logLik -81.4365


def test_not_converged_note(sleep):
    with pytest.warns(ConvergenceWarning):
        m = glamm.lmer(SLOPE, sleep, reml=False, control={"maxfeval": 5})
    assert not m.converged
    text = format_lmer(m)
    assert f"Model failed to converge: {m.optsum.returnvalue}" in text
    assert m.optsum.returnvalue  # e.g. MAXEVAL_REACHED


def test_dropped_rows_and_columns(sleep):
    data = sleep.copy()
    data["Days2"] = 2.0 * data["Days"]
    data.loc[[0, 5, 17], "Reaction"] = np.nan
    m = glamm.lmer("Reaction ~ Days + Days2 + (1|Subject)", data, reml=False)
    text = format_lmer(m)
    assert "3 rows with missing values dropped" in text
    assert "Days2" in _line(text, "fixed-effects model matrix is rank deficient")
    assert "Number of obs: 177," in text


def test_two_grouping_factors():
    data = glamm.datasets.load("Penicillin")
    m = glamm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", data)
    text = format_lmer(m)
    assert "Number of obs: 144, groups:  plate, 24; sample, 6" in text
    assert _line(text, "plate").split()[3].startswith("0.846")  # lme4: 0.8467
    assert _line(text, "sample").split()[3].startswith("1.93")  # lme4: 1.9316
    assert "Corr" not in _line(text, "Groups")


def test_uncorrelated_terms_of_one_factor(sleep):
    m = glamm.lmer("Reaction ~ Days + (1|Subject) + (0 + Days|Subject)", sleep, reml=False)
    text = format_lmer(m)
    assert _line(text, "Subject ").split()[:2] == ["Subject", "(Intercept)"]
    assert _line(text, "Subject.1").split()[:2] == ["Subject.1", "Days"]


def test_many_fixed_effects_skip_correlations(sleep):
    data = sleep.copy()
    rng = np.random.default_rng(1)
    data["z"] = rng.normal(size=len(data))
    m10 = glamm.lmer("Reaction ~ C(Days) + (1|Subject)", data, reml=False)
    m11 = glamm.lmer("Reaction ~ C(Days) + z + (1|Subject)", data, reml=False)
    assert len(m10.fixef) == 10 and len(m11.fixef) == 11
    assert "Correlation of Fixed Effects" in format_lmer(m10)
    assert "Correlation of Fixed Effects" not in format_lmer(m11)


# --------------------------------------------------------------------------- helpers
def test_format_column_common_decimals():
    assert format_column([565.5189, 32.68216, 654.9407], 4) == ["565.52", "32.68", "654.94"]
    assert format_column([23.78064, 5.716831, 25.59181], 4) == ["23.781", "5.717", "25.592"]
    # the smallest value does not force extra decimals beyond `digits`
    assert format_column([-3.94158, 0.02886, 5.17930], 4) == ["-3.9416", "0.0289", "5.1793"]
    assert format_column([0.0, 13.3461], 4) == ["0.00", "13.35"]
    assert format_column([float("nan"), 1.5], 4) == ["NaN", "1.5"]
    assert format_column([-0.00001, 20.0], 2) == ["0.00", "20.00"]  # no "-0.00"


def test_format_column_scientific_for_extremes():
    out = format_column([1e-20, 3e-20], 4)
    assert all("e-" in s for s in out)


def test_abbreviate():
    assert abbreviate("(Intercept)") == "(Intr)"
    assert abbreviate("Days") == "Days"


def test_format_anova_prints_note_and_formulas():
    df = pd.DataFrame(
        {"npar": [4, 6], "AIC": [1802.08, 1763.94], "BIC": [1814.85, 1783.10],
         "logLik": [-897.04, -875.97], "deviance": [1794.08, 1751.94],
         "Chisq": [np.nan, 42.139], "Df": pd.array([pd.NA, 2], dtype="Int64"),
         "Pr(>Chisq)": [np.nan, 7.07e-10]},
        index=["m0", "m1"],
    )
    df.attrs["note"] = "refitting model(s) with ML (instead of REML)"
    df.attrs["formulas"] = {"m0": "y ~ 1 + (1|g)", "m1": "y ~ x + (x|g)"}
    text = format_anova(df)
    lines = text.splitlines()
    assert lines[0] == "refitting model(s) with ML (instead of REML)"
    assert "m0: y ~ 1 + (1|g)" in lines
    row = _line(text, "m1 ").split()
    assert row[0] == "m1" and row[-1] == "***" and row[-2] == "7.070e-10"
    assert re.search(r"^m0\s+4\s", text, flags=re.M)


def test_wald_table_labels_and_degenerate_errors():
    from glamm.results.wald import wald_table

    est = pd.Series([1.0, -2.0, 0.5], index=["a", "b", "c"])
    t = wald_table(est, [0.5, 0.0, np.nan])
    assert list(t.index) == ["a", "b", "c"]
    assert t["z value"].tolist()[:2] == [2.0, -np.inf]
    assert t.loc["a", "Pr(>|z|)"] == pytest.approx(0.04550026389635842, rel=1e-12)
    assert t.loc["b", "Pr(>|z|)"] == 0.0 and np.isnan(t.loc["c", "Pr(>|z|)"])
    # given labels replace the estimates' own (they are not aligned on them)
    t2 = wald_table(est, [1.0, 1.0, 1.0], index=["x", "y", "z"])
    assert list(t2.index) == ["x", "y", "z"] and t2["Estimate"].tolist() == [1.0, -2.0, 0.5]

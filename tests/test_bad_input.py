"""Bad formulas and data give a :class:`glamm.errors.GlammError` (``FormulaError`` or
``DataError``) whose message names the problem; missing values are dropped and counted, not
errors; a singular fit warns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_data

import glamm
from glamm.errors import DataError, FormulaError, GlammError, SingularFitWarning

F = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture
def ss():
    return load_data("sleepstudy")


def _raises(exc_type, formula, data, *words, **kw):
    """Fit, expect ``exc_type``, check every word occurs in the message; return the message."""
    with pytest.raises(exc_type) as info:
        glamm.lmer(formula, data, **kw)
    assert isinstance(info.value, GlammError)
    assert isinstance(info.value, ValueError)  # GlammError is a ValueError
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in message {msg!r}"
    return msg


def test_error_hierarchy():
    assert issubclass(FormulaError, GlammError)
    assert issubclass(DataError, GlammError)
    assert issubclass(GlammError, ValueError)
    assert issubclass(SingularFitWarning, UserWarning)


# --------------------------------------------------------------------------- unknown names
def test_unknown_column_in_fixed_part(ss):
    _raises(FormulaError, "Reaction ~ Dayz + (Days | Subject)", ss, "'Dayz'")


def test_unknown_column_in_fixed_interaction(ss):
    _raises(FormulaError, "Reaction ~ Days * Dose + (1 | Subject)", ss, "'Dose'")


def test_name_of_formulaic_helper_used_as_column(ss):
    """``Treatment`` is not a column but a name formulaic knows (a contrast); still a
    FormulaError that names it (the message is formulaic's, less clear than for 'Dose')."""
    _raises(FormulaError, "Reaction ~ Days * Treatment + (1 | Subject)", ss, "Treatment")


def test_unknown_response_column(ss):
    _raises(FormulaError, "Reactio ~ Days + (1 | Subject)", ss, "'Reactio'")


def test_unknown_grouping_column(ss):
    _raises(FormulaError, "Reaction ~ Days + (1 | Subjekt)", ss, "'Subjekt'", "grouping")


def test_unknown_grouping_column_in_nesting():
    pastes = load_data("Pastes")
    _raises(FormulaError, "strength ~ 1 + (1 | batch/barrel)", pastes, "'barrel'")


def test_unknown_column_in_random_term(ss):
    _raises(FormulaError, "Reaction ~ Days + (Dayz | Subject)", ss, "'Dayz'")


def test_unknown_name_message_lists_columns(ss):
    msg = _raises(FormulaError, "Reaction ~ Dayz + (1 | Subject)", ss, "'Dayz'")
    for col in ss.columns:
        assert col in msg


# --------------------------------------------------------------------------- response
def test_string_response(ss):
    ss["label"] = ss["Reaction"].round().astype(int).astype(str)
    _raises(DataError, "label ~ Days + (1 | Subject)", ss, "'label'", "not numeric")


def test_categorical_response(ss):
    ss["band"] = pd.Categorical((ss["Reaction"] // 100).astype(int).astype(str))
    _raises(DataError, "band ~ Days + (1 | Subject)", ss, "'band'", "not numeric")


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("transform", ["np.log(Reaction)", "log(Reaction)"])
def test_log_of_zero_response(ss, transform):
    ss.loc[7, "Reaction"] = 0.0
    _raises(DataError, f"{transform} ~ Days + (1 | Subject)", ss, transform, "infinite", "7")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_sqrt_of_negative_response(ss):
    ss.loc[12, "Reaction"] = -4.0
    _raises(DataError, "np.sqrt(Reaction) ~ Days + (1 | Subject)", ss, "np.sqrt(Reaction)", "NaN")


def test_infinite_response(ss):
    ss.loc[3, "Reaction"] = np.inf
    _raises(DataError, F, ss, "'Reaction'", "infinite")


def test_infinite_covariate(ss):
    ss.loc[3, "Days"] = -np.inf
    _raises(DataError, F, ss, "'Days'", "infinite")


def test_missing_response_is_dropped_not_an_error(ss):
    ss.loc[[0, 50, 100], "Reaction"] = np.nan
    m = glamm.lmer(F, ss, reml=False)
    assert m.n_dropped_na == 3
    assert m.nobs == 177
    assert np.all(np.isfinite(m.fitted()))
    ref = glamm.lmer(F, ss.dropna(), reml=False)
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)


def test_missing_in_unused_column_is_not_dropped(ss):
    ss["unused"] = np.nan
    m = glamm.lmer(F, ss, reml=False)
    assert m.n_dropped_na == 0
    assert m.nobs == 180


def test_missing_grouping_value_is_dropped(ss):
    ss["Subject"] = ss["Subject"].astype(object)
    ss.loc[[5, 6], "Subject"] = None
    m = glamm.lmer(F, ss, reml=False)
    assert m.n_dropped_na == 2
    assert m.nobs == 178


# --------------------------------------------------------------------------- grouping factors
def test_grouping_factor_with_one_level(ss):
    ss["site"] = "only"
    _raises(DataError, "Reaction ~ Days + (1 | site)", ss, "'site'", "1 level")


def test_grouping_factor_one_level_after_dropping(ss):
    """Only one level is left once the rows with missing values are dropped."""
    keep = ss["Subject"] == "308"
    ss.loc[~keep, "Reaction"] = np.nan
    _raises(DataError, "Reaction ~ Days + (1 | Subject)", ss, "'Subject'", "1 level")


def test_grouping_factor_with_as_many_levels_as_rows(ss):
    ss["obs"] = np.arange(len(ss))
    _raises(DataError, "Reaction ~ Days + (1 | obs)", ss, "'obs'", "180 levels", "180 observations")


def test_no_random_effects(ss):
    _raises(DataError, "Reaction ~ Days", ss, "random-effects")


def test_empty_after_dropping_missing(ss):
    ss["Days"] = np.nan
    _raises(DataError, F, ss, "no rows left", "180")


def test_empty_data_frame(ss):
    _raises(DataError, F, ss.iloc[:0], "no rows")


# --------------------------------------------------------------------------- malformed formulas
@pytest.mark.parametrize(
    "formula,words",
    [
        ("Reaction ~ ", ["nothing on the right"]),
        ("Reaction ~", ["nothing on the right"]),
        ("~ Days + (1 | Subject)", ["no response"]),
        ("Reaction Days", ["'~'"]),
        ("(1|Subject)", ["'~'"]),
        ("Reaction ~ Days ~ (1 | Subject)", ["'~'"]),
        ("Reaction ~ (1|Subject", ["unbalanced", "'('"]),
        ("Reaction ~ Days + (Days | Subject", ["unbalanced"]),
        ("Reaction ~ Days)", ["unbalanced", "')'"]),
        ("Reaction ~ Days + (1 Subject)", ["(1 Subject)"]),
        ("Reaction ~ Days + 1 | Subject", ["parentheses"]),
        ("Reaction ~ Days + ( | Subject)", ["nothing on the left of '|'"]),
        ("Reaction ~ Days + (1 | )", ["empty grouping factor"]),
        ("Reaction ~ Days + (1 | Subject) +", ["stray '+'"]),
        ("Reaction ~ Days + (1 | Subject + Days)", ["Subject + Days"]),
    ],
)
def test_malformed_formula(ss, formula, words):
    _raises(FormulaError, formula, ss, *words)


def test_formula_must_be_a_string(ss):
    with pytest.raises(FormulaError):
        glamm.lmer(None, ss)


def test_data_must_be_a_frame():
    with pytest.raises(DataError):
        glamm.lmer(F, [[1, 2, 3]])


# --------------------------------------------------------------------------- weights and offset
@pytest.mark.parametrize("bad", [-1.0, np.inf])
def test_weights_not_positive(ss, bad):
    # zero weights are accepted (the rows are left out: tests/test_usability.py)
    w = np.ones(len(ss))
    w[17] = bad
    _raises(DataError, F, ss, "weights", "positive", "17", weights=w)


@pytest.mark.parametrize("n", [179, 181, 1])
def test_weights_wrong_length(ss, n):
    _raises(DataError, F, ss, "weights", str(n), "180", weights=np.ones(n))


def test_weights_unknown_column(ss):
    _raises(DataError, F, ss, "'wt'", weights="wt")


def test_offset_wrong_length(ss):
    _raises(DataError, F, ss, "offset", "10", "180", offset=np.zeros(10))


def test_missing_weight_drops_the_row(ss):
    w = np.ones(len(ss))
    w[4] = np.nan
    m = glamm.lmer(F, ss, reml=False, weights=w)
    assert m.n_dropped_na == 1
    assert m.nobs == 179


# --------------------------------------------------------------------------- singular fits
def test_singular_fit_warns_and_flags():
    data = load_data("Dyestuff2")
    with pytest.warns(SingularFitWarning, match="singular"):
        m = glamm.lmer("Yield ~ 1 + (1 | Batch)", data, reml=False)
    assert m.is_singular
    assert m.theta[0] == 0.0
    assert np.all(m.ranef["Batch"].to_numpy() == 0.0)


def test_regular_fit_does_not_warn():
    data = load_data("Dyestuff")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = glamm.lmer("Yield ~ 1 + (1 | Batch)", data, reml=False)
    assert not m.is_singular


def test_singular_warning_from_cached_fit(fit):
    msgs = fit.warnings_for("Dyestuff2", "Yield ~ 1 + (1 | Batch)", False)
    assert any(issubclass(w.category, SingularFitWarning) for w in msgs)
    assert fit("Dyestuff2", "Yield ~ 1 + (1 | Batch)", False).is_singular

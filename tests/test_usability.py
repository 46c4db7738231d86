"""Faults a new user meets (issue 9, section 2, item 6): lme4's argument spellings, flag types,
other data-frame libraries, zero weights in lmer, broken pipes in the CLI, printing of anova
tables, import time and tab completion."""

from __future__ import annotations

import html
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.errors import ArgumentError, GlammError
from glamm.formula.data_input import as_pandas

SLOPE = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return glamm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return glamm.datasets.load("cbpp")


# ---------------------------------------------------------------- lme4 spellings, flag types
def test_argument_error_is_a_glamm_error_and_a_type_error():
    assert issubclass(ArgumentError, GlammError)
    assert issubclass(ArgumentError, TypeError)


def test_lme4_REML_spelling_is_accepted(sleep):
    ml = glamm.lmer(SLOPE, sleep, reml=False)
    assert glamm.lmer(SLOPE, sleep, REML=False).loglik == ml.loglik
    assert glamm.lmer(SLOPE, sleep, REML=np.False_).reml is False


def test_lme4_nAGQ_spelling_is_accepted(cbpp):
    fit = glamm.glmer(CBPP, cbpp, family="binomial", nAGQ=3)
    assert fit.nagq == 3


def test_both_spellings_is_an_error(sleep, cbpp):
    with pytest.raises(ArgumentError, match=r"reml= and REML="):
        glamm.lmer(SLOPE, sleep, reml=False, REML=True)
    with pytest.raises(ArgumentError, match=r"nagq= and nAGQ="):
        glamm.glmer(CBPP, cbpp, nagq=5, nAGQ=3)


@pytest.mark.parametrize("func, kwargs, pattern", [
    ("glmer", {"nAGQ": 0}, r"nAGQ=0.*fast=True"),
    ("lmer", {"verbose_level": 1}, r"'verbose_level'"),
    ("lmer", {"family": "poisson"}, r"'family'.*glamm\.glmer"),
    ("lmer", {"nAGQ": 2}, r"'nAGQ'.*lme4's spelling of 'nagq'.*GLMMs only"),
    ("lmer", {"wieghts": "Days"}, r"'wieghts'.*did you mean 'weights'"),
    ("lmer", {"subset": "Days > 2"}, r"'subset'.*select the rows"),
    ("glmer", {"REML": True}, r"'REML'.*lme4's spelling of 'reml'.*maximum likelihood"),
    ("glm", {"control": {}}, r"'control'.*IRLS"),
    ("glm", {"xyz": 1}, r"'xyz'.*it takes family, link, weights, offset"),
])
def test_unknown_keywords_name_the_glamm_argument(sleep, cbpp, func, kwargs, pattern):
    formula, data = (SLOPE, sleep) if func == "lmer" else (CBPP, cbpp)
    if func == "glm":
        formula = "cbind(incidence, size - incidence) ~ period"
    with pytest.raises(ArgumentError, match=pattern):
        getattr(glamm, func)(formula, data, **kwargs)


@pytest.mark.parametrize("func, kwargs", [
    ("lmer", {"reml": "yes"}),
    ("lmer", {"reml": 1}),
    ("lmer", {"REML": "FALSE"}),
    ("glmer", {"fast": "no"}),
    ("glmer", {"penalized": 1}),
])
def test_flags_must_be_booleans(sleep, cbpp, func, kwargs):
    formula, data = (SLOPE, sleep) if func == "lmer" else (CBPP, cbpp)
    name = next(iter(kwargs)).lower()
    with pytest.raises(ArgumentError, match=rf"{name} must be True or False.*got "):
        getattr(glamm, func)(formula, data, **kwargs)


def test_numpy_booleans_are_flags(cbpp):
    fit = glamm.glmer(CBPP, cbpp, fast=np.True_)
    assert fit.converged


# ---------------------------------------------------------------- other data-frame libraries
def test_polars_data_gives_the_pandas_fit(sleep):
    pl = pytest.importorskip("polars")
    psleep = pl.from_pandas(sleep)
    assert glamm.lmer(SLOPE, psleep).loglik == glamm.lmer(SLOPE, sleep).loglik


def test_polars_categoricals_stay_factors(cbpp):
    pl = pytest.importorskip("polars")
    data = pl.from_pandas(cbpp.assign(herd=cbpp["herd"].astype(str),
                                      period=cbpp["period"].astype(str)))
    enum = pl.Enum(["1", "2", "3", "4"])
    data = data.with_columns(pl.col("herd").cast(pl.Categorical), pl.col("period").cast(enum))
    converted = as_pandas(data)
    assert isinstance(converted["herd"].dtype, pd.CategoricalDtype)
    assert list(converted["period"].cat.categories) == ["1", "2", "3", "4"]
    assert not converted["period"].cat.ordered   # an Enum is a factor, not an ordered factor
    fit = glamm.glmer(CBPP, data, family="binomial")
    assert list(fit.fixef.index) == ["(Intercept)", "period2", "period3", "period4"]
    assert fit.loglik == pytest.approx(glamm.glmer(CBPP, cbpp).loglik, rel=1e-12)


def test_arrow_and_interchange_tables(sleep):
    pa = pytest.importorskip("pyarrow")
    expected = glamm.lmer(SLOPE, sleep).loglik
    assert glamm.lmer(SLOPE, pa.table(sleep)).loglik == expected

    class InterchangeOnly:   # a table offering only the dataframe interchange protocol
        def __dataframe__(self, nan_as_null=False, allow_copy=True):
            return sleep.__dataframe__(nan_as_null, allow_copy)

    assert glamm.lmer(SLOPE, InterchangeOnly()).loglik == expected


def test_other_data_types_are_told_what_is_accepted(sleep):
    with pytest.raises(glamm.DataError, match=r"pandas DataFrame, a polars DataFrame.*"
                       r"__arrow_c_stream__.*got builtins\.list"):
        glamm.lmer(SLOPE, [[1, 2], [3, 4]])


# ---------------------------------------------------------------- zero weights in lmer
@pytest.mark.parametrize("reml", [True, False])
def test_lmer_zero_weight_rows_are_left_out(sleep, reml):
    # Days is 0 on each subject's first day; subject 308 gets weight 0 throughout, so one
    # level of the grouping factor exists only in rows of weight 0
    data = sleep.assign(Subject=sleep["Subject"].astype(str),
                        w=np.where(sleep["Subject"].astype(str) == "308", 0.0, sleep["Days"]))
    fit = glamm.lmer(SLOPE, data, reml=reml, weights="w")
    kept = data[data["w"] > 0]
    ref = glamm.lmer(SLOPE, kept, reml=reml, weights="w")
    assert fit.loglik == ref.loglik
    np.testing.assert_array_equal(fit.fixef, ref.fixef)
    assert fit.nobs == len(kept) == 180 - 10 - 17
    assert fit.frame.n_zero_weight == 27
    assert "27 rows with zero weight left out" in fit.summary()
    # as an array too, and all-zero weights say what happened
    assert glamm.lmer(SLOPE, data, reml=reml, weights=data["w"].to_numpy()).loglik == ref.loglik
    with pytest.raises(glamm.DataError, match="180 rows with zero weight"):
        glamm.lmer(SLOPE, data, weights=np.zeros(len(data)))


# ---------------------------------------------------------------- CLI output into a closed pipe
@pytest.mark.parametrize("argv", [["fit", SLOPE, "--data", "sleepstudy", "--json"],
                                  ["datasets"]])
def test_cli_reader_closing_the_pipe_is_quiet(argv):
    # the reader goes away before anything is written (as `| head -1` after its line)
    proc = subprocess.Popen([sys.executable, "-m", "glamm", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    proc.stderr.close()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141


# ---------------------------------------------------------------- anova tables print whole
def test_anova_table_prints_whole_and_stays_a_data_frame(sleep):
    from glamm.results.summary import format_anova

    m0 = glamm.lmer("Reaction ~ Days + (1 | Subject)", sleep, reml=False)
    m1 = glamm.lmer(SLOPE, sleep, reml=False)
    table = glamm.anova(m0, m1)
    text = format_anova(table)
    assert str(table) == repr(table) == text
    assert "Pr(>Chisq)" in text and "..." not in text and "Models:" in text
    assert table._repr_html_() == f"<pre>{html.escape(text)}</pre>"
    assert isinstance(table, pd.DataFrame)
    assert table.loc["m1", "Df"] == 2 and table.attrs["method"] == "ML"
    # what is derived from it is a plain DataFrame (printed by pandas)
    assert type(table[["npar", "AIC"]]) is pd.DataFrame
    assert type(table.round(2)) is pd.DataFrame
    assert "npar" in repr(table.iloc[:1])


# ---------------------------------------------------------------- import time, tab completion
HEAVY = ("matplotlib", "scipy", "scipy.optimize", "formulaic", "nlopt", "pandas")


def _imported_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return out.split()


def test_import_glamm_and_the_cli_load_no_heavy_modules():
    assert _imported_after("import glamm") == []
    # `glamm --help` and `glamm datasets` need neither the fitting code nor pandas
    assert _imported_after("import glamm.cli; glamm.cli.build_parser(); "
                           "glamm.datasets.list()") == []


def test_public_names_are_loaded_on_first_use():
    assert glamm.GlmerResult.__name__ == "GlmerResult"
    assert glamm.GlmResult.__name__ == "GlmResult"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = glamm.nonexistent


def test_dir_lists_public_names_only():
    assert dir(glamm) == sorted(glamm.__all__)
    for name in ("lmer", "glmer", "glm", "anova", "marginal_coefs", "plot_smooth", "datasets",
                 "LmerResult", "GlmerResult", "GlmResult", "GlammError", "DataError",
                 "FormulaError", "ArgumentError", "ConvergenceWarning", "SingularFitWarning",
                 "__version__"):
        assert name in dir(glamm)
        getattr(glamm, name)
    assert not {"api", "lmm", "glmm", "linalg", "formula", "errors"} & set(dir(glamm))
    assert dir(glamm.datasets) == ["DatasetNotFoundError", "describe", "list",
                                   "list_datasets", "load", "read_csv"]
    assert not hasattr(glamm.datasets, "pd") and not hasattr(glamm.datasets, "json")


# ---------------------------------------------------------------- slow tests are marked
def test_make_test_deselects_the_slow_cases():
    from pathlib import Path

    import test_glmm_gradient
    import test_lmer_reference

    def slow(params):
        return [p.values[0] for p in params if any(m.name == "slow" for m in p.marks)]

    assert slow(test_lmer_reference.CASES) == ["lmer_insteval_ml"]
    grad = test_glmm_gradient.test_gradient_matches_finite_differences
    params = next(m for m in grad.pytestmark if m.name == "parametrize").args[1]
    assert slow(params) == ["cloglog_slope_observed"]
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert 'MARKERS ?= not slow' in makefile and "$(MAKE) test MARKERS=" in makefile

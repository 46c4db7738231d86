"""Degenerate data: constant responses, separation, badly scaled predictors, standard errors
that are not numbers (issue 9, faults 2-4)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm import cli


def _frame(n: int = 60, groups: int = 10, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": np.repeat(np.arange(groups), n // groups),
                         "x": rng.normal(size=n), "z": rng.normal(size=n)})


# ------------------------------------------------------------------ constant responses (LMM)
@pytest.mark.parametrize("value", [0.0, 3.0])
def test_lmer_constant_response_is_a_data_error(value):
    d = _frame().assign(resp=value)
    with pytest.raises(glamm.DataError, match=r"response 'resp' is constant .*60 rows is "
                       + f"{value:g}"):
        glamm.lmer("resp ~ x + (1 | g)", d)


def test_lmer_response_fitted_exactly_by_fixed_effects():
    d = _frame()
    d["resp"] = 1.0 + 2.0 * d["x"]
    with pytest.raises(glamm.DataError, match="exact linear function.*x"):
        glamm.lmer("resp ~ x + (1 | g)", d)


def test_cli_reports_data_error_without_traceback(capsys, tmp_path):
    path = tmp_path / "zero.csv"
    _frame().assign(y=0.0).to_csv(path, index=False)
    code = cli.main(["fit", "y ~ x + (1 | g)", "--data", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: the response 'y' is constant")
    assert "Traceback" not in err


# ------------------------------------------------------------------ separation (GLMM, GLM)
def test_glmer_continuous_column_separation_is_named():
    d = _frame(120, 12)
    d["y"] = (d["x"] > 0).astype(int)
    with pytest.warns(UserWarning, match="separation: x splits"):
        m = glamm.glmer("y ~ x + (1 | g)", d, family="binomial")
    assert any("x splits" in note for note in m.notes)


def test_glmer_reference_level_separation_names_the_columns():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(np.arange(6), 10), "f": np.tile(list("abc"), 20)})
    d["y"] = np.where(d["f"] == "a", 1, (rng.random(60) < 0.5).astype(int))
    with pytest.raises(glamm.DataError, match=r"separated by a combination of the columns "
                       r"\(Intercept\), fb, fc"):
        glamm.glmer("y ~ f + (1 | g)", d, family="binomial")


@pytest.mark.parametrize("value,what", [(0, "failure"), (1, "success")])
def test_glmer_constant_binary_response(value, what):
    d = _frame(120, 12).assign(y=value)
    with pytest.raises(glamm.DataError, match=f"'y' is constant .*120 observations is a {what}"):
        glamm.glmer("y ~ x + (1 | g)", d, family="binomial")


def test_glmer_all_zero_counts():
    d = _frame(120, 12).assign(y=0)
    with pytest.raises(glamm.DataError, match="'y' is constant.*all 0"):
        glamm.glmer("y ~ x + (1 | g)", d, family="poisson")


def test_glm_separation_warns_naming_the_column():
    d = _frame(120, 12)
    d["y"] = (d["x"] > 0).astype(int)
    with pytest.warns(UserWarning, match="numerically 0 or 1 occurred.*separated by x"):
        glamm.glm("y ~ x", d, family="binomial")


def test_glm_constant_response_is_a_data_error():
    with pytest.raises(glamm.DataError, match="constant"):
        glamm.glm("y ~ x", _frame().assign(y=0), family="binomial")


# ------------------------------------------------------------------ scaling, standard errors
def test_badly_scaled_predictor_warning_names_the_column():
    d = _frame()
    d["y"] = d["x"] + d["z"] + np.random.default_rng(2).normal(size=60)
    d["big"] = d["z"] * 1e6
    with pytest.warns(UserWarning, match="very different scales: big against"):
        glamm.lmer("y ~ x + big + (1 | g)", d)
    with pytest.warns(UserWarning, match="very different scales: big against"):
        glamm.glm("y ~ x + big", d, family="gaussian")


def test_no_scaling_warning_for_ordinary_data():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        glamm.lmer("Reaction ~ Days + (Days | Subject)", glamm.datasets.load("sleepstudy"))


def test_nan_standard_errors_warn_and_print_as_nan():
    cb = glamm.datasets.load("cbpp")
    m = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb,
                    family="binomial")
    before = m.summary() if hasattr(m, "summary") else repr(m)
    H = np.array(m._hessian, dtype=float)
    j = m.model.n_theta + 2                      # period3
    H[j, :] = H[:, j] = 0.0
    H[j, j] = -1.0                               # a negative curvature: a negative variance
    m.__dict__["_hessian"] = H
    for key in ("vcov", "stderr"):
        m.__dict__.pop(key, None)
    with pytest.warns(UserWarning, match="standard errors of period3 are not finite"):
        se = m.stderr
    assert np.isnan(se["period3"]) and np.isfinite(se["period2"])
    text = repr(m)
    assert "Note: the standard errors of period3 are not finite" in text
    assert "nan" not in text
    assert before != text


def test_glmer_on_badly_scaled_columns_reaches_the_same_optimum():
    """time in other units (x 1e5, shifted by 1e6): Laplace stopped 0.013 short in
    log-likelihood before the fit ran on internally rescaled columns."""
    d = glamm.datasets.load("sim_binary_longitudinal")
    m0 = glamm.glmer("y ~ sex * time + (1 | id)", d, family="binomial")
    a, b = 1e5, 1e6
    d2 = d.assign(time=d["time"] * a + b)
    with pytest.warns(UserWarning, match="very different scales: time, sexfemale:time"):
        m1 = glamm.glmer("y ~ sex * time + (1 | id)", d2, family="binomial")
    # beta on the new scale = B beta on the old one (time_new = a time + b)
    B = np.eye(4)
    B[2, 2] = B[3, 3] = 1.0 / a
    B[0, 2] = B[1, 3] = -b / a
    assert m1.loglik == pytest.approx(m0.loglik, abs=1e-8)
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=1e-7)
    np.testing.assert_allclose(m1.fixef.to_numpy(), B @ m0.fixef.to_numpy(), rtol=1e-7)
    V = B @ m0.vcov.to_numpy() @ B.T
    np.testing.assert_allclose(m1.stderr.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-4)
    np.testing.assert_allclose(m1.fitted(), m0.fitted(), atol=1e-9)

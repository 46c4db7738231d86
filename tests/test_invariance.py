"""Fits that must not change (or must change in a known way) under transformations of the data:
row order, level labels and their order, units and location of the response, unused levels
and the type of the grouping column.

Each transformation is checked three ways:

1. **At fixed theta** (the original fit's ``theta``), every estimate of the transformed data
   (log-likelihood, fixed effects and their SEs, sigma, conditional modes) equals the original
   one to 1e-9 relative. This is the exact invariance of the code, free of optimizer noise.
2. **Refit with the default settings**: log-likelihood and fixed effects within 1e-6 relative.
3. **Refit with tight optimizer settings** (``TIGHT``): theta and sigma within the project's
   estimate tolerances (theta 1e-4 relative above 1e-3, else 1e-4 absolute; sigma 1e-4
   relative) and conditional modes within 1e-3 of the column's largest mode.

Why theta and sigma of refits are not compared at 1e-6: near the optimum the profiled
objective is so flat in some directions (sleepstudy's ``Subject.Days.(Intercept)``, Pastes'
``batch``) that a relative change of 1e-5 in theta moves the objective by less than its
rounding error (~1e-12 relative); any perturbation of the data at rounding level (row order,
``y + 1000``) then moves the optimizer's stopping point by that much. Measured worst cases with
``TIGHT``: theta 2.4e-5, sigma 4.1e-6 (Penicillin, ``y + 1000``); the log-likelihood agrees to
7e-10 and the fixed effects (balanced designs) to 1e-12.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_data

import glamm
from glamm.formula.design import build_model_frame
from glamm.lmm.model import LinearMixedModel
from glamm.optim.optsummary import OptSummary
from glamm.results.lmer_result import LmerResult

EXACT_RTOL = 1e-9  # same theta, transformed data
REFIT_RTOL = 1e-6  # log-likelihood and fixed effects of a refit
EST_RTOL = 1e-4  # theta (> 1e-3) and sigma of a refit (project tolerance)
THETA_ATOL = 1e-4  # theta components <= 1e-3 of a refit
RANEF_TOL = 1e-3  # conditional modes of a refit, relative to the column's largest mode
TIGHT = dict(ftol_rel=1e-15, ftol_abs=0.0, xtol_abs=1e-12)

MODELS = {
    "sleepstudy_slope_ML": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False, "Reaction"),
    "sleepstudy_slope_REML": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True, "Reaction"),
    "sleepstudy_uncorr_ML": ("sleepstudy", "Reaction ~ Days + (Days || Subject)", False,
                             "Reaction"),
    "penicillin_ML": ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", False, "diameter"),
    "pastes_REML": ("Pastes", "strength ~ 1 + (1 | batch/cask)", True, "strength"),
}


# --------------------------------------------------------------------------- helpers
def _lmer(formula, data, reml, control=None):
    with warnings.catch_warnings():
        warnings.simplefilter("error", glamm.ConvergenceWarning)
        return glamm.lmer(formula, data, reml=reml, control=control)


def at_theta(formula, data, reml, theta) -> LmerResult:
    """The result object of ``formula`` on ``data`` evaluated at a fixed ``theta`` (no
    optimization)."""
    model = LinearMixedModel(build_model_frame(formula, data), reml=reml)
    theta = np.asarray(theta, dtype=float)
    val = model.objective(theta)
    optsum = OptSummary(optimizer="fixed theta", initial=theta.copy(), lower=model.theta_lower(),
                        final=theta.copy(), fmin=val, converged=True)
    return LmerResult(model, optsum)


def _theta_close(a, b, rtol, atol):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    for x, y in zip(a, b):
        tol = rtol * abs(y) if abs(y) > 1e-3 else atol
        assert abs(x - y) <= tol, (a, b)


def _ranef_close(m, ref, tol_of_max, label_map=None, scale=1.0):
    """Conditional modes matched by level label (``label_map(group, ours) -> ref label``)."""
    assert set(m.ranef) == set(ref.ranef)
    for g, df in m.ranef.items():
        want = ref.ranef[g]
        labels = [label_map(g, lab) if label_map else lab for lab in df.index]
        assert sorted(labels) == sorted(want.index)
        assert list(df.columns) == list(want.columns)
        got = df.to_numpy()
        exp = scale * want.loc[labels].to_numpy()
        tol = tol_of_max * np.abs(exp).max(axis=0)
        assert np.all(np.abs(got - exp) <= tol), (g, np.abs(got - exp).max(axis=0), tol)


def check_invariance(key, fit, data, scale=1.0, shift=0.0, label_map=None):
    """The three checks of the module docstring for ``data`` (transformed) against the fit of
    the original data; the response was multiplied by ``scale`` and then ``shift`` added."""
    dataset, formula, reml, _ = MODELS[key]
    ref = fit(dataset, formula, reml)
    n, p = ref.nobs, len(ref.fixef)
    # ML: -n log|c|; the REML log-likelihood has n - p residual degrees of freedom
    ll_shift = -(n - p if reml else n) * np.log(abs(scale))
    fe_want = scale * ref.fixef.to_numpy()
    if shift:
        fe_want[list(ref.fixef.index).index("(Intercept)")] += shift
    fe_atol = np.abs(fe_want).max()

    # 1. fixed theta
    m = at_theta(formula, data, reml, ref.theta)
    assert m.loglik - ll_shift == pytest.approx(ref.loglik, rel=EXACT_RTOL, abs=0)
    assert list(m.fixef.index) == list(ref.fixef.index)
    np.testing.assert_allclose(m.fixef.to_numpy(), fe_want, rtol=EXACT_RTOL,
                               atol=EXACT_RTOL * fe_atol)
    np.testing.assert_allclose(m.stderr.to_numpy(), abs(scale) * ref.stderr.to_numpy(),
                               rtol=EXACT_RTOL)
    assert m.sigma == pytest.approx(abs(scale) * ref.sigma, rel=EXACT_RTOL)
    assert m.nobs == ref.nobs and m.ngroups == ref.ngroups
    _ranef_close(m, ref, EXACT_RTOL, label_map=label_map, scale=scale)

    # 2. refit, default settings
    m = _lmer(formula, data, reml)
    assert m.loglik - ll_shift == pytest.approx(ref.loglik, rel=REFIT_RTOL, abs=0)
    np.testing.assert_allclose(m.fixef.to_numpy(), fe_want, rtol=REFIT_RTOL,
                               atol=REFIT_RTOL * fe_atol)
    assert m.nobs == ref.nobs and m.ngroups == ref.ngroups

    # 3. refit, tight settings
    tref = fit(dataset, formula, reml, control=TIGHT)
    m = _lmer(formula, data, reml, control=TIGHT)
    _theta_close(m.theta, tref.theta, EST_RTOL, THETA_ATOL)
    assert m.sigma == pytest.approx(abs(scale) * tref.sigma, rel=EST_RTOL)
    _ranef_close(m, tref, RANEF_TOL, label_map=label_map, scale=scale)
    return m


# --------------------------------------------------------------------------- row order
@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("seed", [1, 2])
def test_row_permutation(key, seed, fit):
    dataset, formula, reml, _ = MODELS[key]
    data = load_data(dataset)
    perm = np.random.default_rng(seed).permutation(len(data))
    check_invariance(key, fit, data.iloc[perm])
    # fitted values follow their rows (same theta)
    ref = fit(dataset, formula, reml)
    m = at_theta(formula, data.iloc[perm], reml, ref.theta)
    np.testing.assert_allclose(m.fitted(), ref.fitted()[perm], rtol=1e-10)
    np.testing.assert_allclose(m.residuals(), ref.residuals()[perm], rtol=0,
                               atol=1e-9 * np.abs(ref.residuals()).max())


def test_row_permutation_with_reset_index(fit):
    data = load_data("sleepstudy")
    perm = np.random.default_rng(5).permutation(len(data))
    check_invariance("sleepstudy_slope_ML", fit, data.iloc[perm].reset_index(drop=True))


def test_objective_invariant_to_row_order():
    data = load_data("Penicillin")
    perm = np.random.default_rng(9).permutation(len(data))
    formula = MODELS["penicillin_ML"][1]
    for reml in (False, True):
        a = LinearMixedModel(build_model_frame(formula, data), reml)
        b = LinearMixedModel(build_model_frame(formula, data.iloc[perm]), reml)
        for theta in ([1.0, 1.0], [0.2, 5.0], [2.0, 0.0]):
            theta = np.array(theta)
            assert b.objective(theta) == pytest.approx(a.objective(theta), rel=1e-12)


# --------------------------------------------------------------------------- level labels
@pytest.mark.parametrize(
    "key", ["sleepstudy_slope_ML", "sleepstudy_slope_REML", "sleepstudy_uncorr_ML"])
def test_relabel_subjects_to_other_strings(key, fit):
    dataset, formula, reml, _ = MODELS[key]
    data = load_data(dataset)
    old = [str(x) for x in data["Subject"].cat.categories]
    # new labels whose sorted order differs from the old order
    rng = np.random.default_rng(3)
    new = [f"subj_{c}" for c in rng.permutation(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))[: len(old)]]
    fwd = dict(zip(old, new))
    back = dict(zip(new, old))
    data["Subject"] = data["Subject"].astype(str).map(fwd).astype(object)  # plain strings
    m = check_invariance(key, fit, data, label_map=lambda g, lab: back[lab])
    assert set(m.ranef["Subject"].index) == set(new)


@pytest.mark.parametrize("key", ["sleepstudy_slope_ML", "penicillin_ML", "pastes_REML"])
def test_reversed_category_order(key, fit):
    dataset, formula, reml, _ = MODELS[key]
    data = load_data(dataset)
    for col in data.columns:
        if isinstance(data[col].dtype, pd.CategoricalDtype):
            data[col] = data[col].cat.reorder_categories(data[col].cat.categories[::-1])
    check_invariance(key, fit, data)


def test_relabel_nested_factor_levels(fit):
    """Renaming the cask levels a, b, c to z, y, x renames the 'cask:batch' levels only."""
    data = load_data("Pastes")
    mapping = {"a": "z", "b": "y", "c": "x"}
    back = {v: k for k, v in mapping.items()}
    data["cask"] = data["cask"].astype(str).map(mapping)

    def label_map(group, lab):
        if group == "cask:batch":
            cask, batch = lab.split(":")
            return f"{back[cask]}:{batch}"
        return lab

    check_invariance("pastes_REML", fit, data, label_map=label_map)


# --------------------------------------------------------------------------- response scale
@pytest.mark.parametrize("c", [10.0, 0.01, -2.5])
@pytest.mark.parametrize("key", ["sleepstudy_slope_ML", "sleepstudy_slope_REML", "penicillin_ML"])
def test_rescale_response(key, c, fit):
    dataset, formula, reml, yname = MODELS[key]
    data = load_data(dataset)
    data[yname] = data[yname] * c
    check_invariance(key, fit, data, scale=c)


@pytest.mark.parametrize("k", [1000.0, -250.0])
@pytest.mark.parametrize("key", ["sleepstudy_slope_ML", "sleepstudy_slope_REML", "pastes_REML"])
def test_shift_response(key, k, fit):
    dataset, formula, reml, yname = MODELS[key]
    data = load_data(dataset)
    data[yname] = data[yname] + k
    m = check_invariance(key, fit, data, shift=k)
    ref = fit(dataset, formula, reml)
    # only the intercept moves
    others = [nm for nm in ref.fixef.index if nm != "(Intercept)"]
    np.testing.assert_allclose(m.fixef[others].to_numpy(), ref.fixef[others].to_numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- grouping column type
def test_unused_level_changes_nothing(fit):
    data = load_data("sleepstudy")
    data["Subject"] = data["Subject"].cat.add_categories(["999", "000"])
    m = check_invariance("sleepstudy_slope_ML", fit, data)
    assert m.ngroups == {"Subject": 18}
    assert "999" not in m.ranef["Subject"].index
    assert "000" not in m.ranef_condvar["Subject"].index


def test_level_unused_after_dropping_missing_rows():
    """A level whose rows are all dropped for a missing value is not a level of the fit."""
    data = load_data("sleepstudy")
    rows = (data["Subject"] == "372").to_numpy()
    data.loc[rows, "Reaction"] = np.nan
    formula = "Reaction ~ Days + (Days | Subject)"
    m = _lmer(formula, data, False)
    m0 = _lmer(formula, data.loc[~rows], False)
    assert m.n_dropped_na == int(rows.sum())
    assert m.ngroups == {"Subject": 17}
    assert "372" not in m.ranef["Subject"].index
    assert m.loglik == pytest.approx(m0.loglik, rel=1e-12)
    np.testing.assert_allclose(m.theta, m0.theta, rtol=1e-10)
    np.testing.assert_allclose(m.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=1e-10)


@pytest.mark.parametrize("kind", ["int", "str", "categorical", "float"])
def test_subject_column_type(kind, fit):
    data = load_data("sleepstudy")
    labels = data["Subject"].astype(str)
    if kind == "int":
        data["Subject"] = labels.astype(int)
    elif kind == "float":
        data["Subject"] = labels.astype(float)
    elif kind == "str":
        data["Subject"] = labels.astype(object)
    else:
        data["Subject"] = pd.Categorical(labels)  # categories in sorted (string) order
    m = check_invariance("sleepstudy_slope_ML", fit, data)
    assert all(isinstance(lab, str) for lab in m.ranef["Subject"].index)
    levels = load_data("sleepstudy")["Subject"].cat.categories
    assert sorted(m.ranef["Subject"].index) == sorted(levels)


def test_unused_category_of_a_random_slope_factor_changes_nothing():
    """An empty category of a factor random slope must not add a column, a variance or
    correlations (lme4 drops unused levels): same fit and parameter count as without it."""
    import glamm

    data = glamm.datasets.load("sleepstudy")
    data["f"] = pd.Categorical(np.where(data["Days"] < 5, "a", "b"), categories=["a", "b"])
    extra = data.assign(f=pd.Categorical(data["f"].astype(str), categories=["a", "b", "c"]))
    m1 = glamm.lmer("Reaction ~ Days + (0 + f | Subject)", data, reml=False)
    m2 = glamm.lmer("Reaction ~ Days + (0 + f | Subject)", extra, reml=False)
    assert len(m2.theta) == len(m1.theta) == 3
    assert m2.aic == pytest.approx(m1.aic, rel=1e-10)
    assert m2.loglik == pytest.approx(m1.loglik, rel=1e-10)

"""Smooth terms against gamm4 0.2-6, mgcv 1.8-41 (``gam(..., method = "REML")`` with the random
intercept as an ``s(fac, bs = "re")`` smooth) and galamm 0.3.0 (``tests/reference/ref``).

Compared, as the issue asks: the REML or ML criterion (ours may be lower, i.e. better, never
higher beyond 1e-6 relative), the parametric coefficients and their standard errors, sigma, and
each smooth on the reference grid (within 1e-3 of the curve's range; standard errors within
2%). The criterion is invariant to the smooth's basis only if the unpenalized (fixed) columns
are mgcv's exactly (REML depends on them through log|X'V^-1X|): matching it checks the basis
construction as well as the fit.

Where the references disagree, the better criterion decides: gamm4's lme4 stops slightly short
on the sim1 model (REML 1.4e-8 above ours, smoothing parameters 7e-5 off); mgcv's own REML
optimizer gets closer. On sleepstudy the REML optimum is on the boundary (the smooth of Days is
linear: variance 0, gamm4's sp = 1e10); mgcv's ``gam`` stops at sp = 1.4e4 with a REML score
1.7e-5 worse. Estimates are compared with the reference whose criterion is best.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest
from conftest import load_reference

import glamm

MODELS = {
    # name: (dataset, glamm formula, REML, references (best first))
    "sim1_reml": ("gamm4_sim1", "y ~ s(x0) + x1 + s(x2) + (1 | fac)", True,
                  ["gamm4_sim1_reml", "gam_sim1_re_reml"]),
    "sim1_ml": ("gamm4_sim1", "y ~ s(x0) + x1 + s(x2) + (1 | fac)", False,
                ["gamm4_sim1_ml", "galamm_gamm4sim_ml"]),
    "sleep_reml": ("sleepstudy", "Reaction ~ s(Days, k=5) + (1 | Subject)", True,
                   ["gamm4_sleepstudy_int_reml", "gam_sleepstudy_re_reml"]),
}


@lru_cache(maxsize=None)
def fitted(name: str):
    data, formula, reml, _ = MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.lmer(formula, glamm.datasets.load(data), reml=reml)


def _criterion(ref: dict, reml: bool) -> float:
    """-2 x the (restricted) log-likelihood of a reference fit."""
    if "mgcv_REML_score" in ref:
        return 2.0 * ref["mgcv_REML_score"]
    if reml:
        return ref["REMLcrit"]
    return -2.0 * ref["logLik"]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("which", [0, 1])
def test_criterion_not_worse_than_reference(name, which):
    _, _, reml, refs = MODELS[name]
    m = fitted(name)
    ref = load_reference(refs[which])
    ours = m.reml_criterion if reml else -2.0 * m.loglik
    target = _criterion(ref, reml)
    assert ours <= target + 1e-6 * abs(target), (ours, target)
    # and not suspiciously far below: the references are close to the optimum
    assert ours >= target - 1e-4 * abs(target)


@pytest.mark.parametrize("name", list(MODELS))
def test_parametric_coefficients_and_sigma(name):
    _, _, _, refs = MODELS[name]
    m = fitted(name)
    ref = load_reference(refs[0])
    if "parametric" in ref:
        est, se = ref["parametric"]["estimate"], ref["parametric"]["se"]
    else:
        est, se = ref["fixef"], ref["fixef_se"]
    for k, v in est.items():
        if k in m.fixef.index:
            assert m.fixef[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
            assert m.stderr[k] == pytest.approx(se[k], rel=1e-3), k
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)


@pytest.mark.parametrize("name", list(MODELS))
def test_smooths_on_reference_grid(name):
    _, _, _, refs = MODELS[name]
    m = fitted(name)
    ref = load_reference(refs[0])
    grids = ref.get("smooth_grids") or ref["gam"]["smooth_grids"]
    for label, g in grids.items():
        est = m.smooth_estimates(label, x=np.array(g["x"]))
        fit, se = np.array(g["fit"]), np.array(g["se"])
        rng = np.ptp(fit) if np.ptp(fit) > 0 else 1.0
        assert np.max(np.abs(est["estimate"].to_numpy() - fit)) <= 1e-3 * rng, label
        np.testing.assert_allclose(est["se"].to_numpy(), se, rtol=0.02, err_msg=label)


def test_edf_sp_and_smooth_table_match_gamm4():
    m = fitted("sim1_reml")
    ref = load_reference("gamm4_sim1_reml")
    for label, v in ref["edf_by_smooth"].items():
        assert m.edf[label] == pytest.approx(v, rel=1e-4)
    # gamm4's smoothing parameters are 7e-5 off the optimum (see the module docstring):
    # compare with mgcv's, which reaches it more closely
    gam = load_reference("gam_sim1_re_reml")
    for label in ("s(x0)", "s(x2)"):
        assert m.sp[label] == pytest.approx(gam["sp"][label], rel=1e-4)
    table = ref["s_table"]
    for row, label in zip(table["values"], table["rownames"]):
        ours = m.smooth_table.loc[label]
        assert ours["edf"] == pytest.approx(row[0], rel=1e-4)
        assert ours["Ref.df"] == pytest.approx(row[1], rel=1e-4)
        assert ours["F"] == pytest.approx(row[2], rel=1e-3)
        # mgcv's p-value for a fractional rank comes from Davies' algorithm (accuracy 1e-4
        # absolute at its settings); glamm integrates Imhof's formula
        assert ours["p-value"] == pytest.approx(row[3], abs=1e-6)


def test_coefficients_and_vp_match_gamm4():
    m = fitted("sim1_reml")
    ref = load_reference("gamm4_sim1_reml")
    names = list(ref["coefficients"])
    assert list(m.gam_coef.index) == names
    # the smooth coefficients live in mgcv's constrained basis, which glamm reproduces (same
    # knots and constraint; eigenvectors of the thin plate basis up to sign): compare after
    # matching the sign of each coefficient
    ours, theirs = m.gam_coef.to_numpy(), np.array(list(ref["coefficients"].values()))
    sign = np.where(ours * theirs < 0, -1.0, 1.0)
    np.testing.assert_allclose(sign * ours, theirs, rtol=1e-3, atol=1e-3 * np.max(np.abs(theirs)))
    V = m.Vp.to_numpy() * np.outer(sign, sign)
    Vr = np.array(ref["Vp"]["values"])
    np.testing.assert_allclose(V, Vr, rtol=0, atol=1e-4 * np.max(np.abs(Vr)))


def test_sleepstudy_smooth_is_linear_on_the_boundary():
    m = fitted("sleep_reml")
    assert m.edf["s(Days)"] == pytest.approx(1.0, abs=1e-6)
    assert np.isinf(m.sp["s(Days)"]) or m.sp["s(Days)"] > 1e8


@pytest.mark.parametrize("case,data,formula", [
    ("gam_sim1_re_reml", "gamm4_sim1", 'y ~ s(x0) + x1 + s(x2) + s(fac, bs="re")'),
    ("gam_sleepstudy_re_reml", "sleepstudy", 'Reaction ~ s(Days, k=5) + s(Subject, bs="re")'),
])
def test_mgcv_random_effect_smooth_is_a_bar_term(case, data, formula):
    """mgcv's ``s(g, bs = "re")`` is read as ``(1 | g)``: the gam formulas of the references
    fit as written, with the same REML score (sleepstudy: glamm's is lower, on the boundary;
    see the module docstring)."""
    ref = load_reference(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glamm.lmer(formula, glamm.datasets.load(data))
    score = m.reml_criterion / 2
    assert score <= ref["mgcv_REML_score"] * (1 + 1e-9)
    assert score >= ref["mgcv_REML_score"] * (1 - 1e-6)
    group = formula.split("s(")[-1].split(",")[0]
    assert group in m.ngroups
    if case == "gam_sim1_re_reml":
        for label in ("s(x0)", "s(x2)"):
            assert m.sp[label] == pytest.approx(ref["sp"][label], rel=1e-4)
        # mgcv's variance of s(fac) is scale / sp
        var = m.varcorr.loc[m.varcorr["group"] == "fac", "vcov"].iloc[0]
        assert var == pytest.approx(ref["scale"] / ref["sp"]["s(fac)"], rel=1e-4)


def test_re_smooth_with_a_covariate_is_a_random_slope():
    d = glamm.datasets.load("sleepstudy")
    a = glamm.lmer('Reaction ~ Days + s(Days, Subject, bs="re") + (1 | Subject)', d)
    b = glamm.lmer("Reaction ~ Days + (0 + Days | Subject) + (1 | Subject)", d)
    assert a.reml_criterion == pytest.approx(b.reml_criterion, rel=1e-12)

"""glamm.lmer against the reference fits of lme4 (``lmer_*``) and nlme (``nlme_*`` for the same
models), recorded in ``tests/reference/ref``.

Tolerances are the project's (do not loosen them):

- log-likelihood, REML criterion, deviances: within 1e-6 relative, and never worse than the
  reference beyond that (log-likelihood not lower, minimized criteria not higher);
- fixed effects, sigma, random-effect SDs: 1e-4 relative;
- standard errors: 1e-3 relative (the covariance matrix of the fixed effects is checked to the
  matching 2e-3 of ``se_i * se_j``);
- correlations: 1e-4 absolute;
- theta: 1e-4 relative for components larger than 1e-3 in size, 1e-4 absolute otherwise;
- conditional modes: 1e-3 of the largest absolute mode of that column; conditional SDs: 1e-3
  relative.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, load_reference, parse_r_call, reference_cases

LMER_CASES = reference_cases("lmer_")
NLME_CASES = ["nlme_pastes_reml", "nlme_sleepstudy_slope_reml"]
# Cases deselected by `make test` and run by `make test-all`: the InstEval fit (73,421 rows)
# takes 2-11 s on the shared 2-core machine, the whole default suite about a minute.
SLOW_CASES: set[str] = {"lmer_insteval_ml"}

CASES = [
    pytest.param(c, id=c, marks=[pytest.mark.slow] if c in SLOW_CASES else [])
    for c in LMER_CASES + NLME_CASES
]

# Known defects of glamm (see the reason); strict, so a fix makes the test fail until removed.
# (lmer_sleepstudy_slope_reml stopped early with ftol_abs=1e-8; fixed by the tighter defaults.)
THETA_XFAIL: dict[str, str] = {}

# theta is compared with the reference that reaches the highest log-likelihood for the model
# (tests/reference/README.md). nlme's sleepstudy REML fit stops 5.9e-10 below lme4's REML
# log-likelihood (-871.81413598057 vs -871.81413597998), and its weakly identified off-diagonal
# theta (0.0151719) differs from the optimum (lme4 0.0151691, glamm 0.0151691) by 1.8e-4
# relative; that case's theta is therefore checked against lme4's fit of the same model.
THETA_BEST_REFERENCE = {"nlme_sleepstudy_slope_reml": "lmer_sleepstudy_slope_reml"}


def _theta_params():
    out = []
    for p in CASES:
        (c,) = p.values
        marks = list(p.marks)
        if c in THETA_XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=THETA_XFAIL[c]))
        out.append(pytest.param(c, id=c, marks=marks))
    return out


# nlme names nested grouping factors by the inner factor alone and labels their levels
# 'outer/inner'; lme4 (and glamm) call the factor 'inner:outer' with levels 'inner:outer'.
NLME_GROUP_NAMES = {"nlme_pastes_reml": {"cask": "cask:batch"}}

LOGLIK_RTOL = 1e-6
FIXEF_RTOL = 1e-4
SD_RTOL = 1e-4
SE_RTOL = 1e-3
CORR_ATOL = 1e-4
THETA_TOL = 1e-4
THETA_SMALL = 1e-3
RANEF_TOL = 1e-3
CONDSD_RTOL = 1e-3


def test_case_list_is_complete():
    assert len(LMER_CASES) >= 10  # the parametrization cannot silently become empty
    assert "lmer_insteval_ml" in LMER_CASES
    for c in LMER_CASES + NLME_CASES:
        spec = parse_r_call(load_reference(c)["call"])
        assert spec["function"] in ("lmer", "lme")


# --------------------------------------------------------------------------- helpers
def _group_name(case: str, group: str) -> str:
    return NLME_GROUP_NAMES.get(case, {}).get(group, group)


def _level_name(case: str, level: str) -> str:
    if case.startswith("nlme_") and "/" in level:
        return ":".join(reversed(level.split("/")))
    return level


def _theta_name(case: str, name: str) -> str:
    group, _, rest = name.partition(".")
    return f"{_group_name(case, group)}.{rest}"


@pytest.fixture
def pair(request, fit):
    """``(result, reference, spec)`` for the parametrized ``case``."""
    case = request.node.callspec.params["case"]
    ref = load_reference(case)
    spec = parse_r_call(ref["call"])
    assert spec["dataset"] == ref["data"]
    m = fit(spec["dataset"], spec["formula"], spec["reml"])
    return m, ref, spec


def _close_rel(ours: float, ref: float, rtol: float) -> bool:
    return abs(ours - ref) <= rtol * abs(ref)


def _theta_ok(ours: float, ref: float) -> bool:
    if abs(ref) > THETA_SMALL:
        return abs(ours - ref) <= THETA_TOL * abs(ref)
    return abs(ours - ref) <= THETA_TOL


def _reference_theta(case: str, ref: dict) -> dict[str, float]:
    raw = ref.get("theta") or ref.get("theta_lme4_equiv")
    return {_theta_name(case, k): float(v) for k, v in raw.items()}


def _our_varcorr(m) -> tuple[dict, dict]:
    """``{(group, term): sd}`` and ``{(group, term_a, term_b): corr}`` (both orders)."""
    sds, corrs = {}, {}
    for row in m.varcorr.itertuples(index=False):
        if row.group == "Residual":
            continue
        if row.var2 is None or (isinstance(row.var2, float) and math.isnan(row.var2)):
            sds[(row.group, row.var1)] = float(row.sdcor)
        else:
            corrs[(row.group, row.var1, row.var2)] = float(row.sdcor)
            corrs[(row.group, row.var2, row.var1)] = float(row.sdcor)
    return sds, corrs


# --------------------------------------------------------------------------- likelihood
@pytest.mark.parametrize("case", CASES)
def test_loglik(case, pair):
    m, ref, spec = pair
    ll_ref = ref["logLik"]
    diff = m.loglik - ll_ref
    assert diff >= -LOGLIK_RTOL * abs(ll_ref), f"loglik {m.loglik!r} below reference {ll_ref!r}"
    assert abs(diff) <= LOGLIK_RTOL * abs(ll_ref), f"loglik {m.loglik!r} vs {ll_ref!r}"
    assert m.reml is spec["reml"]
    assert m.method == ("REML" if spec["reml"] else "ML")


@pytest.mark.parametrize("case", CASES)
def test_criterion(case, pair):
    """REML fits: the REML criterion; ML fits: the deviance (both are -2 logLik)."""
    m, ref, spec = pair
    if spec["reml"]:
        crit, crit_ref = m.reml_criterion, ref["REMLcrit"]
    else:
        assert m.reml_criterion is None
        crit, crit_ref = m.deviance, ref["deviance"]
    assert crit_ref == pytest.approx(-2 * ref["logLik"], rel=1e-12)
    assert crit - crit_ref <= LOGLIK_RTOL * abs(crit_ref), f"criterion {crit!r} above {crit_ref!r}"
    assert abs(crit - crit_ref) <= LOGLIK_RTOL * abs(crit_ref)
    assert crit == pytest.approx(-2 * m.loglik, rel=1e-14)


@pytest.mark.parametrize("case", CASES)
def test_ml_deviance_at_reml_estimates(case, pair):
    m, ref, spec = pair
    if not spec["reml"]:
        pytest.skip("ML fit: the deviance is -2 logLik (test_criterion)")
    if ref.get("deviance_ML_at_estimates") is None:
        pytest.skip("the reference does not record the ML deviance at the REML estimates")
    dev_ref = ref["deviance_ML_at_estimates"]
    assert abs(m.deviance - dev_ref) <= LOGLIK_RTOL * abs(dev_ref), (m.deviance, dev_ref)


@pytest.mark.parametrize("case", CASES)
def test_information_criteria(case, pair):
    m, ref, spec = pair
    npar = ref["logLik_df"]
    assert m.npar == npar
    tol = LOGLIK_RTOL * 2 * abs(ref["logLik"])
    assert abs(m.aic - ref["AIC"]) <= tol, (m.aic, ref["AIC"])
    bic_ref = ref["BIC"]
    if spec["function"] == "lme" and spec["reml"]:
        # nlme's REML BIC uses log(n - p) where lme4 uses log(n)
        p = len(ref["fixef"])
        bic_ref += npar * (math.log(ref["nobs"]) - math.log(ref["nobs"] - p))
    assert abs(m.bic - bic_ref) <= tol, (m.bic, bic_ref)


@pytest.mark.parametrize("case", CASES)
def test_counts(case, pair):
    m, ref, spec = pair
    assert m.nobs == ref["nobs"]
    assert m.n_dropped_na == 0
    df_ref = ref.get("df_resid", ref["nobs"] - ref["logLik_df"])
    assert m.df_resid == df_ref
    want = {_group_name(case, g): n for g, n in ref["ngrps"].items()}
    assert dict(m.ngroups) == want
    if "isSingular" in ref:
        assert bool(m.is_singular) is bool(ref["isSingular"])


# --------------------------------------------------------------------------- fixed effects
@pytest.mark.parametrize("case", CASES)
def test_fixef(case, pair):
    m, ref, spec = pair
    names = ref.get("X_colnames") or list(ref["fixef"])
    assert list(m.fixef.index) == names
    for nm in names:
        assert _close_rel(m.fixef[nm], ref["fixef"][nm], FIXEF_RTOL), (
            nm, m.fixef[nm], ref["fixef"][nm])


@pytest.mark.parametrize("case", CASES)
def test_fixef_se(case, pair):
    m, ref, spec = pair
    assert list(m.stderr.index) == list(ref["fixef_se"])
    for nm, se_ref in ref["fixef_se"].items():
        assert _close_rel(m.stderr[nm], se_ref, SE_RTOL), (nm, m.stderr[nm], se_ref)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), m.stderr.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_vcov_fixef(case, pair):
    m, ref, spec = pair
    vc = ref["vcov_fixef"]
    V_ref = np.array(vc["values"], dtype=float)
    assert list(m.vcov.index) == vc["rownames"]
    assert list(m.vcov.columns) == vc["colnames"]
    V = m.vcov.to_numpy()
    np.testing.assert_allclose(V, V.T, rtol=0, atol=1e-12 * np.abs(V).max())
    se_ref = np.sqrt(np.diag(V_ref))
    scale = np.outer(se_ref, se_ref)
    err = np.abs(V - V_ref) / scale
    assert err.max() <= 2 * SE_RTOL, err


# --------------------------------------------------------------------------- variance parameters
@pytest.mark.parametrize("case", CASES)
def test_sigma(case, pair):
    m, ref, spec = pair
    assert _close_rel(m.sigma, ref["sigma"], SD_RTOL), (m.sigma, ref["sigma"])
    resid = m.varcorr[m.varcorr["group"] == "Residual"]
    assert len(resid) == 1
    assert resid["sdcor"].iloc[0] == pytest.approx(m.sigma, rel=1e-14)
    assert resid["vcov"].iloc[0] == pytest.approx(m.sigma**2, rel=1e-14)


@pytest.mark.parametrize("case", CASES)
def test_varcorr_sds(case, pair):
    m, ref, spec = pair
    sds, _ = _our_varcorr(m)
    want = {}
    for entry in ref["varcorr"]:
        group = _group_name(case, entry["group"])
        for term, sd in zip(entry["terms"], entry["sd"]):
            want[(group, term)] = float(sd)
    assert set(sds) == set(want)
    for key, sd_ref in want.items():
        if sd_ref == 0.0:
            # a boundary fit: theta is checked to 1e-4 absolute, so the SD to 1e-4 sigma
            assert sds[key] <= THETA_TOL * ref["sigma"], (key, sds[key])
        else:
            assert _close_rel(sds[key], sd_ref, SD_RTOL), (key, sds[key], sd_ref)


@pytest.mark.parametrize("case", CASES)
def test_varcorr_correlations(case, pair):
    m, ref, spec = pair
    _, corrs = _our_varcorr(m)
    n_ref = 0
    for entry in ref["varcorr"]:
        if not entry.get("corr"):
            continue
        group = _group_name(case, entry["group"])
        C = np.array(entry["corr"]["values"], dtype=float)
        terms = entry["terms"]
        for i in range(len(terms)):
            for j in range(i + 1, len(terms)):
                n_ref += 1
                ours = corrs[(group, terms[i], terms[j])]
                assert abs(ours - C[i, j]) <= CORR_ATOL, (group, terms[i], terms[j], ours, C[i, j])
    assert len(corrs) == 2 * n_ref


@pytest.mark.parametrize("case", _theta_params())
def test_theta(case, pair):
    m, ref, spec = pair
    if case in THETA_BEST_REFERENCE:
        best = THETA_BEST_REFERENCE[case]
        best_ref = load_reference(best)
        assert best_ref["logLik"] >= ref["logLik"]
        case, ref = best, best_ref
    want = _reference_theta(case, ref)
    assert list(m.theta_names) == list(want)
    bad = {
        nm: (float(th), want[nm])
        for nm, th in zip(m.theta_names, m.theta)
        if not _theta_ok(float(th), want[nm])
    }
    assert not bad, f"theta outside tolerance (ours, reference): {bad}"


# --------------------------------------------------------------------------- random effects
def _ref_ranef(case: str, ref: dict, field: str):
    for group, block in ref["ranef"].items():
        if field not in block:
            continue
        levels = [_level_name(case, lev) for lev in block["levels"]]
        yield _group_name(case, group), levels, block["terms"], block[field]


@pytest.mark.parametrize("case", CASES)
def test_ranef_modes(case, pair):
    m, ref, spec = pair
    seen = set()
    for group, levels, terms, modes in _ref_ranef(case, ref, "modes"):
        seen.add(group)
        ours = m.ranef[group]
        assert sorted(ours.index) == sorted(levels)
        assert list(ours.columns) == terms
        for term in terms:
            want = np.array(modes[term], dtype=float)
            got = ours.loc[levels, term].to_numpy(dtype=float)
            tol = max(RANEF_TOL * np.abs(want).max(), 1e-12)
            err = np.abs(got - want)
            assert err.max() <= tol, (group, term, levels[int(err.argmax())], err.max(), tol)
    assert seen == set(m.ranef)


@pytest.mark.parametrize("case", CASES)
def test_ranef_cond_sd(case, pair):
    m, ref, spec = pair
    blocks = list(_ref_ranef(case, ref, "cond_sd"))
    if not blocks:
        pytest.skip("the reference has no conditional SDs")
    assert set(m.ranef_condvar) == {b[0] for b in blocks}
    for group, levels, terms, cond_sd in blocks:
        ours = m.ranef_condvar[group]
        assert list(ours.columns) == terms
        assert sorted(ours.index) == sorted(levels)
        for term in terms:
            want = np.array(cond_sd[term], dtype=float)
            var = ours.loc[levels, term].to_numpy(dtype=float)
            assert np.all(var >= -1e-14 * max(var.max(), 1.0))
            got = np.sqrt(np.clip(var, 0.0, None))
            np.testing.assert_allclose(got, want, rtol=CONDSD_RTOL, atol=1e-12,
                                       err_msg=f"{group} {term}")


# --------------------------------------------------------------------------- deviance components
@pytest.mark.parametrize("case", CASES)
def test_devcomp(case, pair):
    m, ref, spec = pair
    dc = ref.get("devcomp_cmp")
    if not dc:
        pytest.skip("no deviance components in the reference")
    assert _close_rel(m.pwrss, dc["pwrss"], 1e-4), (m.pwrss, dc["pwrss"])
    wrss = float(np.sum(m.residuals()**2))  # no prior weights in these fits
    assert _close_rel(wrss, dc["wrss"], 1e-4), (wrss, dc["wrss"])
    assert abs((m.pwrss - wrss) - dc["ussq"]) <= 1e-4 * dc["pwrss"], (m.pwrss - wrss, dc["ussq"])
    n, p = m.nobs, len(m.fixef)
    assert _close_rel(math.sqrt(m.pwrss / n), dc["sigmaML"], SD_RTOL)
    assert _close_rel(math.sqrt(m.pwrss / (n - p)), dc["sigmaREML"], SD_RTOL)
    factor = m.model.factor
    assert abs(factor.logdet_re() - dc["ldL2"]) <= 1e-4 * max(abs(dc["ldL2"]), 1.0)
    assert abs(factor.logdet_fixed() - dc["ldRX2"]) <= 1e-4 * max(abs(dc["ldRX2"]), 1.0)


# --------------------------------------------------------------------------- fitted values
@pytest.mark.parametrize("case", CASES)
def test_fitted_and_residuals(case, pair):
    m, ref, spec = pair
    data = load_data(spec["dataset"])
    y = data[spec["formula"].split("~")[0].strip()].to_numpy(dtype=float)
    np.testing.assert_allclose(m.fitted() + m.residuals(), y, rtol=1e-12, atol=0)
    assert isinstance(m.fixef, pd.Series)
    assert m.converged

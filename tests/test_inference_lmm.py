"""Inference for linear mixed models: profile and Wald intervals (lme4's ``confint``),
Satterthwaite and Kenward-Roger degrees of freedom (lmerTest, pbkrtest), type III F tests and
contrasts. References: ``tests/reference/ref/inf_*.json`` (lme4 1.1-31, lmerTest 3.1-3,
pbkrtest 0.5.2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import load_reference

import glamm
from glamm.errors import GlammError

CASES = {
    "inf_sleepstudy_slope_reml": ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
    "inf_penicillin_reml": ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)"),
    "inf_machines_reml": ("Machines", "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)"),
}


@pytest.fixture(scope="module")
def fits():
    return {case: glamm.lmer(formula, glamm.datasets.load(data))
            for case, (data, formula) in CASES.items()}


def _ref_table(ref: dict, key: str) -> pd.DataFrame:
    t = ref[key]
    return pd.DataFrame(t["values"], index=t["rownames"], columns=t["colnames"])


@pytest.mark.parametrize("case", list(CASES))
def test_profile_intervals_match_lme4(fits, case):
    ref = load_reference(case)["confint_profile"]
    got = fits[case].confint()
    assert list(got.index) == ref["parameters"]
    assert list(got.columns[:2]) == ["2.5 %", "97.5 %"]
    for name, lo, hi in zip(ref["parameters"], ref["lower"], ref["upper"]):
        width = hi - lo
        # (lme4 reads the ends off a spline through its profile points; glamm solves
        # zeta = +-1.96 exactly: they agree to well within 1e-3 of the width)
        assert got.loc[name].iloc[0] == pytest.approx(lo, abs=2e-4 * width)
        assert got.loc[name].iloc[1] == pytest.approx(hi, abs=2e-4 * width)


def test_profile_names_and_aliases(fits):
    got = fits["inf_sleepstudy_slope_reml"].confint(parm="theta_")
    assert list(got.index) == [".sig01", ".sig02", ".sig03", ".sigma"]
    assert list(got["term"]) == ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject",
                                 "sd_Days|Subject", "sigma"]
    one = fits["inf_sleepstudy_slope_reml"].confint(parm="sd_Days|Subject")
    assert list(one.index) == [".sig03"]
    np.testing.assert_allclose(one.iloc[0, :2].to_numpy(float),
                               got.loc[".sig03"].iloc[:2].to_numpy(float), rtol=1e-7)


def test_profile_zeta_at_the_interval_ends(fits):
    """Each end is where the profile's zeta reaches -+1.96 (re-evaluated independently)."""
    m = fits["inf_machines_reml"]
    prof = m.profile(which=[".sigma", "MachineB"], level=0.95)
    ci = prof.confint(0.95)
    for name in (".sigma", "MachineB"):
        i = prof.names.index(name)
        for col, z in ((0, -1.959964), (1, 1.959964)):
            x = float(ci.loc[name].iloc[col])
            start = prof._prof._start_at_center(i)
            pt = prof._prof.point(i, x, start)
            assert pt.zeta == pytest.approx(z, abs=1e-5)
    tr = prof.traces
    assert set(tr[".par"]) == {".sigma", "MachineB"}
    assert {".zeta", ".sig01", ".sig02", ".sigma", "(Intercept)"} <= set(tr.columns)
    # zeta increases along each trace (a monotone profile)
    for _, g in tr.groupby(".par"):
        par = g[".par"].iloc[0]
        z = g.sort_values(par)[".zeta"].to_numpy()
        assert np.all(np.diff(z) > 0)


def test_profile_intervals_scale_with_the_response():
    d = glamm.datasets.load("Penicillin")
    base = glamm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", d).confint()
    d2 = d.assign(diameter=d["diameter"] * 10.0)
    scaled = glamm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", d2).confint()
    np.testing.assert_allclose(scaled.iloc[:, :2].to_numpy(float),
                               10.0 * base.iloc[:, :2].to_numpy(float), rtol=1e-5)


@pytest.mark.filterwarnings("ignore::glamm.errors.SingularFitWarning")
def test_singular_fit_interval_reaches_zero():
    """A variance estimated at zero: the profile's lower end is the bound."""
    d = glamm.datasets.load("Dyestuff2")
    m = glamm.lmer("Yield ~ 1 + (1 | Batch)", d)
    ci = m.confint(parm=".sig01")
    assert ci.iloc[0, 0] == 0.0
    assert ci.iloc[0, 1] > 0.0


def test_wald_intervals(fits):
    m = fits["inf_sleepstudy_slope_reml"]
    ref = load_reference("inf_sleepstudy_slope_reml")["confint_wald"]
    got = m.confint(method="Wald")
    assert list(got.index) == ref["parameters"]
    assert got.iloc[:4, :2].isna().all().all()
    np.testing.assert_allclose(got.iloc[4:, 0].to_numpy(float), ref["lower"][4:], rtol=1e-5)
    np.testing.assert_allclose(got.iloc[4:, 1].to_numpy(float), ref["upper"][4:], rtol=1e-5)
    g90 = m.confint(method="Wald", level=0.9, parm="beta_")
    assert list(g90.columns[:2]) == ["5 %", "95 %"]
    assert list(g90.index) == ["(Intercept)", "Days"]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("ddf,key", [("Satterthwaite", "satterthwaite"),
                                     ("Kenward-Roger", "kenward_roger")])
def test_coefficient_tables_match_lmertest_and_pbkrtest(fits, case, ddf, key):
    ref = _ref_table(load_reference(case), key)
    got = fits[case].coef_table(ddf=ddf)
    assert list(got.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(got["Estimate"], ref["Estimate"], rtol=1e-6)
    np.testing.assert_allclose(got["Std. Error"], ref["Std. Error"], rtol=1e-4)
    np.testing.assert_allclose(got["df"], ref["df"], rtol=1e-3)
    np.testing.assert_allclose(got["Pr(>|t|)"], ref["Pr(>|t|)"], atol=1e-4)


@pytest.mark.parametrize("case", ["inf_sleepstudy_slope_reml", "inf_machines_reml"])
@pytest.mark.parametrize("ddf,key", [("Satterthwaite", "anova_III_satterthwaite"),
                                     ("Kenward-Roger", "anova_III_kenward_roger")])
def test_type3_anova_matches_lmertest(fits, case, ddf, key):
    ref = _ref_table(load_reference(case), key)
    got = glamm.anova(fits[case], ddf=ddf)
    assert list(got.index) == list(ref.index)
    for col in ("Sum Sq", "Mean Sq", "F value"):
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-4)
    np.testing.assert_allclose(got["NumDF"], ref["NumDF"])
    np.testing.assert_allclose(got["DenDF"], ref["DenDF"], rtol=1e-3)
    np.testing.assert_allclose(got["Pr(>F)"], ref["Pr(>F)"], atol=1e-4)
    text = str(got)
    assert text.startswith(f"Type III Analysis of Variance Table with {ddf}'s method")


def test_kenward_roger_adjusted_covariance(fits):
    from glamm.inference.ddf import _kenward_roger_parts

    for case in ("inf_penicillin_reml", "inf_machines_reml"):
        ref = _ref_table(load_reference(case), "vcov_kenward_roger")
        parts = _kenward_roger_parts(fits[case])
        np.testing.assert_allclose(parts.PhiA, ref.to_numpy(), rtol=1e-4)


def test_contrast_of_one_coefficient_is_its_t_test(fits):
    m = fits["inf_machines_reml"]
    table = m.coef_table(ddf="Satterthwaite")
    one = m.contrast(pd.Series({"MachineB": 1.0}))
    assert one["F value"].iloc[0] == pytest.approx(table.loc["MachineB", "t value"] ** 2,
                                                   rel=1e-10)
    assert one["DenDF"].iloc[0] == pytest.approx(table.loc["MachineB", "df"], rel=1e-10)
    assert one["Pr(>F)"].iloc[0] == pytest.approx(table.loc["MachineB", "Pr(>|t|)"], rel=1e-8)
    # two rows: the type III test of Machine
    both = m.contrast([[0, 1, 0], [0, 0, 1]])
    aov = glamm.anova(m)
    assert both["F value"].iloc[0] == pytest.approx(aov["F value"].iloc[0], rel=1e-10)
    # a hypothesized value
    shifted = m.contrast([[0, 1, 0]], rhs=[m.fixef["MachineB"]])
    assert shifted["F value"].iloc[0] == pytest.approx(0.0, abs=1e-12)


def test_summary_with_ddf(fits):
    text = fits["inf_machines_reml"].summary(ddf="Satterthwaite")
    assert "t tests use Satterthwaite's method" in text
    assert "Pr(>|t|)" in text and " df " in text
    assert "Pr(>|t|)" not in fits["inf_machines_reml"].summary()


def test_residual_and_asymptotic_ddf(fits):
    m = fits["inf_sleepstudy_slope_reml"]
    res = m.coef_table(ddf="residual")
    assert np.all(res["df"] == m.nobs - 2)
    asy = m.coef_table(ddf="asymptotic")
    assert np.all(np.isinf(asy["df"]))


def test_bad_requests(fits):
    m = fits["inf_sleepstudy_slope_reml"]
    with pytest.raises(GlammError, match="ddf must be one of"):
        m.coef_table(ddf="Welch")
    with pytest.raises(GlammError, match="unknown parameter"):
        m.confint(parm="sd_nothing")
    with pytest.raises(GlammError, match="method must be one of"):
        m.confint(method="bayes")
    with pytest.raises(GlammError, match="columns"):
        m.contrast([[1.0, 0.0, 0.0]])
    ml = glamm.lmer("Reaction ~ Days + (Days | Subject)", glamm.datasets.load("sleepstudy"),
                    reml=False)
    with pytest.raises(GlammError, match="REML fit"):
        ml.coef_table(ddf="Kenward-Roger")
    # a structured covariance has no SD / correlation profile here
    cs = glamm.lmer("Reaction ~ Days + cs(0 + factor(Days) | Subject)",
                    glamm.datasets.load("sleepstudy"))
    with pytest.raises(GlammError, match="structure"):
        cs.confint()
    assert cs.confint(method="Wald").index[-1] == "Days"


#: lmerTest 3.1-3, ``anova(lmer(y ~ A * B + x + (1 | g), d), type = 3)`` with and without
#: ``ddf = "Kenward-Roger"`` on tests/reference/data/type3_interaction.csv (R, this session)
TYPE3_LMERTEST = {
    "Satterthwaite": {"A": (8.049139460, 223.3713614, 0.02226466),
                      "B": (15.446056159, 223.2537003, 0.00015188),
                      "x": (10.357033828, 222.8962573, 0.00182058),
                      "A:B": (1.919480294, 223.0835104, 0.39885595)},
    "Kenward-Roger": {"A": (8.040344723, 223.2838081, 0.02235640),
                      "B": (15.430273891, 223.1651143, 0.00015305),
                      "x": (10.349774444, 222.8045709, 0.00182729),
                      "A:B": (1.917680856, 222.9934748, 0.39919899)},
}


@pytest.mark.parametrize("ddf", ["Satterthwaite", "Kenward-Roger"])
def test_type3_with_factors_inside_an_interaction(ddf):
    from conftest import REF_DATA_DIR

    d = pd.read_csv(REF_DATA_DIR / "type3_interaction.csv")
    d["g"] = pd.Categorical(d["g"].astype(str))
    m = glamm.lmer("y ~ A * B + x + (1 | g)", d)
    got = glamm.anova(m, ddf=ddf)
    assert list(got.index) == ["A", "B", "x", "A:B"]
    for term, (ss, den, p) in TYPE3_LMERTEST[ddf].items():
        assert got.loc[term, "Sum Sq"] == pytest.approx(ss, rel=1e-4)
        assert got.loc[term, "DenDF"] == pytest.approx(den, rel=1e-3)
        assert got.loc[term, "Pr(>F)"] == pytest.approx(p, abs=1e-4)
    # the same hypotheses whatever the coding of the factors: relabelled levels (another
    # reference level) give the same table
    d2 = d.assign(A=d["A"].map({"a1": "z1", "a2": "a2", "a3": "a3"}))
    m2 = glamm.lmer("y ~ A * B + x + (1 | g)", d2)
    np.testing.assert_allclose(glamm.anova(m2, ddf=ddf)["F value"], got["F value"],
                               rtol=1e-5)


def test_type3_with_numeric_interactions_keeps_the_coefficient_tests():
    d = glamm.datasets.load("Machines")
    d["x"] = np.arange(len(d), dtype=float)
    d["z"] = np.cos(d["x"])
    m2 = glamm.lmer("score ~ x * z + (1 | Worker)", d)
    aov = glamm.anova(m2)
    assert list(aov.index) == ["x", "z", "x:z"]
    t = m2.coef_table(ddf="Satterthwaite")
    assert aov.loc["x", "F value"] == pytest.approx(t.loc["x", "t value"] ** 2, rel=1e-8)


def test_glmm_profile_intervals_match_lme4():
    """lme4 1.1-31, ``confint(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
    cbpp, binomial))`` (computed with R for this test)."""
    ref = {".sig01": (0.3460732, 1.09997465), "(Intercept)": (-1.9012120, -0.94775401),
           "period2": (-1.6167833, -0.40776307), "period3": (-1.8010244, -0.51153607),
           "period4": (-2.5007506, -0.80075532)}
    g = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                    glamm.datasets.load("cbpp"), family="binomial")
    got = g.confint()
    assert list(got.index) == list(ref)
    for name, (lo, hi) in ref.items():
        width = hi - lo
        assert got.loc[name].iloc[0] == pytest.approx(lo, abs=1e-3 * width)
        assert got.loc[name].iloc[1] == pytest.approx(hi, abs=1e-3 * width)
    wald = g.confint(method="Wald")
    assert np.isnan(wald.loc[".sig01"].iloc[0])
    np.testing.assert_allclose(wald.loc["period2"].iloc[:2].to_numpy(float),
                               g.fixef["period2"] + np.array([-1, 1]) * 1.959964
                               * g.stderr["period2"], rtol=1e-6)


def test_glmm_profile_refusals():
    d = glamm.datasets.load("sleepstudy")
    gam = glamm.glmer("Reaction ~ Days + (1 | Subject)", d, family="Gamma", link="log")
    with pytest.raises(GlammError, match="dispersion"):
        gam.confint()
    assert gam.confint(method="Wald").index[-1] == "Days"


def test_profile_with_prior_weights():
    """The variance parameters' intervals are lme4's (1.1-31, R in this session); lme4's
    fixed-effect profiles drop the weights (Days [10.596, 10.647], 'non-monotonic profile'),
    glamm's keep them, so they lie close to the Wald intervals."""
    s = glamm.datasets.load("sleepstudy")
    s["w"] = 1 + (s["Days"] % 3) / 2
    m = glamm.lmer("Reaction ~ Days + (1 | Subject)", s, weights="w")
    ci = m.confint()
    for name, (lo, hi) in {".sig01": (26.213651, 53.154607),
                           ".sigma": (32.390713, 40.283128)}.items():
        assert ci.loc[name].iloc[0] == pytest.approx(lo, abs=1e-3 * (hi - lo))
        assert ci.loc[name].iloc[1] == pytest.approx(hi, abs=1e-3 * (hi - lo))
    wald = m.confint(method="Wald")
    for name in ("(Intercept)", "Days"):
        width = wald.loc[name].iloc[1] - wald.loc[name].iloc[0]
        np.testing.assert_allclose(ci.loc[name].iloc[:2].to_numpy(float),
                                   wald.loc[name].iloc[:2].to_numpy(float), atol=0.02 * width)

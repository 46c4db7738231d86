"""Heteroscedastic residuals in lmer (``dispformula``, glamm.lmm.dispersion) against galamm,
nlme's varIdent and glmmTMB's dispformula, with the invariances and input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import load_data, load_reference

import glamm
from glamm.errors import DataError, FormulaError


def _lmer(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.lmer(*args, **kw)


@pytest.fixture(scope="module")
def hsced():
    d = load_data("hsced")
    return d.assign(item=d["item"].astype(str).astype("category"))


def test_variance_per_item_matches_galamm_nlme_and_glmmtmb(hsced):
    m = _lmer("y ~ x + (1 | id)", hsced, reml=False, dispformula="~ (1 | item)")
    best = max(load_reference(c)["logLik"] for c in
               ("galamm_hsced", "nlme_hsced_varident", "tmb_hsced_disp"))
    assert m.loglik >= best - 1e-6 * abs(best)
    assert m.loglik == pytest.approx(best, rel=1e-9)
    ref = load_reference("galamm_hsced")
    np.testing.assert_allclose(m.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    vf = m.variance_function
    np.testing.assert_allclose(vf["variance ratio"], list(ref["variance_function"].values()),
                               rtol=1e-4)
    tmb = load_reference("tmb_hsced_disp")["fixef"]["disp"]   # log variance ratio
    assert np.log(vf["variance ratio"].iloc[1]) == pytest.approx(tmb["factor(item)2"],
                                                                 rel=1e-4)
    # its standard error: glmmTMB's on the log-variance scale is twice ours (log SD)
    tmb_se = load_reference("tmb_hsced_disp")["fixef_se"]["disp"]["d~factor(item)2"]
    assert 2 * vf["SE log SD ratio"].iloc[1] == pytest.approx(tmb_se, rel=1e-3)
    np.testing.assert_allclose(m.stderr.to_numpy() if hasattr(m, "stderr") else
                               np.sqrt(np.diag(m.vcov)),
                               list(load_reference("tmb_hsced_disp")["fixef_se"]["cond"]
                                    .values()), rtol=1e-3)
    # one more parameter than the homoscedastic model; the likelihood-ratio statistic of
    # galamm's vignette (47.28)
    m0 = _lmer("y ~ x + (1 | id)", hsced, reml=False)
    assert m.npar == m0.npar + 1
    assert 2 * (m.loglik - m0.loglik) == pytest.approx(47.28, abs=0.01)
    assert "Variance function" in str(m)
    table = glamm.anova(m0, m)                 # galamm's vignette test
    assert table["Chisq"].iloc[1] == pytest.approx(47.28, abs=0.01)
    # REML fits are refitted by ML with their variance function
    r = _lmer("y ~ x + (1 | id)", hsced, dispformula="~ (1 | item)")
    r0 = _lmer("y ~ x + (1 | id)", hsced)
    refit = glamm.anova(r0, r)
    assert refit["Chisq"].iloc[1] == pytest.approx(47.28, abs=0.01)
    np.testing.assert_array_equal(r.prior_weights, np.ones(len(hsced)))


def test_varident_by_sex_and_the_equivalent_log_linear_form():
    o = load_data("Orthodont")
    ref = load_reference("cov_orthodont_lme_varident")
    m = _lmer("distance ~ age * Sex + (1 | Subject)", o, reml=False, dispformula="~ (1 | Sex)")
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-9)
    assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    ratio = ref["varStruct"]["coef_natural"]["Female"]
    assert m.variance_function.loc["Female", "SD ratio"] == pytest.approx(ratio, rel=1e-4)
    # log SD linear in Sex: the same model, the coefficient is the log SD ratio
    m2 = _lmer("distance ~ age * Sex + (1 | Subject)", o, reml=False, dispformula="~ Sex")
    assert m2.loglik == pytest.approx(m.loglik, rel=1e-10)
    assert m2.variance_function.iloc[0, 0] == pytest.approx(np.log(ratio), rel=1e-4)


def test_invariances(hsced):
    """Rescaling y scales sigma and leaves the ratios; relabeling the reference level
    inverts the ratio with the same likelihood; REML fits run and differ from ML."""
    m = _lmer("y ~ x + (1 | id)", hsced, reml=False, dispformula="~ (1 | item)")
    m10 = _lmer("y ~ x + (1 | id)", hsced.assign(y=10 * hsced["y"]), reml=False,
                dispformula="~ (1 | item)")
    assert m10.sigma == pytest.approx(10 * m.sigma, rel=1e-6)
    np.testing.assert_allclose(m10.variance_function["variance ratio"],
                               m.variance_function["variance ratio"], rtol=1e-6)
    swapped = hsced.assign(item=hsced["item"].cat.reorder_categories(["2", "1"]))
    ms = _lmer("y ~ x + (1 | id)", swapped, reml=False, dispformula="~ (1 | item)")
    assert ms.loglik == pytest.approx(m.loglik, rel=1e-10)
    assert ms.variance_function["variance ratio"].iloc[1] == pytest.approx(
        1 / m.variance_function["variance ratio"].iloc[1], rel=1e-6)
    perm = hsced.sample(frac=1.0, random_state=3)
    mp = _lmer("y ~ x + (1 | id)", perm, reml=False, dispformula="~ (1 | item)")
    assert mp.loglik == pytest.approx(m.loglik, rel=1e-10)
    mr = _lmer("y ~ x + (1 | id)", hsced, dispformula="~ (1 | item)")
    assert mr.reml and mr.variance_function["variance ratio"].iloc[1] == pytest.approx(
        m.variance_function["variance ratio"].iloc[1], rel=0.05)


def test_bad_dispformula(hsced):
    with pytest.raises(FormulaError, match="unknown column 'grp'"):
        glamm.lmer("y ~ x + (1 | id)", hsced, dispformula="~ (1 | grp)")
    with pytest.raises(DataError, match="one level"):
        glamm.lmer("y ~ x + (1 | id)", hsced.assign(g="a"), dispformula="~ (1 | g)")
    single = hsced.assign(g=np.where(np.arange(len(hsced)) == 0, "b", "a"))
    with pytest.raises(DataError, match="single"):
        glamm.lmer("y ~ x + (1 | id)", single, dispformula="~ (1 | g)")
    with pytest.raises(FormulaError, match="unknown column"):
        glamm.lmer("y ~ x + (1 | id)", hsced, dispformula="~ nothere")


def test_galamm_dispformula_without_loadings(hsced):
    """galamm's own call of the vignette: the lmer fit by ML; a family without a dispersion
    has no residual variance to model."""
    h = glamm.galamm("y ~ x + (1 | id)", hsced, dispformula="~ (1 | item)")
    ref = load_reference("galamm_hsced")
    assert h.loglik == pytest.approx(ref["logLik"], rel=1e-9)
    assert h.variance_function["variance ratio"].iloc[1] == pytest.approx(
        ref["variance_function"]["2"], rel=1e-4)
    with pytest.raises(glamm.errors.GlammError, match="needs a family with a dispersion"):
        glamm.galamm("y ~ x + (1 | id)", hsced, family="poisson", dispformula="~ (1 | item)")


def test_dispformula_on_a_family_without_a_dispersion_names_what_works(sal):
    with pytest.raises(glamm.errors.GlammError, match=r"nbinom1 has none.*not supported yet"):
        glamm.glmer("count ~ mined + (1 | site)", sal, family="nbinom1", dispformula="~ mined")
    with pytest.raises(glamm.errors.GlammError, match=r"t, tweedie"):
        glamm.glmer("count ~ mined + (1 | site)", sal, family="poisson", dispformula="~ mined")

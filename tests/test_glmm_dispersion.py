"""dispformula in the Laplace fit (glmer, and galamm with loadings) against glmmTMB 1.1.5.

The data and fits are in ``tests/reference/dispersion_extra/`` (made by its
``make_dispersion_extra.R``; R is not needed to run the tests). glmmTMB's dispformula
coefficients are on the log-variance scale for the Gaussian (twice glamm's log-SD ones) and on
the log-shape scale for the Gamma (minus twice glamm's: phi = 1 / shape).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glamm

DIR = Path(__file__).parent / "reference" / "dispersion_extra"


def _ref(name):
    return json.loads((DIR / f"{name}.json").read_text())


def _data(name):
    return pd.read_csv(DIR / f"{name}.csv")


def _close_coefs(got, want, rtol=1e-4, small=1e-2, atol=1e-4):
    got, want = np.asarray(got, float), np.asarray(want, float)
    tol = np.where(np.abs(want) < small, atol, rtol * np.abs(want))
    assert np.all(np.abs(got - want) <= tol), (got, want)


def test_gamma_variance_per_group():
    ref = _ref("tmb_gamma_disp")
    m = glamm.glmer("y ~ x + (1 | id)", _data("gamma_disp"), family="Gamma", link="log",
                    dispformula="~ (1 | grp)")
    assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    _close_coefs(m.fixef, ref["fixef"])
    assert m.stderr.to_numpy() == pytest.approx(ref["fixef_se"], rel=1e-3)
    vf = m.variance_function
    # the data list level "hi" first: it is glamm's reference level, glmmTMB's is "lo"
    assert list(vf.index) == ["hi", "lo"]
    log_shape_lo, diff = ref["disp"]
    assert np.log(m.dispersion) == pytest.approx(-(log_shape_lo + diff), rel=1e-4)
    assert np.log(vf["SD ratio"].iloc[1]) == pytest.approx(diff / 2, rel=1e-4)
    assert vf["SE log SD ratio"].iloc[1] == pytest.approx(ref["disp_se"][1] / 2, rel=1e-3)
    assert "Variance function (residual variance by level" in m.summary()


def test_gaussian_loglinear_laplace_equals_profiled():
    """The Laplace fit of a Gaussian model (exact) with a log-linear variance function equals
    glmmTMB and lmer's profiled fit of the same model."""
    ref = _ref("tmb_gauss_dispx")
    d = _data("gauss_dispx")
    g = glamm.glmer("y ~ x + (1 | id)", d, family="gaussian", dispformula="~ x")
    lm = glamm.lmer("y ~ x + (1 | id)", d, reml=False, dispformula="~ x")
    for m in (g, lm):
        assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6)
        assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
        _close_coefs(m.fixef, ref["fixef"])
        assert m.stderr.to_numpy() == pytest.approx(ref["fixef_se"], rel=1e-3)
        vf = m.variance_function
        assert vf["log-SD coefficient"].iloc[0] == pytest.approx(ref["disp"][1] / 2, rel=1e-4)
        assert vf["SE"].iloc[0] == pytest.approx(ref["disp_se"][1] / 2, rel=1e-3)
    assert g.sigma_rows == pytest.approx(np.exp(ref["disp"][0] / 2 + ref["disp"][1] / 2
                                                * d["x"].to_numpy()), rel=1e-4)


def test_factor_model_with_item_variances():
    """One latent variable measured by four items, each with its own residual variance:
    galamm's loadings and dispformula ~ (1 | item) against glmmTMB's rr() with ~ item."""
    ref = _ref("tmb_factor_items_disp")
    d = _data("factor_items_disp")
    m = glamm.galamm("y ~ 0 + item + x + (0 + ability | id)", d, load_var="item",
                     factor="ability", lambda_=[[1], [np.nan], [np.nan], [np.nan]],
                     dispformula="~ (1 | item)")
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    # itemi2 (0.0102, SE 0.093) differs from glmmTMB's by 3e-6 (3e-4 relative): glmmTMB
    # stopped there (glamm's log-likelihood is 2.3e-9 higher, and a further Newton step from
    # glamm's estimates moves the coefficients by 2e-7), so that one is compared absolutely
    _close_coefs(m.fixef, ref["fixef"], small=0.05)
    assert m.stderr.to_numpy() == pytest.approx(ref["fixef_se"], rel=1e-3)
    assert m.loadings == pytest.approx(ref["loadings"][1:], rel=1e-4)
    sd_latent = float(np.sqrt(m.varcorr["vcov"].iloc[0]))
    assert sd_latent == pytest.approx(ref["latent_sd"], rel=1e-4)
    vf = m.variance_function
    assert np.log(vf["SD ratio"].to_numpy()[1:]) == pytest.approx(
        np.array(ref["disp"][1:]) / 2, rel=1e-4)
    assert vf["SE log SD ratio"].to_numpy()[1:] == pytest.approx(
        np.array(ref["disp_se"][1:]) / 2, rel=1e-3)
    assert m.dispersion == pytest.approx(np.exp(ref["disp"][0]), rel=1e-4)
    # each row's residual SD is its item's
    item_sd = dict(zip(vf.index, vf["residual SD"]))
    assert m.sigma_rows == pytest.approx(d["item"].map(item_sd).to_numpy(), rel=1e-12)


def test_anova_against_the_homoscedastic_fit():
    d = _data("gamma_disp")
    het = glamm.glmer("y ~ x + (1 | id)", d, family="Gamma", link="log",
                      dispformula="~ (1 | grp)")
    hom = glamm.glmer("y ~ x + (1 | id)", d, family="Gamma", link="log")
    table = glamm.anova(hom, het)
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (het.loglik - hom.loglik), rel=1e-12)
    assert table["Df"].iloc[1] == 1
    assert "dispformula ~ (1 | grp)" in str(table)


@pytest.fixture(scope="module")
def orthodont():
    d = pd.read_csv(Path(__file__).parent / "reference" / "data" / "Orthodont.csv")
    return d.assign(Sex=pd.Categorical(d["Sex"], ["Male", "Female"]))


@pytest.mark.parametrize("key,reml", [("age", False), ("age_reml", True)])
def test_varpower_of_a_covariate(orthodont, key, reml):
    """nlme's varPower(form = ~ age): the residual SD is sigma |age|^power."""
    ref = _ref("nlme_varpower")[key]
    m = glamm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont, reml=reml,
                   dispformula="~ power(age)")
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    _close_coefs(m.fixef, ref["fixef"])
    assert m.stderr.to_numpy() == pytest.approx(ref["fixef_se"], rel=1e-3)
    assert m.variance_function["power"].iloc[0] == pytest.approx(ref["power"], rel=1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    assert np.sqrt(m.varcorr["vcov"].iloc[0]) == pytest.approx(ref["sd_subject"], rel=1e-4)
    assert "proportional to |v|^power" in m.summary()


def test_varpower_of_the_fitted_values(orthodont):
    """nlme's varPower(): SD proportional to |fitted|^power, the variance covariate held at
    the fitted values while the rest is optimized and refreshed until they settle. glamm
    iterates to the fixed point (its log-likelihood is 4.9e-5 above nlme's, which stops
    earlier: its power is 1.1e-4 relative below glamm's 1.11634, everything else within
    1e-5)."""
    ref = _ref("nlme_varpower")["fitted"]
    m = glamm.lmer("distance ~ age * Sex + (1 | Subject)", orthodont, reml=False,
                   dispformula="~ power(fitted)")
    assert m.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    _close_coefs(m.fixef, ref["fixef"])
    assert m.variance_function["power"].iloc[0] == pytest.approx(ref["power"], rel=2e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    assert np.sqrt(m.varcorr["vcov"].iloc[0]) == pytest.approx(ref["sd_subject"], rel=1e-4)
    # at the fixed point each row's SD is sigma |fitted|^power
    assert m.sigma_rows == pytest.approx(
        m.sigma * np.abs(m.fitted()) ** m.variance_function["power"].iloc[0], rel=1e-6)


def test_varpower_bad_input(orthodont):
    with pytest.raises(glamm.errors.DataError, match="nonzero"):
        glamm.lmer("distance ~ age + (1 | Subject)", orthodont.assign(z=0.0), reml=False,
                   dispformula="~ power(z)")
    with pytest.raises(glamm.errors.FormulaError, match="unknown column 'nope'"):
        glamm.lmer("distance ~ age + (1 | Subject)", orthodont, reml=False,
                   dispformula="~ power(nope)")
    with pytest.raises(glamm.errors.GlammError, match="power.fitted. .nlme's varPower"):
        glamm.glmer("y ~ x + (1 | id)", _data("gamma_disp"), family="Gamma", link="log",
                    dispformula="~ power(fitted)")


def test_grouped_levels_do_not_depend_on_row_order():
    """A plain string column's levels are sorted (as R's factor()), so the reference level
    and the table do not change when the rows are permuted."""
    d = _data("gamma_disp")
    perm = d.sample(frac=1.0, random_state=11).reset_index(drop=True)
    assert perm["grp"].iloc[0] == "lo"   # the other level first in this order
    a = glamm.glmer("y ~ x + (1 | id)", d, family="Gamma", link="log", dispformula="~ (1 | grp)")
    b = glamm.glmer("y ~ x + (1 | id)", perm, family="Gamma", link="log",
                    dispformula="~ (1 | grp)")
    assert list(b.variance_function.index) == ["hi", "lo"]
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10)
    assert b.variance_function["SD ratio"].to_numpy() == pytest.approx(
        a.variance_function["SD ratio"].to_numpy(), rel=1e-5)

"""Bad or degenerate GLMM input is reported plainly."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glamm


def _cbpp():
    return glamm.datasets.load("cbpp")


def test_separation_is_reported_by_coefficient_name():
    cb = _cbpp()
    cb["inc2"] = np.where(cb["period"] == "4", 0, cb["incidence"])
    with pytest.warns(UserWarning, match="separation.*period4"):
        m = glamm.glmer("cbind(inc2, size - inc2) ~ period + (1 | herd)", cb, family="binomial")
    assert any("period4" in note for note in m.notes)
    assert any("numerically 0 or 1" in note for note in m.notes)


def test_no_separation_note_for_ordinary_data():
    m = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _cbpp(),
                    family="binomial")
    assert m.notes == []


@pytest.mark.parametrize("family,column,value,words", [
    ("poisson", "incidence", -1, "negative"),
    ("poisson", "incidence", 0.5, "integer"),
    ("binomial", "prop", 1.5, "[0, 1]"),
])
def test_response_outside_support(family, column, value, words):
    cb = _cbpp()
    cb["prop"] = cb["incidence"] / cb["size"]
    cb[column] = cb[column].astype(float)
    cb.loc[3, column] = value
    weights = "size" if column == "prop" else None
    with pytest.raises(glamm.DataError, match=words.replace("[", r"\[").replace("]", r"\]")):
        glamm.glmer(f"{column} ~ period + (1 | herd)", cb, family=family, weights=weights)


def test_non_integer_successes():
    cb = _cbpp()
    cb["prop"] = (cb["incidence"] + 0.5) / cb["size"]
    with pytest.raises(glamm.DataError, match="whole"):
        glamm.glmer("prop ~ period + (1 | herd)", cb, family="binomial", weights="size")


def test_three_level_factor_response_is_refused():
    cb = _cbpp()
    with pytest.raises(glamm.DataError, match="3 levels"):
        glamm.glmer("period3 ~ 1 + (1 | herd)", cb.assign(
            period3=cb["period"].astype(str).replace({"4": "3"})), family="binomial")


def test_unknown_family_and_bad_link():
    with pytest.raises(glamm.GlammError):
        glamm.glmer("incidence ~ period + (1 | herd)", _cbpp(), family="zeta")
    with pytest.raises(glamm.GlammError):
        glamm.glmer("incidence ~ period + (1 | herd)", _cbpp(), family="poisson", link="logit")


def test_quadrature_needs_one_grouping_factor():
    va = glamm.datasets.load("VerbAgg").iloc[:1000]
    with pytest.raises(glamm.GlammError, match="single grouping factor.*nagq=1"):
        glamm.glmer("r2 ~ btype + (1 | id) + (1 | item)", va, family="binomial", nagq=5)


def test_quadrature_rejects_bad_nagq():
    with pytest.raises(glamm.GlammError):
        glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _cbpp(),
                    family="binomial", nagq=0)
    with pytest.raises(glamm.GlammError, match="fast"):
        glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _cbpp(),
                    family="binomial", nagq=5, fast=True)


def test_gaussian_glmm_equals_ml_lmm():
    """With the Gaussian family and identity link the Laplace approximation is exact, and with
    theta relative to the residual scale the GLMM is the ML-fitted LMM (a regression test: with
    absolute-scale theta the optimizer once stopped at a wrong boundary point here)."""
    s = glamm.datasets.load("sleepstudy")
    lmm = glamm.lmer("Reaction ~ Days + (Days | Subject)", s, reml=False)
    glmm = glamm.glmer("Reaction ~ Days + (Days | Subject)", s, family="gaussian")
    assert glmm.loglik == pytest.approx(lmm.loglik, rel=1e-9)
    np.testing.assert_allclose(glmm.fixef, lmm.fixef, rtol=1e-6)
    np.testing.assert_allclose(glmm.theta, lmm.theta, rtol=1e-4, atol=1e-5)
    assert np.sqrt(glmm.dispersion) == pytest.approx(lmm.sigma, rel=1e-5)
    np.testing.assert_allclose(glmm.stderr, lmm.stderr, rtol=1e-3)


def test_poisson_identity_link_stays_in_the_mean_space():
    """With an identity link a Poisson mean can go negative, where the density is zero; PIRLS
    must step back instead of accepting it (regression: it once crashed, or with fast=True
    silently returned a fit 22 log-likelihood units below glmmTMB's on similar data)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(20), 10)
    x = np.abs(rng.normal(size=200))
    mu = 1.3 + 0.4 * x + rng.normal(0, 0.9, 20)[g].clip(-1.2)
    y = rng.poisson(np.maximum(mu, 0.05))
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    m = glamm.glmer("y ~ x + (1 | g)", d, family="poisson", link="identity")
    assert m.converged and np.all(m.fitted("response") > 0)
    fam = glamm.families.get_family("poisson", "identity")
    assert fam.loglik(np.array([0.0]), np.array([-0.5]), np.array([1.0]), 1.0)[0] == -np.inf
    fast = glamm.glmer("y ~ x + (1 | g)", d, family="poisson", link="identity", fast=True)
    assert fast.loglik <= m.loglik + 1e-9 and fast.loglik > m.loglik - 1.0


def test_invalid_start_is_a_clear_error():
    """R's glm.fit: "no valid set of coefficients has been found"; glamm says so instead of a
    LAPACK failure (a log link for binomial probabilities here)."""
    d = glamm.datasets.load("sim_binary_longitudinal")
    with pytest.raises(glamm.GlammError, match="no valid set of coefficients"):
        glamm.glmer("y ~ time + (1 | id)", d.assign(time=d["time"] * 50), family="binomial",
                    link="log")


def test_zero_trials_as_proportions_with_weights_equal_cbind():
    cb = _cbpp()
    cb.loc[[2, 5], ["incidence", "size"]] = 0
    cb["prop"] = np.where(cb["size"] > 0, cb["incidence"] / cb["size"].clip(lower=1), 0.0)
    a = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb,
                    family="binomial")
    b = glamm.glmer("prop ~ period + (1 | herd)", cb, family="binomial", weights="size")
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10)


def test_gaussian_log_link_with_indefinite_observed_information():
    """Observed weights mu (2 mu - y) / phi are negative for some rows, which can make X'WX
    indefinite; the log-determinant needs only the random-effects blocks (regression: the fit
    once failed with 'PIRLS could not find the conditional modes')."""
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=200)
    y = np.exp(0.4 + 0.5 * x + rng.normal(0, 0.3, 20)[g]) + rng.normal(0, 1.5, 200)
    d = pd.DataFrame({"y": np.abs(y) + 0.05, "x": x, "g": g.astype(str)})
    m = glamm.glmer("y ~ x + (1 | g)", d, family="gaussian", link="log")
    assert m.converged and np.isfinite(m.loglik)
    exp = glamm.glmer("y ~ x + (1 | g)", d, family="gaussian", link="log", laplace="expected")
    assert abs(m.loglik - exp.loglik) < 1.0


def test_gamma_log_random_slope_does_not_overflow():
    """Regression: a nearly singular Hessian proposed a log-dispersion near 1e4 and the fit
    crashed with an overflowing dispersion instead of stepping back."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 6)
    x = rng.normal(size=180)
    mu = np.exp(1 + 0.3 * x + rng.normal(0, 0.5, 30)[g])
    d = pd.DataFrame({"y": rng.gamma(3, mu / 3), "x": x, "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glamm.glmer("y ~ x + (x | g)", d, family="Gamma", link="log")
    assert m.converged and np.isfinite(m.loglik)


def test_failing_pirls_at_the_estimates_is_an_error_not_a_fit():
    """A Poisson sqrt link with zero counts: PIRLS cannot settle; glamm must say so rather
    than report the fast stage's values as a converged fit (it once did)."""
    with pytest.raises(glamm.GlammError, match="PIRLS"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            glamm.glmer("y ~ sex * time + (1 | id)",
                        glamm.datasets.load("sim_poisson_longitudinal"), family="poisson",
                        link="sqrt")

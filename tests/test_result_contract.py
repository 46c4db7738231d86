"""One result contract: every fit kind (lmer, glmer by Laplace and by quadrature, glm) has the
same accessors, each an attribute everywhere or a method everywhere; results never change the
model they hold."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import glamm

ATTRIBUTES = ["formula", "fixef", "stderr", "vcov", "loglik", "deviance", "aic", "bic", "npar",
              "nobs", "df_resid", "converged", "sigma", "dropped_columns", "n_dropped_na"]
METHODS = ["fitted", "residuals", "predict", "coef_table", "summary", "to_dict"]


def _fits():
    sleep = glamm.datasets.load("sleepstudy")
    binary = glamm.datasets.load("sim_binary_longitudinal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "lmer": glamm.lmer("Reaction ~ Days + (Days | Subject)", sleep),
            "glmer": glamm.glmer("y ~ sex * time + (1 | id)", binary, family="binomial"),
            "glmer_agq": glamm.glmer("y ~ sex * time + (1 | id)", binary, family="binomial",
                                     nagq=5),
            "glm": glamm.glm("y ~ sex * time", binary, family="binomial"),
            "gls": glamm.gls("Reaction ~ Days", sleep, correlation="ar1(Days | Subject)"),
        }


@pytest.fixture(scope="module")
def fits():
    return _fits()


@pytest.mark.parametrize("name", ATTRIBUTES)
def test_attributes_are_attributes_on_every_kind(fits, name):
    for kind, m in fits.items():
        value = getattr(m, name)
        assert not callable(value) or hasattr(value, "shape"), (kind, name)


@pytest.mark.parametrize("name", METHODS)
def test_methods_are_methods_on_every_kind(fits, name):
    for kind, m in fits.items():
        assert callable(getattr(m, name)), (kind, name)


def test_fitted_and_residuals_take_a_type_everywhere(fits):
    for kind, m in fits.items():
        mu = m.fitted()
        assert mu.shape == (m.nobs,), kind
        np.testing.assert_allclose(m.fitted("response"), mu, rtol=0, atol=0)
        assert m.residuals("response").shape == (m.nobs,), kind
        with pytest.raises(ValueError):
            m.fitted("no such type")


def test_sigma_is_one_without_a_dispersion_and_lme4s_with_one(fits):
    assert fits["glmer"].sigma == 1.0 and fits["glm"].sigma == 1.0
    sleep = glamm.datasets.load("sleepstudy")
    lmm = glamm.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    gauss = glamm.glmer("Reaction ~ Days + (Days | Subject)", sleep, family="gaussian")
    assert gauss.sigma == pytest.approx(lmm.sigma, rel=1e-5)
    assert gauss.sigma == pytest.approx(np.sqrt(gauss.dispersion), rel=1e-14)


def _state(model) -> list[np.ndarray]:
    return [np.array(model.u, copy=True), np.array(model.beta, copy=True),
            np.array(model.eta, copy=True), np.array(model.theta, copy=True),
            np.array([model.ldL2])]


@pytest.mark.parametrize("nagq", [1, 7])
def test_lazy_glmm_results_do_not_change_the_model(nagq):
    binary = glamm.datasets.load("sim_binary_longitudinal")
    m = glamm.glmer("y ~ sex * time + (time | id)", binary, family="binomial", nagq=nagq)
    before = _state(m.model)
    condvar_before = m.ranef_condcov[0].copy()
    _ = m.stderr
    m.parameter_covariance()
    after = _state(m.model)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # conditional variances read the model's factor: still those at the estimates
    del m.__dict__["ranef_condcov"]
    np.testing.assert_array_equal(m.ranef_condcov[0], condvar_before)


def test_smooth_tables_do_not_change_the_model():
    d = glamm.datasets.load("gamm4_sim1")
    m = glamm.lmer("y ~ s(x0) + x1 + (1 | fac)", d)
    theta_before = m.model.theta.copy()
    pwrss_before = m.model.factor.pwrss()
    _ = m.smooth_table
    np.testing.assert_array_equal(m.model.theta, theta_before)
    assert m.model.factor.pwrss() == pwrss_before

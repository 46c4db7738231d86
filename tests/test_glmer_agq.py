"""Adaptive Gauss-Hermite quadrature against GLMMadaptive (``gla_*``), lme4 (``glmer_*_agq*``,
whose full log-likelihood is ``logLik_full``) and the independent implementation (``own_*``,
checked against brute-force integration).

The target is the highest log-likelihood among the references for the same model and number
of points; estimates are compared with the reference that reaches it (tolerances as
everywhere: 1e-6 relative in log-likelihood, never lower; 1e-4 estimates; 1e-3 SEs). The
quadrature value at a reference's own estimates must equal that reference's value (no
optimizer involved): this also pins the node orientation for vector random effects, which
GLMMadaptive takes from the Cholesky factor of the inverse curvature.

The binary random-slope model (two random effects) is compared on the log-likelihood only
(tests/reference/README.md: the correlation is weakly identified). Its 11-point quadrature
objective is largest on the boundary (correlation 1), above the interior optimum the references
report; glamm reports that maximum and notes that a finer rule changes the value there.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest
from conftest import load_reference

import glamm
from glamm.errors import SingularFitWarning
from glamm.glmm.agq import AdaptiveQuadrature

MODELS = {
    "cbpp25": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
               25, ["own_cbpp_agq25", "gla_cbpp_agq25", "glmer_cbpp_agq25"]),
    "simbin_int11": ("sim_binary_longitudinal", "y ~ sex * time + (1 | id)", "binomial", 11,
                     ["own_simbin_int_agq11", "gla_simbin_int_agq11", "glmer_simbin_int_agq11"]),
    "simpois_int11": ("sim_poisson_longitudinal", "y ~ sex * time + (1 | id)", "poisson", 11,
                      ["own_simpois_int_agq11", "gla_simpois_int_agq11",
                       "gla_simpois_int_agq11_start", "glmer_simpois_int_agq11"]),
    "simbin_slope11": ("sim_binary_longitudinal", "y ~ sex * time + (time | id)", "binomial",
                       11, ["own_simbin_slope_agq11", "gla_simbin_slope_agq11",
                            "gla_simbin_slope_agq11_tight"]),
}
LOGLIK_ONLY = {"simbin_slope11"}


def _loglik(ref: dict) -> float:
    return ref.get("logLik_full") or ref["logLik"]


def _flat(d: dict) -> dict:
    return d.get("cond", d)


@lru_cache(maxsize=None)
def fitted(model: str):
    data, formula, family, nagq, _ = MODELS[model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return glamm.glmer(formula, glamm.datasets.load(data), family=family, nagq=nagq)


def best_reference(model: str) -> dict:
    return max((load_reference(c) for c in MODELS[model][4]), key=_loglik)


@pytest.mark.parametrize("model", list(MODELS))
def test_loglik_reaches_best_reference(model):
    m, ref = fitted(model), best_reference(model)
    assert m.loglik - _loglik(ref) >= -1e-6 * abs(_loglik(ref)), (m.loglik, ref["case"])
    assert m.nagq == MODELS[model][3]


@pytest.mark.parametrize("model", [k for k in MODELS if k not in LOGLIK_ONLY])
def test_estimates_and_stderr(model):
    m, ref = fitted(model), best_reference(model)
    for name, val in _flat(ref["fixef"]).items():
        assert m.fixef[name] == pytest.approx(val, rel=1e-4), (name, ref["case"])
    for name, val in _flat(ref["fixef_se"]).items():
        assert m.stderr[name] == pytest.approx(val, rel=1e-3), (name, ref["case"])
    theta_ref = np.array(list((ref.get("theta_lme4_equiv") or ref["theta"]).values()))
    np.testing.assert_allclose(m.theta, theta_ref, rtol=1e-4)


@pytest.mark.parametrize("model,case", [
    ("cbpp25", "own_cbpp_agq25"), ("cbpp25", "gla_cbpp_agq25"),
    ("simbin_int11", "own_simbin_int_agq11"), ("simpois_int11", "own_simpois_int_agq11"),
    ("simbin_slope11", "own_simbin_slope_agq11"),
])
def test_quadrature_at_reference_estimates(model, case):
    ref = load_reference(case)
    m = fitted(model)
    theta = np.array(list((ref.get("theta_lme4_equiv") or ref["theta"]).values()))
    beta = np.array([_flat(ref["fixef"])[k] for k in m.fixef.index])
    value = AdaptiveQuadrature(m.model, MODELS[model][3]).loglik(theta, beta)
    assert value == pytest.approx(_loglik(ref), rel=1e-9)


def test_one_point_equals_laplace():
    data, formula, family, _, _ = MODELS["simbin_int11"]
    lap = glamm.glmer(formula, glamm.datasets.load(data), family=family)
    quad = AdaptiveQuadrature(lap.model, 1).loglik(lap.theta, lap.fixef.to_numpy())
    assert quad == pytest.approx(lap.loglik, rel=1e-12)


def test_more_points_converge():
    m = fitted("simbin_int11")
    vals = [AdaptiveQuadrature(m.model, k).loglik(m.theta, m.fixef.to_numpy())
            for k in (11, 21, 31)]
    assert abs(vals[2] - vals[1]) < abs(vals[1] - vals[0]) + 1e-9
    assert abs(vals[2] - vals[0]) < 1e-3


def test_uncorrelated_vector_effects():
    d = glamm.datasets.load("sim_binary_longitudinal")
    m = glamm.glmer("y ~ sex * time + (time || id)", d, family="binomial", nagq=7)
    assert m.nagq == 7 and np.isfinite(m.loglik)
    full = fitted("simbin_slope11")
    assert m.npar == full.npar - 1


def test_penalized_fixed_effects():
    from glamm.glmm.penalty import StudentTPenalty

    d = glamm.datasets.load("sim_poisson_longitudinal")
    formula = "y ~ sex * time + (1 | id)"
    plain = fitted("simpois_int11")
    pen = glamm.glmer(formula, d, family="poisson", nagq=11, penalized=True)
    # shrinks the non-intercept coefficients towards 0 and lowers the log-likelihood a little
    assert abs(pen.fixef["sexfemale"]) < abs(plain.fixef["sexfemale"])
    assert pen.loglik < plain.loglik and pen.penalized_loglik < pen.loglik
    prior = StudentTPenalty.from_spec(True, list(pen.fixef.index))
    assert pen.penalized_loglik == pytest.approx(pen.loglik + prior.log_density(
        pen.fixef.to_numpy()), rel=1e-12)
    # a huge scale and df (a flat prior) gives back the unpenalized fit
    flat = glamm.glmer(formula, d, family="poisson", nagq=11,
                       penalized={"df": 1e8, "scale": 1e4})
    np.testing.assert_allclose(flat.fixef, plain.fixef, rtol=1e-5)


def test_penalty_matches_scipy_student_t():
    from scipy import stats

    from glamm.glmm.penalty import StudentTPenalty

    pen = StudentTPenalty.from_spec({"mean": 0.5, "scale": 2.0, "df": 4.0},
                                    ["(Intercept)", "a", "b"])
    beta = np.array([10.0, 1.3, -0.7])
    expected = stats.t.logpdf([1.3, -0.7], df=4.0, loc=0.5, scale=2.0).sum()
    assert pen.log_density(beta) == pytest.approx(expected, rel=1e-12)
    h = 1e-6
    num = [(pen.deviance(beta + e) - pen.deviance(beta - e)) / (2 * h)
           for e in np.eye(3) * h]
    np.testing.assert_allclose(pen.deviance_gradient(beta), num, rtol=1e-6, atol=1e-8)


def test_marginal_coefs_poisson_log_link_is_exact_shift():
    """For a log link and a random intercept, E[exp(eta + b)] = exp(eta + sigma^2 / 2): the
    marginal slopes equal the conditional ones and the intercept moves by sigma^2 / 2."""
    m = fitted("simpois_int11")
    mc = glamm.marginal_coefs(m)
    shift = m.theta[0] ** 2 / 2
    assert mc.loc["(Intercept)", "Estimate"] == pytest.approx(m.fixef["(Intercept)"] + shift,
                                                              rel=1e-9)
    for name in ["sexfemale", "time", "sexfemale:time"]:
        assert mc.loc[name, "Estimate"] == pytest.approx(m.fixef[name], rel=1e-9)
        assert mc.loc[name, "Std. Error"] == pytest.approx(m.stderr[name], rel=1e-3)


def test_marginal_means_logit_against_numerical_integration():
    """The marginal probability of a row equals the conditional one integrated over the random
    intercept by adaptive numerical integration (scipy.integrate.quad)."""
    from scipy import integrate, special, stats

    m = fitted("simbin_int11")
    means = m.predict(type="marginal")
    assert means.shape == (m.nobs,) and np.all((means > 0) & (means < 1))
    eta = m.frame.X @ m.fixef.to_numpy()
    sd = m.theta[0]
    for j in (0, 7, 400):
        exact, _ = integrate.quad(
            lambda b, eta_j=eta[j]: special.expit(eta_j + b) * stats.norm.pdf(b, 0, sd),
            -12 * sd, 12 * sd, epsabs=1e-13)
        assert means[j] == pytest.approx(exact, rel=1e-8)
    mc = glamm.marginal_coefs(m, std_errors=False)
    # population-averaged effects are attenuated towards 0
    assert abs(mc.loc["time", "Estimate"]) < abs(m.fixef["time"])


@pytest.mark.parametrize("case", ["simnb", "simgamma_log"])
def test_quadrature_with_shape_or_dispersion(case):
    """Families with a shape (negative binomial) or dispersion (Gamma): one point equals the
    Laplace value, and an 11-point fit runs and estimates the extra parameter."""
    import test_glmer_extra as extra

    ref = extra.reference(case)
    data = extra.load_glmm_data(ref["dataset"])
    formula = extra.glamm_formula(ref)
    lap = glamm.glmer(formula, data, family=ref["family_glamm"], link=ref["link"])
    one = AdaptiveQuadrature(lap.model, 1).loglik(lap.theta, lap.fixef.to_numpy())
    assert one == pytest.approx(lap.loglik, rel=1e-10)
    quad = glamm.glmer(formula, data, family=ref["family_glamm"], link=ref["link"], nagq=11)
    assert quad.converged and abs(quad.loglik - lap.loglik) < 0.5
    extra_par = quad.shape if quad.shape is not None else quad.dispersion
    lap_par = lap.shape if lap.shape is not None else lap.dispersion
    assert extra_par == pytest.approx(lap_par, rel=0.05)


def test_new_subjects_from_their_responses():
    """A subject presented as new, with the same responses, gets the same random effects (and
    predictions) as in the fit; without responses it needs allow_new_levels (zero effects)."""
    m = fitted("simbin_slope11")
    d = glamm.datasets.load("sim_binary_longitudinal")
    known = d[d["id"].astype(str).isin(["1", "2", "3"])]
    renamed = known.assign(id=known["id"].astype(str) + "-new")
    p_fit = m.predict(known, type="response")
    p_new = m.predict(renamed, type="response", new_from_responses=True)
    np.testing.assert_allclose(p_new, p_fit, rtol=1e-10)
    p_zero = m.predict(renamed, type="response", allow_new_levels=True)
    np.testing.assert_allclose(p_zero, m.predict(renamed, type="response", re=False))
    with pytest.raises(glamm.DataError):
        m.predict(renamed.drop(columns="y"), new_from_responses=True)

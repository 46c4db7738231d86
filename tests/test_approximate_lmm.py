"""The approximate LMM (glamm.lmm.approximate: the first term eliminated exactly, PCG on the
Schur complement, an SLQ log-determinant) against the exact blocked factor: the objective at
fixed theta, the solves, and fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.errors import GlammError
from glamm.formula.design import build_model_frame
from glamm.lmm.approximate import ApproximateLinearMixedModel
from glamm.lmm.model import LinearMixedModel


def crossed_data(n: int, m1: int, m2: int, seed: int = 7, slope: bool = False) -> pd.DataFrame:
    """``y = 1 + 0.5 x + b1[g1] + b2[g2] + e`` with uniformly drawn levels (the scaling
    study's generator, benchmarks/run_scaling.py)."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, m1, n)
    g2 = rng.integers(0, m2, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 1, m1)[g1] + rng.normal(0, 0.7, m2)[g2] + rng.normal(size=n)
    if slope:
        y += rng.normal(0, 0.5, m1)[g1] * x
    return pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2, "g3": g2 % 7})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return crossed_data(8_000, 1_000, 250, slope=True)


CASES = [
    ("y ~ x + (1 | g1) + (1 | g2)", [0.9, 0.6], False),
    ("y ~ x + (1 + x | g1) + (1 | g2)", [0.9, 0.1, 0.4, 0.6], True),
    ("y ~ x + (1 | g1) + (1 + x | g2)", [0.9, 0.6, -0.1, 0.2], False),
    ("y ~ x + (1 | g1) + (1 | g2) + (1 | g3)", [0.9, 0.6, 0.3], True),
]


@pytest.mark.parametrize("formula,theta,reml", CASES)
def test_objective_at_fixed_theta(data, formula, theta, reml):
    frame = build_model_frame(formula, data)
    exact = LinearMixedModel(frame, reml=reml)
    approx = ApproximateLinearMixedModel(frame, reml=reml, settings={"probes": 40})
    theta = np.asarray(theta)
    e, a = exact.objective(theta), approx.objective(theta)
    f, g = exact.factor, approx.factor
    se = g.logdet_se
    assert 0 < se < 3.0
    # the log-determinant is the only estimated piece ...
    assert abs(a - e) < 4 * se
    assert abs(g.logdet_re() - f.logdet_re()) < 4 * se
    # ... pwrss, log det(RX'RX), beta and u are exact to the CG tolerance
    assert g.pwrss() == pytest.approx(f.pwrss(), rel=1e-9)
    assert g.logdet_fixed() == pytest.approx(f.logdet_fixed(), rel=1e-9, abs=1e-9)
    ue, be = f.solve_u_beta()
    ua, ba = g.solve_u_beta()
    np.testing.assert_allclose(ba, be, rtol=1e-8)
    for x, y in zip(ua, ue):
        np.testing.assert_allclose(x, y, atol=1e-7 * np.abs(y).max())
    assert g.cg_residual <= 1e-10


def test_the_objective_is_deterministic_and_smooth(data):
    frame = build_model_frame("y ~ x + (1 | g1) + (1 | g2)", data)
    approx = ApproximateLinearMixedModel(frame, reml=False, settings={"probes": 10})
    other = ApproximateLinearMixedModel(frame, reml=False, settings={"probes": 10})
    th = np.array([0.9, 0.6])
    assert approx.objective(th) == pytest.approx(other.objective(th), rel=1e-13)
    # common random numbers: second differences along a line are those of a smooth curve
    h = 1e-3
    vals = [approx.objective(th + k * h) for k in (-2, -1, 0, 1, 2)]
    d2a = vals[0] - 2 * vals[2] + vals[4]
    d2b = vals[1] - 2 * vals[2] + vals[3]
    assert d2a == pytest.approx(4 * d2b, rel=0.05)
    # another seed moves the estimate, within the standard errors
    seeded = ApproximateLinearMixedModel(frame, reml=False, settings={"probes": 10, "seed": 1})
    v = seeded.objective(th)
    assert v != vals[2]
    assert abs(v - vals[2]) < 4 * np.hypot(seeded.factor.logdet_se, approx.factor.logdet_se)


def test_fit_against_exact():
    d = crossed_data(12_000, 1_200, 300)
    f = "y ~ x + (1 | g1) + (1 | g2)"
    exact = glamm.lmer(f, d, reml=False, method="exact")
    approx = glamm.lmer(f, d, reml=False, method="approximate")
    rec = approx.approximation
    assert rec["probes"] == 100 and rec["optimization_probes"] == 30
    assert rec["loglik_se"] == pytest.approx(0.5 * rec["logdet_se"])
    assert abs(approx.loglik - exact.loglik) < 4 * rec["loglik_se"]
    np.testing.assert_allclose(approx.theta, exact.theta, rtol=5e-3)
    assert np.all(np.abs(approx.fixef - exact.fixef) < 1e-3 * exact.stderr)
    np.testing.assert_allclose(approx.stderr, exact.stderr, rtol=1e-3)
    assert approx.sigma == pytest.approx(exact.sigma, rel=1e-4)
    r_a, r_e = approx.ranef["g2"], exact.ranef["g2"]
    np.testing.assert_allclose(r_a.values, r_e.values, atol=5e-3)
    text = str(approx)
    assert "Approximate fit (SLQ log-determinant, 100 probes, 30 Lanczos steps" in text
    assert "Monte-Carlo standard error" in text
    assert "Approximate" not in str(exact)
    with pytest.raises(GlammError, match="conditional variances"):
        _ = approx.ranef_condvar
    with pytest.raises(GlammError, match="approximate fit"):
        approx.refit(d["y"].to_numpy())
    with pytest.raises(GlammError, match="new response"):
        approx.model.set_response(d["y"].to_numpy())
    assert approx.model.cp.released   # the per-row structures were freed


def test_insteval_objective_at_fixed_theta():
    d = glamm.datasets.load("InstEval")
    frame = build_model_frame("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", d)
    exact = LinearMixedModel(frame, reml=True)
    approx = ApproximateLinearMixedModel(frame, reml=True, settings={"probes": 60})
    th = np.array([0.32, 0.52, 0.21])
    e, a = exact.objective(th), approx.objective(th)
    assert abs(a - e) < 4 * approx.factor.logdet_se
    assert approx.factor.pwrss() == pytest.approx(exact.factor.pwrss(), rel=1e-9)


@pytest.mark.slow
def test_insteval_fit_against_exact():
    d = glamm.datasets.load("InstEval")
    f = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"
    exact = glamm.lmer(f, d, method="exact")
    approx = glamm.lmer(f, d, method="approximate")
    assert abs(approx.loglik - exact.loglik) < 4 * approx.approximation["loglik_se"]
    np.testing.assert_allclose(approx.theta, exact.theta, rtol=2e-2)
    assert np.all(np.abs(approx.fixef - exact.fixef) < 0.02 * exact.stderr)


@pytest.mark.slow
def test_million_row_model_against_exact():
    """The scaling study's 1M-row model (100k x 2000 levels, numpy seed 7)."""
    rng = np.random.default_rng(7)
    n, m1, m2 = 1_000_000, 100_000, 2_000
    g1 = rng.integers(0, m1, n)
    g2 = rng.integers(0, m2, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 1, m1)[g1] + rng.normal(0, 0.7, m2)[g2] + rng.normal(size=n)
    d = pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2})
    f = "y ~ x + (1 | g1) + (1 | g2)"
    exact = glamm.lmer(f, d, reml=False, method="exact")
    approx = glamm.lmer(f, d, reml=False, method="approximate")
    assert abs(approx.loglik - exact.loglik) < 4 * approx.approximation["loglik_se"]
    np.testing.assert_allclose(approx.theta, exact.theta, rtol=5e-3)
    assert np.all(np.abs(approx.fixef - exact.fixef) < 1e-2 * exact.stderr)


def test_anova_of_approximate_fits():
    d = crossed_data(4_000, 400, 100)
    small = {"probes": 8, "final_probes": 16}
    m0 = glamm.lmer("y ~ 1 + (1 | g1) + (1 | g2)", d, reml=False, method="approximate",
                    approximation=small)
    m1 = glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", d, reml=False, method="approximate",
                    approximation=small)
    table = glamm.anova(m0, m1)
    assert table["Chisq"].iloc[1] > 100   # x matters: no warning about the noise
    with pytest.warns(UserWarning, match="within 3 Monte-Carlo standard errors"):
        glamm.anova(m1, m1, names=["a", "b"])
    exact = glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", d, reml=False, method="exact")
    with pytest.raises(GlammError, match="approximate fits with exact ones"):
        glamm.anova(m0, exact)
    reml = glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", d, method="approximate",
                      approximation=small)
    with pytest.raises(GlammError, match="by ML"):
        glamm.anova(m0, reml)

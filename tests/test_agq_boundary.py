"""Bounds at the end of a fit must satisfy the KKT conditions (optim.kkt): a variance may stay
at 0 only if the deviance does not decrease moving into the interior.

The binary random-slope model (sim_binary_longitudinal, ``(time | id)``) has its Laplace
optimum on the boundary (correlation +1, the last diagonal element of lambda at 0). The
deviance is even in that element (flipping its sign flips the sign of the slope's ``u``), so
its gradient there is exactly 0 and the curvature decides:

- Laplace: curvature +1.1, the bound is supported (as lme4's boundary fit);
- 11 points: curvature +37, supported; the boundary (-358.78972) is above the interior local
  maximum (-358.79798, correlation 0.90, ``own_simbin_slope_agq11``), and 11 points are
  inaccurate there (17 points give -358.8005 at the same estimates);
- 21 points: curvature -3.6, not supported. Before the KKT test the fit stayed on the boundary
  at -358.800338; it now moves inside to -358.797616 with correlation 0.892, the value 31
  points confirm to 1e-6.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest

import glamm
from glamm.errors import SingularFitWarning
from glamm.glmm.agq import AdaptiveQuadrature
from glamm.optim.kkt import active_bounds, inconclusive_bounds, unsupported_bounds

FORMULA = "y ~ sex * time + (time | id)"
#: the 21-point fit before the KKT test: stuck on the boundary (theta[2] = 0)
LOGLIK_BOUNDARY_21 = -358.80033771351174


@lru_cache(maxsize=None)
def slope_fit(nagq: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return glamm.glmer(FORMULA, glamm.datasets.load("sim_binary_longitudinal"),
                           family="binomial", nagq=nagq)


def _corr(theta: np.ndarray) -> float:
    return float(theta[1] / np.hypot(theta[1], theta[2]))


# ------------------------------------------------------------------ the KKT test itself
LOWER = np.array([0.0, 0.0, -np.inf, 0.0])


def test_supported_bound():
    # on the bound, the minimized objective increases inwards (gradient > 0)
    x = np.array([0.0, 1.0, 3.0, 0.5])
    g = np.array([2.0, 0.0, 0.0, 0.0])
    assert active_bounds(x, LOWER).tolist() == [0]
    assert unsupported_bounds(x, g, LOWER, tol=1e-8).size == 0


def test_unsupported_bound():
    # on the bound, the objective decreases inwards (gradient < 0)
    x = np.array([0.0, 1.0, 3.0, 0.0])
    g = np.array([-2.0, 0.0, 0.0, 1.0])
    assert unsupported_bounds(x, g, LOWER, tol=1e-8).tolist() == [0]


def test_interior_and_free_parameters_are_never_reported():
    # negative gradients off the bound or without a bound are not the KKT test's business
    x = np.array([0.3, 1.0, -3.0, 0.2])
    g = np.array([-2.0, -1.0, -5.0, -1.0])
    assert active_bounds(x, LOWER).size == 0
    assert unsupported_bounds(x, g, LOWER, tol=1e-8).size == 0


def test_zero_gradient_on_the_bound_is_decided_by_the_curvature():
    # f(x) = c * x0^2 / 2 near x0 = 0: even in x0, gradient exactly 0 on the bound
    x = np.array([0.0, 0.0, 1.0, 0.5])
    g = np.array([0.0, 1e-12, 0.0, 0.0])
    assert inconclusive_bounds(x, g, LOWER, tol=1e-8).tolist() == [0, 1]
    assert unsupported_bounds(x, g, LOWER, tol=1e-8).size == 0      # no curvature given
    curvature = np.array([-3.0, 4.0, np.nan, np.nan])
    assert unsupported_bounds(x, g, LOWER, tol=1e-8, curvature=curvature).tolist() == [0]
    # the curvature does not overrule a clear first-order answer
    g2 = np.array([1.0, -1.0, 0.0, 0.0])
    assert unsupported_bounds(x, g2, LOWER, tol=1e-8, curvature=curvature).tolist() == [1]


# ------------------------------------------------------------------ fits
def test_quadrature_fit_leaves_an_unsupported_boundary():
    m = slope_fit(21)
    assert m.nagq == 21 and m.converged
    assert m.theta[2] > 0.05                 # off the boundary
    assert 0.85 < _corr(m.theta) < 0.93      # about 0.89
    assert m.loglik > LOGLIK_BOUNDARY_21 + 2e-3   # -358.797616 vs -358.800338
    assert any("not supported" in msg for msg in m.optsum.messages)
    assert any("moved inside and re-optimized" in msg for msg in m.optsum.messages)
    # the boundary point the fit left, re-evaluated: lower than the fit
    quad = AdaptiveQuadrature(m.model, 21)
    x0 = m.optsum.initial
    assert m.loglik > quad.loglik(x0[:3], x0[3:])


def test_supported_boundary_is_kept_with_11_points():
    m = slope_fit(11)
    assert m.theta[2] == 0.0 and m.is_singular
    assert any("KKT test: theta[2] on its bound" in msg and "(supported)" in msg
               for msg in m.optsum.messages)
    # moving theta[2] inwards (beta held) lowers the log-likelihood: a local maximum
    quad = AdaptiveQuadrature(m.model, 11)
    beta = m.fixef.to_numpy()
    inside = m.theta.copy()
    inside[2] = 1e-2
    assert quad.loglik(inside, beta) < m.loglik


def test_laplace_boundary_is_supported():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        m = glamm.glmer(FORMULA, glamm.datasets.load("sim_binary_longitudinal"),
                        family="binomial")
    assert m.theta[2] == 0.0
    kkt = [msg for msg in m.optsum.messages if msg.startswith("KKT test")]
    assert len(kkt) == 1 and "theta[2]" in kkt[0] and "(supported)" in kkt[0]
    curvature = float(kkt[0].split("curvature ")[1].split(" ")[0])
    assert curvature == pytest.approx(1.12, abs=0.05)


def test_a_restart_that_finds_nothing_lower_changes_nothing(monkeypatch):
    """With every active bound declared unsupported, the 11-point fit (and its Laplace start)
    re-optimize from inside, find nothing lower and keep the bound: the result is bitwise the
    plain fit's (the test restores the PIRLS warm start it disturbed)."""
    import glamm.glmm.fit as glmm_fit

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            m = glamm.glmer(FORMULA, glamm.datasets.load("sim_binary_longitudinal"),
                            family="binomial", nagq=11)
        # standard errors are computed on demand from the model's state: before anything
        # else evaluates it
        return m, m.stderr.to_numpy()

    plain, se_plain = fit()
    monkeypatch.setattr(glmm_fit.kkt, "unsupported_bounds",
                        lambda x, grad, lower, tol, curvature=None: active_bounds(x, lower))
    m, se = fit()
    assert any("found no lower objective" in msg for msg in m.optsum.messages)
    assert m.loglik == plain.loglik
    np.testing.assert_array_equal(m.theta, plain.theta)
    np.testing.assert_array_equal(m.fixef, plain.fixef)
    np.testing.assert_array_equal(se, se_plain)

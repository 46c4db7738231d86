"""Bounds at the end of a fit must satisfy the KKT conditions (optim.kkt): a variance may stay
at 0 only if the deviance does not decrease moving into the interior."""

from __future__ import annotations

import numpy as np

from glamm.optim.kkt import active_bounds, inconclusive_bounds, unsupported_bounds

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

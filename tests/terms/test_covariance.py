"""Unit tests of the covariance structures (glamm.terms.covariance): every class answers the
protocol consistently (shapes, bounds, names, singularity, the Jacobian of lambda)."""

from __future__ import annotations

import numpy as np
import pytest

from glamm.terms.covariance import Covariance, ScaledIdentity, Unstructured

CASES = [Unstructured(1), Unstructured(2), Unstructured(3), ScaledIdentity(1), ScaledIdentity(4),
         ScaledIdentity(3, log_scale=True)]


def _random_theta(cov: Covariance, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=cov.n_theta)
    lo = cov.lower()
    return np.where(np.isfinite(lo), np.abs(theta) + 0.1, theta)


@pytest.mark.parametrize("cov", CASES, ids=repr)
def test_protocol_shapes(cov):
    assert isinstance(cov, Covariance)
    theta = _random_theta(cov)
    assert cov.lower().shape == cov.upper().shape == cov.initial().shape == (cov.n_theta,)
    assert np.all(cov.upper() == np.inf)
    assert np.all(cov.initial() >= cov.lower())
    assert cov.lambda_(theta).shape == (cov.p, cov.p)
    assert cov.jacobian(theta).shape == (cov.n_theta, cov.p, cov.p)


@pytest.mark.parametrize("cov", CASES, ids=repr)
def test_jacobian_matches_finite_differences(cov):
    theta = _random_theta(cov, seed=2)
    jac = cov.jacobian(theta)
    h = 1e-6
    for r in range(cov.n_theta):
        e = np.zeros(cov.n_theta)
        e[r] = h
        fd = (cov.lambda_(theta + e) - cov.lambda_(theta - e)) / (2 * h)
        np.testing.assert_allclose(jac[r], fd, atol=1e-8)
    if cov.jacobian_is_constant:
        np.testing.assert_array_equal(jac, cov.jacobian(2.0 * theta))


def test_unstructured_lambda_and_names():
    cov = Unstructured(3)
    assert cov.n_theta == 6
    lam = cov.lambda_(np.arange(1.0, 7.0))
    # lme4's order: the lower triangle by columns
    np.testing.assert_array_equal(lam, [[1, 0, 0], [2, 4, 0], [3, 5, 6]])
    np.testing.assert_array_equal(cov.lower(), [0, -np.inf, -np.inf, 0, -np.inf, 0])
    np.testing.assert_array_equal(cov.initial(), [1, 0, 0, 1, 0, 1])
    assert cov.theta_names(("(Intercept)", "a", "b")) == [
        "(Intercept)", "a.(Intercept)", "b.(Intercept)", "a", "b.a", "b"]
    assert not cov.is_scaled_identity and not cov.log_scale


def test_scaled_identity_lambda_and_names():
    cov = ScaledIdentity(3)
    np.testing.assert_array_equal(cov.lambda_(np.array([2.5])), 2.5 * np.eye(3))
    assert cov.theta_names(("s.r1", "s.r2", "s.r3")) == ["sd"]
    np.testing.assert_array_equal(cov.lower(), [0.0])
    assert cov.is_scaled_identity
    assert not cov.log_scale and ScaledIdentity(3, log_scale=True).log_scale


def test_singularity():
    cov = Unstructured(2)
    assert not cov.is_singular(np.array([1.0, 0.5, 1.0]))
    assert cov.is_singular(np.array([1.0, 0.5, 0.0]))      # a zero diagonal: rank deficient
    assert not cov.is_singular(np.array([1.0, -5.0, 1.0]))  # off-diagonal elements are free
    sid = ScaledIdentity(2)
    assert sid.is_singular(np.array([0.0])) and not sid.is_singular(np.array([0.3]))


def test_summary_rows_unstructured():
    cov = Unstructured(2)
    lam = cov.lambda_(np.array([2.0, 1.0, 0.0]))
    S = lam @ lam.T          # perfectly correlated, second variance 1
    rows = cov.summary_rows(S, ("(Intercept)", "x"))
    assert [r[:2] for r in rows] == [("(Intercept)", None), ("x", None), ("(Intercept)", "x")]
    np.testing.assert_allclose([r[2] for r in rows], [4.0, 1.0, 2.0])
    np.testing.assert_allclose([r[3] for r in rows], [2.0, 1.0, 1.0])
    zero = cov.summary_rows(np.diag([1.0, 0.0]), ("a", "b"))
    assert np.isnan(zero[2][3])   # correlation undefined with a zero variance


def test_summary_rows_scaled_identity():
    rows = ScaledIdentity(3).summary_rows(4.0 * np.eye(3), ("s",))
    assert rows == [("s", None, 4.0, 2.0)]

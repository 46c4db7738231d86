"""Newton's method with lower bounds (glamm.optim.newton) on quadratics, where the answer is
known in closed form: an inactive bound (the unconstrained minimum), an active one (the
constrained minimum, on the bound), a start on the bound; the derivative helpers and the
count of evaluations kept in the OptSummary record."""

from __future__ import annotations

import numpy as np
import pytest

from glamm.optim.newton import (
    FiniteDifferences,
    _bfgs_update,
    _newton_step,
    gradient,
    gradient_hessian,
    newton_minimize,
)
from glamm.optim.optsummary import OptSummary

CENTER = np.array([-1.0, 2.0, 0.5])
H = np.array([[2.0, 0.6, 0.2], [0.6, 1.5, -0.3], [0.2, -0.3, 1.0]])
#: Newton stops when the decrement g'H^{-1}g is below 1e-11 (|f| + 1), and central differences
#: with steps of 1e-5 carry a relative error of about 1e-6 in H: the optimum to about 1e-5
XTOL = 1e-5


def quadratic(x: np.ndarray) -> float:
    d = np.asarray(x) - CENTER
    return float(0.5 * d @ H @ d + 3.0)


class Counted:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


def _record(x0, lower) -> OptSummary:
    return OptSummary(optimizer="newton", initial=np.asarray(x0, float), lower=lower)


def _run(x0, lower, **kw):
    f = Counted(quadratic)
    rec = _record(x0, lower)
    out = newton_minimize(f, np.asarray(x0, float), lower, rec, np.ones(len(x0)), **kw)
    return out, rec, f


def constrained_minimum(fixed: dict) -> np.ndarray:
    """Minimum of the quadratic with the coordinates in ``fixed`` held at the given values."""
    idx = np.array(sorted(fixed))
    free = np.setdiff1d(np.arange(3), idx)
    x = np.zeros(3)
    x[idx] = [fixed[i] for i in idx]
    # stationarity in the free coordinates: H_ff (x_f - c_f) + H_fb (x_b - c_b) = 0
    x[free] = CENTER[free] - np.linalg.solve(H[np.ix_(free, free)],
                                             H[np.ix_(free, idx)] @ (x[idx] - CENTER[idx]))
    return x


def test_inactive_bound():
    lower = np.array([-5.0, -np.inf, 0.0])
    (conv, x, fx, Hx, x_h), rec, f = _run([-0.5, 1.5, 0.8], lower)
    assert conv
    np.testing.assert_allclose(x, CENTER, atol=XTOL)
    assert fx == pytest.approx(3.0, abs=1e-10)
    assert fx == quadratic(x)
    # the Hessian (finite differences, then BFGS corrections) is the quadratic's
    np.testing.assert_allclose(Hx, H, rtol=1e-4, atol=1e-6)
    assert x_h.shape == (3,)
    assert rec.feval == f.n > 0


def test_active_bound_converges_to_the_bound():
    """The first coordinate's bound at 0 cuts off the minimum at -1: Newton stops on the
    bound, at the minimum over the other coordinates, where the gradient points outward."""
    lower = np.array([0.0, -np.inf, -np.inf])
    (conv, x, fx, _, _), rec, f = _run([0.5, 1.0, 0.0], lower)
    want = constrained_minimum({0: 0.0})
    g = H @ (want - CENTER)
    assert g[0] > 0 and np.allclose(g[1:], 0.0)
    assert conv
    assert x[0] == 0.0
    np.testing.assert_allclose(x, want, atol=XTOL)
    assert fx == pytest.approx(quadratic(want), rel=1e-10)
    assert rec.feval == f.n


def test_start_on_an_active_bound_stays_there():
    lower = np.array([0.0, -np.inf, -np.inf])
    (conv, x, _, _, _), rec, f = _run([0.0, 1.0, 0.0], lower)
    assert conv
    assert x[0] == 0.0
    np.testing.assert_allclose(x, constrained_minimum({0: 0.0}), atol=XTOL)
    assert rec.feval == f.n


def test_start_on_an_inactive_bound_leaves_it():
    """The bound at 0 on the third coordinate is inactive (its minimum is 0.5): a start on the
    bound, gradient pointing inside, moves off it."""
    lower = np.array([-np.inf, -np.inf, 0.0])
    (conv, x, _, _, _), _, _ = _run([-1.0, 2.0, 0.0], lower)
    assert conv
    np.testing.assert_allclose(x, CENTER, atol=XTOL)


def test_two_active_bounds():
    lower = np.array([0.0, 2.5, -np.inf])
    (conv, x, _, _, _), _, _ = _run([1.0, 3.0, 0.0], lower)
    want = constrained_minimum({0: 0.0, 1: 2.5})
    assert np.all(H[:2] @ (want - CENTER) > 0)    # both bounds hold (KKT)
    assert conv
    np.testing.assert_allclose(x, want, atol=XTOL)


def test_supplied_hessian_means_gradients_only():
    """With ``hessian`` given, the start costs a value and a gradient (``1 + 2n``
    evaluations) instead of a finite-difference Hessian (``1 + 2n + n(n-1)``)."""
    lower = np.full(3, -np.inf)
    x0 = [-0.8, 1.9, 0.6]
    (_, x, _, Hx, _), rec, f = _run(x0, lower, hessian=H, max_iter=1)
    np.testing.assert_allclose(x, CENTER, atol=1e-10)   # the exact Hessian: one step
    _, _, f_fd = _run(x0, lower, max_iter=1)
    assert f_fd.n - f.n == 3 * 2
    assert rec.feval == f.n


def test_feval_counts_add_to_the_record():
    lower = np.full(3, -np.inf)
    f = Counted(quadratic)
    rec = _record(np.zeros(3), lower)
    rec.feval = 40    # e.g. evaluations of an earlier stage
    newton_minimize(f, np.zeros(3), lower, rec, np.ones(3))
    assert rec.feval == 40 + f.n


def test_nonfinite_objective_is_not_converged():
    lower = np.full(2, -np.inf)
    rec = _record(np.zeros(2), lower)
    conv, x, _, _, _ = newton_minimize(lambda x: np.nan, np.zeros(2), lower, rec, np.ones(2))
    assert not conv
    np.testing.assert_array_equal(x, np.zeros(2))


def test_max_iter_reached_is_not_converged():
    def f(x):   # far from quadratic: Newton needs many steps from here
        return float(np.sum(np.cosh(3.0 * x)))

    lower = np.full(2, -np.inf)
    conv, x, fx, _, _ = newton_minimize(f, np.array([3.0, -2.5]), lower,
                                        _record(np.zeros(2), lower), np.full(2, 100.0),
                                        max_iter=1)
    assert not conv
    assert fx < f(np.array([3.0, -2.5]))


# --------------------------------------------------------------------------- derivatives
def test_finite_differences():
    f = Counted(quadratic)
    rec = _record(np.zeros(3), np.zeros(3))
    d = FiniteDifferences(f, rec)
    x = np.array([0.3, -0.2, 1.1])
    assert d.value(x) == quadratic(x)
    np.testing.assert_allclose(d.grad(x), H @ (x - CENTER), rtol=1e-7)
    g, Hx, fx = d.grad_hess(x)
    np.testing.assert_allclose(g, H @ (x - CENTER), rtol=1e-7)
    np.testing.assert_allclose(Hx, H, rtol=1e-5)
    assert fx == quadratic(x)
    # 1 + 2n + 1 + 2n + n(n-1) evaluations
    assert rec.feval == f.n == 1 + 6 + 1 + 6 + 6


def test_finite_differences_without_record():
    d = FiniteDifferences(quadratic)
    assert d.value(np.zeros(3)) == quadratic(np.zeros(3))


def test_gradient_hessian_counts():
    n = 4
    f = Counted(lambda x: float(np.sum(x ** 3) + x[0] * x[3]))
    g, Hx = gradient_hessian(f, np.arange(1.0, n + 1))
    assert f.n == 1 + 2 * n + n * (n - 1)
    x = np.arange(1.0, n + 1)
    np.testing.assert_allclose(g, 3 * x ** 2 + np.array([x[3], 0, 0, x[0]]), rtol=1e-7)
    want = np.diag(6 * x)
    want[0, 3] = want[3, 0] = 1.0
    np.testing.assert_allclose(Hx, want, rtol=1e-5, atol=1e-5)
    f.n = 0
    gradient(f, x)
    assert f.n == 2 * n


def test_gradient_at_zero_uses_a_step_of_a_tenth():
    """Steps are ``rel_step * max(|x|, 0.1)``: fine at a parameter equal to 0."""
    xs = []
    gradient(lambda x: xs.append(x.copy()) or 0.0, np.zeros(1))
    assert [x[0] for x in xs] == pytest.approx([1e-5, -1e-5])


def test_bfgs_update_secant_condition():
    rng = np.random.default_rng(0)
    B = np.eye(3)
    s = rng.normal(size=3)
    y = H @ s
    B1 = _bfgs_update(B, s, y)
    np.testing.assert_allclose(B1 @ s, y, rtol=1e-12)
    np.testing.assert_allclose(B1, B1.T)
    assert np.all(np.linalg.eigvalsh(B1) > 0)
    # no curvature along s: skipped
    np.testing.assert_array_equal(_bfgs_update(B, s, -y), B)


def test_newton_step():
    g = np.array([1.0, -2.0])
    Hp = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(_newton_step(Hp, g), -np.linalg.solve(Hp, g))
    # indefinite: shifted to a descent direction
    step = _newton_step(np.diag([1.0, -1.0]), g)
    assert step @ g < 0
    assert _newton_step(np.diag([1.0, np.nan]), g) is None
    assert _newton_step(Hp, np.array([np.inf, 0.0])) is None

"""Optimizer backends (glamm.optim.backends.minimize) and the OptSummary record they fill
(glamm.optim.optsummary): every optimizer name on smooth test functions, lower bounds, the
log-scale option, the degenerate cases, and the record's fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glamm.optim.backends import minimize
from glamm.optim.optsummary import OptSummary

OPTIMIZERS = ["bobyqa", "nelder_mead", "lbfgsb"]
LABELS = {"bobyqa": "nlopt:LN_BOBYQA", "nelder_mead": "nlopt:LN_NELDERMEAD",
          "lbfgsb": "scipy:L-BFGS-B"}

CENTER = np.array([1.5, -0.5, 2.0])
H = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])


def quadratic(x: np.ndarray) -> float:
    d = np.asarray(x) - CENTER
    return float(0.5 * d @ H @ d + 1.0)


def rosenbrock(x: np.ndarray) -> float:
    return float(100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2)


class Counted:
    """``f`` with a count of its evaluations."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


# --------------------------------------------------------------------------- unconstrained
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_shifted_quadratic(name):
    f = Counted(quadratic)
    os_ = minimize(f, np.zeros(3), np.full(3, -np.inf), optimizer=name)
    assert isinstance(os_, OptSummary)
    assert os_.optimizer == LABELS[name]
    assert os_.converged
    np.testing.assert_allclose(os_.final, CENTER, atol=1e-4)
    assert os_.fmin == pytest.approx(1.0, abs=1e-8)
    assert os_.feval == f.n > 0
    assert os_.elapsed > 0.0
    np.testing.assert_array_equal(os_.initial, np.zeros(3))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_rosenbrock(name):
    os_ = minimize(rosenbrock, np.array([-1.2, 1.0]), np.full(2, -np.inf), optimizer=name)
    np.testing.assert_allclose(os_.final, [1.0, 1.0], atol=2e-3)
    assert os_.fmin < 1e-6


@pytest.mark.parametrize("name", ["BOBYQA", "Nelder_Mead", "LBFGSB"])
def test_names_are_case_insensitive(name):
    os_ = minimize(quadratic, np.zeros(3), np.full(3, -np.inf), optimizer=name)
    assert os_.optimizer == LABELS[name.lower()]


@pytest.mark.parametrize("name", ["newton", "", "bobyqa2", "L-BFGS-B"])
def test_unknown_optimizer(name):
    with pytest.raises(ValueError, match="unknown optimizer"):
        minimize(quadratic, np.zeros(3), np.full(3, -np.inf), optimizer=name)
    with pytest.raises(ValueError, match="unknown optimizer"):
        minimize(quadratic, np.ones(3), np.zeros(3), optimizer=name, log_index=np.array([0]))


# --------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_active_lower_bound(name):
    """The minimum of the quadratic restricted to ``x0 >= 2`` and ``x1 >= 0`` (both active;
    the third coordinate free): every evaluated point respects the bounds."""
    lower = np.array([2.0, 0.0, -np.inf])
    os_ = minimize(quadratic, np.array([3.0, 1.0, 0.0]), lower, optimizer=name, keep_trace=True)
    # with x0, x1 on their bounds, x2 minimizes the quadratic in x2 alone
    d = np.array([2.0, 0.0]) - CENTER[:2]
    x2 = CENTER[2] - (H[2, :2] @ d) / H[2, 2]
    # the KKT point is the bound for both: the gradient points into the bounds there
    want = np.array([2.0, 0.0, x2])
    g = H @ (want - CENTER)
    assert g[0] > 0 and g[1] > 0
    np.testing.assert_allclose(os_.final, want, atol=1e-4)
    assert np.all(os_.final >= lower)
    assert all(np.all(x >= lower) for x, _ in os_.trace)
    np.testing.assert_array_equal(os_.lower, lower)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_inactive_lower_bound(name):
    lower = np.array([0.0, -1.0, 0.0])
    os_ = minimize(quadratic, np.array([1.0, 0.0, 1.0]), lower, optimizer=name)
    np.testing.assert_allclose(os_.final, CENTER, atol=1e-4)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_start_on_the_bound(name):
    """theta's usual start: 1 on the diagonal, 0 elsewhere, bounds 0 (-inf off-diagonal)."""
    f = lambda x: float((x[0] - 0.3) ** 2 + (x[1] + 0.2) ** 2)   # noqa: E731
    os_ = minimize(f, np.array([0.0, 0.0]), np.array([0.0, -np.inf]), optimizer=name)
    np.testing.assert_allclose(os_.final, [0.3, -0.2], atol=1e-4)


# --------------------------------------------------------------------------- the record
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trace_and_best_point(name):
    """With ``keep_trace`` every evaluation is recorded; the reported optimum is the best
    point evaluated and ``fmin`` its value."""
    os_ = minimize(quadratic, np.zeros(3), np.full(3, -np.inf), optimizer=name, keep_trace=True)
    assert len(os_.trace) == os_.feval
    values = [v for _, v in os_.trace]
    best = int(np.argmin(values))
    assert os_.fmin == values[best] == min(values)
    np.testing.assert_array_equal(os_.final, os_.trace[best][0])
    assert os_.fmin == quadratic(os_.final)
    np.testing.assert_array_equal(os_.trace[0][0], np.zeros(3))


def test_trace_off_by_default():
    os_ = minimize(quadratic, np.zeros(3), np.full(3, -np.inf))
    assert os_.trace == []
    assert os_.optimizer == LABELS["bobyqa"]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_maxfeval(name):
    f = Counted(rosenbrock)
    os_ = minimize(f, np.array([-1.2, 1.0]), np.full(2, -np.inf), optimizer=name, maxfeval=15)
    assert os_.maxfeval == 15
    assert not os_.converged
    # L-BFGS-B checks its limit between iterations and may overshoot by a gradient's worth
    assert os_.feval == f.n <= (15 if name != "lbfgsb" else 15 + 2 * 3)
    if name != "lbfgsb":
        assert os_.returnvalue == "MAXEVAL_REACHED"
        assert any("maximum number of evaluations (15)" in m for m in os_.messages)


def test_settings_reach_the_record():
    os_ = minimize(quadratic, np.zeros(3), np.full(3, -np.inf), ftol_rel=1e-8, ftol_abs=1e-9,
                   xtol_abs=1e-6, initial_step=0.25, maxfeval=500)
    assert (os_.ftol_rel, os_.ftol_abs, os_.xtol_abs, os_.initial_step, os_.maxfeval) == \
        (1e-8, 1e-9, 1e-6, 0.25, 500)
    np.testing.assert_allclose(os_.final, CENTER, atol=1e-2)


def test_unknown_setting_is_refused():
    with pytest.raises(TypeError):
        minimize(quadratic, np.zeros(3), np.full(3, -np.inf), tolerance=1e-3)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_no_parameters(name):
    f = Counted(lambda x: 4.5)
    os_ = minimize(f, np.zeros(0), np.zeros(0), optimizer=name)
    assert (os_.converged, os_.returnvalue, os_.fmin, os_.feval, f.n) == \
        (True, "NO_PARAMETERS", 4.5, 1, 1)
    assert os_.final.shape == (0,)


def test_inputs_are_not_modified():
    x0, lower = np.array([3.0, 1.0, 0.0]), np.array([2.0, 0.0, -np.inf])
    os_ = minimize(quadratic, x0, lower)
    np.testing.assert_array_equal(x0, [3.0, 1.0, 0.0])
    os_.initial[0] = 99.0
    os_.lower[0] = 99.0
    assert x0[0] == 3.0 and lower[0] == 2.0


def test_nlopt_failure_is_recorded():
    """An objective that raises inside nlopt ends the run as a failure with the best point."""
    calls = []

    def f(x):
        calls.append(np.array(x))
        if len(calls) > 5:
            raise ValueError("boom")
        return quadratic(x)

    os_ = minimize(f, np.zeros(3), np.full(3, -np.inf))
    assert not os_.converged
    assert os_.returnvalue.startswith("FAILURE")
    assert os_.feval == 5
    assert os_.fmin == min(quadratic(x) for x in calls[:5])


# --------------------------------------------------------------------------- log scale
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_log_scale(name):
    """Parameters in ``log_index`` move on the log scale; the summary is in ``x``."""
    center = np.array([250.0, 0.01, -1.0])

    def f(x):
        return float(np.log(x[0] / center[0]) ** 2 + np.log(x[1] / center[1]) ** 2
                     + (x[2] - center[2]) ** 2)

    seen = []

    def g(x):
        seen.append(np.array(x))
        return f(x)

    x0, lower = np.array([1.0, 1.0, 0.0]), np.array([0.0, 0.0, -np.inf])
    os_ = minimize(g, x0, lower, optimizer=name, keep_trace=True, log_index=np.array([0, 1]))
    np.testing.assert_allclose(os_.final, center, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(os_.initial, x0)
    np.testing.assert_array_equal(os_.lower, lower)
    assert os_.fmin == pytest.approx(f(os_.final), abs=1e-12)
    assert all(np.all(x[:2] > 0) for x in seen)
    # the trace is on the scale of x, the points f saw
    assert len(os_.trace) == len(seen) == os_.feval
    for (x, v), s in zip(os_.trace, seen):
        np.testing.assert_allclose(x, s, rtol=1e-12)
        assert v == f(s)
    assert any("parameters [0, 1] optimized on the log scale" in m for m in os_.messages)


def test_log_scale_approaches_zero_without_reaching_it():
    os_ = minimize(lambda x: float(x[0] + (x[1] - 1.0) ** 2), np.array([1.0, 0.0]),
                   np.array([0.0, -np.inf]), log_index=[0], maxfeval=2000)
    assert 0.0 < os_.final[0] < 1e-3
    assert os_.final[1] == pytest.approx(1.0, abs=1e-4)


def test_log_scale_start_at_zero():
    """A start of exactly 0 is moved to 1e-8 (the log of 0 is not a start)."""
    first = []

    def f(x):
        if not first:
            first.append(np.array(x))
        return float((np.log(x[0]) - np.log(0.5)) ** 2)

    os_ = minimize(f, np.array([0.0]), np.array([0.0]), log_index=np.array([0]))
    assert first[0][0] == pytest.approx(1e-8)
    assert os_.final[0] == pytest.approx(0.5, rel=1e-4)
    np.testing.assert_array_equal(os_.initial, [0.0])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_log_scale_keeps_a_positive_lower_bound(name):
    """A log-scale parameter with a positive lower bound stays above it (the bound used to be
    dropped on the log scale: x = 0.1 below a bound of 0.5)."""
    os_ = minimize(lambda x: float((x[0] - 0.1) ** 2), np.array([1.0]), np.array([0.5]),
                   optimizer=name, keep_trace=True, log_index=np.array([0]))
    assert os_.final[0] == pytest.approx(0.5, rel=1e-6)
    assert all(x[0] >= 0.5 * (1 - 1e-12) for x, _ in os_.trace)


def test_empty_log_index_is_the_plain_run():
    a = minimize(quadratic, np.zeros(3), np.full(3, -np.inf), log_index=np.array([], dtype=int))
    b = minimize(quadratic, np.zeros(3), np.full(3, -np.inf))
    np.testing.assert_array_equal(a.final, b.final)
    assert a.feval == b.feval
    assert not a.messages


# --------------------------------------------------------------------------- OptSummary
def test_optsummary_defaults():
    os_ = OptSummary(optimizer="nlopt:LN_BOBYQA", initial=np.ones(2), lower=np.zeros(2))
    assert (os_.ftol_rel, os_.ftol_abs, os_.xtol_abs, os_.initial_step, os_.maxfeval) == \
        (1e-15, 0.0, 1e-10, 0.75, 100_000)
    assert os_.final is None and np.isnan(os_.fmin)
    assert (os_.feval, os_.returnvalue, os_.converged, os_.elapsed) == (0, "", False, 0.0)
    assert os_.trace == [] and os_.messages == []
    # mutable defaults are not shared between records
    other = OptSummary(optimizer="x", initial=np.ones(1), lower=np.zeros(1))
    os_.messages.append("m")
    os_.trace.append((np.ones(2), 1.0))
    assert other.messages == [] and other.trace == []


def test_optsummary_as_dict():
    os_ = minimize(quadratic, np.zeros(3), np.array([-np.inf, 0.0, -np.inf]), keep_trace=True)
    d = os_.as_dict()
    assert set(d) == {"optimizer", "initial", "lower", "ftol_rel", "ftol_abs", "xtol_abs",
                      "initial_step", "maxfeval", "final", "fmin", "feval", "returnvalue",
                      "converged", "elapsed", "messages"}
    assert d["lower"] == [None, 0.0, None]
    assert d["initial"] == [0.0, 0.0, 0.0]
    assert d["final"] == os_.final.tolist()
    assert (d["fmin"], d["feval"], d["converged"], d["returnvalue"]) == \
        (os_.fmin, os_.feval, os_.converged, os_.returnvalue)
    json.dumps(d)   # plain Python values only
    d["messages"].append("x")
    assert "x" not in os_.messages


def test_optsummary_as_dict_before_a_run():
    d = OptSummary(optimizer="x", initial=np.ones(1), lower=np.array([-np.inf])).as_dict()
    assert d["final"] is None and d["lower"] == [None]


# --------------------------------------------------------------------------- with a gradient
def test_minimize_gradient_on_a_quadratic_with_an_active_bound():
    from glamm.optim.backends import minimize_gradient

    calls: list[np.ndarray] = []

    def f(x):
        calls.append(np.array(x, copy=True))
        return quadratic(x)

    def grad(x):
        # called right after f at the same point (the profiled fits rely on it)
        np.testing.assert_array_equal(x, calls[-1])
        return H @ (np.asarray(x) - CENTER)

    lower = np.array([-np.inf, 0.0, -np.inf])   # the second coordinate's optimum is -0.5
    res = minimize_gradient(f, grad, np.array([0.0, 1.0, 0.0]), lower, ftol=1e-14)
    assert res.converged and res.optimizer.startswith("scipy:L-BFGS-B")
    # on the bound, the others at the constrained optimum: H_ff x_f = H_ff c_f - H_fb (0 - c_b)
    free = [0, 2]
    xf = CENTER[free] - np.linalg.solve(H[np.ix_(free, free)], H[free, 1] * (0.0 - CENTER[1]))
    np.testing.assert_allclose(res.final[free], xf, atol=1e-6)
    assert res.final[1] == 0.0
    assert res.fmin == pytest.approx(quadratic(res.final), rel=1e-14)
    assert res.feval == len(calls)


def test_minimize_gradient_backs_off_non_finite_values():
    from glamm.optim.backends import minimize_gradient

    def f(x):
        return np.inf if x[0] > 3.0 else quadratic(x)

    res = minimize_gradient(f, lambda x: H @ (x - CENTER), np.array([2.9, 0.0, 0.0]),
                            np.full(3, -np.inf), ftol=1e-14)
    np.testing.assert_allclose(res.final, CENTER, atol=1e-6)


def test_bobyqa_start_near_a_bound_stays_a_candidate():
    """BOBYQA shifts a start lying closer to a bound than its first step; the start is
    evaluated first, so the result is never worse than it."""
    import numpy as np

    from glamm.optim.backends import minimize

    x0 = np.array([0.2, 1.0])
    rec = minimize(lambda x: float((x[0] - 0.2) ** 2 + (x[1] - 1.0) ** 2), x0,
                   np.array([0.0, -np.inf]), optimizer="bobyqa", keep_trace=True,
                   initial_step=0.75)
    assert np.array_equal(rec.trace[0][0], x0)
    assert rec.fmin <= 1e-12

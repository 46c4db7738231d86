"""The analytic gradient of the LMM's profiled deviance and REML criterion
(glamm.lmm.gradient) against central differences of the objective away from the optimum, the
compiled tile pass against its NumPy reference, and the gradient search (optimizer="auto")
against BOBYQA: the same optimum, and BOBYQA after it when a variance ends on its bound."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm import jit
from glamm.lmm import fit as lmm_fit
from glamm.lmm.gradient import ProfiledGradient, gradient_affordable


def _fd(f, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Fourth-order central differences."""
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        e = np.zeros_like(x)
        e[i] = h * max(1.0, abs(x[i]))
        out[i] = (-f(x + 2 * e) + 8 * f(x + e) - 8 * f(x - e) + f(x - 2 * e)) / (12 * e[i])
    return out


def _crossed(n=3000, m1=150, m2=40, slope=True, seed=3, sd2=0.7):
    rng = np.random.default_rng(seed)
    g1, g2 = rng.integers(0, m1, n), rng.integers(0, m2, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 1, m1)[g1] + rng.normal(0, sd2, m2)[g2] + rng.normal(size=n)
    if slope:
        y += rng.normal(0, 0.5, m1)[g1] * x
    return pd.DataFrame({"y": y, "x": x, "f": pd.Categorical(rng.integers(0, 3, n)),
                         "g1": pd.Categorical(g1), "g2": pd.Categorical(g2),
                         "w": rng.uniform(0.5, 2.0, n)})


def _data(name):
    d = glamm.datasets.load(name)
    if name == "Machines":
        d = d.assign(Machine=pd.Categorical(d["Machine"]), Worker=d["Worker"].astype(str))
    if name == "sleepstudy":
        d = d.assign(fDays=pd.Categorical(d["Days"]))
    return d


CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", {}),
    ("sleepstudy", "Reaction ~ Days + ar1(0 + fDays | Subject)", {}),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", {}),
    ("Pastes", "strength ~ 1 + (1 | batch/cask)", {}),
    ("Machines", "score ~ Machine + cs(0 + Machine | Worker)", {}),
    # a term after the first with three columns per level
    ("Machines", "score ~ Machine + (1 | Machine) + (0 + Machine | Worker)", {}),
    # crossed, a random slope on the first term, the second's block dense, prior weights
    ("crossed", "y ~ x + f + (1 + x | g1) + (1 | g2)", {"weights": "w"}),
    ("crossed", "y ~ x + (1 | g1) + (x || g2)", {}),
]


def _model(name, formula, kw, reml):
    data = _crossed() if name == "crossed" else _data(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glamm.lmer(formula, data, reml=reml, optimizer="bobyqa", **kw)
    return m.model, np.asarray(m.theta, dtype=float)


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("name,formula,kw", CASES)
def test_gradient_matches_differences(name, formula, kw, reml):
    model, theta = _model(name, formula, kw, reml)
    assert gradient_affordable(model)
    rng = np.random.default_rng(0)
    x = np.maximum(theta + 0.1 * rng.standard_normal(theta.shape), model.theta_lower() + 0.05)
    g = ProfiledGradient(model)(x)
    fd = _fd(model.objective, x)
    assert g == pytest.approx(fd, rel=1e-6, abs=1e-6 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("name,formula,kw", [CASES[2], CASES[5], CASES[6], CASES[7]])
def test_compiled_tile_pass_matches_reference(name, formula, kw):
    model, theta = _model(name, formula, kw, False)
    grad = ProfiledGradient(model)
    g_kernel = grad(theta * 1.1)
    jit.use_kernels(False)
    try:
        g_numpy = grad(theta * 1.1)
    finally:
        jit.use_kernels(None)
    assert g_kernel == pytest.approx(g_numpy, rel=1e-10, abs=1e-9)


def test_gradient_search_reaches_bobyqa_optimum(monkeypatch):
    monkeypatch.setattr(lmm_fit, "GRADIENT_MIN_Q", 0)
    d = _crossed(n=4000, m1=300, m2=30)
    for reml in (False, True):
        a = glamm.lmer("y ~ x + (1 + x | g1) + (1 | g2)", d, reml=reml)
        b = glamm.lmer("y ~ x + (1 + x | g1) + (1 | g2)", d, reml=reml, optimizer="bobyqa")
        assert "analytic gradient" in a.optsum.optimizer
        assert a.optsum.converged
        assert a.optsum.feval < b.optsum.feval
        # the gradient search's optimum is not below BOBYQA's (ML or REML criterion)
        assert a.optsum.fmin <= b.optsum.fmin + 1e-8 * abs(b.optsum.fmin)
        assert a.theta == pytest.approx(b.theta, rel=1e-4, abs=1e-5)
        assert a.fixef.to_numpy() == pytest.approx(b.fixef.to_numpy(), rel=1e-6)


def test_bound_hands_over_to_bobyqa(monkeypatch):
    """No variance between the levels of g2: the gradient search ends with its theta on the
    bound, where the derivative is zero whatever the side, and BOBYQA settles it."""
    monkeypatch.setattr(lmm_fit, "GRADIENT_MIN_Q", 0)
    d = _crossed(n=2000, m1=100, m2=20, slope=False, sd2=0.0, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", d, reml=False)
        b = glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", d, reml=False, optimizer="bobyqa")
    assert a.optsum.fmin <= b.optsum.fmin + 1e-9 * abs(b.optsum.fmin)
    assert a.theta == pytest.approx(b.theta, abs=1e-4)
    if a.theta[1] == 0.0:
        assert "then BOBYQA" in a.optsum.messages[0]


def test_auto_uses_gradient_only_where_it_pays():
    small, _ = _model("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", {}, False)
    assert not lmm_fit.uses_gradient(small)
    large, _ = _model("crossed", "y ~ x + (1 + x | g1) + (1 | g2)", {}, False)
    assert large.reterms[0].q >= 300
    assert lmm_fit.uses_gradient(large) == (sum(t.q for t in large.reterms)
                                            >= lmm_fit.GRADIENT_MIN_Q
                                            or lmm_fit._expensive(large))


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)",
                                     "Reaction ~ Days + ar1(0 + fDays | Subject)",
                                     "Reaction ~ 0 + (Days | Subject)"])
def test_one_term_compiled_value_and_gradient(formula, reml):
    """One term: value and gradient in one compiled pass (linalg/_lmm_kernels) against the
    blocked factor's objective and ProfiledGradient, and against differences."""
    model, theta = _model("sleepstudy", formula, {}, reml)
    if model._one_term is None or not model._one_term.available():
        pytest.skip("compiled kernels off")
    x = theta + 0.07
    val, g = model.value_and_gradient(x)
    assert val == pytest.approx(model.objective(x), rel=1e-12)
    assert g == pytest.approx(ProfiledGradient(model)(x), rel=1e-8, abs=1e-8)
    assert g == pytest.approx(_fd(model.objective, x), rel=1e-6, abs=1e-6)


def test_newton_polish_removes_the_summation_order():
    """BOBYQA's end moves by about 1e-6 in theta when the rows come in another order; the
    Newton steps on the analytic gradient that follow it (optimizer="auto") do not."""
    d = glamm.datasets.load("Pastes")
    perm = np.random.default_rng(5).permutation(len(d))
    a = glamm.lmer("strength ~ 1 + (1 | batch/cask)", d, reml=False)
    b = glamm.lmer("strength ~ 1 + (1 | batch/cask)", d.iloc[perm], reml=False)
    assert any("Newton" in msg for msg in a.optsum.messages)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-8)
    np.testing.assert_allclose(b.stderr.to_numpy(), a.stderr.to_numpy(), rtol=1e-8)
    # and the polished optimum is BOBYQA's, to the objective's rounding
    c = glamm.lmer("strength ~ 1 + (1 | batch/cask)", d, reml=False, optimizer="bobyqa")
    assert a.optsum.fmin == pytest.approx(c.optsum.fmin, rel=1e-11)
    np.testing.assert_allclose(a.theta, c.theta, rtol=1e-5)

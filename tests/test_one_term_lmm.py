"""The compiled profiled deviance of an LMM with one random-effects term
(glamm.linalg.one_term) against the blocked factor, and fits that agree with and without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm import jit

pytest.importorskip("numba")


def _data(seed=3, n=160, m=11):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, m, n)
    x = rng.normal(size=n)
    t = rng.uniform(0, 5, n)
    y = 2 + x + rng.normal(0, 1, m)[g] + 0.4 * rng.normal(0, 1, m)[g] * t + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "t": t, "w": rng.uniform(0.5, 2, n),
                         "g": pd.Categorical([f"g{i}" for i in g])})


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + t + (t | g)",
                                     "y ~ x + (1 + x + t | g)", "y ~ 0 + (1 | g)",
                                     "y ~ x + (0 + t | g)"])
@pytest.mark.parametrize("reml", [True, False])
def test_value_matches_the_blocked_factor(formula, reml):
    d = _data()
    m = glamm.lmer(formula, d, reml=reml, weights="w")
    model = m.model
    assert model._one_term is not None and model._one_term.available()
    rng = np.random.default_rng(1)
    for theta in [m.theta, m.theta * 0.5 + 0.1 * rng.normal(size=m.theta.size),
                  np.where(model.theta_lower() == 0, 0.0, m.theta)]:
        assert model.objective_value(theta) == pytest.approx(model.objective(theta),
                                                             rel=1e-12)


def test_only_one_term_uses_it():
    d = _data()
    d["h"] = pd.Categorical(np.arange(len(d)) % 4)
    assert glamm.lmer("y ~ x + (1 | g)", d).model._one_term is not None
    assert glamm.lmer("y ~ x + (1 | g) + (1 | h)", d).model._one_term is None


def test_fits_agree_with_and_without_the_kernel():
    d = _data(seed=9)
    formula = "y ~ x + t + (t | g)"
    jit.use_kernels(True)
    try:
        fast = glamm.lmer(formula, d)
        jit.use_kernels(False)
        slow = glamm.lmer(formula, d)
    finally:
        jit.use_kernels(None)
    assert fast.loglik == pytest.approx(slow.loglik, rel=1e-12)
    np.testing.assert_allclose(fast.theta, slow.theta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fast.fixef, slow.fixef, rtol=1e-6)

"""Starting values for free factor loadings (glamm.glmm.loading_start): the linear predictor
split into the loadings' columns, the GLM start and the rescaled ``theta``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.glmm.loading_start import glm_loading_start, loading_columns, rescaled_theta

nan = np.nan


def _simulate(seed: int = 3, n_id: int = 300, loadings=(1.0, 0.5, 1.6, 0.8)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = len(loadings)
    eta_id = rng.normal(scale=1.2, size=n_id)
    rows = []
    for i in range(n_id):
        for j in range(items):
            eta = 0.3 * j - 0.4 + loadings[j] * eta_id[i]
            rows.append((str(i), f"i{j + 1}", float(rng.random() < 1 / (1 + np.exp(-eta)))))
    d = pd.DataFrame(rows, columns=["id", "item", "y"])
    d["item"] = pd.Categorical(d["item"])
    return d


@pytest.fixture(scope="module")
def fitted():
    d = _simulate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.galamm("y ~ 0 + item + (0 + ability | id)", d, family="binomial",
                            load_var="item", factor="ability",
                            lambda_=[[1], [nan], [nan], [nan]])


def test_columns_rebuild_the_linear_predictor(fitted):
    """``X beta + offset + D lambda + sum(F) + rest`` is the model's ``eta`` (at the fit)."""
    model = fitted.model.working_copy()
    model.objective(model.theta, model.beta)
    D, F, rest = loading_columns(model)
    eta = model.X @ model.beta + model.offset + D @ model.loadings.values + F.sum(axis=1) + rest
    np.testing.assert_allclose(eta, model.eta, rtol=1e-12, atol=1e-12)
    # one factor, loaded only by the reference item: F is nonzero exactly on its rows
    item = model.loadings.item
    assert np.all(F[item != 0, 0] == 0) and np.any(F[item == 0, 0] != 0)
    assert np.all(rest == 0)


def test_glm_start_is_near_the_estimates(fitted):
    """From the fit with the loadings held at 1, the GLM start lands far nearer the final
    loadings than 1 does (the shrinkage of the scores cancels in the ratio)."""
    model = fitted.model.working_copy()
    final = model.loadings.values.copy()
    ones = np.ones_like(final)
    model.set_loadings(ones)
    model.objective_fast(model.theta)
    start = glm_loading_start(model)
    assert start is not None
    assert np.max(np.abs(start - final)) < 0.5 * np.max(np.abs(ones - final))


def test_no_start_when_the_scores_vanish(fitted):
    model = fitted.model.working_copy()
    model.objective_fast(np.zeros_like(model.theta))
    assert glm_loading_start(model) is None


def test_rescaled_theta_keeps_the_mean_contribution(fitted):
    model = fitted.model
    old = np.ones(3)
    new = np.array([0.5, 1.5, 2.0])
    # rows: every item equally often; mean |loading| 1 -> (1 + 0.5 + 1.5 + 2) / 4 = 1.25
    got = rescaled_theta(model, np.array([2.0]), old, new)
    np.testing.assert_allclose(got, [2.0 / 1.25])

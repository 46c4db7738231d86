"""Factors in the fixed effects, as galamm allows: a column ``x:f`` (a covariate times the
latent variable f) is the effect of x on f's scale, multiplied by each row's loading, e.g. a
latent ability regressed on a covariate, ``y_ij = beta_i + lambda_i (gamma x_j + eta_j) + e``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_galamm import _gradients
from test_profiled_gradient import _check

import glamm

nan = np.nan
LOADINGS = {"a": 1.0, "b": 0.5, "c": 2.0}


def _fit(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _data(seed: int = 4, n_id: int = 80, binary: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)),
                      "x": np.repeat(rng.normal(size=n_id), 3)})
    lam = d["item"].map(LOADINGS).to_numpy(dtype=float)
    eta = 0.8 * d["x"].to_numpy() + rng.normal(scale=0.7, size=n_id)[np.repeat(np.arange(n_id), 3)]
    beta = d["item"].map({"a": 0.2, "b": -0.3, "c": 0.5}).to_numpy(dtype=float)
    lin = beta + lam * eta
    if binary:
        d["y"] = (rng.uniform(size=len(d)) < 1 / (1 + np.exp(-lin))).astype(float)
    else:
        d["y"] = lin + rng.normal(scale=0.4, size=len(d))
    return d


@pytest.mark.parametrize("family", ["gaussian", "binomial"])
def test_fixed_loadings_equal_the_model_with_loaded_columns(family):
    d = _data(binary=family == "binomial")
    lam = d["item"].map(LOADINGS).to_numpy(dtype=float)
    m = _fit(glamm.galamm, "y ~ 0 + item + x:f + (0 + f | id)", d, family=family,
             load_var="item", factor="f", lambda_=[[1.0], [0.5], [2.0]])
    twin = d.assign(l=lam, xl=d["x"] * lam)
    if family == "gaussian":
        ref = _fit(glamm.lmer, "y ~ 0 + item + xl + (0 + l | id)", twin, reml=False)
    else:
        ref = _fit(glamm.glmer, "y ~ 0 + item + xl + (0 + l | id)", twin, family=family)
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-8)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", ["gaussian", "binomial"])
def test_free_loadings_with_a_loaded_fixed_effect(family):
    d = _data(seed=5, n_id=150, binary=family == "binomial")
    m = _fit(glamm.galamm, "y ~ 0 + item + x:f + (0 + f | id)", d, family=family,
             load_var="item", factor="f", lambda_=[[1], [nan], [nan]])
    est = m.factor_loadings.iloc[:, 0].to_numpy()
    tol = 0.15 if family == "gaussian" else 0.6
    np.testing.assert_allclose(est, [1.0, 0.5, 2.0], atol=tol)
    m0 = _fit(glamm.galamm, "y ~ 0 + item + x:f + (0 + f | id)", d, family=family,
              load_var="item", factor="f", lambda_=est[:, None])
    assert m.loglik >= m0.loglik - 1e-8 * abs(m0.loglik)
    assert m.loglik == pytest.approx(m0.loglik, rel=1e-7)
    np.testing.assert_allclose(m.predict(d), m.fitted("link"), rtol=1e-9, atol=1e-9)
    if family == "gaussian":
        _check(m)
    else:
        g, num, _ = _gradients(m, 0.03)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_a_column_with_two_factors_is_refused():
    d = _data().assign(z=1.0)
    with pytest.raises(glamm.errors.GlammError, match="several latent factors"):
        glamm.galamm("y ~ 0 + item + x:f:g + (0 + f | id) + (0 + g | item)", d,
                     load_var="item", factor=["f", "g"], lambda_=[[1, 1], [nan, 0], [nan, 0]])

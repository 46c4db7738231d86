"""The analytic gradient of the profiled deviance of Gaussian models with factor loadings
(glamm.glmm.profiled.profiled_loading_gradient) against central differences of the deviance,
away from the optimum, for the structures it covers: loadings shared by nested terms, crossed
loaded terms with an ordinary one, latent x observed interactions, and smooths on the latent
scale whose fixed columns carry loadings (one factor per level of a factor by)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import load_data

import glamm
from glamm.glmm.profiled import profiled_loading_deviance, profiled_loading_gradient
from glamm.optim.newton import gradient

nan = np.nan


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.galamm(formula, data, **kw)


def _check(m, seed: int = 0, rtol: float = 1e-5):
    lmm, layout, deviance = profiled_loading_deviance(m.model)
    grad = profiled_loading_gradient(m.model, lmm, layout)
    x = layout.assemble({"theta": m.theta, "lambda": m.loadings})
    x = x * (1 + 0.1 * np.random.default_rng(seed).normal(size=x.size))
    deviance(x)
    analytic = grad(x)
    numeric = gradient(deviance, x, rel_step=1e-5)
    np.testing.assert_allclose(analytic, numeric, rtol=rtol,
                               atol=rtol * (1 + np.abs(numeric).max()))


def _two_domain(seed: int = 3, n_id: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 4).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c", "d"], n_id)),
                      "x": rng.uniform(0, 1, 4 * n_id)})
    d["g"] = pd.Categorical(np.where(d["item"].isin(["a", "b"]), "u", "v"))
    d["gu"] = (d["g"] == "u").astype(float)
    d["gv"] = (d["g"] == "v").astype(float)
    lam = d["item"].map({"a": 1.0, "b": 0.6, "c": 1.0, "d": 1.8}).to_numpy(dtype=float)
    f = np.where(d["g"] == "u", np.sin(2 * np.pi * d["x"]), np.cos(2 * np.pi * d["x"]))
    e = rng.normal(size=n_id)[np.repeat(np.arange(n_id), 4)]
    d["y"] = lam * (f + e) + rng.normal(scale=0.3, size=len(d))
    return d


def test_nested_terms_sharing_loadings():
    d = load_data("IRTsim_sub300")
    d = d.assign(item=pd.Categorical(d["item"].astype(str)))
    m = _fit("y ~ 0 + item + (0 + abil_sid | school/sid)", d, load_var="item",
             factor="abil_sid", lambda_=[[1], [nan], [nan]])
    _check(m)


def test_crossed_loaded_terms_and_an_ordinary_term():
    d = load_data("KYPSsim")
    d = d.assign(time=pd.Categorical(d["time"].astype(str)))
    m = _fit("esteem ~ time + (0 + ms | mid) + (0 + hs | hid) + (1 | sid)", d, load_var="time",
             factor=["ms", "hs"], lambda_=[[1, 0], [nan, 0], [nan, 1], [nan, nan]])
    _check(m)


def test_latent_by_observed_interaction():
    d = load_data("latent_covariates")
    m = _fit("y ~ type + x:response + (0 + loading | id)", d, load_var="type",
             factor="loading", lambda_=[[1], [nan], [nan]], factor_interactions=["~1", "~1", "~x"])
    _check(m)


def test_smooths_on_the_latent_scale_one_factor_per_level():
    d = _two_domain()
    m = _fit("y ~ g + sl(x, k=5, by=g, factor=['f1', 'f2']) + (0 + gu:f1 + gv:f2 | id)", d,
             load_var="item", factor=["f1", "f2"], lambda_=[[1, 0], [nan, 0], [0, 1], [0, nan]])
    _check(m)


@pytest.mark.parametrize("seed", [1, 2])
def test_weights(seed):
    d = _two_domain(seed)
    w = np.random.default_rng(seed).uniform(0.5, 2.0, len(d))
    m = _fit("y ~ 0 + item + (0 + f1 | id)", d.assign(f=1.0), load_var="item", factor="f1",
             lambda_=[[1], [nan], [nan], [nan]], weights=w)
    _check(m, seed)

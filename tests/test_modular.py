"""The public stages in glamm.modular compose to the same fits as the one-call verbs."""

from __future__ import annotations

import numpy as np
import pytest

import glamm
from glamm import modular


def test_lmm_stages_give_lmer():
    sleep = glamm.datasets.load("sleepstudy")
    frame = modular.build_model_frame("Reaction ~ Days + (Days | Subject)", sleep)
    model = modular.LinearMixedModel(frame, reml=False)
    result = modular.LmerResult(model, modular.optimize_theta(model))
    direct = glamm.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    assert result.loglik == direct.loglik
    np.testing.assert_array_equal(result.fixef.to_numpy(), direct.fixef.to_numpy())


def test_glmm_stages_give_glmer():
    d = glamm.datasets.load("sim_binary_longitudinal")
    frame = modular.build_model_frame("y ~ sex * time + (1 | id)", d, glm_response=True)
    model = modular.GeneralizedLinearMixedModel(frame, modular.get_family("binomial"))
    record = modular.fit_glmm(model)
    result = modular.GlmerResult(model, record, model.response.base_family)
    direct = glamm.glmer("y ~ sex * time + (1 | id)", d, family="binomial")
    assert result.loglik == direct.loglik
    # the objective at the estimates is -2 loglik (a stage usable on its own)
    x = np.concatenate([result.theta, result.fixef.to_numpy()])
    assert model.objective(x[:1], x[1:]) == pytest.approx(-2.0 * result.loglik, rel=1e-12)

"""The public stages of a fit, for users who want to run them one at a time (lme4's
``lFormula`` / ``mkLmerDevfun`` / ``optimizeLmer`` / ``mkMerMod``).

An LMM::

    frame = build_model_frame("Reaction ~ Days + (Days | Subject)", sleep)
    model = LinearMixedModel(frame, reml=False)
    model.objective(theta)                       # the profiled deviance at any theta
    optsum = optimize_theta(model)
    result = LmerResult(model, optsum)

A GLMM (``glamm.glmer`` is these stages plus the diagnostics of :mod:`glamm.glmm.diagnostics`)::

    frame = build_model_frame(formula, data, glm_response=True)
    model = glmm_model(frame, get_family("binomial"))   # GeneralizedLinearMixedModel
    model.objective(theta, beta)                 # the Laplace deviance at any parameters
    record = fit_glmm_model(model, resolve_nagq("auto", frame, fast=False))
    result = GlmerResult(model, record, model.response.base_family)

These names are public API: their signatures change only with notice. Everything else under
``glamm.*`` submodules is internal.
"""

from .families import get_family
from .formula.design import ModelFrame, build_model_frame
from .glmer_api import fit_glmm_model, glmm_model, resolve_nagq
from .glmm.fit import GlmmFitRecord, fit_agq, fit_glmm
from .glmm.model import GeneralizedLinearMixedModel
from .lmm.fit import optimize_theta
from .lmm.model import LinearMixedModel
from .results.glmer_result import GlmerResult
from .results.lmer_result import LmerResult

__all__ = [
    "build_model_frame",
    "ModelFrame",
    "LinearMixedModel",
    "optimize_theta",
    "LmerResult",
    "get_family",
    "GeneralizedLinearMixedModel",
    "fit_glmm",
    "fit_agq",
    "GlmmFitRecord",
    "GlmerResult",
    "glmm_model",
    "resolve_nagq",
    "fit_glmm_model",
]

"""Starting ``theta`` of a large crossed GLMM from one quick fit per random-effects term
(:func:`warm_theta`), as the LMM's ``start="warm"`` does (:func:`glamm.lmm.fit.warm_start`):
the fast stage of :func:`glamm.glmm.fit.fit_glmm` then needs far fewer PIRLS runs."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..optim.backends import minimize
from .model import GeneralizedLinearMixedModel
from .pirls import LOOSE_PIRLS

#: the fast stage warm-starts (:func:`warm_theta`) from this many random effects on
WARM_MIN_Q = 1000
#: BOBYQA's first step after a warm start
WARM_STEP = 0.1


def warm_theta(model: GeneralizedLinearMixedModel) -> np.ndarray | None:
    """Starting ``theta`` from one quick fit per random-effects term, each alone with the
    fixed effects (``beta`` inside PIRLS, loose tolerances), as the LMM's warm start does:
    for models with several terms and at least :data:`WARM_MIN_Q` random effects, where
    the fast stage's evaluations are expensive and each single-term model is cheap (one
    term's PIRLS is a compiled pass). ``None`` where it does not apply (one term, few
    random effects, loadings, a family with parameters of its own or a dispersion
    design)."""
    if type(model) is not GeneralizedLinearMixedModel or len(model.reterms) < 2 \
            or sum(t.q for t in model.reterms) < WARM_MIN_Q or model.loadings is not None \
            or model.response.parameter_names or model.response.dispersion_design is not None:
        return None
    parts = []
    for term in model.reterms:
        sub = GeneralizedLinearMixedModel(dataclasses.replace(model.frame, reterms=[term]),
                                          model.response.base_family,
                                          laplace=model.laplace_information)
        def deviance(th: np.ndarray, sub: GeneralizedLinearMixedModel = sub) -> float:
            return sub.objective_fast(th, LOOSE_PIRLS)

        os_ = minimize(deviance, sub.layout.initial(), sub.layout.lower(), ftol_rel=1e-4,
                       ftol_abs=0.0, xtol_abs=1e-2)
        if os_.final is None or not np.isfinite(os_.fmin):
            return None
        parts.append(os_.final)
    return np.concatenate(parts)

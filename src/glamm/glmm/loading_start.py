"""Starting values for the free factor loadings of a GLMM with loadings (galamm's models).

With the random effects held at their predicted values the linear predictor is linear in the
free loadings: loading ``r`` multiplies the column ``D_r`` (its rows' latent scores, times the
covariate for an interaction loading), and the fixed loadings contribute a known offset. So a
GLM of ``y`` on ``[X, D]`` estimates ``beta`` and the loadings together, given the latent
scores of a fit with the loadings at their start values. The scores are shrunken, but all
items share them (the reference item's fixed loading included), so the loadings' ratios are
about right: a start from which Newton converges in a few steps, where a derivative-free
search over the loadings costs dozens of PIRLS runs.
"""

from __future__ import annotations

import numpy as np

from .glm import fit_glm
from .gradient import loading_directions
from .model import GeneralizedLinearMixedModel


def _scores(model: GeneralizedLinearMixedModel, k: int, Vd: np.ndarray) -> np.ndarray:
    """``Vd`` (a change of term ``k``'s nonzeros) times the term's current modes, per row."""
    design, u = model.design, model.u
    assert u is not None
    t = model.reterms[k]
    uk = u[design.offsets[k]:design.offsets[k] + t.q].reshape(t.nlevels, t.p)
    return np.einsum("ic,ic->i", Vd, uk[t.refs])


def loading_columns(model: GeneralizedLinearMixedModel
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At the current modes ``u``: ``D`` (``n x free loadings``, the column each free loading
    multiplies in the linear predictor), ``F`` (``n x factors``, each factor's part of
    ``Z Lambda u`` through its fixed loadings) and the rest of ``Z Lambda u`` (terms without
    loadings). Needs a PIRLS fit first; not for loaded fixed-effect columns (a smooth on the
    latent scale), where the predictor is not linear in the loadings."""
    loadings = model.loadings
    assert loadings is not None and model.u is not None and model.theta is not None
    lams = model.lambdas(model.theta)
    D = np.zeros((model.n, loadings.n_free))
    for r, (parts, _) in loading_directions(model, lams):
        for k, Vd in parts:
            D[:, r] += _scores(model, k, Vd)
    fixed_rows = loadings.row_loadings(np.zeros(loadings.n_free))
    F = np.zeros((model.n, fixed_rows.shape[1]))
    for k, cols in loadings.terms:
        for f in range(F.shape[1]):
            dz = np.zeros_like(loadings.base_z[k])
            for c, fc in cols:
                if fc == f:
                    dz[:, c] = loadings.base_z[k][:, c] * fixed_rows[:, f]
            if np.any(dz):
                F[:, f] += _scores(model, k, dz @ lams[k])
    eta_re = np.broadcast_to(model._eta_re(lams, model.u), (model.n,))
    return D, F, eta_re - D @ loadings.values - F.sum(axis=1)


def glm_loading_start(model: GeneralizedLinearMixedModel) -> np.ndarray | None:
    """Free loadings from the GLM described in the module docstring, at the model's current
    state (a PIRLS fit with the loadings at their start values): ``y`` on ``[X, D, F]``
    (:func:`loading_columns`), each free loading's coefficient divided by that of its
    factor's fixed-loading column, so the shrinkage of the scores cancels. ``None`` where it
    does not apply or fails: no free loadings, loaded fixed-effect columns, scores that are
    all zero (a variance at 0), a GLM that does not converge to finite values, or a factor
    whose fixed-loading coefficient is not clearly positive. Loadings whose column is zero
    keep their current value."""
    loadings = model.loadings
    if loadings is None or loadings.n_free == 0 or loadings.x_cols or model.u is None:
        return None
    D, F, rest = loading_columns(model)
    use = np.flatnonzero(np.abs(D).max(axis=0) > 1e-8)
    used_f = np.flatnonzero(np.abs(F).max(axis=0) > 1e-8)
    if use.size == 0 or used_f.size != F.shape[1]:
        return None
    p = model.X.shape[1]
    Xa = np.column_stack([model.X, D[:, use], F])
    try:
        glm = fit_glm(Xa, model.y, model.wt, model.offset + rest, model.response.base_family)
    except (np.linalg.LinAlgError, FloatingPointError, ValueError):
        return None
    coef = glm.beta[p:p + use.size]
    kappa = glm.beta[p + use.size:]
    if not (glm.converged and np.all(np.isfinite(glm.beta)) and np.all(kappa > 0.05)):
        return None
    factor_of = np.array([loadings.derivative(int(r))[0] for r in use], dtype=np.int64)
    out = loadings.values.copy()
    out[use] = coef / kappa[factor_of]
    return out


def rescaled_theta(model: GeneralizedLinearMixedModel, theta: np.ndarray, old: np.ndarray,
                   new: np.ndarray) -> np.ndarray:
    """``theta`` for loadings moved from ``old`` to ``new``, keeping each factor's typical
    contribution to the linear predictor: the scale of a scalar term that one factor loads
    (``(0 + f | g)``, galamm's usual form) is divided by the ratio of the factor's mean
    absolute row loading, new to old. Other terms keep their ``theta``."""
    loadings = model.loadings
    assert loadings is not None
    rows_old = np.abs(loadings.row_loadings(old))
    rows_new = np.abs(loadings.row_loadings(new))
    out = np.array(theta, dtype=float, copy=True)
    for k, cols in loadings.terms:
        sl = model.layout.slices[k]
        if model.reterms[k].p != 1 or sl.stop - sl.start != 1 or len(cols) != 1:
            continue
        f = cols[0][1]
        mean_new = rows_new[:, f].mean()
        if mean_new > 0:
            out[sl] = out[sl] * rows_old[:, f].mean() / mean_new
    return out

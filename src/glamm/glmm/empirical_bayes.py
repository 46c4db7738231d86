"""Random effects of clusters not seen in fitting, from their own responses (empirical Bayes).

Given the fitted ``theta``, ``beta`` (and dispersion), the conditional mode of a new cluster's
spherical random effects maximizes ``sum_j log p(y_j | eta_j(u)) - |u|^2 / 2``; it is found by
Fisher scoring for all new clusters at once (one small ``q x q`` system per cluster). This is
GLMMadaptive's subject-specific prediction for new subjects. One grouping factor only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, GlammError
from ..formula.evaluate import eval_glm_response, row_labels


def new_cluster_modes(result, newdata: pd.DataFrame, codes: np.ndarray, new_levels: list[str],
                      maxiter: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Modes ``b`` (``len(new_levels) x q``) for the rows of ``newdata`` whose cluster code is
    ``-1``; ``codes`` are the fitted levels' codes (``-1`` for new ones)."""
    model = result.model
    if len({t.factors for t in model.reterms}) != 1:
        raise GlammError("random effects for new clusters from their responses need a single "
                         "grouping factor")
    frame = result.frame
    resp = frame.parsed.response
    try:
        y, trials = eval_glm_response(resp, newdata)
    except Exception as exc:
        raise DataError(f"newdata needs the response {resp!r} to estimate random effects "
                        f"for new clusters: {exc}") from None
    wt = np.ones(len(newdata)) if trials is None else trials
    if frame.offset_is_array:
        raise DataError("the model's offset was an array and cannot be rebuilt for newdata")
    eta_fixed = frame.new_X(newdata) @ result.fixef.to_numpy() + frame.new_offset(newdata)
    lams = model.lambdas(result.theta)
    V = model.design.rows(lams, z=model.design.new_z(newdata))      # n x q (Z Lambda rows)
    rows = np.flatnonzero(codes < 0)
    factors = model.reterms[0].factors
    labels = row_labels(newdata, factors)[rows]
    index = {lab: i for i, lab in enumerate(new_levels)}
    g = np.array([index[lab] for lab in labels])
    m, q = len(new_levels), V.shape[1]
    Vr, yr, wr, ef = V[rows], y[rows], wt[rows], eta_fixed[rows]
    fam, link, phi = model.family, model.family.link, model.dispersion
    u = np.zeros((m, q))
    for _ in range(maxiter):
        eta = ef + np.einsum("jq,jq->j", Vr, u[g])
        mu = link.inverse(eta)
        s = fam.dloglik_deta(yr, mu, eta, wr, phi)
        w, _ = fam.fisher_weights(eta, mu, wr, phi, mu_eta=link.mu_eta(eta))
        grad = -u.copy()
        H = np.broadcast_to(np.eye(q), (m, q, q)).copy()
        for a in range(q):
            grad[:, a] += np.bincount(g, weights=s * Vr[:, a], minlength=m)
            for b in range(q):
                H[:, a, b] += np.bincount(g, weights=w * Vr[:, a] * Vr[:, b], minlength=m)
        step = np.linalg.solve(H, grad[:, :, None])[:, :, 0]
        u += step
        if np.max(np.abs(step)) < tol:
            break
    else:
        raise GlammError("the random effects of the new clusters did not converge")
    return model.design.effects_by_row(u, lams)     # b = lambda u per term

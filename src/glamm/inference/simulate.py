"""Responses simulated from a fitted mixed model (lme4's ``simulate``), the basis of the
parametric bootstrap.

Each replicate draws the random effects afresh (``re=True``: each level of each grouping
factor gets ``b ~ N(0, Sigma_k)`` at the estimated covariance; with ``newdata``, each level
found there, seen in fitting or not), or keeps the fitted conditional modes (``re="fitted"``,
lme4's ``use.u = TRUE``), or leaves them out (``re=False``: the population-level mean); then
the response is drawn from the family at the means the linear predictor gives (the
residual for an LMM: ``N(0, sigma^2 / w)``). Smooth terms are part of the mean curve: their
fitted values are kept, never redrawn. Not public API (the results' ``simulate`` is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlammError


@dataclass
class SimulationModel:
    """What a simulation needs from a fit, on the fitted rows or on new data.

    Attributes
    ----------
    eta_fixed : ndarray
        ``X beta + offset`` plus the smooths' fitted part, per row.
    grouped : list of (int, ndarray, ndarray, int)
        For each grouped term: its position, level codes, ``z`` values and number of levels.
    lams : list of ndarray
        Every term's ``lambda`` (scaled so that ``b = lambda u`` with ``u ~ N(0, I)``).
    fitted_b : list of ndarray or None
        The fitted random effects per term (on the fitted rows; ``None`` for new data).
    family, dispersion, wt
        The response family at the estimates, its dispersion (scalar or per row) and the
        prior weights (binomial trials).
    """

    eta_fixed: np.ndarray
    grouped: list[tuple[int, np.ndarray, np.ndarray, int]]
    lams: list[np.ndarray]
    fitted_b: list[np.ndarray] | None
    family: Any
    dispersion: float | np.ndarray
    wt: np.ndarray
    index: pd.Index

    @property
    def n(self) -> int:
        return self.eta_fixed.shape[0]

    def eta(self, re, rng: np.random.Generator) -> np.ndarray:
        """The linear predictor of one replicate."""
        eta = self.eta_fixed.copy()
        if re is False:
            return eta
        for k, refs, z, nlev in self.grouped:
            lam = self.lams[k]
            if re == "fitted":
                if self.fitted_b is None:
                    raise GlammError("re='fitted' needs the fitted rows (no newdata): the "
                                     "conditional modes belong to the fitted levels")
                b = self.fitted_b[k]
            else:
                b = rng.standard_normal((nlev, lam.shape[0])) @ lam.T
            known = refs >= 0
            eta[known] += np.einsum("ij,ij->i", z[known], b[refs[known]])
        return eta

    def response(self, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mu = self.family.link.inverse(eta)
        return self.family.sample(mu, self.wt, self.dispersion, rng)


def simulation_model(result, newdata: pd.DataFrame | None = None) -> SimulationModel:
    """The :class:`SimulationModel` of a fitted LMM or GLMM."""
    from ..families import get_family
    from ..formula.random_terms import grouping_factor
    from ..results.glmer_result import GlmerResult
    from ..results.lmer_result import LmerResult

    frame = result.frame
    model = result.model
    if isinstance(result, LmerResult):
        if getattr(result, "_exact", None) is not None or \
                getattr(result, "variance_function", None) is not None:
            raise GlammError("simulation is not available for models without a residual or "
                             "with a residual variance function")
        family = get_family("gaussian")
        dispersion: float | np.ndarray = float(result.sigma) ** 2
        lams = [result.scale * lam for lam in model.lambdas(result.theta)]
        fitted_b = list(result._b)
        wt = frame.weights
    elif isinstance(result, GlmerResult):
        family = model.response.family
        dispersion = model.response.dispersion
        lams = model.lambdas(result.theta)
        fitted_b = list(result._b)
        wt = model.wt
    else:
        raise GlammError(f"simulate is available for glamm.lmer and glamm.glmer fits, not "
                         f"{type(result).__name__}")
    beta = result.fixef.to_numpy(dtype=float)
    design = model.design
    terms = design.terms
    if newdata is None:
        eta_fixed = frame.X @ beta + frame.offset
        smooth_idx = [k for k, t in enumerate(terms) if not t.is_grouped]
        if smooth_idx:
            eta_fixed = eta_fixed + design.eta_re(fitted_b, terms=smooth_idx)
        grouped = [(k, t.refs, design.z[k], t.nlevels) for k, t in enumerate(terms)
                   if t.is_grouped]
        return SimulationModel(eta_fixed, grouped, lams, fitted_b, family, dispersion, wt,
                               frame.row_index)
    if getattr(family, "name", "") in ("mixed",) or hasattr(family, "hurdle"):
        raise GlammError("simulating new data is not available for mixed-response or "
                         "zero-inflated models; simulate the fitted rows (newdata=None)")
    if np.ndim(dispersion):
        raise GlammError("simulating new data needs one dispersion for all rows")
    X = frame.new_X(newdata)
    eta_fixed = X @ beta + frame.new_offset(newdata)
    grouped = []
    for k, t in enumerate(terms):
        if not t.is_grouped:
            raise GlammError("simulating new data from a model with smooth terms is not "
                             "available; simulate the fitted rows (newdata=None)")
        codes, labels = grouping_factor(newdata, t.factors)
        grouped.append((k, codes, t.new_z(newdata), len(labels)))
    if np.any(~np.isfinite(eta_fixed)):
        raise GlammError("newdata has missing values in the columns of the fixed effects")
    return SimulationModel(eta_fixed, grouped, lams, None, family, dispersion,
                           np.ones(len(newdata)), newdata.index)


def simulate(result, n: int = 1, seed=None, newdata: pd.DataFrame | None = None,
             re: bool | str = True) -> pd.DataFrame:
    """See the results' ``simulate`` (e.g.
    :meth:`glamm.results.lmer_result.LmerResult.simulate`)."""
    if re not in (True, False, "fitted", "new"):
        raise GlammError(f"re must be True (new random effects), 'fitted' or False, got {re!r}")
    if re == "new":
        re = True
    n = int(n)
    if n < 1:
        raise GlammError(f"n must be at least 1, got {n}")
    if re == "fitted" and newdata is not None:
        raise GlammError("re='fitted' needs the fitted rows (newdata=None)")
    sim = simulation_model(result, newdata)
    rng = np.random.default_rng(seed)
    out = np.empty((sim.n, n))
    for j in range(n):
        out[:, j] = sim.response(sim.eta(re, rng), rng)
    return pd.DataFrame(out, index=sim.index, columns=[f"sim_{j + 1}" for j in range(n)])

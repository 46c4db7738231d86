"""Marginal (population-averaged) coefficients of a GLMM (Hedeker et al. 2018; GLMMadaptive's
``marginal_coefs``).

The marginal mean of observation ``j`` averages the conditional mean over the random effects,
``mu_j = E_b[g^{-1}(x_j' beta + z_j' b)]`` with ``b ~ N(0, D)``; the marginal coefficients are
the least-squares fit of ``g(mu)`` on ``X``. glamm integrates over ``b`` by Gauss-Hermite
quadrature (not Monte Carlo), so the coefficients are deterministic, and gets standard errors by
the delta method from the covariance of (``theta``, ``beta``) (GLMMadaptive simulates both).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from numpy.polynomial.hermite import hermgauss

from ..errors import GlammError

#: Gauss-Hermite points per dimension by total random-effects dimension
_POINTS = {1: 121, 2: 41, 3: 15, 4: 9}


def _design(result, newdata=None):
    """Fixed part of the linear predictor and the stacked random-effects rows ``(n, Q)``."""
    frame = result.frame
    design = result.model.design
    if newdata is None:
        eta_fixed = frame.X @ result.fixef.to_numpy() + frame.offset
        V = design.z_rows()
    else:
        eta_fixed = frame.new_X(newdata) @ result.fixef.to_numpy() + frame.new_offset(newdata)
        V = design.z_rows(design.new_z(newdata))
    return eta_fixed, V


def marginal_means(result, theta=None, beta=None, newdata=None) -> np.ndarray:
    """Marginal means ``E_b[g^{-1}(eta)]`` for the fitted rows (or ``newdata``)."""
    model = result.model
    theta = result.theta if theta is None else theta
    lams = model.lambdas(theta)
    Q = sum(t.p for t in model.reterms)
    if Q not in _POINTS:
        raise GlammError(f"marginal means integrate over all {Q} random effects of an "
                         "observation; more than 4 is not supported")
    x, w = hermgauss(_POINTS[Q])
    nodes = np.array(list(itertools.product(x, repeat=Q)))
    weights = np.array([np.prod(c) for c in itertools.product(w, repeat=Q)]) / np.pi ** (Q / 2)
    # b = sqrt(2) blockdiag(lambda_k) x  (lambda lambda' = D for each term)
    L = model.design.lambda_block(lams)
    B = np.sqrt(2.0) * nodes @ L.T                     # K x Q
    eta_fixed, V = _design(result, newdata)
    if beta is not None:
        X = result.frame.X if newdata is None else result.frame.new_X(newdata)
        off = result.frame.offset if newdata is None else result.frame.new_offset(newdata)
        eta_fixed = X @ beta + off
    eta = eta_fixed[:, None] + V @ B.T                  # n x K
    return model.family.link.inverse(eta) @ weights


def _marginal_beta(result, theta, beta) -> np.ndarray:
    mu = marginal_means(result, theta, beta)
    target = result.model.family.link.link(mu)
    coef, *_ = np.linalg.lstsq(result.frame.X, target, rcond=None)
    return coef


def marginal_coefs(result, std_errors: bool = True) -> pd.DataFrame:
    """Marginal coefficients of a fitted GLMM, with delta-method standard errors.

    Parameters
    ----------
    result : GlmerResult
        A :class:`~glamm.results.glmer_result.GlmerResult` with a non-identity link.
    std_errors : bool
        Also compute standard errors (needs the Hessian of the fit).

    Returns
    -------
    pandas.DataFrame
        Indexed by coefficient name, with ``Estimate`` (and ``Std. Error``, ``z value``).

    Raises
    ------
    GlammError
        The model has the identity link (its marginal coefficients are the fixed effects).
    """
    if result.model.family.link.name == "identity":
        raise GlammError("with the identity link the marginal coefficients are the fixed "
                         "effects themselves")
    theta, beta = result.theta, result.fixef.to_numpy()
    est = _marginal_beta(result, theta, beta)
    out = pd.DataFrame({"Estimate": est}, index=result.fixef.index)
    if not std_errors:
        return out
    nt, p = theta.size, beta.size
    x = np.concatenate([theta, beta])
    J = np.zeros((p, nt + p))
    for i in range(nt + p):
        h = 1e-5 * max(abs(x[i]), 0.1)
        e = np.zeros(nt + p)
        e[i] = h
        J[:, i] = (_marginal_beta(result, *np.split(x + e, [nt]))
                   - _marginal_beta(result, *np.split(x - e, [nt]))) / (2 * h)
    layout = result.model.parameters
    idx = np.concatenate([layout.index("theta"), layout.index("beta")])
    cov = result.parameter_covariance()[np.ix_(idx, idx)]
    V = J @ cov @ J.T
    se = np.sqrt(np.diag(V))
    out["Std. Error"] = se
    out["z value"] = est / se
    return out

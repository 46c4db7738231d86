"""Quantities of a fitted LMM read off the factor at the optimum ``theta``."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .model import LinearMixedModel


def fixed_and_random(model: LinearMixedModel) -> tuple[np.ndarray, list[np.ndarray]]:
    """``beta`` and the random effects ``b_k = (I kron lambda_k) u_k`` per term, each as an
    ``(m_k, p_k)`` array of conditional modes."""
    u, beta = model.factor.solve_u_beta()
    lams = model.lambdas(model.theta)
    b = [uk.reshape(t.nlevels, t.p) @ lam.T for uk, t, lam in zip(u, model.reterms, lams)]
    return beta, b


def vcov_beta(model: LinearMixedModel, sigma: float) -> np.ndarray:
    """``sigma^2 (R_X' R_X)^{-1}`` with ``R_X'`` the fixed-effects block of ``L``."""
    K = model.factor.K
    LXX = model.factor.L[K][K][:-1, :-1]
    if LXX.shape[0] == 0:
        return np.zeros((0, 0))
    Linv = sla.solve_triangular(LXX, np.eye(LXX.shape[0]), lower=True, check_finite=False)
    return sigma**2 * (Linv.T @ Linv)


def conditional_covariances(model: LinearMixedModel, sigma: float) -> list[np.ndarray]:
    """Conditional covariance ``(m_k, p_k, p_k)`` of each term's random effects given the data
    and ``beta`` (lme4's ``condVar``): ``sigma^2 lambda [(L_Z L_Z')^{-1}]_kk lambda'``."""
    lams = model.lambdas(model.theta)
    out = []
    for k, lam in enumerate(lams):
        inv = model.factor.inverse_diag_blocks(k)
        out.append(sigma**2 * np.einsum("ij,mjk,lk->mil", lam, inv, lam))
    return out


def linear_predictor_re(reterms, b: list[np.ndarray], refs=None, z=None) -> np.ndarray:
    """``Z b`` without forming ``Z``; ``refs``/``z`` default to each term's own (training) data.
    Level code ``-1`` contributes zero (a level not seen in fitting)."""
    total = None
    for k, (t, bk) in enumerate(zip(reterms, b)):
        r = t.refs if refs is None else refs[k]
        zz = t.z if z is None else z[k]
        safe = np.where(r >= 0, r, 0)
        contrib = np.einsum("ij,ij->i", zz, bk[safe]) * (r >= 0)
        total = contrib if total is None else total + contrib
    return total if total is not None else 0.0

"""Quantities of a fitted LMM read off the factor at the optimum ``theta``."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .model import LinearMixedModel


def _fitted_theta(model: LinearMixedModel) -> np.ndarray:
    """The model's ``theta``, which a fitted model has set."""
    assert model.theta is not None, "the model has not been evaluated at any theta"
    return model.theta


def fixed_and_random(model: LinearMixedModel) -> tuple[np.ndarray, list[np.ndarray]]:
    """``beta`` and the random effects ``b_k = (I kron lambda_k) u_k`` per term, each as an
    ``(m_k, p_k)`` array of conditional modes."""
    u, beta = model.factor.solve_u_beta()
    return beta, model.design.random_effects(model.lambdas(_fitted_theta(model)), u)


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
    lams = model.lambdas(_fitted_theta(model))
    out = []
    for k, lam in enumerate(lams):
        inv = model.factor.inverse_diag_blocks(k)
        out.append(sigma**2 * np.einsum("ij,mjk,lk->mil", lam, inv, lam))
    return out

"""A plain GLM (no random effects) by iteratively reweighted least squares.

Used to start GLMM fits (fixed effects, dispersion) and as the null model for likelihood-ratio
tests of the random effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceWarning, GlammError


@dataclass
class GlmFit:
    """Result of :func:`fit_glm`: ``beta``, ``eta``, ``mu``, the deviance, the full
    log-likelihood (at the ML dispersion for families with one), the Pearson dispersion
    estimate and whether IRLS converged."""

    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    deviance: float
    loglik: float
    dispersion: float
    converged: bool
    iterations: int


def _no_valid_start(family) -> GlammError:
    return GlammError(
        f"no valid set of coefficients was found for the GLM that starts the fit: with the "
        f"{family.link.name} link the {family.name} means leave their range (as R's glm.fit "
        "reports); try another link or rescale the covariates"
    )


def _deviance(family, y: np.ndarray, mu: np.ndarray, wt: np.ndarray,
              dispersion: float) -> float:
    """IRLS's objective: the deviance, or ``-2`` log-likelihood at ``dispersion`` for the
    families outside the exponential family (no saturated model needed)."""
    if hasattr(family, "tmb_sigma"):
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-2.0 * np.sum(family.loglik(y, mu, wt, dispersion)))
    return float(np.sum(family.deviance_residuals(y, mu, wt)))


def fit_glm(X: np.ndarray, y: np.ndarray, wt: np.ndarray, offset: np.ndarray, family,
            maxiter: int = 100, tol: float = 1e-10, dispersion: float = 1.0) -> GlmFit:
    """Fit ``g(E y) = X beta + offset`` by IRLS with step-halving (R's ``glm.fit`` scheme);
    ``dispersion`` matters only for families whose working residual depends on it (the
    t's)."""
    link = family.link
    mu = family.mustart(y, wt)
    eta = link.link(mu)
    dev_old = _deviance(family, y, mu, wt, dispersion)
    beta = np.zeros(X.shape[1])
    converged = False
    it = 0
    for it in range(1, maxiter + 1):
        mu_eta = link.mu_eta(eta)
        w, _ = family.fisher_weights(eta, mu, wt, dispersion, mu_eta=mu_eta)
        resid = family.working_residual(y, mu, eta, wt, dispersion, w, mu_eta)
        if family.newton_pirls:   # Newton steps where the observed information is larger
            w_newton = np.maximum(w, -family.d2loglik_deta2(y, mu, eta, wt, dispersion))
            # the same score: w_newton * resid_newton = w * resid
            resid = resid * np.divide(w, w_newton, out=np.ones_like(w), where=w_newton > 0)
            w = w_newton
        z = eta - offset + resid
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and np.all(np.isfinite(z))):
            raise _no_valid_start(family)
        sw = np.sqrt(w)
        beta_new, *_ = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)
        step = 1.0
        for _ in range(30):
            b = beta + step * (beta_new - beta) if it > 1 else beta_new
            eta_new = X @ b + offset
            mu_new = link.inverse(eta_new)
            dev = _deviance(family, y, mu_new, wt, dispersion)
            if np.isfinite(dev) and (it == 1 or dev <= dev_old * (1 + 1e-12) + 1e-12):
                break
            step /= 2.0
        if not np.isfinite(dev):
            raise _no_valid_start(family)
        beta, eta, mu = b, eta_new, mu_new
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            converged = True
            dev_old = dev
            break
        dev_old = dev
    if not converged:
        import warnings

        warnings.warn("the GLM used to start the fit did not converge", ConvergenceWarning,
                      stacklevel=2)
    n, p = X.shape
    resid_df = max(n - p, 1)
    pearson = float(np.sum(wt * (y - mu) ** 2 / family.variance(mu)) / resid_df)
    disp = pearson if family.has_dispersion else 1.0
    loglik = float(np.sum(family.loglik(y, mu, wt, disp)))
    return GlmFit(beta=beta, eta=eta, mu=mu, deviance=dev_old, loglik=loglik,
                  dispersion=disp, converged=converged, iterations=it)

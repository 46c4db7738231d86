"""A plain GLM (no random effects) by iteratively reweighted least squares.

Used to start GLMM fits (fixed effects, dispersion) and as the null model for likelihood-ratio
tests of the random effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceWarning, GlammError
from ..optim import trace


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


def irls_step(evaluate, beta: np.ndarray, beta_new: np.ndarray, first: bool, dev_old: float,
              family):
    """IRLS's step-halving (R's ``glm.fit`` scheme): the first of the steps 1, 1/2, ... (30)
    from ``beta`` towards ``beta_new`` whose deviance ``evaluate(b) -> (dev, state)`` is
    finite and not above ``dev_old`` (beyond rounding; the first iteration takes the full
    step whatever its deviance, as it starts from the family's initial means). Returns
    ``(b, dev, state)``; raises the no-valid-start error if no deviance is finite."""
    step = 1.0
    for _ in range(30):
        b = beta + step * (beta_new - beta) if not first else beta_new
        dev, state = evaluate(b)
        if np.isfinite(dev) and (first or dev <= dev_old * (1 + 1e-12) + 1e-12):
            break
        step /= 2.0
    if not np.isfinite(dev):
        raise _no_valid_start(family)
    return b, dev, state


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
        def evaluate(b: np.ndarray):
            eta_b = X @ b + offset
            mu_b = link.inverse(eta_b)
            return _deviance(family, y, mu_b, wt, dispersion), (eta_b, mu_b)

        beta, dev, (eta, mu) = irls_step(evaluate, beta, beta_new, it == 1, dev_old, family)
        if trace.active():
            trace.report("IRLS", it, dev, beta)
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


def fit_glm_own_parameters(family, X: np.ndarray, y: np.ndarray, wt: np.ndarray,
                           offset: np.ndarray, beta: np.ndarray, extra: np.ndarray,
                           maxiter: int = 25, tol: float = 1e-4
                           ) -> tuple[np.ndarray, np.ndarray] | None:
    """Maximize a GLM's log-likelihood (no random effects) jointly in ``beta`` and the
    family's own parameters (``extra``, the scale of :meth:`~glamm.families.Family.
    extra_names`), by Newton steps with step halving from the given values. The GLMM fit's
    start for the families with ``refine_glm_start``: zero inflation, whose zero part would
    otherwise start from a rough guess (:meth:`~glamm.families.zero_inflated.ZeroInflated.
    extra_start`), and the ordinal family's thresholds.

    The family must give the per-row derivatives in its own parameters at fixed ``eta``
    (:meth:`~glamm.families.Family.extra_derivatives` with the observed information). The
    Hessian's ``beta`` block is ``X' diag(l_ee) X``, its ``beta``-by-own block ``X' ds`` (the
    score's derivatives), and the own parameters' block forward differences of their
    gradient. It stops when a step gains less than ``tol`` relative in the log-likelihood
    (a start needs no more). Returns ``(beta, extra)``, or ``None`` when no step improves on
    the start or the derivatives are not available."""
    link = family.link
    beta = np.asarray(beta, dtype=float).copy()
    extra = np.asarray(extra, dtype=float).copy()
    p, m = beta.size, extra.size

    def state(b: np.ndarray, e: np.ndarray):
        try:
            fam = family.with_extra(e)
            eta = X @ b + offset
            with np.errstate(all="ignore"):
                mu = link.inverse(eta)
                ll = float(np.sum(fam.loglik(y, mu, wt)))
        except (OverflowError, ValueError, ZeroDivisionError):   # (parameters out of range)
            return None
        return (fam, eta, mu, ll) if np.isfinite(ll) else None

    def own_gradient(fam, eta):
        try:
            with np.errstate(all="ignore"):
                return fam.extra_derivatives(y, eta, wt, observed=True)
        except (OverflowError, ValueError, ZeroDivisionError):
            return None

    cur = state(beta, extra)
    if cur is None:
        return None
    moved = False
    for _ in range(maxiter):
        fam, eta, mu, ll = cur
        with np.errstate(all="ignore"):
            s = fam.dloglik_deta(y, mu, eta, wt)
            l_ee = fam.d2loglik_deta2(y, mu, eta, wt)
        own = own_gradient(fam, eta)
        if own is None:
            break
        dlp, ds, _ = own
        g = np.concatenate([X.T @ s, dlp.sum(axis=0)])
        H = np.empty((p + m, p + m))
        H[:p, :p] = X.T @ (l_ee[:, None] * X)
        H[:p, p:] = X.T @ ds
        H[p:, :p] = H[:p, p:].T
        # the own parameters' block: the family's closed forms where it has them (NaN
        # elsewhere), forward differences of the own gradient for the other columns
        hess = getattr(fam, "extra_hessian", None)
        H[p:, p:] = hess(y, eta, wt) if hess is not None else np.nan
        for j in range(m):
            if not np.isnan(H[p:, p + j]).any():
                continue
            h = 1e-6 * max(1.0, abs(extra[j]))
            e = extra.copy()
            e[j] += h
            try:
                fam_h = family.with_extra(e)
            except (OverflowError, ValueError):
                break
            own_h = own_gradient(fam_h, eta)
            if own_h is None:
                break
            col = (own_h[0].sum(axis=0) - dlp.sum(axis=0)) / h
            H[p:, p + j] = col
            H[p + j, p:] = col
        if not (np.all(np.isfinite(H)) and np.all(np.isfinite(g))):
            break
        # an ascent step: -H shifted to positive definite where it is not
        negH = -H
        ev = np.linalg.eigvalsh(negH)
        shift = max(0.0, 1e-8 * max(abs(ev[-1]), 1.0) - ev[0])
        try:
            step = np.linalg.solve(negH + shift * np.eye(p + m), g)
        except np.linalg.LinAlgError:
            break
        # (a step beyond a few units is shortened first: the likelihood can be flat in a
        # zero part's coefficients, and far out the family's parameters overflow)
        t, improved = min(1.0, 5.0 / max(float(np.max(np.abs(step))), 1e-300)), None
        for _ in range(20):
            trial = state(beta + t * step[:p], extra + t * step[p:])
            if trial is not None and trial[3] >= ll:
                improved = trial
                break
            t /= 2.0
        if improved is None:
            break
        beta, extra = beta + t * step[:p], extra + t * step[p:]
        cur, moved = improved, True
        if improved[3] - ll < tol * (abs(ll) + 1.0) and float(g @ step) < tol * (abs(ll) + 1.0):
            break
    return (beta, extra) if moved else None

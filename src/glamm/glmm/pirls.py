"""PIRLS's parts that do not depend on where the rows are, shared by the in-memory GLMM
(:class:`glamm.glmm.model.GeneralizedLinearMixedModel`) and the partitioned one
(:class:`glamm.scale.glmm_model.PartitionedGLMM`): the stopping rules
(:class:`PirlsSettings`, :class:`ConvergenceTest`), the step-halving (:func:`halving_step`)
and the Newton weights (:func:`newton_weights`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .response import ResponseModel


@dataclass(frozen=True)
class PirlsSettings:
    """Stopping rules of PIRLS.

    Parameters
    ----------
    tol : float
        Stop when the penalized deviance changes by less than this (relative) ...
    step_tol : float
        ... and the largest change of a mode in the last step, or the distance left to the
        mode estimated from the rate of convergence, is below this.
    maxiter : int
        Iterations before giving up (:class:`PirlsError`).
    """

    tol: float = 1e-12
    step_tol: float = 1e-9
    maxiter: int = 200


#: looser PIRLS for a stage that only needs a starting point for the next one
LOOSE_PIRLS = PirlsSettings(tol=1e-9, step_tol=1e-6)


def newton_weights(response: ResponseModel, offset: np.ndarray, eta: np.ndarray,
                   mu: np.ndarray, w_fisher: np.ndarray, zwork: np.ndarray, kind: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """PIRLS weights from the observed information and the working response that keeps the
    score: ``z = eta + (z_fisher - eta) w_fisher / w`` (``zwork`` is the Fisher one, ``eta``
    minus the offset plus ``(y - mu) / mu_eta``). ``kind``: ``"newton"`` the observed
    information itself, negative rows included (Fisher's where it is exactly 0);
    ``"positive"`` the observed information where positive, Fisher's elsewhere;
    ``"safeguarded"`` per row the larger of the two (after an overshooting step);
    ``"observed"`` the observed information as it is (the exact Laplace log-determinant)."""
    observed = response.observed_weights(eta, mu)
    if kind == "newton":
        w = np.where(observed != 0.0, observed, w_fisher)
    elif kind == "positive":
        w = np.where(observed > 0, observed, w_fisher)
    elif kind == "observed":
        w = observed
    else:
        w = np.maximum(w_fisher, observed)
    ratio = np.divide(w_fisher, w, out=np.ones_like(w), where=w != 0.0)
    base = eta - offset
    return w, base + (zwork - base) * ratio


def halving_step(evaluate, u: np.ndarray, u_new: np.ndarray, b_fix: np.ndarray,
                 beta_new: np.ndarray | None, pdev: float):
    """PIRLS's step-halving: the first of the steps 1, 1/2, 1/4, ... (40 of them) from
    ``(u, b_fix)`` towards ``(u_new, beta_new)`` (``beta_new`` ``None``: ``beta`` held)
    whose penalized deviance ``evaluate(u_try, b_try) -> (pdev_try, state)`` is finite and
    not above ``pdev`` (up to 1e-14 of it). Returns ``(u_try, b_try, pdev_try, state)``, or
    ``None`` when no step decreases it (at the mode to rounding)."""
    step = 1.0
    for _ in range(40):
        u_try = u + step * (u_new - u)
        b_try = b_fix + step * (beta_new - b_fix) if beta_new is not None else b_fix
        pdev_try, state = evaluate(u_try, b_try)
        if np.isfinite(pdev_try) and pdev_try <= pdev + 1e-14 * abs(pdev):
            return u_try, b_try, pdev_try, state
        step /= 2.0
    return None


class ConvergenceTest:
    """PIRLS's stopping rule (:class:`PirlsSettings`): the penalized deviance no longer
    changes AND the modes no longer move. The log-determinant is not stationary at the mode,
    so a mode that is off by ``d`` moves the Laplace value by ``O(d)``; Fisher scoring
    converges only linearly for non-canonical links, where a small change in deviance can hide
    ``d ~ 1e-5``, so the distance left is also estimated from the rate of convergence."""

    def __init__(self, settings: PirlsSettings) -> None:
        self.settings = settings
        self.prev_moved = 0.0

    def __call__(self, change: float, pdev: float, du: np.ndarray,
                 dbeta: np.ndarray | None) -> bool:
        """After a step that changed the penalized deviance (now ``pdev``) by ``change`` and
        moved the modes by ``du`` (and ``beta`` by ``dbeta`` when it moves): converged?"""
        moved = float(np.max(np.abs(du), initial=0.0))
        if dbeta is not None:
            moved = max(moved, float(np.max(np.abs(dbeta), initial=0.0)))
        rate = moved / self.prev_moved if self.prev_moved > 0 else 1.0
        remaining = moved * rate / (1.0 - rate) if rate < 1.0 else np.inf
        self.prev_moved = moved
        return change < self.settings.tol * (abs(pdev) + 0.1) and (
            moved < self.settings.step_tol or remaining < self.settings.step_tol)

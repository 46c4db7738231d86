"""Newton's method on finite-difference or supplied derivatives, for the smooth objectives
whose evaluations are expensive (GLMM deviances): a Hessian once (or a cheap steering one),
gradients each step with BFGS corrections in between, backtracking line search, and lower
bounds handled by pinning parameters that reach them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import trace
from .optsummary import OptSummary


class NewtonResult(NamedTuple):
    """The outcome of :func:`newton_minimize` (a named tuple, so it also unpacks as
    ``ok, x, fx, H, x_h``).

    Attributes
    ----------
    converged : bool
        Whether the Newton decrement became small (false: no descent step was found first).
    x : ndarray
        The final point; ``fx`` the objective there.
    hessian : ndarray
        The last Hessian (steering or accurate, see the derivative provider).
    hessian_at : ndarray
        Where ``hessian`` was taken (a Hessian at ``x`` can serve for standard errors).
    """

    converged: bool
    x: np.ndarray
    fx: float
    hessian: np.ndarray
    hessian_at: np.ndarray


#: the Hessian is recomputed when an iterate has moved more than this many ``scale`` units
#: from where it was taken (nearer, BFGS corrections keep Newton superlinear). A derivative
#: provider may set its own ``rehess_distance``: one whose Hessian only steers (the standard
#: errors compute theirs at the optimum) can let BFGS carry it further
REHESS_DISTANCE = 0.5


def newton_minimize(f, x0: np.ndarray, lower: np.ndarray, record: OptSummary,
                    scale: np.ndarray, max_iter: int = 30, derivs=None,
                    hessian: np.ndarray | None = None,
                    ) -> NewtonResult:
    """Minimize a smooth ``f`` from a nearby start by Newton steps (the Hessian once, or
    ``hessian`` if given, the
    gradient every step; the Hessian is recomputed if the iterate moves far from where it was
    taken, so it can serve for standard errors).

    ``derivs`` supplies the derivatives (:class:`AnalyticDerivatives` or, by default,
    :class:`FiniteDifferences`). A parameter on its lower bound whose gradient points outward
    stays on the bound. Returns a :class:`NewtonResult` (``converged`` is false when no
    descent step is found before the gradient is small)."""
    d = derivs if derivs is not None else FiniteDifferences(f)
    d.record = record
    rehess = getattr(d, "rehess_distance", REHESS_DISTANCE)
    x = np.asarray(x0, dtype=float).copy()
    if hessian is not None:   # a steering Hessian from an earlier stage: gradient only
        fx = d.value(x)
        g, H = d.grad(x, fx), hessian
    else:
        g, H, fx = _steering_hessian(d, x)
    x_h = x.copy()
    pinned = np.zeros(x.size, dtype=bool)
    for _ in range(max_iter):
        at_bound = np.isfinite(lower) & (x <= lower + 1e-12)
        # a parameter the line search clipped to its bound stays there for this run (else it
        # bounces between the bound and tiny values and Newton crawls); callers retry from
        # the bound or from inside when it matters
        free = ~((at_bound & (g > 0)) | (pinned & at_bound))
        if not free.any():
            return NewtonResult(True, x, fx, H, x_h)
        Hf = H[np.ix_(free, free)]
        gf = g[free]
        step = _newton_step(Hf, gf)
        if step is None:
            return NewtonResult(False, x, fx, H, x_h)
        decrement = float(-gf @ step)
        if decrement < 1e-13 * (abs(fx) + 1.0):
            if getattr(d, "exact_gradient", False):
                x, fx = _last_step(d, x, fx, step, free, lower)
            return NewtonResult(True, x, fx, H, x_h)
        # a step far beyond the parameters' scale (a nearly singular Hessian) is shortened
        # before the line search: the objective can overflow out there
        reach = float(np.max(np.abs(step) / scale[free]))
        t, improved = (min(1.0, 10.0 / reach) if reach > 0 else 1.0), False
        for _ in range(12):
            trial = x.copy()
            trial[free] = np.maximum(x[free] + t * step, lower[free])
            ft = d.value(trial)
            if ft < fx:
                improved = True
                break
            t /= 2.0
        if not improved:
            # at the optimum to within the noise of the derivatives, or a bad model of f
            return NewtonResult(decrement < 1e-6 * (abs(fx) + 1.0), x, fx, H, x_h)
        pinned |= (np.isfinite(lower) & (trial <= lower + 1e-12)
                   & (x + t * _full(step, free, x.size) < lower))
        x_old, g_old = x, g
        x, fx = trial, ft
        if trace.active():
            trace.report("newton", record.feval, fx, x)
        if np.any(np.abs(x - x_h) > rehess * scale):
            g, H, fx = _steering_hessian(d, x)
            x_h = x.copy()
        else:
            g = d.grad(x, fx)
            H = _bfgs_update(H, x - x_old, g - g_old)
    return NewtonResult(False, x, fx, H, x_h)


def _last_step(d, x: np.ndarray, fx: float, step: np.ndarray, free: np.ndarray,
               lower: np.ndarray) -> tuple[np.ndarray, float]:
    """The Newton step that is left once the decrement is negligible, taken when the
    gradient is exact (``d.exact_gradient``): the point's distance to the optimum is then
    about ``sqrt(decrement / curvature)`` (1e-7 in a coefficient), the step's result its
    square. Kept if the deviance is not higher (else the state goes back to ``x``), so fits
    that differ only in rounding (another row order, partitioned data) stop together."""
    trial = x.copy()
    trial[free] = np.maximum(x[free] + step, lower[free])
    ft = d.value(trial)
    if ft <= fx:
        return trial, ft
    d.value(x)
    return x, fx


def _full(step: np.ndarray, free: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[free] = step
    return out


def _bfgs_update(H: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """BFGS correction of the Hessian from a step ``s`` and the change ``y`` of the gradient,
    so Newton converges superlinearly although its Hessian was taken elsewhere (skipped
    unless ``s'y > 0``, which keeps ``H`` positive definite)."""
    sy = float(s @ y)
    Hs = H @ s
    sHs = float(s @ Hs)
    if sy <= 1e-12 * np.linalg.norm(s) * np.linalg.norm(y) or sHs <= 0:
        return H
    return H + np.outer(y, y) / sy - np.outer(Hs, Hs) / sHs


def _steering_hessian(d, x: np.ndarray):
    """Hessian to steer Newton: the derivative provider's cheap ``steering_hessian`` if it has
    one (glmm.derivatives), else its full ``grad_hess``. Newton converges with an approximate
    one in a step or two more (BFGS corrections help), and the accurate Hessian is computed
    once, at the optimum, for the standard errors."""
    steer = getattr(d, "steering_hessian", None)
    return steer(x) if steer is not None else d.grad_hess(x)


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray | None:
    """``-H^{-1} g``, with ``H`` shifted towards positive definiteness if it is not; ``None``
    when the derivatives are not finite (the caller then hands over to BOBYQA)."""
    if not (np.all(np.isfinite(H)) and np.all(np.isfinite(g))):
        return None
    ev = np.linalg.eigvalsh(H)
    shift = 0.0
    if ev[0] <= 1e-10 * max(abs(ev[-1]), 1.0):
        shift = abs(ev[0]) + 1e-6 * max(abs(ev[-1]), 1.0)
    try:
        step = -np.linalg.solve(H + shift * np.eye(H.shape[0]), g)
    except np.linalg.LinAlgError:
        return None
    return step if np.all(np.isfinite(step)) else None


class FiniteDifferences:
    """Central-difference derivatives of ``f`` (evaluations counted in ``record``)."""

    def __init__(self, f, record: OptSummary | None = None):
        self.f, self.record = f, record

    def value(self, x: np.ndarray) -> float:
        if self.record is not None:
            self.record.feval += 1
        return float(self.f(x))

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        return gradient(self.value, x, fx)

    def grad_hess(self, x: np.ndarray, central: bool = True):
        return gradient_hessian(self.value, x, with_value=True)


def gradient(f, x: np.ndarray, fx: float | None = None, rel_step: float = 1e-4) -> np.ndarray:
    """Central-difference gradient (``2n`` evaluations)."""
    n = x.size
    h = rel_step * np.maximum(np.abs(x), 0.1)
    g = np.zeros(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h[i]
        g[i] = (f(x + e) - f(x - e)) / (2 * h[i])
    return g


def gradient_hessian(f, x: np.ndarray, rel_step: float = 1e-4, with_value: bool = False):
    """Central-difference gradient and Hessian of ``f`` at ``x`` (steps
    ``rel_step * max(|x|, 0.1)``); ``1 + 2n + n(n-1)`` evaluations. With ``with_value`` also
    returns ``f(x)``.

    ``theta`` on its bound at 0 is fine: the objective is even in each diagonal element of
    ``lambda`` (flipping its sign flips the sign of the corresponding ``u``)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    h = rel_step * np.maximum(np.abs(x), 0.1)
    f0 = f(x)
    H = np.zeros((n, n))
    fp = np.zeros(n)
    fm = np.zeros(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h[i]
        fp[i], fm[i] = f(x + e), f(x - e)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for i in range(n):
        for j in range(i):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i], ej[j] = h[i], h[j]
            fpp, fmm = f(x + ei + ej), f(x - ei - ej)
            cross = fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm
            H[i, j] = H[j, i] = cross / (2 * h[i] * h[j])
    g = (fp - fm) / (2 * h)
    if with_value:
        return g, H, f0
    return g, H

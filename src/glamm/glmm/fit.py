"""Fit a GLMM by the Laplace approximation: a fast fit over ``theta`` (``beta`` inside PIRLS),
then, unless ``fast=True``, a full fit over (``theta``, ``beta``, and the dispersion or
negative-binomial shape where the family has one) started from it, as lme4 and MixedModels.jl
do. Standard errors come from the Hessian of the Laplace deviance in all parameters.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvergenceWarning
from ..linalg.threads import single_threaded
from ..optim.backends import minimize
from ..optim.optsummary import OptSummary
from .glm import fit_glm
from .model import GeneralizedLinearMixedModel


@dataclass
class GlmmFitRecord:
    """The optimization records of a GLMM fit: ``fast`` (over ``theta``) and ``full`` (over all
    parameters; ``None`` for ``fast=True`` fits) and the parameter names of the full vector."""

    fast: OptSummary
    full: OptSummary | None
    names: list[str] = field(default_factory=list)
    #: Hessian of the deviance in all parameters at (or within a Newton step of) the optimum
    hessian: np.ndarray | None = None
    hessian_at: np.ndarray | None = None
    #: quadrature points per dimension (1: Laplace) and, for nagq > 1, the quadrature object
    nagq: int = 1
    quadrature: object | None = None
    #: the Laplace fit the quadrature fit started from
    laplace_loglik: float | None = None
    #: the family as given (before a negative binomial's shape was put in)
    base_family: object | None = None


def _extra_names(family) -> list[str]:
    if getattr(family, "has_shape", False):
        return ["log(shape)"]
    if family.has_dispersion:
        return ["log(dispersion)"]
    return []


def set_extra(model: GeneralizedLinearMixedModel, base_family, extra: np.ndarray) -> None:
    """Put the dispersion or shape parameter (log scale) into the model."""
    if getattr(base_family, "has_shape", False):
        model.family = base_family.with_shape(float(np.exp(extra[0])))
    elif base_family.has_dispersion:
        model.dispersion = float(np.exp(extra[0]))


def full_objective(model: GeneralizedLinearMixedModel, base_family):
    """``f(x)`` with ``x = [theta, beta, extra]``: the Laplace deviance (PIRLS over ``u``)."""
    nt, p = model.n_theta, model.p

    def f(x: np.ndarray) -> float:
        set_extra(model, base_family, x[nt + p:])
        value = model.objective(x[:nt], x[nt:nt + p])
        if model.penalty is not None:
            value += model.penalty.deviance(x[nt:nt + p])
        return value

    return f


def fit_glmm(
    model: GeneralizedLinearMixedModel,
    fast: bool = False,
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
    blas_threads: int | None = 1,
    **settings,
) -> GlmmFitRecord:
    """Fit ``model`` in place (its state ends at the optimum) and return the records."""
    with single_threaded(blas_threads):
        return _fit(model, fast, start, optimizer, **settings)


def _fit(model, fast, start, optimizer, **settings) -> GlmmFitRecord:
    base_family = model.family
    glm = fit_glm(model.X, model.y, model.wt, model.offset, base_family)
    model.beta = glm.beta.copy()
    extra0 = np.zeros(0)
    if getattr(base_family, "has_shape", False):
        mu = glm.mu
        excess = np.sum((model.y - mu) ** 2 - mu)
        shape0 = float(np.clip(np.sum(mu**2) / excess, 0.05, 1e4)) if excess > 0 else 100.0
        extra0 = np.array([np.log(shape0)])
    elif base_family.has_dispersion:
        extra0 = np.array([np.log(glm.dispersion)])
    set_extra(model, base_family, extra0)

    lower = model.layout.lower()
    theta0 = model.layout.initial() if start is None else np.asarray(start, dtype=float)
    # the fast fit is the answer when fast=True; otherwise only the start of the Newton stage,
    # which needs it to about 1e-4
    fast_settings = {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-8} if fast else \
        {"ftol_rel": 1e-6, "ftol_abs": 0.0, "xtol_abs": 1e-3}
    if fast:
        fast_settings.update(settings)
    if not fast:
        # only a starting point for Newton: looser PIRLS too
        model.PIRLS_TOL, model.PIRLS_STEP_TOL = 1e-9, 1e-6
    try:
        os_fast = minimize(model.objective_fast, np.maximum(theta0, lower), lower,
                           optimizer=optimizer, **fast_settings)
    finally:
        model.PIRLS_TOL = GeneralizedLinearMixedModel.PIRLS_TOL
        model.PIRLS_STEP_TOL = GeneralizedLinearMixedModel.PIRLS_STEP_TOL
    if not np.isfinite(os_fast.fmin) and not getattr(model, "separated", False):
        # (with separation the coefficients diverge and PIRLS cannot settle; the caller has
        # already reported that, and the fit goes on as lme4's does)
        from ..errors import GlammError

        raise GlammError(
            "PIRLS could not find the conditional modes at any value tried (non-finite "
            "deviance even after step-halving); check the response against the family and "
            "link, and the scale of the covariates"
        )
    model.objective_fast(os_fast.final)
    names = model.layout.names() + list(model.frame.xnames) + _extra_names(base_family)
    if fast:
        _warn(os_fast)
        return GlmmFitRecord(fast=os_fast, full=None, names=names, base_family=base_family)

    # full fit from the fast optimum; initial steps: 0.1 for theta, ~ standard errors for beta
    nt, p = model.n_theta, model.p
    x0 = np.concatenate([os_fast.final, model.beta, extra0])
    lo = np.concatenate([lower, np.full(p + extra0.size, -np.inf)])
    se_beta = _fast_stderr(model)
    step = np.concatenate([np.full(nt, 0.1), np.where(np.isfinite(se_beta) & (se_beta > 0),
                                                      se_beta, 0.1), np.full(extra0.size, 0.1)])
    f = full_objective(model, base_family)
    os_full = OptSummary(optimizer="newton (finite-difference derivatives)", initial=x0.copy(),
                         lower=lo.copy())
    t0 = time.perf_counter()
    derivs = _derivatives(f, model)
    ok, x, fx, H = newton_minimize(f, x0, lo, os_full, scale=step, derivs=derivs)
    if not ok:
        # Newton could not make progress from the fast fit (far from the optimum or on a
        # boundary): fall back to BOBYQA, then polish
        full_settings = {"ftol_rel": 1e-10, "ftol_abs": 0.0, "xtol_abs": 1e-8}
        full_settings.update(settings)
        full_settings.setdefault("initial_step", step)
        os_b = minimize(f, x, lo, optimizer=optimizer, **full_settings)
        os_full.optimizer = f"{os_b.optimizer} + newton"
        os_full.feval += os_b.feval
        os_full.messages.append(f"Newton from the fast fit stalled; {os_b.optimizer} took over")
        ok, x, fx, H = newton_minimize(f, os_b.final, lo, os_full, scale=step, derivs=derivs)
    # a variance parameter ending near zero: the optimum may be on the boundary, where BOBYQA
    # and Newton creep slowly (the deviance is flat there); try it exactly on the bound
    near = np.flatnonzero(np.isfinite(lo[:nt]) & (x[:nt] > lo[:nt]) & (x[:nt] < lo[:nt] + 1e-3))
    if near.size:
        trial = x.copy()
        trial[near] = lo[near]
        ok_b, xb, fb, Hb = newton_minimize(f, trial, lo, os_full, scale=step, derivs=derivs)
        if fb <= fx:
            x, fx, H, ok = xb, fb, Hb, ok_b
            os_full.messages.append(f"theta{list(near)} set to the boundary (singular fit)")
    os_full.final, os_full.fmin = x, fx
    if isinstance(derivs, AnalyticDerivatives) or (
            H is not None and not np.array_equal(x, _last_hessian_point[0])):
        # an approximate steering Hessian, or one taken away from the optimum: standard
        # errors compute the accurate one at the optimum, on demand
        H = None
    os_full.converged = ok
    os_full.returnvalue = "NEWTON_CONVERGED" if ok else "NEWTON_STALLED"
    os_full.elapsed = time.perf_counter() - t0
    f(x)  # leave the state at the optimum
    _warn(os_full)
    return GlmmFitRecord(fast=os_fast, full=os_full, names=names, hessian=H, hessian_at=x,
                         base_family=base_family)


def newton_minimize(f, x0: np.ndarray, lower: np.ndarray, record: OptSummary,
                    scale: np.ndarray, max_iter: int = 30, derivs=None,
                    hessian: np.ndarray | None = None,
                    ) -> tuple[bool, np.ndarray, float, np.ndarray]:
    """Minimize a smooth ``f`` from a nearby start by Newton steps (the Hessian once, or
    ``hessian`` if given, the
    gradient every step; the Hessian is recomputed if the iterate moves far from where it was
    taken, so it can serve for standard errors).

    ``derivs`` supplies the derivatives (:class:`AnalyticDerivatives` or, by default,
    :class:`FiniteDifferences`). A parameter on its lower bound whose gradient points outward
    stays on the bound. Returns ``(converged, x, f(x), Hessian)``; ``converged`` is false when
    no descent step is found before the gradient is small."""
    d = derivs if derivs is not None else FiniteDifferences(f)
    d.record = record
    x = np.asarray(x0, dtype=float).copy()
    if hessian is not None:   # a steering Hessian from an earlier stage: gradient only
        fx = d.value(x)
        g, H = d.grad(x, fx), hessian
    else:
        g, H, fx = _steering_hessian(d, x)
    x_h = x.copy()
    _last_hessian_point[0] = x_h
    pinned = np.zeros(x.size, dtype=bool)
    for _ in range(max_iter):
        at_bound = np.isfinite(lower) & (x <= lower + 1e-12)
        # a parameter the line search clipped to its bound stays there for this run (else it
        # bounces between the bound and tiny values and Newton crawls); callers retry from
        # the bound or from inside when it matters
        free = ~((at_bound & (g > 0)) | (pinned & at_bound))
        if not free.any():
            return True, x, fx, H
        Hf = H[np.ix_(free, free)]
        gf = g[free]
        step = _newton_step(Hf, gf)
        if step is None:
            return False, x, fx, H
        decrement = float(-gf @ step)
        if decrement < 1e-11 * (abs(fx) + 1.0):
            return True, x, fx, H
        t, improved = 1.0, False
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
            return decrement < 1e-6 * (abs(fx) + 1.0), x, fx, H
        pinned |= np.isfinite(lower) & (trial <= lower + 1e-12) & (x + t * _full(step, free, x.size) < lower)
        x_old, g_old = x, g
        x, fx = trial, ft
        if np.any(np.abs(x - x_h) > 0.5 * scale):
            g, H, fx = _steering_hessian(d, x)
            x_h = x.copy()
            _last_hessian_point[0] = x_h
        else:
            g = d.grad(x, fx)
            H = _bfgs_update(H, x - x_old, g - g_old)
    return False, x, fx, H


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
    """Hessian to steer Newton: with analytic gradients, forward differences in the ``theta``
    (and dispersion) directions and, for ``beta``, twice the Schur complement of the mode's
    information (exact but for the log-determinant's small curvature); central finite
    differences of values otherwise. Newton converges with it in a step or two more, and the
    accurate Hessian is computed once, at the optimum, for the standard errors."""
    if isinstance(d, (AnalyticDerivatives, FixedNodeDerivatives)):
        return d.steering_hessian(x)
    return d.grad_hess(x)


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


class AnalyticDerivatives(FiniteDifferences):
    """Analytic gradient of the Laplace deviance in ``[theta, beta]`` (glmm.gradient), central
    differences for the dispersion or shape parameter, and the Hessian by central differences
    of the gradient (``2n`` gradient evaluations instead of ``n^2`` function evaluations)."""

    def __init__(self, f, model: GeneralizedLinearMixedModel, record: OptSummary | None = None):
        super().__init__(f, record)
        self.model = model
        self._at: np.ndarray | None = None

    def value(self, x: np.ndarray) -> float:
        val = super().value(x)
        self._at = np.array(x, copy=True)
        return val

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        from .gradient import laplace_gradient

        m = self.model
        nt, p = m.n_theta, m.p
        if self._at is None or not np.array_equal(self._at, x):
            self.value(x)
        g = laplace_gradient(m, x[:nt], x[nt:nt + p])
        if m.penalty is not None:
            g[nt:] += m.penalty.deviance_gradient(x[nt:nt + p])
        extra = x.size - nt - p
        if extra:
            ge = np.zeros(extra)
            for i in range(extra):
                j = nt + p + i
                h = 1e-4 * max(abs(x[j]), 0.1)
                e = np.zeros(x.size)
                e[j] = h
                ge[i] = (self.value(x + e) - self.value(x - e)) / (2 * h)
            self.value(x)
            g = np.concatenate([g, ge])
        return g

    def steering_hessian(self, x: np.ndarray):
        """See :func:`_steering_hessian`."""
        from .gradient import laplace_gradient

        m = self.model
        nt, p = m.n_theta, m.p
        fx = self.value(x)
        g_tb, S = laplace_gradient(m, x[:nt], x[nt:nt + p], schur=True)
        g = self.grad(x, fx)
        n = x.size
        H = np.zeros((n, n))
        H[nt:nt + p, nt:nt + p] = 2.0 * S
        for j in [*range(nt), *range(nt + p, n)]:
            h = 1e-5 * max(abs(x[j]), 0.1)
            e = np.zeros(n)
            e[j] = h
            col = (self.grad(x + e) - g) / h
            H[:, j] = col
            H[j, :] = col
        self.value(x)
        return g, H, fx

    def grad_hess(self, x: np.ndarray, central: bool = True):
        """Gradient, Hessian (differences of gradients: central, or forward with half the
        cost when it only steers Newton steps) and value at ``x``."""
        fx = self.value(x)
        g = self.grad(x, fx)
        n = x.size
        H = np.zeros((n, n))
        for j in range(n):
            h = 1e-5 * max(abs(x[j]), 0.1)
            e = np.zeros(n)
            e[j] = h
            if central:
                H[:, j] = (self.grad(x + e) - self.grad(x - e)) / (2 * h)
            else:
                H[:, j] = (self.grad(x + e) - g) / h
        H = 0.5 * (H + H.T)
        self.value(x)
        return g, H, fx


#: where the last Hessian of :func:`newton_minimize` was taken (single-threaded use)
_last_hessian_point: list = [None]


def _newton_step(H: np.ndarray, g: np.ndarray) -> np.ndarray | None:
    """``-H^{-1} g``, with ``H`` shifted towards positive definiteness if it is not."""
    ev = np.linalg.eigvalsh(H)
    shift = 0.0
    if ev[0] <= 1e-10 * max(abs(ev[-1]), 1.0):
        shift = abs(ev[0]) + 1e-6 * max(abs(ev[-1]), 1.0)
    try:
        step = -np.linalg.solve(H + shift * np.eye(H.shape[0]), g)
    except np.linalg.LinAlgError:
        return None
    return step if np.all(np.isfinite(step)) else None


class _Counter:
    """Counts evaluations into an :class:`OptSummary`."""

    def __init__(self, f, record: OptSummary):
        self.f, self.record = f, record

    def __call__(self, x: np.ndarray) -> float:
        self.record.feval += 1
        return float(self.f(x))


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


class FixedNodeDerivatives(FiniteDifferences):
    """Derivatives of the quadrature deviance with the adaptive nodes held where they were
    placed for the current point (GLMMadaptive's gradient): analytic gradients, and a Hessian
    from differences of them that needs no PIRLS (the nodes do not move). At a point where they
    vanish the nodes' own dependence on the parameters is ignored, which moves the optimum by
    far less than the quadrature error; :func:`fit_agq` finishes with finite differences of
    the true objective."""

    def __init__(self, f, model: GeneralizedLinearMixedModel, quadrature):
        super().__init__(f)
        self.model, self.quad = model, quadrature
        self._nodes_at: np.ndarray | None = None
        self._nodes = None

    def _nodes_for(self, x: np.ndarray):
        nt = self.model.n_theta
        if self._nodes_at is None or not np.array_equal(self._nodes_at, x):
            self._nodes = self.quad.adapt(x[:nt], x[nt:])
            self._nodes_at = np.array(x, copy=True)
        return self._nodes

    #: added to the gradient (the effect of the nodes' movement, measured elsewhere)
    correction: np.ndarray | None = None

    def _fixed_grad(self, nodes, x: np.ndarray) -> np.ndarray:
        nt = self.model.n_theta
        _, g = self.quad.fixed_node_loglik(nodes, x[:nt], x[nt:], gradient=True)
        g = -2.0 * g
        if self.correction is not None:
            g = g + self.correction
        if self.model.penalty is not None:
            g[nt:] += self.model.penalty.deviance_gradient(x[nt:])
        return g

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        return self._fixed_grad(self._nodes_for(x), x)

    def grad_hess(self, x: np.ndarray, central: bool = True):
        fx = self.value(x)
        nodes = self._nodes_for(x)
        g = self._fixed_grad(nodes, x)
        n = x.size
        H = np.zeros((n, n))
        for j in range(n):
            h = 1e-5 * max(abs(x[j]), 0.1)
            e = np.zeros(n)
            e[j] = h
            H[:, j] = (self._fixed_grad(nodes, x + e) - g) / h
        return g, 0.5 * (H + H.T), fx

    def steering_hessian(self, x: np.ndarray):
        return self.grad_hess(x)


def _derivatives(f, model: GeneralizedLinearMixedModel):
    """Analytic gradients where the dense ``G^-1`` is affordable, finite differences else."""
    from .gradient import MAX_Q

    q = sum(t.q for t in model.reterms)
    # the analytic gradient assumes the factor holds Fisher weights (canonical links, or
    # laplace="expected" would need the derivative of the weights only; observed weights
    # need third derivatives of the log-density, which are not implemented)
    if q <= MAX_Q and not model.observed_information and model.family.link_is_canonical:
        return AnalyticDerivatives(f, model)
    return FiniteDifferences(f)


def quadrature_objective(model: GeneralizedLinearMixedModel, base_family, quadrature):
    """``f(x)`` with ``x = [theta, beta, extra]``: ``-2`` times the quadrature log-likelihood."""
    nt, p = model.n_theta, model.p

    def f(x: np.ndarray) -> float:
        set_extra(model, base_family, x[nt + p:])
        ll = quadrature.loglik(x[:nt], x[nt:nt + p])
        if not np.isfinite(ll):
            return float("inf")
        value = -2.0 * ll
        if model.penalty is not None:
            value += model.penalty.deviance(x[nt:nt + p])
        return value

    return f


def fit_agq(model: GeneralizedLinearMixedModel, nagq: int, optimizer: str = "bobyqa",
            blas_threads: int | None = 1, **settings) -> GlmmFitRecord:
    """Maximize the adaptive Gauss-Hermite log-likelihood, starting from the Laplace fit:
    Newton steps on finite-difference derivatives (BOBYQA if they stall), a boundary check for
    variances near zero, and the Hessian at the optimum for the standard errors."""
    from .agq import AdaptiveQuadrature

    quad = AdaptiveQuadrature(model, nagq)   # checks the model first (one grouping factor)
    laplace = fit_glmm(model, fast=False, optimizer=optimizer, blas_threads=blas_threads)
    base_family = laplace.base_family
    with single_threaded(blas_threads):
        nt, p = model.n_theta, model.p
        x0 = laplace.full.final.copy()
        lo = np.concatenate([model.layout.lower(), np.full(x0.size - nt, -np.inf)])
        f = quadrature_objective(model, base_family, quad)
        rec = OptSummary(optimizer=f"newton on AGQ({nagq}) (finite differences)",
                         initial=x0.copy(), lower=lo.copy())
        t0 = time.perf_counter()
        scale = np.maximum(np.abs(x0) * 0.1, 0.05)
        derivs = FiniteDifferences(f)
        if x0.size == nt + p:
            # no dispersion or shape: first with gradients at fixed nodes (cheap, analytic),
            # then polish on the true objective's finite-difference gradient, steered by that
            # Hessian
            fixed = FixedNodeDerivatives(f, model, quad)
            _, x1, f1, H1 = newton_minimize(f, x0, lo, rec, scale=scale, derivs=fixed)
            # the nodes' own movement shifts the gradient by a slowly varying amount: measure
            # it once by finite differences, iterate on the corrected cheap gradient, then
            # check (and if needed finish) on finite differences of the true objective
            fixed.correction = derivs.grad(x1, f1) - fixed.grad(x1, f1)
            _, x2, _, _ = newton_minimize(f, x1, lo, rec, scale=scale, derivs=fixed, hessian=H1)
            fixed.correction = None
            ok, x, fx, H = newton_minimize(f, x2, lo, rec, scale=scale, derivs=derivs,
                                           hessian=H1)
        else:
            ok, x, fx, H = newton_minimize(f, x0, lo, rec, scale=scale, derivs=derivs)
        if not ok:
            opts = {"ftol_rel": 1e-12, "ftol_abs": 0.0, "xtol_abs": 1e-9, "initial_step": 0.1}
            opts.update(settings)
            os_b = minimize(f, x, lo, optimizer=optimizer, **opts)
            rec.feval += os_b.feval
            rec.messages.append(f"Newton stalled; {os_b.optimizer} took over")
            ok, x, fx, H = newton_minimize(f, os_b.final, lo, rec, scale=scale, derivs=derivs)
        near = np.flatnonzero(np.isfinite(lo[:nt]) & (x[:nt] > lo[:nt]) & (x[:nt] < lo[:nt] + 1e-3))
        if near.size:
            trial = x.copy()
            trial[near] = lo[near]
            ok_b, xb, fb, Hb = newton_minimize(f, trial, lo, rec, scale=scale, derivs=derivs)
            if fb <= fx:
                x, fx, H, ok = xb, fb, Hb, ok_b
                rec.messages.append(f"theta{list(near)} set to the boundary (singular fit)")
        H = None   # steering Hessians only: standard errors take the true one, on demand
        rec.final, rec.fmin, rec.converged = x, fx, ok
        rec.returnvalue = "NEWTON_CONVERGED" if ok else "NEWTON_STALLED"
        rec.elapsed = time.perf_counter() - t0
        f(x)
    _warn(rec)
    return GlmmFitRecord(fast=laplace.fast, full=rec, names=laplace.names, hessian=H,
                         hessian_at=x, nagq=nagq, quadrature=quad,
                         laplace_loglik=-0.5 * laplace.full.fmin)


def _fast_stderr(model: GeneralizedLinearMixedModel) -> np.ndarray:
    """Standard errors of ``beta`` from the fixed-effects block of the fast fit's factor."""
    fac = model.fac_b
    K = fac.K
    LXX = fac.L[K][K][:-1, :-1]
    if LXX.shape[0] == 0:
        return np.zeros(0)
    import scipy.linalg as sla

    Linv = sla.solve_triangular(LXX, np.eye(LXX.shape[0]), lower=True, check_finite=False)
    return np.sqrt(np.sum(Linv**2, axis=0))


def _warn(os_: OptSummary) -> None:
    if not os_.converged:
        warnings.warn(f"the optimizer did not converge ({os_.returnvalue})", ConvergenceWarning,
                      stacklevel=4)


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
            H[i, j] = H[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (2 * h[i] * h[j])
    g = (fp - fm) / (2 * h)
    if with_value:
        return g, H, f0
    return g, H


def hessian(f, x: np.ndarray, rel_step: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x`` (see :func:`gradient_hessian`)."""
    return gradient_hessian(f, x, rel_step)[1]

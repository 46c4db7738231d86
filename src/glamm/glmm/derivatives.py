"""Derivatives of the GLMM deviances for the Newton fits: analytic Laplace gradients
(glmm.gradient), gradients of the quadrature log-likelihood with the adaptive nodes held fixed,
and the choice between them and finite differences."""

from __future__ import annotations

import numpy as np

from ..optim.newton import FiniteDifferences
from ..optim.optsummary import OptSummary
from .model import GeneralizedLinearMixedModel


def hessian_from_gradients(grad, x: np.ndarray, g: np.ndarray, central: bool) -> np.ndarray:
    """Symmetrized Hessian from differences of ``grad`` (steps ``1e-5 max(|x|, 0.1)``):
    central (``2n`` gradients) or forward from ``g = grad(x)`` (``n`` gradients)."""
    n = x.size
    H = np.zeros((n, n))
    for j in range(n):
        h = 1e-5 * max(abs(x[j]), 0.1)
        e = np.zeros(n)
        e[j] = h
        H[:, j] = ((grad(x + e) - grad(x - e)) / (2 * h) if central
                   else (grad(x + e) - g) / h)
    return 0.5 * (H + H.T)


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
        H = hessian_from_gradients(self.grad, x, g, central)
        self.value(x)
        return g, H, fx


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
        # forward differences: the nodes stay put, so no PIRLS per column
        H = hessian_from_gradients(lambda z: self._fixed_grad(nodes, z), x, g, central=False)
        return g, H, fx

    def steering_hessian(self, x: np.ndarray):
        return self.grad_hess(x)


def choose_derivatives(f, model: GeneralizedLinearMixedModel):
    """Analytic gradients where the dense ``G^-1`` is affordable, finite differences else."""
    from .gradient import MAX_Q

    q = sum(t.q for t in model.reterms)
    # the analytic gradient needs the factor to hold Fisher weights: canonical links, or
    # laplace="expected"; observed weights would need third derivatives of the log-density
    if q <= MAX_Q and not model.observed_information:
        return AnalyticDerivatives(f, model)
    return FiniteDifferences(f)



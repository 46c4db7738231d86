"""Derivatives of the GLMM deviances for the Newton fits: analytic Laplace gradients
(glmm.gradient), gradients of the quadrature log-likelihood with the adaptive nodes held fixed,
and the choice between them and finite differences."""

from __future__ import annotations

import numpy as np

from ..optim.newton import FiniteDifferences
from ..optim.optsummary import OptSummary
from ..optim.params import ParameterLayout
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


def _other_indices(layout: ParameterLayout,
                   analytic: tuple[str, ...] = ("theta", "beta")) -> np.ndarray:
    """Positions of the parameters outside the ``analytic`` blocks (default: all but
    ``theta`` and ``beta``: the response parameters and factor loadings)."""
    parts = [layout.index(b.name) for b in layout.blocks if b.name not in analytic]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=int)


class GradientDerivatives(FiniteDifferences):
    """Derivatives from an exact gradient (:meth:`grad`, in subclasses) evaluated at the point
    of the last :meth:`value` (which it may read state from; :meth:`_at_point` evaluates there
    first when needed), Hessians from its differences (``2n`` gradients, central, for standard
    errors; ``n``, forward, to steer Newton)."""

    #: Newton's Hessian here only steers (standard errors compute theirs at the optimum), so
    #: BFGS corrections carry it over longer distances before it is recomputed
    rehess_distance = 2.0

    def __init__(self, f, record: OptSummary | None = None):
        super().__init__(f, record)
        self._at: np.ndarray | None = None

    def value(self, x: np.ndarray) -> float:
        val = super().value(x)
        self._at = np.array(x, copy=True)
        return val

    def _at_point(self, x: np.ndarray) -> None:
        """Evaluate at ``x`` unless the last evaluation was there."""
        if self._at is None or not np.array_equal(self._at, x):
            self.value(x)

    def grad_hess(self, x: np.ndarray, central: bool = True):
        """Gradient, Hessian (differences of gradients: central, or forward with half the
        cost when it only steers Newton steps) and value at ``x``."""
        fx = self.value(x)
        g = self.grad(x, fx)
        H = hessian_from_gradients(self.grad, x, g, central)
        self.value(x)
        return g, H, fx


class AnalyticDerivatives(GradientDerivatives):
    """Analytic gradient of the Laplace deviance in ``[theta, beta]`` (glmm.gradient), central
    differences for the dispersion or shape parameter, and the Hessian by central differences
    of the gradient (``2n`` gradient evaluations instead of ``n^2`` function evaluations)."""

    def __init__(self, f, model: GeneralizedLinearMixedModel, record: OptSummary | None = None):
        super().__init__(f, record)
        self.model = model

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        return self._gradient(x)[0]

    def _gradient(self, x: np.ndarray, schur: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """The gradient at ``x`` and, with ``schur``, :func:`~glamm.glmm.gradient.
        laplace_gradient`'s approximate ``beta`` block of the Hessian (halved) from the same
        pass."""
        from .gradient import laplace_gradient, own_parameters_have_gradient

        m = self.model
        layout = m.parameters
        self._at_point(x)
        theta, beta = layout.get(x, "theta"), layout.get(x, "beta")
        g = np.zeros(x.size)
        analytic = "lambda" in layout
        # dispersions, variance functions and the own parameters of the families outside
        # the exponential family: analytic; a negative binomial shape: below
        response = layout.size_of("response") > 0 and own_parameters_have_gradient(m)
        out = laplace_gradient(m, theta, beta, schur=schur, with_loadings=analytic,
                               with_response=response)
        g_an, S = out if schur else (out, None)
        nt, p = theta.size, beta.size
        g[layout.slice("theta")] = g_an[:nt]
        g[layout.slice("beta")] = g_an[nt:nt + p]
        pos = nt + p
        if analytic:
            nl = layout.size_of("lambda")
            g[layout.slice("lambda")] = g_an[pos:pos + nl]
            pos += nl
        if response:
            g[layout.slice("response")] = g_an[pos:]
        if m.penalty is not None:
            g[layout.slice("beta")] += m.penalty.deviance_gradient(beta)
        done = ("theta", "beta", "lambda", "response") if response else \
            ("theta", "beta", "lambda")
        others = _other_indices(layout, analytic=done)
        if others.size:
            # central differences in the response parameters and factor loadings (two PIRLS
            # runs each)
            for j in others:
                h = 1e-4 * max(abs(x[j]), 0.1)
                e = np.zeros(x.size)
                e[j] = h
                g[j] = (self.value(x + e) - self.value(x - e)) / (2 * h)
            self.value(x)
        return g, S

    def steering_hessian(self, x: np.ndarray):
        """See :func:`_steering_hessian`."""
        layout = self.model.parameters
        fx = self.value(x)
        g, S = self._gradient(x, schur=True)
        assert S is not None
        n = x.size
        H = np.zeros((n, n))
        beta = layout.slice("beta")
        H[beta, beta] = 2.0 * S
        for j in [*layout.index("theta"), *_other_indices(layout)]:
            h = 1e-5 * max(abs(x[j]), 0.1)
            e = np.zeros(n)
            e[j] = h
            col = (self.grad(x + e) - g) / h
            H[:, j] = col
            H[j, :] = col
        self.value(x)
        return g, H, fx

class QuadratureDerivatives(FiniteDifferences):
    """Derivatives of the quadrature deviance ``-2 l`` in ``[theta, beta]``
    (glmm.agq_derivatives): the exact gradient (the adaptive nodes' own movement included);
    Newton is steered by the analytic Hessian at fixed nodes (one pass, no PIRLS), and
    standard errors (:meth:`grad_hess`) take differences of exact gradients."""

    def __init__(self, f, model: GeneralizedLinearMixedModel, quadrature):
        super().__init__(f)
        self.model, self.quad = model, quadrature

    def _derivs(self, x: np.ndarray, hessian: bool):
        from ..errors import GlammError
        from .agq_derivatives import derivatives

        m = self.model
        layout = m.parameters
        if layout.size_of("response"):
            raise ValueError("the exact quadrature derivatives have no response parameters")
        theta, beta = layout.get(x, "theta"), layout.get(x, "beta")
        nodes = self.quad.nodes_at(theta, beta)
        if nodes is None:
            raise GlammError("PIRLS failed while differentiating the quadrature "
                             "log-likelihood")
        # derivatives() orders its vector as [theta, beta], as the layout does
        _, g, H = derivatives(self.quad, nodes, theta, beta, exact=True, hessian=hessian)
        g = -2.0 * g
        b = layout.slice("beta")
        if m.penalty is not None:
            g[b] += m.penalty.deviance_gradient(beta)
        if H is not None:
            H = -2.0 * H
            if m.penalty is not None:
                H[b, b] += np.diag(m.penalty.deviance_hessian_diag(beta))
        return g, H

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        return self._derivs(x, hessian=False)[0]

    def steering_hessian(self, x: np.ndarray):
        fx = self.value(x)
        g, H = self._derivs(x, hessian=True)
        return g, H, fx

    def grad_hess(self, x: np.ndarray, central: bool = True):
        fx = self.value(x)
        g = self.grad(x, fx)
        H = hessian_from_gradients(self.grad, x, g, central)
        self.value(x)
        return g, H, fx


def choose_derivatives(f, model: GeneralizedLinearMixedModel):
    """Analytic gradients where the selected inverse of ``G`` is affordable
    (:func:`~glamm.glmm.gradient.analytic_gradient_affordable`), finite differences else; a
    model with a ``derivatives(f)`` method of its own (one whose rows are elsewhere:
    glamm.scale) gives them."""
    from .gradient import analytic_gradient_affordable

    own = getattr(model, "derivatives", None)
    if own is not None:   # (a model whose rows are elsewhere decides: glamm.scale)
        return own(f)
    if analytic_gradient_affordable(model):
        return AnalyticDerivatives(f, model)
    return FiniteDifferences(f)

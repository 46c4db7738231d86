"""Adaptive Gauss-Hermite quadrature for GLMMs with one grouping factor.

With one grouping factor the marginal likelihood factorizes over its levels (clusters):

    L_i = int prod_j p(y_ij | eta_ij(u)) phi_q(u) du,   eta_ij = x_ij' beta + z_ij' lambda u

(``q`` random effects per cluster, possibly from several terms such as ``(1 | g) + (0 + x | g)``
written as ``(x || g)``). Each integral is centred at the cluster's conditional mode ``u_i``
(from PIRLS) and scaled by the curvature there, ``H_i = I + sum_j w_ij v_ij v_ij'`` with the
observed information ``w`` (Fisher weights where that is not positive definite), through the
lower Cholesky factor ``C_i`` of ``H_i^{-1}``, and evaluated by the product Gauss-Hermite rule:

    L_i ~= 2^{q/2} |C_i| sum_k W_k exp(|x_k|^2) p(y_i | u_ik) phi_q(u_ik),
    u_ik = u_i + sqrt(2) C_i x_k

All constants are kept, so ``nagq = 1`` is exactly the (observed-information) Laplace value
and the log-likelihood is comparable across ``nagq``. All clusters and nodes are handled at once
(``n x K`` arrays of linear predictors); there is no Python loop over clusters.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.polynomial.hermite import hermgauss

from ..errors import GlammError
from .agq_derivatives import logsumexp_rows, theta_jacobian

_LOG2PI = float(np.log(2.0 * np.pi))


def default_nagq(q: int) -> int:
    """GLMMadaptive's default number of points per dimension: 11 for q <= 2, 7 otherwise."""
    return 11 if q <= 2 else 7


def product_rule(nagq: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``(K, q)`` and log weights ``(K,)`` of the ``q``-dimensional product rule for
    ``int exp(-|x|^2) f(x) dx`` with ``nagq`` points per dimension."""
    x, w = hermgauss(nagq)
    nodes = np.array(list(itertools.product(x, repeat=q)))
    logw = np.array([np.sum(np.log(c)) for c in itertools.product(w, repeat=q)])
    return nodes, logw


@dataclass
class Nodes:
    """Adaptive nodes of every cluster at one parameter value, with what their derivatives
    need (glmm.agq_derivatives).

    The derivatives (glmm.agq_derivatives) compute what else they need from these, so the
    objective itself pays for nothing beyond the nodes.

    Attributes
    ----------
    U : ndarray
        Node points ``(m, q, K)`` in the spherical scale of ``u``.
    const : ndarray
        ``(m, K)`` log weights of the nodes, the standard normal density included.
    u_hat, C, H : ndarray
        Modes ``(m, q)``, lower Cholesky factors of ``H^-1`` and curvatures ``(m, q, q)``
        (``I + sum_j w_j v_j v_j'``).
    eta, mu : ndarray
        Linear predictor and means at the modes.
    h : ndarray
        Second derivative of the log-density in ``eta`` at the modes.
    w : ndarray
        The weights in ``H`` (``-h``, the observed information, when ``observed``; else the
        Fisher weights, used where the observed information is not positive definite).
    observed : bool
        Whether ``w`` is the observed information.
    """

    U: np.ndarray
    const: np.ndarray
    u_hat: np.ndarray
    C: np.ndarray
    H: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    h: np.ndarray
    w: np.ndarray
    observed: bool


class AdaptiveQuadrature:
    """The quadrature log-likelihood of a :class:`GeneralizedLinearMixedModel` whose terms all
    share one grouping factor.

    Parameters
    ----------
    model : GeneralizedLinearMixedModel
        The GLMM (its PIRLS gives the modes).
    nagq : int
        Points per dimension (1 to 100; 1 is the Laplace approximation).
    """

    def __init__(self, model, nagq: int):
        smooth = [t.group for t in model.reterms if not t.supports_quadrature]
        if smooth:
            raise GlammError(
                f"adaptive quadrature (nagq > 1) is not available with smooth terms "
                f"({', '.join(smooth)}): a smooth's penalized coefficients are one random "
                "effect shared by all observations, not grouped by the clusters the quadrature "
                "integrates over. Use nagq=1 (the Laplace approximation, as gamm4)")
        groups = {t.factors for t in model.reterms}
        if len(groups) != 1:
            names = sorted({t.group for t in model.reterms})
            raise GlammError(
                f"adaptive quadrature (nagq > 1) needs a single grouping factor; this model has "
                f"{len(names)} ({', '.join(names)}), whose random effects do not separate into "
                "independent low-dimensional integrals. Use nagq=1 (the Laplace approximation)"
            )
        if not 1 <= int(nagq) <= 100:
            raise GlammError(f"nagq must be between 1 and 100, got {nagq}")
        self.model = model
        self.nagq = int(nagq)
        #: the model's random-effects design (rows of Z Lambda, columns of u per term)
        self.design = model.design
        self.q = self.design.P
        self.m = model.reterms[0].nlevels
        self.cluster = model.reterms[0].refs
        n = model.n
        self.indicator = sp.csr_matrix((np.ones(n), (self.cluster, np.arange(n))),
                                       shape=(self.m, n))
        self.nodes, self.logw = product_rule(self.nagq, self.q)
        if self.nodes.shape[0] > 200_000:
            raise GlammError(f"nagq={nagq} with {self.q} random effects per cluster needs "
                             f"{self.nodes.shape[0]} quadrature points; use fewer points")
        self.y2 = model.y[:, None]
        self.wt2 = model.wt[:, None]
        if hasattr(model.family, "keep_parts"):   # per-row families: split these once too
            model.family.keep_parts(model.y, model.wt, self.y2, self.wt2)
        # position of cluster i's effects of term k in the model's u vector
        offs = self.design.offsets
        self.u_index = np.hstack([offs[k] + np.arange(self.m)[:, None] * t.p + np.arange(t.p)
                                  for k, t in enumerate(model.reterms)])
        self._jacobian: tuple[tuple, np.ndarray] | None = None
        #: the parameters and nodes of the last :meth:`loglik` (reused by the derivatives)
        self.last: tuple[np.ndarray, Nodes] | None = None

    def dispersion2(self) -> float | np.ndarray:
        """The model's dispersion shaped to broadcast against ``n x K`` node arrays (a
        per-row dispersion becomes a column)."""
        phi = self.model.dispersion
        return phi[:, None] if np.ndim(phi) == 1 else phi

    def theta_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """``d (Z Lambda) / d theta`` at the nonzeros, ``(n, q, n_theta)`` (cached; with
        covariances linear in ``theta`` it depends only on the model's ``lambda_scale``)."""
        loadings = self.model.loadings
        key: tuple = (self.model.lambda_scale,
                      None if loadings is None else loadings.values.tobytes())
        if not all(t.covariance.jacobian_is_constant for t in self.model.reterms):
            key = key + (np.asarray(theta, dtype=float).tobytes(),)
        if self._jacobian is None or self._jacobian[0] != key:
            self._jacobian = (key, theta_jacobian(self, theta))
        return self._jacobian[1]

    def loglik(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """Quadrature log-likelihood at (``theta``, ``beta``) and the model's dispersion/shape;
        runs PIRLS for the modes (``-inf`` if it fails)."""
        nodes = self.adapt(theta, beta)
        if nodes is None:
            self.last = None
            return -np.inf
        self.last = (np.concatenate([theta, beta]), nodes)
        return self.fixed_node_loglik(nodes, theta, beta)

    def nodes_at(self, theta: np.ndarray, beta: np.ndarray) -> "Nodes | None":
        """The nodes adapted to (``theta``, ``beta``), reusing the last :meth:`loglik`'s."""
        x = np.concatenate([theta, beta])
        if self.last is not None and np.array_equal(self.last[0], x):
            return self.last[1]
        return self.adapt(theta, beta)

    def adapt(self, theta: np.ndarray, beta: np.ndarray) -> "Nodes | None":
        """The adaptive nodes at (``theta``, ``beta``) (:class:`Nodes`); ``None`` if PIRLS
        fails."""
        from ..errors import PirlsError

        model = self.model
        try:
            model.pirls(theta, beta)
        except PirlsError:
            return None
        V = self.design.rows(model.lambdas(theta))   # n x q: row j of Z Lambda
        u_hat = model.u[self.u_index]                       # m x q
        eta_mode, mu_mode = model.eta, model.mu
        h = -model.response.observed_weights(eta_mode, mu_mode)
        w = -h
        H = self._curvature(V, w)
        observed = True
        try:
            np.linalg.cholesky(H)
        except np.linalg.LinAlgError:   # observed information not positive definite: Fisher
            w, _ = model.response.fisher_weights(eta_mode, mu_mode)
            H = self._curvature(V, w)
            observed = False
        # u_ik = u_i + sqrt(2) C_i x_k with C_i the lower Cholesky factor of H_i^{-1}
        # (GLMMadaptive's orientation: for q > 1 the product rule depends on it, and with it
        # the values agree with GLMMadaptive's and the independent reference's)
        C = np.linalg.cholesky(np.linalg.inv(H))
        U = u_hat[:, :, None] + np.sqrt(2.0) * np.einsum("mij,kj->mik", C, self.nodes)
        logdetC = np.sum(np.log(np.diagonal(C, axis1=1, axis2=2)), axis=1)   # -log|H|/2
        const = (0.5 * self.q * np.log(2.0) + logdetC)[:, None] + (
            -0.5 * np.sum(U**2, axis=1) - 0.5 * self.q * _LOG2PI
            + self.logw[None, :] + np.sum(self.nodes**2, axis=1)[None, :])
        return Nodes(U=U, const=const, u_hat=u_hat, C=C, H=H, eta=eta_mode, mu=mu_mode, h=h,
                     w=w, observed=observed)

    def fixed_node_loglik(self, nodes: Nodes, theta: np.ndarray, beta: np.ndarray) -> float:
        """The quadrature log-likelihood with the nodes held where :meth:`adapt` put them (equal
        to :meth:`loglik` at the parameters they were adapted to). Its derivatives are in
        glmm.agq_derivatives."""
        model = self.model
        V = self.design.rows(model.lambdas(theta))
        eta = (model.X @ beta + model.offset)[:, None] + np.einsum("jq,jqk->jk", V,
                                                                  nodes.U[self.cluster])
        logp = model.family.loglik_eta(self.y2, eta, self.wt2, self.dispersion2())   # n x K
        a = np.asarray(self.indicator @ logp) + nodes.const                        # m x K
        return float(np.sum(logsumexp_rows(a)))

    def _curvature(self, V: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``I + sum_j w_j v_j v_j'`` per cluster, ``(m, q, q)``."""
        q = self.q
        H = np.zeros((self.m, q, q))
        for a in range(q):
            for b in range(a + 1):
                v = np.bincount(self.cluster, weights=w * V[:, a] * V[:, b], minlength=self.m)
                H[:, a, b] = v
                H[:, b, a] = v
        H += np.eye(q)[None, :, :]
        return H

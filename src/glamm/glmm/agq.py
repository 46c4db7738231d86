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

import numpy as np
import scipy.sparse as sp
from numpy.polynomial.hermite import hermgauss
from scipy.special import logsumexp

from ..errors import GlammError
from .gradient import ZLayout

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


class AdaptiveQuadrature:
    """The quadrature log-likelihood of a :class:`GeneralizedLinearMixedModel` whose terms all
    share one grouping factor.

    Parameters
    ----------
    model: the GLMM (its PIRLS gives the modes).
    nagq: points per dimension (1 to 100; 1 is the Laplace approximation).
    """

    def __init__(self, model, nagq: int):
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
        self.zl = ZLayout(model.reterms)
        self.q = self.zl.cols.shape[1]
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
        # position of cluster i's effects of term k in the model's u vector
        offs = self.zl.offsets
        self.u_index = np.hstack([offs[k] + np.arange(self.m)[:, None] * t.p + np.arange(t.p)
                                  for k, t in enumerate(model.reterms)])

    def loglik(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """Quadrature log-likelihood at (``theta``, ``beta``) and the model's dispersion/shape;
        runs PIRLS for the modes (``-inf`` if it fails)."""
        nodes = self.adapt(theta, beta)
        if nodes is None:
            return -np.inf
        return self.fixed_node_loglik(nodes, theta, beta)[0]

    def adapt(self, theta: np.ndarray, beta: np.ndarray):
        """The adaptive nodes at (``theta``, ``beta``): cluster points ``U`` (``m x q x K``) in
        the spherical scale and ``log|C_i|``; ``None`` if PIRLS fails."""
        from .model import PirlsError

        model = self.model
        try:
            model.pirls(theta, beta)
        except PirlsError:
            return None
        fam = model.family
        V = self.zl.values(model.lambdas(theta))   # n x q: row j of Z Lambda
        u_hat = model.u[self.u_index]                       # m x q
        eta_mode, mu_mode = model.eta, model.mu
        w = -fam.d2loglik_deta2(model.y, mu_mode, eta_mode, model.wt, model.dispersion)
        H = self._curvature(V, w)
        try:
            np.linalg.cholesky(H)
        except np.linalg.LinAlgError:   # observed information not positive definite: Fisher
            w, _ = model._weights(eta_mode, mu_mode)
            H = self._curvature(V, w)
        # u_ik = u_i + sqrt(2) C_i x_k with C_i the lower Cholesky factor of H_i^{-1}
        # (GLMMadaptive's orientation: for q > 1 the product rule depends on it, and with it
        # the values agree with GLMMadaptive's and the independent reference's)
        C = np.linalg.cholesky(np.linalg.inv(H))
        U = u_hat[:, :, None] + np.sqrt(2.0) * np.einsum("mij,kj->mik", C, self.nodes)
        logdetC = np.sum(np.log(np.diagonal(C, axis1=1, axis2=2)), axis=1)   # -log|H|/2
        const = (0.5 * self.q * np.log(2.0) + logdetC)[:, None] + (
            -0.5 * np.sum(U**2, axis=1) - 0.5 * self.q * _LOG2PI
            + self.logw[None, :] + np.sum(self.nodes**2, axis=1)[None, :])
        return {"U": U, "const": const}

    def fixed_node_loglik(self, nodes, theta: np.ndarray, beta: np.ndarray,
                          gradient: bool = False):
        """The quadrature log-likelihood with the nodes held where :meth:`adapt` put them (equal
        to :meth:`loglik` at the parameters they were adapted to) and, with ``gradient``, its
        gradient in ``[theta, beta]`` (the posterior-weighted scores: GLMMadaptive's)."""
        model = self.model
        fam = model.family
        lams = model.lambdas(theta)
        V = self.zl.values(lams)
        U = nodes["U"]
        g = self.cluster
        eta = (model.X @ beta + model.offset)[:, None] + np.einsum("jq,jqk->jk", V, U[g])
        logp = fam.loglik_eta(self.y2, eta, self.wt2, model.dispersion)   # n x K
        S = np.asarray(self.indicator @ logp)              # m x K
        a = S + nodes["const"]
        lse = logsumexp(a, axis=1)
        value = float(np.sum(lse))
        if not gradient:
            return value, None
        post = np.exp(a - lse[:, None])                     # m x K posterior node weights
        mu = fam.link.inverse(eta)
        score = fam.dloglik_deta(self.y2, mu, eta, self.wt2, model.dispersion)  # n x K
        ws = score * post[g]                                # n x K
        grad_beta = model.X.T @ ws.sum(axis=1)
        grad_theta = np.zeros(model.n_theta)
        Ug = U[g]                                           # n x q x K
        for k, (t, sl) in enumerate(zip(model.reterms, model.layout.slices)):
            cols = self.zl.term_slices[k]
            for r in range(sl.start, sl.stop):
                e = np.zeros(model.n_theta)
                e[r] = 1.0
                dV = t.z @ (model.lambda_scale * t.lambda_(e[sl]))   # n x p_k
                deta = np.einsum("jc,jck->jk", dV, Ug[:, cols, :])
                grad_theta[r] = float(np.sum(ws * deta))
        return value, np.concatenate([grad_theta, grad_beta])

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

"""Derivatives of the adaptive-quadrature log-likelihood (glmm.agq) in ``[theta, beta]``.

**Nodes held fixed.** With the nodes where :meth:`AdaptiveQuadrature.adapt` put them, cluster
``i`` contributes ``l_i = log sum_k exp(a_ik)`` with ``a_ik = sum_{j in i} log p(y_j | eta_jk)
+ c_ik``, and ``eta_jk`` is linear in the parameters: ``d eta_jk / d beta = x_j`` and
``d eta_jk / d theta_r = dv_jr . U_ik`` (``dv_r``: derivative of the rows ``v_j`` of
``Z Lambda``). So, with posterior node weights ``p_ik`` and ``s``, ``h`` the first and second
derivatives of the log-density in ``eta``,

    grad l   = sum_jk p_ik s_jk A_jk                         (GLMMadaptive's score)
    Hess l   = sum_jk p_ik h_jk A_jk A_jk' + sum_ik p_ik g_ik g_ik' - sum_i g_i g_i'

with ``A_jk = d eta_jk``, ``g_ik = sum_{j in i} s_jk A_jk`` and ``g_i = sum_k p_ik g_ik``: all
posterior-weighted sums, no differences.

**The nodes' own movement.** ``U_ik = u_i + sqrt(2) C_i x_k`` moves with the parameters through
the mode ``u_i`` and the factor ``C_i C_i' = H_i^{-1}`` of the curvature
``H_i = I + sum_{j in i} w_j v_j v_j'`` at the mode (``w = -h``, the observed information, or
the Fisher weights where that is not positive definite). By the implicit function theorem
(``Hobs_i = I - sum_{j in i} h_j v_j v_j'``, the derivative of the mode condition),

    d u_i   = Hobs_i^{-1} sum_{j in i} (h_j v_j de_j + s_j dv_j)   (de_j = d eta_j with u fixed)
    d eta_j = de_j + v_j . d u_i                                   (at the mode)
    d H_i   = sum_{j in i} (w'_j d eta_j v_j v_j' + w_j (dv_j v_j' + v_j dv_j'))
    d C_i   = C_i Phi(-C_i' dH_i C_i),    d log|C_i| = -tr(C_i' dH_i C_i) / 2

(``Phi``: lower triangle with the diagonal halved; ``w' = dw/deta``, taken by central
differences observation by observation, which costs no PIRLS). As
``d a_ik / d U_ik = sum_{j in i} s_jk v_j - U_ik =: G_ik``, the nodes add

    sum_i [ Gbar_i . d u_i + sqrt(2) <d C_i, Gz_i> + d log|C_i| ],
    Gbar_i = sum_k p_ik G_ik,   Gz_i = sum_k p_ik G_ik x_k'

to the fixed-node gradient, which makes it the exact gradient of the quadrature
log-likelihood, for any link. Families with a dispersion or shape parameter optimize it too,
and their fits use finite differences of the whole objective (glmm.fit).

Not public API.
"""

from __future__ import annotations

import numpy as np

_SQRT2 = float(np.sqrt(2.0))
#: largest number of elements of the n x K x P arrays the Hessian builds at once (the node
#: axis is split into chunks beyond it)
_CHUNK_ELEMENTS = 2_000_000


def _canonical_h(model, mu: np.ndarray, eta: np.ndarray, wt: np.ndarray) -> np.ndarray:
    """Second derivative of the log-density in ``eta`` at a canonical link, where the observed
    and Fisher information agree: ``-wt mu_eta^2 / (V(mu) phi)``."""
    phi = model.dispersion
    if np.ndim(phi) == 1 and np.ndim(eta) == 2:   # per-row dispersion against node columns
        phi = phi[:, None]
    return -model.family.fisher_weights(eta, mu, wt, phi)[0]


def theta_jacobian(quad, theta: np.ndarray) -> np.ndarray:
    """``d V / d theta`` at ``theta`` as an ``n x q x n_theta`` array, from each term's
    covariance ``jacobian``."""
    model = quad.model
    out = np.zeros((model.n, quad.q, model.n_theta))
    scale = model.lambda_scale
    for k, (t, sl) in enumerate(zip(model.reterms, model.layout.slices)):
        cols = quad.design.term_slices[k]
        dlams = t.covariance.jacobian(theta[sl])
        for r in range(sl.start, sl.stop):
            out[:, cols, r] = quad.design.z[k] @ (scale * dlams[r - sl.start])
    return out


def derivatives(quad, nodes, theta: np.ndarray, beta: np.ndarray, exact: bool = True,
                hessian: bool = False):
    """Log-likelihood, gradient and (optionally) the fixed-node Hessian at ``theta``,
    ``beta``, for ``nodes`` adapted there (``exact``: the gradient includes the nodes'
    movement; for parameters ``[theta, beta]`` only: families with a dispersion or shape
    differentiate the whole objective numerically).

    Returns ``(value, grad, H or None)`` of the log-likelihood (not the deviance)."""
    model = quad.model
    fam = model.family
    g = quad.cluster
    V = quad.design.rows(model.lambdas(theta))
    U = nodes.U
    Ug = U[g]                                                  # n x q x K
    eta = (model.X @ beta + model.offset)[:, None] + np.einsum("jq,jqk->jk", V, Ug)
    logp = fam.loglik_eta(quad.y2, eta, quad.wt2, quad.dispersion2())
    a = np.asarray(quad.indicator @ logp) + nodes.const
    lse = logsumexp_rows(a)
    value = float(np.sum(lse))
    post = np.exp(a - lse[:, None])                            # m x K
    mu = fam.link.inverse(eta)
    s = fam.dloglik_deta(quad.y2, mu, eta, quad.wt2, quad.dispersion2())   # n x K
    pg = post[g]
    ws = s * pg
    dV = quad.theta_jacobian(theta)                            # n x q x nt
    # d eta_jk / d theta_r = dv_jr . U_ik, so the theta gradient needs only sum_k ws_jk U_ik
    Wu = np.einsum("jk,jqk->jq", ws, Ug)
    grad = np.concatenate([np.einsum("jq,jqr->r", Wu, dV), model.X.T @ ws.sum(axis=1)])
    if exact:
        grad = grad + _node_movement(quad, nodes, V, dV, ws, post)
    H = None
    if hessian:
        if fam.link_is_canonical:
            h = _canonical_h(model, mu, eta, quad.wt2)
        else:
            h = fam.d2loglik_deta2(quad.y2, mu, eta, quad.wt2, quad.dispersion2())
        H = _fixed_node_hessian(quad, Ug, dV, s, h, post)
    return value, grad, H


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """``log sum_k exp(a_ik)`` per row (rows of ``-inf`` give ``-inf``)."""
    mx = np.max(a, axis=1)
    safe = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.sum(np.exp(a - safe[:, None]), axis=1))


def _fixed_node_hessian(quad, Ug: np.ndarray, dV: np.ndarray, s: np.ndarray, h: np.ndarray,
                        post: np.ndarray) -> np.ndarray:
    """Hessian of the log-likelihood with the nodes fixed (module docstring)."""
    model = quad.model
    X = model.X
    n, q, K = Ug.shape
    nt = dV.shape[2]
    p = X.shape[1]
    P = nt + p
    g = quad.cluster
    m = quad.m
    H = np.zeros((P, P))
    gi = np.zeros((P, m))
    chunk = max(1, _CHUNK_ELEMENTS // max(n * P, 1))
    for k0 in range(0, K, chunk):
        ks = slice(k0, min(K, k0 + chunk))
        sc, pc = s[:, ks], post[:, ks]
        kc = sc.shape[1]
        # A[r, j, k] = d eta_jk / d (theta, beta)_r (parameter-major: contiguous per row)
        A = np.empty((P, n, kc))
        for r in range(nt):
            np.multiply(dV[:, 0, r][:, None], Ug[:, 0, ks], out=A[r])
            for c in range(1, q):
                A[r] += dV[:, c, r][:, None] * Ug[:, c, ks]
        A[nt:] = X.T[:, :, None]
        A2 = A.reshape(P, n * kc)
        # sum_jk p h A A'
        ph = (h[:, ks] * pc[g]).ravel()
        H += (A2 * ph) @ A2.T
        # g_ik = sum_{j in i} s_jk A_jk, then sum_ik p_ik g_ik g_ik'
        A2 *= sc.ravel()
        G = np.stack([np.asarray(quad.indicator @ A[r]) for r in range(P)])   # P x m x kc
        G2 = G.reshape(P, m * kc)
        pr = pc.ravel()
        H += (G2 * pr) @ G2.T
        gi += np.einsum("rmk,mk->rm", G, pc)
    H -= gi @ gi.T
    return 0.5 * (H + H.T)


def _node_movement(quad, nodes, V: np.ndarray, dV: np.ndarray, ws: np.ndarray,
                   post: np.ndarray) -> np.ndarray:
    """The gradient's term from the nodes' dependence on the parameters (module docstring)."""
    model = quad.model
    X = model.X
    g = quad.cluster
    n, q, nt = dV.shape
    p = X.shape[1]
    P = nt + p
    m = quad.m
    ind = quad.indicator
    fam = model.family
    s0 = fam.dloglik_deta(model.y, nodes.mu, nodes.eta, model.wt, model.dispersion)
    h0, w0 = nodes.h, nodes.w
    dw0 = model.weight_derivative(nodes.eta, nodes.observed)
    # the modes move with the observed curvature (the derivative of the mode condition)
    Hobs = nodes.H if nodes.observed else quad._curvature(V, -h0)
    u_hat, C = nodes.u_hat, nodes.C
    # d eta_j with the modes fixed, and d v_j (zero for beta)
    de = np.concatenate([np.einsum("jqr,jq->jr", dV, u_hat[g]), X], axis=1)    # n x P
    dVP = np.concatenate([dV, np.zeros((n, q, p))], axis=2)                    # n x q x P
    T = h0[:, None, None] * V[:, :, None] * de[:, None, :] + s0[:, None, None] * dVP
    du = np.linalg.solve(Hobs, np.asarray(ind @ T.reshape(n, q * P)).reshape(m, q, P))
    deta = de + np.einsum("jq,jqp->jp", V, du[g])                               # n x P
    vv = V[:, :, None] * V[:, None, :]
    dvv = dVP[:, :, None, :] * V[:, None, :, None]
    # the curvature that scales the nodes: H = I + sum_j w_j v_j v_j'
    dHj = (dw0[:, None] * deta)[:, None, None, :] * vv[:, :, :, None] \
        + w0[:, None, None, None] * (dvv + dvv.transpose(0, 2, 1, 3))
    dH = np.asarray(ind @ dHj.reshape(n, q * q * P)).reshape(m, q, q, P)
    B = np.einsum("mba,mbcp,mcd->madp", C, dH, C)                               # C' dH C
    dlogC = -0.5 * np.einsum("maap->mp", B)
    lower = np.tril(np.ones((q, q)), -1) + 0.5 * np.eye(q)
    dC = np.einsum("mab,mbcp->macp", C, -B * lower[None, :, :, None])
    # G_ik = sum_{j in i} s_jk v_j - U_ik, averaged over the posterior node weights
    Z = quad.nodes                                                               # K x q
    U = nodes.U
    wsum = ws.sum(axis=1)
    Gbar = np.asarray(ind @ (V * wsum[:, None])) - np.einsum("mk,mqk->mq", post, U)
    Gz = (np.asarray(ind @ (V[:, :, None] * (ws @ Z)[:, None, :]).reshape(n, q * q))
          .reshape(m, q, q) - np.einsum("mk,mak,kb->mab", post, U, Z))
    return (np.einsum("mq,mqp->p", Gbar, du) + _SQRT2 * np.einsum("mabp,mab->p", dC, Gz)
            + dlogC.sum(axis=0))

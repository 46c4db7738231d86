"""The analytic gradient of the Laplace deviance of a partitioned GLMM, in one pass.

:func:`glamm.glmm.gradient.laplace_gradient`'s formulas, split into sums over rows (each
partition's :func:`gradient_sums`) and what the driver does with them
(:func:`partitioned_gradient`). At the mode for ``(theta, beta)`` with the score ``s``, the
log-determinant's weights ``w`` and their derivative ``w'`` in ``eta``, the leverages
``h_i = (Z Lambda G^-1 Lambda'Z')_ii`` and ``d = w' h``:

- ``beta``: ``-2 X's + X'd + (Lambda'Z'd)' DU_X`` with ``DU_X = -G^-1 Lambda'Z'WX``;
- ``theta_r`` (``Z dLambda_r``, ``a_r = Z dLambda_r u``):
  ``-2 s'a_r + 2 tr(G^-1 Lambda'Z'W Z dLambda_r) + d'a_r + (Lambda'Z'd)' G^-1 RHS_r``
  with ``RHS_r = -Lambda'Z'W a_r + (Z dLambda_r)' s``.

Every row sum above (``X's``, ``s'a_r``, the traces, ``Lambda'Z'WX``, ``RHS_r``, ``d'a_r``,
``X'd``, ``Lambda'Z'd``) is a sum over partitions; the leverages and traces need the entries
of ``G^-1`` on each row's pattern, which the request carries (the selected inverse without
the factor it came from). Only for the weights where the Laplace log-determinant and the mode
share ``G`` (a canonical link, or the observed information in both); otherwise the fit takes
finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..glmm.derivatives import GradientDerivatives
from ..glmm.gradient import TraceWeights
from ..linalg.selinv import SelectedInverse


@dataclass(frozen=True)
class GradientRequest:
    """What a gradient pass needs: the mode (``beta``, the spherical random effects ``u``
    per term as ``(levels, p)``), the factors ``lams`` and their derivatives ``dlams`` (per
    ``theta_r``: the term and ``d lambda_k / d theta_r``), the response parameters,
    ``G^-1`` (a selected inverse without its factor:
    :meth:`~glamm.linalg.selinv.SelectedInverse.without_factor`) and whether the
    log-determinant holds the observed information (else Fisher's weights)."""

    beta: np.ndarray
    u: list[np.ndarray]
    lams: list[np.ndarray]
    dlams: list[tuple[int, np.ndarray]]
    parameters: np.ndarray
    Ginv: Any
    observed: bool


@dataclass
class GradientSums:
    """A gradient pass's sums over some partitions (module docstring): ``Xs = X's``,
    ``sa[r] = s'a_r``, ``tr[r]`` the traces, ``ZLtWX = Lambda'Z'WX``, ``RHS``, ``da[r] =
    d'a_r``, ``Xd = X'd``, ``ZLtd = Lambda'Z'd``."""

    Xs: np.ndarray
    sa: np.ndarray
    tr: np.ndarray
    ZLtWX: np.ndarray
    RHS: np.ndarray
    da: np.ndarray
    Xd: np.ndarray
    ZLtd: np.ndarray


def merge_gradient(a: GradientSums | None, b: GradientSums | None) -> GradientSums | None:
    """The :class:`GradientSums` of the rows of ``a`` and ``b`` together."""
    if a is None or b is None:
        return a if b is None else b
    return GradientSums(*(getattr(a, f) + getattr(b, f) for f in
                          ("Xs", "sa", "tr", "ZLtWX", "RHS", "da", "Xd", "ZLtd")))


def gradient_sums(rows: Any, req: GradientRequest) -> GradientSums:
    """One partition's sums (``rows``: a :class:`~glamm.scale.glmm_rows.PartitionRows`)."""
    resp, fr, design = rows.response, rows.frame, rows.design
    if req.parameters.size:
        resp.set_parameters(req.parameters)
    fam = resp.family
    X = fr.X
    b = [uk @ lam.T for uk, lam in zip(req.u, req.lams)]
    eta = np.asarray(X @ req.beta + fr.offset + design.eta_re(b), dtype=float)
    mu = fam.link.inverse(eta)
    s = resp.score(eta, mu)
    if req.observed:
        w = resp.observed_weights(eta, mu)
        step = 1e-4 * np.maximum(1.0, np.abs(eta))
        with np.errstate(all="ignore"):
            up, down = eta + step, eta - step
            dw = (resp.observed_weights(up, fam.link.inverse(up))
                  - resp.observed_weights(down, fam.link.inverse(down))) / (2.0 * step)
    else:
        w, _ = resp.fisher_weights(eta, mu)
        dw = resp.fisher_weights_deta(eta, mu)
    V = design.rows(req.lams)
    C = design.cols
    traces = TraceWeights(design, V, C, w, req.Ginv)
    d = dw * traces.leverages()
    ZL, ZLt = design.z_lambda(V)
    m = len(req.dlams)
    A = np.zeros((fr.n, m))
    RHS = np.zeros((design.q, m))
    tr = np.zeros(m)
    for r, (k, dlam) in enumerate(req.dlams):
        t = design.terms[k]
        Vd = design.z[k] @ dlam
        A[:, r] = np.einsum("ic,ic->i", Vd, req.u[k][t.refs])
        Ck = C[:, design.term_slices[k]]
        for c in range(t.p):
            RHS[:, r] += np.bincount(Ck[:, c], weights=Vd[:, c] * s, minlength=design.q)
            tr[r] += float(traces(k, c) @ Vd[:, c])
    RHS -= ZLt @ (w[:, None] * A)
    return GradientSums(Xs=X.T @ s, sa=s @ A, tr=tr, ZLtWX=ZLt @ (w[:, None] * X), RHS=RHS,
                        da=d @ A, Xd=X.T @ d, ZLtd=ZLt @ d)


def partitioned_gradient(model: Any, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The gradient of the Laplace deviance in ``[theta, beta]`` of a
    :class:`~glamm.scale.glmm_model.PartitionedGLMM` whose state is the PIRLS mode for
    exactly these parameters (``beta`` held), one pass over the partitions."""
    from ..linalg.selinv import re_inverse

    lams = model.lambdas(theta)
    dlams: list[tuple[int, np.ndarray]] = []
    for k, (t, sl) in enumerate(zip(model.reterms, model.layout.slices)):
        jac = model.lambda_scale * t.covariance.jacobian(theta[sl])
        dlams += [(k, jac[r]) for r in range(sl.stop - sl.start)]
    Ginv = re_inverse(model.fac_u)
    shipped = Ginv.without_factor() if isinstance(Ginv, SelectedInverse) else Ginv
    u = [uk.reshape(t.nlevels, t.p) for uk, t in
         zip(model.design.split_u(model.u), model.reterms)]
    req = GradientRequest(beta=np.asarray(beta, dtype=float), u=u, lams=lams, dlams=dlams,
                          parameters=model.response.parameters(), Ginv=shipped,
                          observed=model.observed_information)
    model.passes += 1
    S: GradientSums = model.parts.map_reduce("gradient_sums", merge_gradient, req)
    grad_beta = -2.0 * S.Xs + S.Xd
    if S.Xs.size:
        grad_beta = grad_beta - S.ZLtd @ Ginv.solve(S.ZLtWX)
    grad_theta = -2.0 * S.sa + 2.0 * S.tr + S.da
    if S.sa.size:
        grad_theta = grad_theta + S.ZLtd @ Ginv.solve(S.RHS)
    return np.concatenate([grad_theta, grad_beta])


class PartitionedDerivatives(GradientDerivatives):
    """Derivatives of a partitioned GLMM's Laplace deviance for the Newton stage: the
    analytic gradient in ``theta`` and ``beta`` (:func:`partitioned_gradient`, one pass
    after the PIRLS of the point), central differences in the response parameters (a
    dispersion), Hessians from forward differences of gradients."""

    def __init__(self, f, model: Any) -> None:
        super().__init__(f)
        self.model = model

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        m = self.model
        layout = m.parameters
        self._at_point(x)
        theta, beta = layout.get(x, "theta"), layout.get(x, "beta")
        g = np.zeros(x.size)
        analytic = partitioned_gradient(m, theta, beta)
        g[layout.slice("theta")] = analytic[:theta.size]
        g[layout.slice("beta")] = analytic[theta.size:]
        others = layout.index("response") if "response" in layout else np.zeros(0, int)
        for j in others:
            h = 1e-4 * max(abs(x[j]), 0.1)
            e = np.zeros(x.size)
            e[j] = h
            g[j] = (self.value(x + e) - self.value(x - e)) / (2 * h)
        if len(others):
            self.value(x)
        return g

    def steering_hessian(self, x: np.ndarray):
        """Gradient, Hessian from forward differences of gradients (``n`` more) and value
        at ``x``: it only steers Newton (standard errors take it where it is the optimum's)."""
        return self.grad_hess(x, central=False)

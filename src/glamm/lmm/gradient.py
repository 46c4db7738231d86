"""The gradient of the profiled deviance (ML) and REML criterion of an LMM in ``theta``,
analytically, from the cross-products and the blocked factor at ``theta``.

With ``G = Lambda'A_ZZ Lambda + I`` (``A = [Z X y]'W[Z X y]`` in blocks), the conditional
modes ``u``, ``beta`` and the weighted residuals' cross-product ``Z'W r = A_Zy - A_ZX beta -
A_ZZ Lambda u``, the three pieces of the objective move with ``theta_r`` (term ``t``, whose
``lambda`` has the derivative ``lambda_r`` = ``covariance.jacobian``) as

    d ldL2   = 2 tr(G^-1 Lambda'A_ZZ dLambda)        = 2 <lambda_r, Q_t'>
    d pwrss  = -2 u' dLambda' Z'W r                   = -2 <lambda_r, P_t>     (envelope)
    d ldRX2  = -2 tr(C^-1 E' dLambda U)               = -2 <lambda_r, F_t'>    (REML only)

with ``U = G^-1 Lambda'A_ZX``, ``E = A_ZX - A_ZZ Lambda U`` and ``C = R_X'R_X`` (``ldL2 +
ldRX2`` is the log-determinant of the whole penalized system, whose ``theta`` derivative
this is). ``Q_t``, ``P_t`` and ``F_t`` are ``p_t x p_t`` sums over the levels of term ``t``:

    Q_t[b, a] = sum over the tiles of A in column block t of  H[:, b] . (lambda_k' A_tile)[:, a]
    P_t[a, b] = sum_l (Z'W r)_l[a] u_l[b]
    F_t[b, a] = sum_l (U_l C^-1 E_l')[b, a]

where ``H`` is ``G^-1`` on the tile's positions. ``G^-1`` is needed only on the pattern of
``A_ZZ``, which :mod:`glamm.linalg.selinv` provides (a dense inverse only for the terms after
the first); :mod:`glamm.linalg.lmm_gradient` does the first term's levels in one compiled
pass. Nothing here runs over observations: the cost is that of a pass over the tiles of
``A`` plus the inverse of the trailing dense block, so the gradient is affordable where that
block is (:func:`gradient_affordable`). Derivations: Bates et al. (2015), section 3; the
form of ``d ldL2`` is MixedModels.jl's (the weights of the log-diagonal, Murray 2016).
"""

from __future__ import annotations

import weakref

import numpy as np
import scipy.linalg as sla

from ..errors import GlammError
from ..linalg.blocks import BlockDiag, BlockSparse
from ..linalg.lmm_gradient import TileSums

#: the gradient inverts the random-effects block after the first term densely: at most this
#: many rows (a larger trailing block costs more than the derivative-free search saves)
MAX_REST = 6000


def gradient_affordable(model) -> bool:
    """Whether :class:`ProfiledGradient` applies to ``model``: a plain
    :class:`~glamm.lmm.model.LinearMixedModel` (or one on cross-products summed over
    partitions, :mod:`glamm.scale.model`) whose random effects after the first term number
    at most :data:`MAX_REST`."""
    from ..scale.model import PartitionedLinearMixedModel
    from .model import LinearMixedModel

    if type(model) not in (LinearMixedModel, PartitionedLinearMixedModel) or not model.reterms:
        return False
    q_rest = sum(t.q for t in model.reterms[1:])
    return q_rest <= MAX_REST


class ProfiledGradient:
    """``d objective / d theta`` for a :class:`~glamm.lmm.model.LinearMixedModel` (its
    ``reml`` setting), evaluated at the model's factor.

    Parameters
    ----------
    model : LinearMixedModel
        The model; its cross-products are read at each call (a new response or ``z`` is
        picked up).
    """

    def __init__(self, model):
        # (a weak reference: the model keeps its gradient, and a cycle would hold both, with
        # their n-row arrays, until the garbage collector's next full pass)
        self._model = weakref.ref(model)
        self.K = len(model.reterms)
        self.tile_sums = TileSums(model.factor, model.A)

    @property
    def model(self):
        model = self._model()
        if model is None:
            raise GlammError("the model of this gradient no longer exists")
        return model

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """The gradient at ``theta`` (the model's factor is set to ``theta`` first unless it
        is there already)."""
        model = self.model
        theta = np.asarray(theta, dtype=float)
        if model.theta is None or not np.array_equal(model.theta, theta):
            model.set_theta(theta)
        fac, A, K = model.factor, model.A, self.K
        lams = model.lambdas(theta)
        dlams = [t.covariance.jacobian(theta[sl])
                 for t, sl in zip(model.reterms, model.theta_slices)]
        p = model.p
        n_eff = model.n - p if model.reml else model.n
        pwrss = fac.pwrss()

        # ldL2: G^-1 on the tiles of A_ZZ
        Q = self.tile_sums(lams)

        # the conditional modes, and U = G^-1 Lambda'A_ZX, from one back substitution with
        # the p + 1 columns of the [X y] row of L (u = L_Z^-T l_y - U beta)
        LK = fac.L[K]
        LKK = LK[K]
        beta = sla.solve_triangular(LKK[:p, :p], LKK[-1, :p], lower=True, trans="T",
                                    check_finite=False) if p else np.zeros(0)
        Y = fac.back_solve_re([LK[k].T for k in range(K)])         # q_k x (p + 1)
        U = [y[:, :p] for y in Y]
        u = [y[:, p] - y[:, :p] @ beta for y in Y]
        # A_ZZ Lambda [u, U] in one pass over the tiles
        V = [_times_lambda(np.column_stack([u[k], U[k]]), lams[k], t.p)
             for k, t in enumerate(model.reterms)]
        AV = _sym_matmat(A, V)
        grad = np.zeros(model.n_theta)
        for k, (t, sl) in enumerate(zip(model.reterms, model.theta_slices)):
            m, pk = t.nlevels, t.p
            AKk = A[K][k]                                           # (p + 1) x q_k
            zr = AKk[-1] - AKk[:p].T @ beta - AV[k][:, 0]           # Z'W r
            P = zr.reshape(m, pk).T @ u[k].reshape(m, pk)           # P[a, b]
            g = 2.0 * np.einsum("rab,ba->r", dlams[k], Q[k])
            g -= (2.0 * n_eff / pwrss) * np.einsum("rab,ab->r", dlams[k], P)
            if model.reml and p:
                E = AKk[:p].T - AV[k][:, 1:]                        # q_k x p
                Cinv_E = sla.cho_solve((LKK[:p, :p], True), E.T, check_finite=False).T
                F = np.einsum("lbc,lac->ba", U[k].reshape(m, pk, p),
                              Cinv_E.reshape(m, pk, p))
                g -= 2.0 * np.einsum("rab,ba->r", dlams[k], F)
            grad[sl] = g
        return grad


# --------------------------------------------------------------------------- block helpers
def _times_lambda(V: np.ndarray, lam: np.ndarray, p: int) -> np.ndarray:
    """``Lambda V`` for one term (``V`` is ``q_k x c``, levels of ``p`` rows)."""
    c = V.shape[1]
    if p == 1:
        return V * lam[0, 0]
    return np.einsum("ab,lbc->lac", lam, V.reshape(-1, p, c)).reshape(-1, c)


def _sym_matmat(A: list, V: list[np.ndarray]) -> list[np.ndarray]:
    """``A_ZZ V`` for the symmetric random-effects part of ``A`` (lower blocks stored), ``V``
    given and returned per term."""
    K = len(V)
    out = [np.zeros_like(v) for v in V]
    for i in range(K):
        for j in range(i + 1):
            B = A[i][j]
            if isinstance(B, BlockDiag):
                m, p = B.m, B.p
                c = V[j].shape[1]
                out[i] += np.einsum("lab,lbc->lac", B.data,
                                    V[j].reshape(m, p, c)).reshape(-1, c)
                continue
            M = B.to_csr() if isinstance(B, BlockSparse) else B
            out[i] += M @ V[j]
            if i != j:
                out[j] += M.T @ V[i]
    return out

"""The marginal likelihood of a zero-inflated or hurdle model with random effects in both
parts (glmmTMB's ``ziformula = ~ x + (1 | g)``), for one grouping factor.

Each level ``j`` of the grouping factor has a vector ``u_j ~ N(0, I)`` holding the spherical
random effects of every term of both parts; row ``i`` of level ``j`` has

    eta_i  = X_i beta  + offset_i + a_i . u_j     (count part)
    zeta_i = Xz_i gamma           + c_i . u_j     (zero part's log-odds)

where ``a_i`` (``c_i``) is the row's random-effects design times the term's relative factor
``Lambda``, zero in the other part's coordinates. The log-likelihood is a sum over levels of
``log int prod_i p(y_i | eta_i, zeta_i) phi(u) du``, by the Laplace approximation at each
level's mode (``nagq = 1``) or by adaptive Gauss-Hermite quadrature on a product grid
centred there and scaled by the curvature (GLMMadaptive's rule). The modes are found for all
levels at once by damped Newton steps on small batched matrices; the family supplies the
log-density and its derivatives in ``(eta, zeta)``
(:meth:`~glamm.families.zero_inflated.ZeroInflated.joint_derivatives`).

Public here: :class:`TwoPartModel`; the fit and its result are in :mod:`glamm.zi_random_api`.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from ..errors import GlammError
from ..families.numeric import LOG_PARAMETER_LIMIT

#: Newton iterations per mode search, and the gradient size at which a mode is accepted
_MAX_NEWTON = 60
_GRAD_TOL = 1e-9


@dataclass
class PartTerm:
    """One random-effects term of one part: ``z`` its ``(n, p)`` design, ``covariance``
    its structure (``theta -> Lambda``), ``part`` ``"cond"`` or ``"zi"``, ``names`` its
    columns."""

    z: np.ndarray
    covariance: Any
    part: str
    names: tuple[str, ...]
    #: the formula's term it came from (rebuilds ``z`` and the level codes for new data)
    reterm: Any = None

    @property
    def p(self) -> int:
        return self.z.shape[1]


def _ascent_step(negH: np.ndarray, grad: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Newton steps ``(-H)^-1 grad`` per level; where ``-H`` is not positive definite (away
    from a mode) it is shifted until it is."""
    try:
        L = np.linalg.cholesky(negH)
    except np.linalg.LinAlgError:
        w = np.linalg.eigvalsh(negH)
        shift = np.maximum(0.0, 1e-6 - w[:, 0])
        return np.linalg.solve(negH + shift[:, None, None] * eye, grad[..., None])[..., 0]
    y = np.linalg.solve(L, grad[..., None])
    return np.linalg.solve(L.transpose(0, 2, 1), y)[..., 0]


def _third_derivatives(family, y, eta, zeta, ones) -> np.ndarray:
    """Per row the third derivatives of the log-density in ``(eta, zeta)`` as an
    ``(n, 2, 2, 2)`` array, by central differences of the second derivatives."""
    n = eta.size
    out = np.zeros((n, 2, 2, 2))
    for axis in (0, 1):
        h = 1e-5 * np.maximum(1.0, np.abs(eta if axis == 0 else zeta))
        e_p, z_p = (eta + h, zeta) if axis == 0 else (eta, zeta + h)
        e_m, z_m = (eta - h, zeta) if axis == 0 else (eta, zeta - h)
        plus = family.joint_derivatives(y, e_p, z_p, ones)
        minus = family.joint_derivatives(y, e_m, z_m, ones)
        d_ee, d_ez, d_zz = ((plus[k] - minus[k]) / (2.0 * h) for k in (3, 4, 5))
        out[:, 0, 0, axis] = d_ee
        out[:, 0, 1, axis] = out[:, 1, 0, axis] = d_ez
        out[:, 1, 1, axis] = d_zz
    return out


@functools.lru_cache(maxsize=8)
def _product_rule(nagq: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``nagq^q`` Gauss-Hermite product nodes and their log weights (built once per
    size: every evaluation of a quadrature fit uses the same)."""
    x1, w1 = np.polynomial.hermite.hermgauss(nagq)
    nodes = np.array(list(itertools.product(x1, repeat=q)))
    logw = np.array([np.sum(np.log(w1[list(ix)]))
                     for ix in itertools.product(range(nagq), repeat=q)])
    nodes.flags.writeable = False
    logw.flags.writeable = False
    return nodes, logw


class TwoPartModel:
    """The objective ``-2 log L`` of a two-part count model with random effects on one
    grouping factor, as a function of the parameter vector ``[theta, beta, gamma, own]``
    (``theta`` the terms' covariance parameters in term order, ``own`` the count family's
    own parameters such as log(size)).

    Parameters
    ----------
    family : ZeroInflated
        The two-part family (its ``Z`` is the zero part's fixed design ``Xz``).
    y, X, offset : ndarray
        Responses, the count part's fixed design and offset.
    group : ndarray
        ``(n,)`` integer level of each row, ``0 .. n_groups - 1``.
    n_groups : int
        Number of levels.
    terms : list of PartTerm
        The random-effects terms, conditional part first.
    """

    def __init__(self, family, y: np.ndarray, X: np.ndarray, offset: np.ndarray,
                 group: np.ndarray, n_groups: int, terms: list[PartTerm]):
        self.family = family
        self.y = np.asarray(y, dtype=float)
        self.X = np.asarray(X, dtype=float)
        self.Xz = np.asarray(family.Z, dtype=float)
        self.offset = np.asarray(offset, dtype=float)
        self.group = np.asarray(group, dtype=np.intp)
        self.n_groups = int(n_groups)
        self.terms = list(terms)
        n = self.y.size
        self.n = n
        self.q = sum(t.p for t in self.terms)
        self.n_theta = [t.covariance.n_theta for t in self.terms]
        self.n_own = len(family.base.extra_names())
        self.p_cond, self.p_zi = self.X.shape[1], self.Xz.shape[1]
        # the sum over each level's rows, as a sparse (n_groups, n) indicator
        self.S = sparse.csr_matrix((np.ones(n), (self.group, np.arange(n))),
                                   shape=(self.n_groups, n))
        self.u = np.zeros((self.n_groups, self.q))   # the modes at the last evaluation
        self._modes_at: np.ndarray | None = None      # ... and its parameters (Laplace)
        #: where the mode searches start (None: at 0); set only for the difference points
        #: around one parameter value, whose modes are then the start (see fit_two_part)
        self.mode_start: np.ndarray | None = None
        self._ones = np.ones(n)
        #: the per-row outer products of the last designs (see _outer_products)
        self._outer_of: tuple | None = None
        #: each fixed effect's change of the rows' (eta, zeta), ``(n, 2, p_cond + p_zi)``:
        #: a column of X or of the zero part's design (the gradient's fixed directions)
        self._fixed_directions = np.zeros((n, 2, self.p_cond + self.p_zi))
        self._fixed_directions[:, 0, :self.p_cond] = self.X
        self._fixed_directions[:, 1, self.p_cond:] = self.Xz

    # ------------------------------------------------------------------ parameters
    def split(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray,
                                            np.ndarray]:
        """``x`` as (the terms' theta, beta, gamma, own)."""
        x = np.asarray(x, dtype=float)
        thetas, k = [], 0
        for m in self.n_theta:
            thetas.append(x[k:k + m])
            k += m
        beta = x[k:k + self.p_cond]
        k += self.p_cond
        gamma = x[k:k + self.p_zi]
        k += self.p_zi
        return thetas, beta, gamma, x[k:k + self.n_own]

    def lower(self) -> np.ndarray:
        return np.concatenate([np.asarray(t.covariance.lower(), dtype=float)
                               for t in self.terms]
                              + [np.full(self.p_cond + self.p_zi + self.n_own, -np.inf)])

    def initial_theta(self) -> np.ndarray:
        return np.concatenate([np.asarray(t.covariance.initial(), dtype=float)
                               for t in self.terms])

    # ------------------------------------------------------------------ the pieces
    def _designs(self, thetas: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the coefficients ``a_i`` and ``c_i`` of ``u`` in ``eta`` and ``zeta``."""
        A = np.zeros((self.n, self.q))
        C = np.zeros((self.n, self.q))
        k = 0
        for term, theta in zip(self.terms, thetas, strict=True):
            block = term.z @ term.covariance.lambda_(theta)
            (A if term.part == "cond" else C)[:, k:k + term.p] = block
            k += term.p
        return A, C

    def _at(self, u: np.ndarray, base_eta, base_zeta, A, C):
        """Per-row ``(eta, zeta)`` for the levels' vectors ``u`` (``(n_groups, q)``)."""
        ur = u[self.group]
        return base_eta + np.einsum("ij,ij->i", A, ur), base_zeta + np.einsum("ij,ij->i", C, ur)

    def _outer_products(self, A, C) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row ``a a'``, ``a c' + c a'`` and ``c c'`` flattened to ``(n, q^2)``, kept for
        the designs of the current parameters (every Newton step of the mode search uses
        them)."""
        held = self._outer_of
        if held is not None and held[0] is A and held[1] is C:
            return held[2]
        n, q = self.n, self.q
        AA = np.einsum("iq,ir->iqr", A, A).reshape(n, q * q)
        AC = np.einsum("iq,ir->iqr", A, C)
        ACs = (AC + AC.transpose(0, 2, 1)).reshape(n, q * q)
        CC = np.einsum("iq,ir->iqr", C, C).reshape(n, q * q)
        self._outer_of = (A, C, (AA, ACs, CC))
        return AA, ACs, CC

    def _grad_hess(self, u, family, base_eta, base_zeta, A, C):
        eta, zeta = self._at(u, base_eta, base_zeta, A, C)
        ll, l_e, l_z, l_ee, l_ez, l_zz = family.joint_derivatives(self.y, eta, zeta,
                                                                  self._ones)
        grad = self.S @ (l_e[:, None] * A + l_z[:, None] * C) - u
        q = self.q
        AA, ACs, CC = self._outer_products(A, C)
        outer = l_ee[:, None] * AA + l_ez[:, None] * ACs + l_zz[:, None] * CC
        neg_hess = np.eye(q)[None] - (self.S @ outer).reshape(-1, q, q)
        h = self.S @ ll - 0.5 * np.einsum("ij,ij->i", u, u)
        return h, grad, neg_hess

    def modes(self, thetas, family, base_eta, base_zeta, A, C):
        """Each level's mode of ``h`` (Newton with step halving, all levels at once);
        returns ``(u, h, -Hessian)`` at the modes."""
        # (always from u = 0, not from the last modes: a level's posterior can have two
        # modes (zeros from the zero part or from a small count mean), and a warm start
        # would make the objective depend on the path the optimizer took)
        u = np.zeros((self.n_groups, self.q)) if self.mode_start is None \
            else self.mode_start.copy()
        h, grad, negH = self._grad_hess(u, family, base_eta, base_zeta, A, C)
        eye = np.eye(self.q)[None]
        for _ in range(_MAX_NEWTON):
            if np.max(np.abs(grad)) < _GRAD_TOL:
                break
            step = _ascent_step(negH, grad, eye)
            t = np.ones(self.n_groups)
            done = np.zeros(self.n_groups, dtype=bool)
            u_new, h_new = u.copy(), h.copy()
            grad_new, negH_new = grad.copy(), negH.copy()
            for _ in range(30):
                trial = u + t[:, None] * step
                ht, gt, Ht = self._grad_hess(trial, family, base_eta, base_zeta, A, C)
                ok = ~done & np.isfinite(ht) & (ht >= h - 1e-12 * np.abs(h))
                u_new[ok], h_new[ok], grad_new[ok], negH_new[ok] = \
                    trial[ok], ht[ok], gt[ok], Ht[ok]
                done |= ok
                if done.all():
                    break
                t = np.where(done, t, t / 2)
            if not done.any():
                break
            u, h, grad, negH = u_new, h_new, grad_new, negH_new
            # (a level whose step could not be improved keeps its point and stops moving)
            grad[~done] = 0.0
        return u, h, negH

    # ------------------------------------------------------------------ the objective
    def deviance(self, x: np.ndarray, nagq: int = 1) -> float:
        """``-2 log L`` at ``x`` (Laplace for ``nagq = 1``, else adaptive quadrature with
        ``nagq`` points per dimension); ``inf`` where it is not defined."""
        thetas, beta, gamma, own = self.split(x)
        if np.any(np.abs(own) > LOG_PARAMETER_LIMIT):   # (the count family's, log scale)
            return math.inf
        try:
            family = self.family.with_extra(np.concatenate([own, gamma]))
        except (OverflowError, ValueError):   # a size beyond floating point
            return math.inf
        base_eta = self.X @ beta + self.offset
        base_zeta = self.Xz @ gamma
        A, C = self._designs(thetas)
        with np.errstate(all="ignore"):
            u, h, negH = self.modes(thetas, family, base_eta, base_zeta, A, C)
            try:
                L = np.linalg.cholesky(negH)
            except np.linalg.LinAlgError:
                return math.inf
            logdet = 2.0 * np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
            if nagq == 1:
                total = np.sum(h - 0.5 * logdet)
            else:
                total = np.sum(self._quadrature(u, L, logdet, nagq, family, base_eta,
                                                base_zeta, A, C))
        if not np.isfinite(total):
            return math.inf
        self.u = u
        self._modes_at = np.array(x, dtype=float, copy=True)
        return float(-2.0 * total)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """The gradient of the Laplace ``-2 log L`` (``nagq = 1``) at ``x``.

        Per level ``F = h(u_hat) - log det M / 2`` with ``M = I - sum_i D_i' W_i D_i``
        (``D_i`` the row's ``2 x q`` design ``[a_i; c_i]``, ``W_i`` the Hessian of its
        log-density in ``(eta, zeta)``). For a parameter ``phi``, with ``d rho_i`` the total
        change of the row's predictors (the mode moves by ``M^-1 d grad_u h``):
        ``dF = dh/dphi + sum_i [tr(W_i D_i M^-1 dD_i') + tr(dW_i P_i) / 2]``, ``P_i = D_i M^-1
        D_i'``; ``dW_i`` takes the log-density's third derivatives (central differences of
        the second ones, per row) and, for the count family's own parameters, their
        differences at fixed predictors."""
        thetas, beta, gamma, own = self.split(x)
        family = self.family.with_extra(np.concatenate([own, gamma]))
        base_eta = self.X @ beta + self.offset
        base_zeta = self.Xz @ gamma
        A, C = self._designs(thetas)
        with np.errstate(all="ignore"):
            if self._modes_at is not None and np.array_equal(self._modes_at, x):
                u = self.u   # (the optimizers ask for the gradient where they just evaluated)
                negH = self._grad_hess(u, family, base_eta, base_zeta, A, C)[2]
            else:
                u, _, negH = self.modes(thetas, family, base_eta, base_zeta, A, C)
            Minv = np.linalg.inv(negH)
            eta, zeta = self._at(u, base_eta, base_zeta, A, C)
            ones = self._ones
            _, l_e, l_z, l_ee, l_ez, l_zz = family.joint_derivatives(self.y, eta, zeta, ones)
            third = _third_derivatives(family, self.y, eta, zeta, ones)
        s = np.column_stack([l_e, l_z])                          # (n, 2)
        W = np.stack([np.column_stack([l_ee, l_ez]), np.column_stack([l_ez, l_zz])], axis=1)
        n = self.n
        D = np.stack([A, C], axis=1)                              # (n, 2, q)
        Dt = D.transpose(0, 2, 1)                                 # (n, q, 2)
        Mi = Minv[self.group]                                     # (n, q, q)
        DM = D @ Mi                                               # D_i M^-1
        P = DM @ Dt                                               # (n, 2, 2), symmetric
        # the fixed effects of both parts, all at once: each moves one predictor by a
        # column of its design, at fixed D and without own-parameter terms (batched
        # products of the rows' small matrices: matmul, not einsum, is the fast path)
        R0 = self._fixed_directions
        m = R0.shape[2]
        dg = Dt @ (W @ R0)                                        # (n, q, m)
        Sdg = (self.S @ dg.reshape(n, -1)).reshape(self.n_groups, self.q, m)
        du = Minv @ Sdg
        d_rho = R0 + D @ du[self.group]                           # (n, 2, m)
        dW = (third.reshape(n, 4, 2) @ d_rho).reshape(n, 2, 2, m)
        # sum_iab dW[i, a, b, m] P[i, b, a], P symmetric
        fixed = (s.reshape(1, -1) @ R0.reshape(-1, m))[0] \
            + 0.5 * (P.reshape(1, -1) @ dW.reshape(-1, m))[0]
        out = []
        WDM = W @ DM                                              # (n, 2, q)
        for d_rho0, dD, own_parts in self._directions(thetas, family, u, eta, zeta, ones):
            # the mode's movement (column vectors as trailing axes: batched matmul)
            v = W @ d_rho0[:, :, None]                            # (n, 2, 1)
            if own_parts is not None:
                v = v + own_parts[1][:, :, None]
            dg = Dt @ v                                           # (n, q, 1)
            if dD is not None:
                dg = dg + dD.transpose(0, 2, 1) @ s[:, :, None]
            du = Minv @ (self.S @ dg[:, :, 0])[:, :, None]        # (groups, q, 1)
            d_rho = d_rho0 + (D @ du[self.group])[:, :, 0]
            dW = (third.reshape(n, 4, 2) @ d_rho[:, :, None]).reshape(n, 2, 2)
            total = float(np.sum(s * d_rho0))
            if own_parts is not None:
                total += float(np.sum(own_parts[0]))
                dW = dW + own_parts[2]
            total += 0.5 * float(np.sum(dW * P))                  # (P symmetric)
            if dD is not None:
                total += float(np.sum(WDM * dD))
            out.append(total)
        self.u, self._modes_at = u, np.array(x, dtype=float, copy=True)
        nt = sum(self.n_theta)
        grad = np.concatenate([out[:nt], fixed, out[nt:]])
        return -2.0 * grad

    def _directions(self, thetas, family, u_hat, eta, zeta, ones):
        """Per parameter but the fixed effects (which :meth:`gradient` takes together), in
        order: the change of each row's ``(eta, zeta)`` at fixed ``u`` (``(n, 2)``), of ``D``
        (``(n, 2, q)`` or None) and, for the family's own parameters, of the row's
        log-density, score and Hessian (or None)."""
        n, q = self.n, self.q
        u = u_hat[self.group]
        k = 0
        for term, theta in zip(self.terms, thetas, strict=True):
            row = 0 if term.part == "cond" else 1
            for dlam in term.covariance.jacobian(theta):
                dD = np.zeros((n, 2, q))
                dD[:, row, k:k + term.p] = term.z @ dlam
                d_rho0 = np.einsum("iaq,iq->ia", dD, u)
                yield d_rho0, dD, None
            k += term.p
        if self.n_own:
            own = family.base.extra_values()
            gamma = family.gamma
            for j in range(self.n_own):
                h = 1e-5 * max(1.0, abs(own[j]))
                parts = []
                for sign in (1.0, -1.0):
                    o = own.copy()
                    o[j] += sign * h
                    f = self.family.with_extra(np.concatenate([o, gamma]))
                    parts.append(f.joint_derivatives(self.y, eta, zeta, ones))
                diff = [(a - b) / (2.0 * h) for a, b in zip(parts[0], parts[1], strict=True)]
                dW = np.stack([np.column_stack([diff[3], diff[4]]),
                               np.column_stack([diff[4], diff[5]])], axis=1)
                yield np.zeros((n, 2)), None, (diff[0], np.column_stack([diff[1], diff[2]]),
                                               dW)

    def _quadrature(self, u, L, logdet, nagq, family, base_eta, base_zeta, A, C):
        """Per level ``log int exp(h(u)) du / (2 pi)^(q/2)`` on the product Gauss-Hermite
        grid ``u = u_hat + sqrt(2) L^-T x``."""
        q = self.q
        nodes, logw = _product_rule(nagq, q)                              # (K, q), (K,)
        # L L' = -H, so the covariance of the Gaussian fitted at the mode is L^-T L^-1
        Linv_t = np.linalg.inv(L).transpose(0, 2, 1)                      # (G, q, q)
        shift = math.sqrt(2.0) * np.einsum("gab,kb->gka", Linv_t, nodes)  # (G, K, q)
        U = u[:, None, :] + shift
        Ur = U[self.group]                                                # (n, K, q)
        eta = base_eta[:, None] + np.einsum("iq,ikq->ik", A, Ur)
        zeta = base_zeta[:, None] + np.einsum("iq,ikq->ik", C, Ur)
        ll = family.joint_derivatives(self.y, eta, zeta)[0]               # (n, K)
        hk = self.S @ ll - 0.5 * np.einsum("gkq,gkq->gk", U, U)
        terms = hk + logw[None, :] + np.sum(nodes**2, axis=1)[None, :]
        top = np.max(terms, axis=1, keepdims=True)
        log_sum = top[:, 0] + np.log(np.sum(np.exp(terms - top), axis=1))
        return log_sum - 0.5 * logdet - 0.5 * q * math.log(math.pi)

    def check_quadrature_size(self, nagq: int) -> None:
        if nagq > 1 and nagq ** self.q * self.n > 5e7:
            raise GlammError(f"nagq={nagq} with {self.q} random effects per level needs "
                             f"{nagq ** self.q} points per level; use fewer points or nagq=1")

"""An approximate profiled deviance for LMMs with huge crossed factors (``method="approximate"``).

Where the exact blocked factor would need a dense Schur block too large for memory or time
(:mod:`glamm.linalg.cost`), the same penalized system ``G = Lambda'Z'WZ Lambda + I`` is
handled without factoring it:

- the first term (the most levels, lme4's order) is **eliminated exactly**: its block
  ``G00`` is block-diagonal, one ``p0 x p0`` block per level;
- the Schur complement ``S = G_RR - G_R0 G00^{-1} G_0R`` of the other terms is used only
  through products with blocks of vectors (two sparse products with ``A[k][0]`` per step);
- the ``p + 1`` solves with ``S`` that give ``beta``, the penalized residual sum of squares
  ``pwrss`` and ``log det(R_X'R_X)`` are done by **preconditioned conjugate gradients** with
  the block-Jacobi preconditioner ``P`` (the diagonal blocks of ``S``, one per level), to a
  relative residual of ``cg_tol``: exact to that tolerance;
- ``log det G = log det G00 + log det P + log det(C^{-1} S C^{-T})`` (``P = C C'``), the last
  term by **stochastic Lanczos quadrature** (:mod:`glamm.linalg.krylov`) with a fixed, seeded
  set of Rademacher probes (common random numbers: the objective is then a deterministic,
  smooth function of ``theta`` for the optimizer). Its Monte-Carlo standard error is the
  probes' standard deviation over ``sqrt(probes)``.

:class:`KrylovFactor` has the part of :class:`~glamm.linalg.factor.BlockedCholesky`'s
interface the profiled deviance and the estimates read (``logdet_re``, ``logdet_fixed``,
``pwrss``, ``solve_u_beta``, ``L[K][K]``), so :class:`ApproximateLinearMixedModel` is the exact
model with another factor. Conditional variances of the random effects are not available.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .. import jit
from ..errors import GlammError
from ..formula.design import ModelFrame
from ..linalg.blocks import BlockSparse
from ..linalg.krylov import block_pcg, rademacher_probes, slq_quadratic_forms
from ..optim.optsummary import OptSummary
from .model import LinearMixedModel


@dataclass
class ApproximationSettings:
    """Settings of the approximate method.

    Attributes
    ----------
    probes : int
        Rademacher probes of the SLQ log-determinant during the optimization (default 30).
    lanczos_steps : int
        Lanczos steps per probe (default 30).
    final_probes : int
        Probes of the final evaluation at the optimum, which gives the reported
        log-likelihood and its standard error (default 100; independent of the first set).
    cg_tol : float
        Relative residual at which conjugate gradients stop (default 1e-10).
    cg_maxiter : int
        Iteration limit of conjugate gradients (default 2000).
    seed : int
        Seed of the probes (default 20261202).
    """

    probes: int = 30
    lanczos_steps: int = 30
    final_probes: int = 100
    cg_tol: float = 1e-10
    cg_maxiter: int = 2000
    seed: int = 20261202

    @classmethod
    def from_dict(cls, settings: dict | None) -> ApproximationSettings:
        """Settings from a dict of the attribute names (unknown keys are an error)."""
        settings = dict(settings or {})
        known = set(asdict(cls()))
        bad = sorted(set(settings) - known)
        if bad:
            raise GlammError(f"unknown approximation settings {bad}; known: {sorted(known)}")
        out = cls(**settings)
        for name in ("probes", "lanczos_steps", "final_probes", "cg_maxiter"):
            if int(getattr(out, name)) < 1:
                raise GlammError(f"approximation setting {name} must be at least 1")
        if out.probes < 2 or out.final_probes < 2:
            raise GlammError("the log-determinant needs at least 2 probes for its standard error")
        if not 0.0 < out.cg_tol < 1.0:
            raise GlammError(f"cg_tol must be in (0, 1), got {out.cg_tol}")
        return out


def _segments(sizes: list[int]) -> list[slice]:
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return [slice(int(off[k]), int(off[k + 1])) for k in range(len(sizes))]


def _element_matrix(block: BlockSparse) -> sp.csc_matrix:
    """A block of ``A`` as an element-level sparse matrix (for a scalar pair straight from
    the block's column-major storage, with no sort)."""
    if block.p_row == 1 and block.p_col == 1:
        return sp.csc_matrix((block.data[:, 0, 0], block.rows.astype(np.int32),
                              block.colptr.astype(np.int64)), shape=block.shape)
    return block.to_csr().copy().tocsc()


#: stored entries times columns from which the block products run their rows in parallel
PARALLEL_WORK = 20_000_000


class RowSparse:
    """A sparse matrix kept in CSR form for products with blocks of vectors: compiled
    (:mod:`glamm.linalg._krylov_kernels`, rows in parallel) where the kernels are on,
    SciPy's product otherwise."""

    def __init__(self, M: sp.spmatrix):
        self.M = sp.csr_matrix(M)
        self.M.sort_indices()
        self.shape = self.M.shape
        self.nnz = self.M.nnz

    def __matmul__(self, X: np.ndarray) -> np.ndarray:
        k = jit.load("glamm.linalg._krylov_kernels")
        if k is None:
            return np.asarray(self.M @ X)
        X = np.ascontiguousarray(X, dtype=float)
        out = np.empty((self.shape[0], X.shape[1]))
        M = self.M
        run = k.csr_matmat_parallel if M.nnz * X.shape[1] >= PARALLEL_WORK else k.csr_matmat
        run(M.indptr, M.indices, M.data, X, out)
        return out


class KrylovFactor:
    """The pieces of the profiled deviance at ``theta`` from CG solves and SLQ (see the
    module docstring). Made by :class:`ApproximateLinearMixedModel`.

    Parameters
    ----------
    A : list of list
        Lower blocks of ``A`` (:class:`~glamm.linalg.crossprod.CrossProducts`), at least two
        random-effects terms.
    ps : list of int
        Columns per level of each term.
    settings : ApproximationSettings
    """

    def __init__(self, A: list[list], ps: list[int], settings: ApproximationSettings):
        self.A = A
        self.ps = list(ps)
        self.K = K = len(ps)
        if K < 2:
            raise GlammError("the approximate method needs at least two random-effects terms")
        self.ms = [A[k][k].m for k in range(K)]
        self.settings = settings
        self.qs = [self.ms[k] * self.ps[k] for k in range(K)]
        self.rest = _segments(self.qs[1:])
        self.nR = int(sum(self.qs[1:]))
        nxy = A[K][K].shape[0]
        self.L: list[list] = [[None] * (i + 1) for i in range(K + 1)]
        self.L[K][K] = np.zeros((nxy, nxy))
        self.block_types = [["Eliminated"] + ["Krylov"] * i if i < K else ["Dense"] * (K + 1)
                            for i in range(K + 1)]
        self._x0: np.ndarray | None = None
        self.set_probes(settings.probes, settings.seed)
        self.refresh()
        #: the last evaluation's SLQ: estimate of log det(C^-1 S C^-T), its standard error, the
        #: CG iterations and residual
        self.logdet_se = np.nan
        self.cg_iterations = 0
        self.cg_iterations_max = 0
        self.cg_residual = np.nan

    # ------------------------------------------------------------------ set-up
    def set_probes(self, k: int, seed: int) -> None:
        """Use ``k`` Rademacher probes drawn with ``seed`` from now on."""
        self.n_probes = int(k)
        self.probe_seed = int(seed)
        self.Z = rademacher_probes(self.nR, self.n_probes, self.probe_seed)

    def refresh(self) -> None:
        """Rebuild the sparse matrices from the current values of ``A`` (same pattern)."""
        A, K = self.A, self.K
        self.A00 = A[0][0].data
        #: A_R0 (element level, rows: terms 1..K-1 stacked)
        AR0 = sp.vstack([_element_matrix(A[i][0]) for i in range(1, K)], format="csc")
        self.AR0_T = RowSparse(AR0.T)                  # the CSC arrays read as CSR
        self.AR0 = RowSparse(AR0)
        del AR0
        # A_RR without its diagonal blocks (those are per level, kept as BlockDiag data)
        off = []
        for i in range(1, K):
            row = []
            for j in range(1, K):
                if i > j:
                    row.append(_element_matrix(A[i][j]))
                elif i < j:
                    row.append(_element_matrix(A[j][i]).T)
                else:
                    row.append(None)
            off.append(row)
        self.ARR_off = RowSparse(sp.bmat(off, format="csr")) if K > 2 else None
        self.B0 = A[K][0].T.copy()                     # q0 x (p+1)
        self.BR = np.vstack([A[K][k].T for k in range(1, K)])   # nR x (p+1)
        self.AKK = A[K][K]

    # ------------------------------------------------------------------ Lambda products
    def _lam_R(self, V: np.ndarray, trans: bool) -> np.ndarray:
        """``Lambda_R V`` (or ``Lambda_R' V``) for an ``(nR, c)`` block."""
        out = np.empty_like(V)
        for k, seg in zip(range(1, self.K), self.rest):
            out[seg] = _lam(self._lams[k], V[seg], self.ps[k], trans)
        return out

    def _lam0(self, V: np.ndarray, trans: bool) -> np.ndarray:
        return _lam(self._lams[0], V, self.ps[0], trans)

    def _G00_solve(self, V: np.ndarray) -> np.ndarray:
        p0 = self.ps[0]
        if p0 == 1:
            return V / self._g0[:, None]
        V3 = V.reshape(self.ms[0], p0, -1)
        return np.linalg.solve(self._g0, V3).reshape(V.shape)

    # ------------------------------------------------------------------ the operator S
    def _S(self, V: np.ndarray) -> np.ndarray:
        """``S V`` for an ``(nR, c)`` block."""
        W = self._lam_R(V, trans=False)
        out = np.empty_like(V)
        for k, seg in zip(range(1, self.K), self.rest):
            out[seg] = _blockdiag_mul(self.A[k][k].data, W[seg], self.ps[k])
        if self.ARR_off is not None:
            out += self.ARR_off @ W
        T = self._lam0(self.AR0_T @ W, trans=True)
        T = self._lam0(self._G00_solve(T), trans=False)
        out -= self.AR0 @ T
        return self._lam_R(out, trans=True) + V

    def _schur_diagonal(self) -> list[np.ndarray]:
        """Per term ``k >= 1``: the ``(m_k, p_k, p_k)`` diagonal blocks of ``S``."""
        lam0 = self._lams[0]
        G0inv = (1.0 / self._g0)[:, None, None] if self.ps[0] == 1 else np.linalg.inv(self._g0)
        out = []
        for k in range(1, self.K):
            lk = self._lams[k]
            Akk = self.A[k][k].data
            D = np.einsum("ba,mbc,cd->mad", lk, Akk, lk) + np.eye(self.ps[k])[None]
            blk = self.A[k][0]
            W = blk.data @ lam0                          # (nb, p_k, p0)
            if self.ps[0] == 1:
                C = np.einsum("nap,nbp->nab", W, W) * G0inv[blk.cols]
            else:
                C = np.einsum("nap,npq,nbq->nab", W, G0inv[blk.cols], W)
            C = np.einsum("ba,nbc,cd->nad", lk, C, lk)
            pk = self.ps[k]
            for a in range(pk):
                for b in range(pk):
                    D[:, a, b] -= np.bincount(blk.rows, weights=C[:, a, b], minlength=self.ms[k])
            out.append(D)
        return out

    # ------------------------------------------------------------------ numeric phase
    def update(self, lambdas: list[np.ndarray], re_only: bool = False,
               solve_only: bool = False) -> None:
        """Evaluate the pieces at the per-term ``lambdas``: the eliminated block, the
        preconditioner, the SLQ log-determinant and the ``p + 1`` CG solves."""
        self._lams = [np.asarray(lam, dtype=float) for lam in lambdas]
        lam0 = self._lams[0]
        p0 = self.ps[0]
        if p0 == 1:
            self._g0 = lam0[0, 0] ** 2 * self.A00[:, 0, 0] + 1.0
            logdet0 = float(np.log(self._g0).sum())
        else:
            self._g0 = np.einsum("ba,mbc,cd->mad", lam0, self.A00, lam0) + np.eye(p0)[None]
            logdet0 = float(2.0 * np.log(np.diagonal(np.linalg.cholesky(self._g0),
                                                     axis1=1, axis2=2)).sum())
        # block-Jacobi preconditioner P = C C' (per level of every other term)
        chol = [np.linalg.cholesky(D) for D in self._schur_diagonal()]
        cinv = [np.linalg.inv(C) for C in chol]
        logdetP = float(sum(2.0 * np.log(np.diagonal(C, axis1=1, axis2=2)).sum()
                            for C in chol))
        rest, ps = self.rest, self.ps

        def c_inv(V, trans):   # C^{-1} V or C^{-T} V
            out = np.empty_like(V)
            for k, seg in zip(range(1, self.K), rest):
                Ci = cinv[k - 1]
                out[seg] = _blockdiag_mul(np.transpose(Ci, (0, 2, 1)) if trans else Ci,
                                          V[seg], ps[k])
            return out

        def p_inv(V):
            return c_inv(c_inv(V, trans=False), trans=True)

        def m_op(V):
            return c_inv(self._S(c_inv(V, trans=True)), trans=False)

        quad = slq_quadratic_forms(m_op, self.Z, self.settings.lanczos_steps)
        self.logdet_slq = float(quad.mean())
        self.logdet_se = float(quad.std(ddof=1) / np.sqrt(quad.shape[0]))
        self._logdet_re = logdet0 + logdetP + self.logdet_slq
        if re_only:
            return
        # the [X y] block: C = A_KK - B' G^{-1} B, B = Lambda' Z'W [X y]
        b0 = self._lam0(self.B0, trans=True)
        bR = self._lam_R(self.BR, trans=True)
        t0 = self._G00_solve(b0)
        rhs = bR - self._lam_R(self.AR0 @ self._lam0(t0, trans=False), trans=True)
        cg = block_pcg(self._S, p_inv, rhs, x0=self._x0, tol=self.settings.cg_tol,
                       maxiter=self.settings.cg_maxiter)
        if not np.all(np.isfinite(cg.x)):
            raise np.linalg.LinAlgError("conjugate gradients diverged")
        self._x0 = cg.x
        self.cg_iterations, self.cg_residual = cg.iterations, float(cg.residual.max())
        self.cg_iterations_max = max(self.cg_iterations_max, cg.iterations)
        vR = cg.x
        v0 = self._G00_solve(b0 - self._lam0(self.AR0_T @ self._lam_R(vR, trans=False),
                                             trans=True))
        Cxy = self.AKK - (b0.T @ v0 + bR.T @ vR)
        Cxy = 0.5 * (Cxy + Cxy.T)
        K = self.K
        LKK = self.L[K][K]
        if solve_only:
            lead = np.linalg.cholesky(Cxy[:-1, :-1]) if Cxy.shape[0] > 1 else np.zeros((0, 0))
            LKK[...] = 0.0
            LKK[:-1, :-1] = lead
            if lead.size:
                LKK[-1, :-1] = sla.solve_triangular(lead, Cxy[-1, :-1], lower=True)
            rest_ = Cxy[-1, -1] - LKK[-1, :-1] @ LKK[-1, :-1]
            LKK[-1, -1] = np.sqrt(rest_) if rest_ > 0 else np.nan
        else:
            LKK[...] = np.linalg.cholesky(Cxy)
        self._v = (v0, vR)

    # ------------------------------------------------------------------ results
    def logdet_re(self) -> float:
        """Estimate of ``log det(Lambda'Z'WZ Lambda + I)``: exact for the eliminated term and
        the preconditioner, SLQ for the rest (standard error :attr:`logdet_se`)."""
        return float(self._logdet_re)

    def logdet_fixed(self) -> float:
        d = np.diag(self.L[self.K][self.K])[:-1]
        return float(2.0 * np.log(d).sum())

    def pwrss(self) -> float:
        return float(self.L[self.K][self.K][-1, -1] ** 2)

    def solve_u_beta(self) -> tuple[list[np.ndarray], np.ndarray]:
        """``u`` per term and ``beta``: ``u = G^{-1}(b_y - B_X beta)``, from the CG solutions
        of the last :meth:`update` (linear in the right-hand sides, so no new solve)."""
        K = self.K
        LKK = self.L[K][K]
        pX = LKK.shape[0] - 1
        beta = sla.solve_triangular(LKK[:pX, :pX], LKK[-1, :pX], lower=True, trans="T",
                                    check_finite=False) if pX else np.zeros(0)
        v0, vR = self._v
        coef = np.concatenate([-beta, [1.0]])
        u0 = v0 @ coef
        uR = vR @ coef
        return [u0] + [uR[seg] for seg in self.rest], beta

    def inverse_diag_blocks(self, k: int) -> np.ndarray:
        raise GlammError("conditional variances of the random effects are not available for "
                         "an approximate fit (method='approximate')")

    def dense_re_factor(self) -> np.ndarray:
        raise GlammError("the dense factor is not available for an approximate fit "
                         "(method='approximate')")

    def describe(self) -> list[list[str]]:
        return self.block_types


def _lam(lam: np.ndarray, V: np.ndarray, p: int, trans: bool) -> np.ndarray:
    """``(I kron lambda) V`` or ``(I kron lambda)' V`` for an ``(m p, c)`` block ``V``."""
    if p == 1:
        return V * lam[0, 0]
    V3 = V.reshape(-1, p, V.shape[1])
    M = lam.T if trans else lam
    return np.einsum("ab,mbc->mac", M, V3).reshape(V.shape)


def _blockdiag_mul(D: np.ndarray, V: np.ndarray, p: int) -> np.ndarray:
    """``blockdiag(D) V`` for ``(m, p, p)`` blocks ``D`` and an ``(m p, c)`` block ``V``."""
    if p == 1:
        return V * D[:, 0, 0][:, None]
    return (D @ V.reshape(D.shape[0], p, -1)).reshape(V.shape)


class ApproximateLinearMixedModel(LinearMixedModel):
    """:class:`~glamm.lmm.model.LinearMixedModel` with the :class:`KrylovFactor`: the
    profiled deviance with the log-determinant estimated by SLQ (see the module docstring).

    Parameters
    ----------
    frame : ModelFrame
        The numeric model; at least two grouped random-effects terms.
    reml : bool
        REML criterion if true, ML otherwise.
    settings : ApproximationSettings or dict, optional
        The method's settings (default :class:`ApproximationSettings`).
    """

    def __init__(self, frame: ModelFrame, reml: bool = True,
                 settings: ApproximationSettings | dict | None = None):
        if not isinstance(settings, ApproximationSettings):
            settings = ApproximationSettings.from_dict(settings)
        self.settings = settings
        check_approximate_applies(frame)
        super().__init__(frame, reml=reml)
        # A is filled for good: the per-row structures that would refill it go (2 GB at
        # 32M rows); a new response or new values of z need a new model
        self.cp.release_rows()

    def set_response(self, y: np.ndarray) -> None:
        raise GlammError("an approximate model cannot take a new response (refits, "
                         "profiles and the bootstrap need exact fits); build a new one")

    def set_z(self, k: int, z: np.ndarray) -> None:
        raise GlammError("an approximate model cannot take new values of z; build a new one")

    def _make_factor(self):
        return KrylovFactor(self.A, [t.p for t in self.reterms], self.settings)

    def working_copy(self) -> ApproximateLinearMixedModel:
        new = type(self)(self.frame, reml=self.reml, settings=self.settings)
        new.factor.set_probes(self.factor.n_probes, self.factor.probe_seed)
        if self.theta is not None:
            new.set_theta(self.theta)
        return new

    def approximation_record(self) -> dict:
        """What the reported numbers rest on: the method, the probes and Lanczos steps of the
        last evaluation, the CG tolerance and work, and the standard errors of the
        log-determinant and of the log-likelihood (half the former)."""
        f = self.factor
        return {
            "method": "approximate",
            "logdet": "stochastic Lanczos quadrature",
            "probes": f.n_probes,
            "lanczos_steps": self.settings.lanczos_steps,
            "seed": f.probe_seed,
            "cg_tol": self.settings.cg_tol,
            "cg_iterations_max": f.cg_iterations_max,
            "cg_residual": f.cg_residual,
            "logdet_se": f.logdet_se,
            "loglik_se": 0.5 * f.logdet_se,
            "optimization_probes": self.settings.probes,
        }


def check_approximate_applies(frame: ModelFrame) -> None:
    """Raise :class:`~glamm.errors.GlammError` unless the approximate method covers the
    model: at least two random-effects terms, all of them grouping factors (no smooths)."""
    from ..terms.reterm import TermRole

    if len(frame.reterms) < 2:
        raise GlammError("method='approximate' needs at least two random-effects terms (with "
                         "one the exact factor is block-diagonal and cheap)")
    roles = [t.group for t in frame.reterms if t.role is not TermRole.GROUPED]
    if roles:
        raise GlammError(f"method='approximate' covers grouping factors only, not the smooth "
                         f"terms {roles}")



#: optimizer settings of an approximate fit unless ``control`` overrides them: looser than
#: the exact fit's, since each evaluation is expensive and the objective is an estimate
APPROXIMATE_CONTROL = {"ftol_rel": 1e-10, "xtol_abs": 1e-6}


def fit_approximate(model: ApproximateLinearMixedModel, start: Any = "auto",
                    optimizer: str = "bobyqa", control: dict | None = None) -> OptSummary:
    """Optimize the approximate objective over ``theta`` with the fixed optimization probes
    (from single-term fits for ``start="auto"``), then evaluate it once more at the optimum
    with ``final_probes`` independent probes: that evaluation gives the reported
    log-likelihood and its standard error, and leaves the model there."""
    from .fit import optimize_theta

    settings = {**APPROXIMATE_CONTROL, **(control or {})}
    if isinstance(start, str) and start == "auto":
        start = "warm"
    optsum = optimize_theta(model, start=start, optimizer=optimizer, **settings)
    assert optsum.final is not None   # set by every optimizer run
    s = model.settings
    model.factor.set_probes(s.final_probes, s.seed + 1)
    model.set_theta(optsum.final)
    optsum.messages.append(
        f"approximate fit: log-determinant by stochastic Lanczos quadrature ({s.probes} "
        f"probes while optimizing, {s.final_probes} at the optimum, {s.lanczos_steps} "
        f"Lanczos steps)")
    return optsum

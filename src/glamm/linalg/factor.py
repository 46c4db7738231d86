"""The blocked Cholesky factor ``L`` of ``[Lambda'Z'WZ Lambda + I, ...; ...]`` (Bates et al. 2015).

Block ``k < K`` belongs to random-effects term ``k``; block ``K`` is ``[X y]``. With
``Lambda = blockdiag(I_{m_k} kron lambda_k)``:

    L L' = [[Lambda'Z'WZ Lambda + I, Lambda'Z'W[X y]], [.., [X y]'W[X y]]]

The **symbolic phase** (``__init__``) decides the storage type of every block of ``L`` from the
level-by-level fill-in pattern (as MixedModels.jl does) and compiles the numeric work into a
short list of operations whose index arrays are computed once. The **numeric phase**
(:meth:`BlockedCholesky.update`) refills ``L`` from ``A`` for new ``lambda_k`` and runs those
operations: scale, rank-update, factor each diagonal block, divide the blocks below it.
No dense ``Z`` and no ``n x n`` matrix is ever formed.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .. import jit
from .blocks import BlockDiag, BlockSparse
from .kernels import (
    _Chol,
    _Copy,
    _DenseUpdate,
    _FillDiag,
    _FillFixed,
    _FillOff,
    _FirstTermUpdate,
    _PairUpdate,
    _RDiv,
)

#: an off-diagonal block of L is kept sparse while its fill-in pattern has at most this density
SPARSE_DENSITY = 0.25


# --------------------------------------------------------------------------- symbolic helpers
def _pattern(block) -> sp.csr_matrix | None:
    """Level-by-level nonzero pattern of an A block, ``None`` meaning dense."""
    if isinstance(block, BlockSparse):
        ones = np.ones(block.nb, dtype=np.int8)
        return sp.csr_matrix((ones, (block.rows, block.cols)), shape=(block.m_row, block.m_col))
    if isinstance(block, BlockDiag):
        return sp.identity(block.m, dtype=np.int8, format="csr")
    return None


def _union(P, Q):
    if P is None or Q is None:
        return None
    R = (P + Q).tocsr()
    R.data[:] = 1
    return R


def _product(P, Q):
    """Pattern of ``P @ Q.T`` (``None`` if either is dense)."""
    if P is None or Q is None:
        return None
    R = (P @ Q.T).tocsr()
    R.data[:] = 1
    return R


def _is_diagonal(P) -> bool:
    if P is None:
        return False
    P = P.tocoo()
    return bool(np.all(P.row == P.col))


# --------------------------------------------------------------------------- the factor
class BlockedCholesky:
    """Blocked Cholesky factor of the penalized cross-product matrix.

    Parameters
    ----------
    A : list of list
        Lower blocks of ``A`` from :class:`glamm.linalg.crossprod.CrossProducts`.
        The factor keeps references to these arrays: their values may change later (see
        :meth:`refresh`), their pattern may not.
    ps : list of int
        Number of columns per level (``p_k``) of each random-effects term.
    iso : list of bool, optional
        Terms whose ``lambda`` is a multiple of the identity (default none).

    Attributes
    ----------
    L : list of list
        Lower blocks of the factor (same indexing as ``A``); valid after :meth:`update`.
    """

    def __init__(self, A: list[list], ps: list[int], iso: list[bool] | None = None):
        self.A = A
        self.ps = list(ps)
        #: terms whose lambda is a multiple of the identity (a smooth's penalized part): their
        #: products with lambda are scalings
        self.iso = list(iso) if iso is not None else [False] * len(ps)
        K = len(ps)
        self.K = K
        ms = [A[k][k].m for k in range(K)]
        self.ms = ms
        # --- symbolic fill at level granularity
        P = [[_pattern(A[i][j]) for j in range(i + 1)] for i in range(K)]
        L: list[list] = [[None] * (i + 1) for i in range(K + 1)]
        for j in range(K):
            for k in range(j):
                P[j][j] = _union(P[j][j], _product(P[j][k], P[j][k]))
            diag_sparse = _is_diagonal(P[j][j])
            L[j][j] = BlockDiag(np.zeros((ms[j], ps[j], ps[j]))) if diag_sparse else \
                np.zeros((ms[j] * ps[j], ms[j] * ps[j]))
            if not diag_sparse:
                P[j][j] = None
            for i in range(j + 1, K):
                for k in range(j):
                    P[i][j] = _union(P[i][j], _product(P[i][k], P[j][k]))
                pattern = P[i][j]
                if (diag_sparse and pattern is not None
                        and pattern.nnz <= SPARSE_DENSITY * ms[i] * ms[j]):
                    coo = pattern.tocoo()
                    order = np.lexsort((coo.row, coo.col))
                    rows = coo.row[order].astype(np.int64)
                    cols = coo.col[order].astype(np.int64)
                    Aij = A[i][j]
                    if isinstance(Aij, BlockSparse) and np.array_equal(rows, Aij.rows) \
                            and np.array_equal(cols, Aij.cols):
                        rows, cols = Aij.rows, Aij.cols   # no fill: A's pattern, shared
                    L[i][j] = BlockSparse(rows=rows, cols=cols,
                                          data=np.zeros((coo.nnz, ps[i], ps[j])),
                                          m_row=ms[i], m_col=ms[j])
                else:
                    L[i][j] = np.zeros((ms[i] * ps[i], ms[j] * ps[j]))
                    P[i][j] = None
        nxy = A[K][K].shape[0]
        for j in range(K):
            L[K][j] = np.zeros((nxy, ms[j] * ps[j]))
        L[K][K] = np.zeros((nxy, nxy))
        self.L = L
        self.block_types = [[type(b).__name__ if not isinstance(b, np.ndarray) else "Dense"
                             for b in row] for row in L]

        # --- compile the numeric phase
        ops: list = []
        for i in range(K):
            for j in range(i):
                ops.append(_FillOff(L[i][j], A[i][j], i, j, self.iso[i], self.iso[j]))
            ops.append(_FillDiag(L[i][i], A[i][i], i, self.iso[i]))
        fixed_ops: list = []   # everything that writes the [X y] row of blocks
        for j in range(K):
            fixed_ops.append(_FillFixed(L[K][j], A[K][j], j, ps[j]))
            fixed_ops[-1].iso = self.iso[j]
        fixed_ops.append(_Copy(L[K][K], A[K][K]))
        self._xy_chol = _Chol(L[K][K])
        for j in range(K + 1):
            for k in range(j):
                (fixed_ops if j == K else ops).append(
                    self._update_op(L[j][j], L[j][k], L[j][k], j, j, k, lower_only=True))
            (fixed_ops if j == K else ops).append(_Chol(L[j][j]) if j < K else self._xy_chol)
            for i in range(j + 1, K + 1):
                target = fixed_ops if i == K else ops
                for k in range(j):
                    target.append(self._update_op(L[i][j], L[i][k], L[j][k], i, j, k,
                                                  lower_only=False))
                target.append(_RDiv(L[i][j], L[j][j]))
        # the random-effects part first (it never reads the [X y] row), then the rest
        self.re_ops = ops
        self.ops = ops + fixed_ops

    def _update_op(self, T, A, B, i: int, j: int, k: int, lower_only: bool):
        """Choose the kernel for ``T -= A B'`` (``A = L[i][k]``, ``B = L[j][k]``)."""
        K = self.K
        both_sparse = isinstance(A, BlockSparse) and isinstance(B, BlockSparse)
        if both_sparse and isinstance(T, np.ndarray) \
                and jit.load("glamm.linalg._pair_kernels") is not None:
            # the compiled column-wise rank update needs no set-up, where the first-term
            # update's precomputed pair products cost seconds to build on large crossed
            # models and must be rebuilt after every GLMM reweighting
            return _PairUpdate(T, A, B, lower_only)
        if k == 0 and self.ps[0] == 1 \
                and (isinstance(T, np.ndarray) or (isinstance(A, BlockSparse)
                                                    and isinstance(B, BlockSparse))):
            op = _FirstTermUpdate(T, self.A[i][0], self.A[j][0], self.L[0][0],
                                  i if i < K else None, j if j < K else None, lower_only,
                                  isinstance(A, BlockSparse), isinstance(B, BlockSparse))
            op.iso_a = i < K and self.iso[i]
            op.iso_b = j < K and self.iso[j]
            return op
        if isinstance(A, BlockSparse) and isinstance(B, BlockSparse):
            return _PairUpdate(T, A, B, lower_only)
        if not isinstance(T, np.ndarray):
            raise AssertionError("dense product into a structured block")
        return _DenseUpdate(T, A, B)

    # ------------------------------------------------------------------ numeric phase
    def refresh(self) -> None:
        """Tell the factor that the values of ``A`` changed (same pattern): operations that
        precompute constants from ``A`` recompute them.

        The contract: whoever refills ``A`` in place (``CrossProducts.update``: every GLMM
        reweighting; ``RandomDesign.set_z``: new values of a term's ``z``) calls ``refresh``
        before the next :meth:`update`, or the factor mixes old and new values (the Schur
        complement of a scalar first term is precomputed from ``A``). The pattern of ``A``
        (which level pairs occur) depends only on the level codes and never changes; a new
        pattern needs a new factor."""
        for op in self.ops:
            if hasattr(op, "refresh"):
                op.refresh()

    def update(self, lambdas: list[np.ndarray], re_only: bool = False,
               solve_only: bool = False) -> None:
        """Refill and factor ``L`` for the per-term factors ``lambdas`` (each ``p_k x p_k``).
        With ``re_only`` only the random-effects blocks (enough for ``logdet_re``; the
        ``[X y]`` row is left as it was), e.g. for weights that make ``X'WX`` indefinite.
        With ``solve_only`` the factor is only used by :meth:`solve_u_beta`: a last pivot
        (the penalized residual sum of squares) that is not positive is allowed, and
        :meth:`pwrss` is then NaN (PIRLS with Newton's weights, some of them negative)."""
        self._xy_chol.indefinite_last = solve_only
        try:
            for op in (self.re_ops if re_only else self.ops):
                op.run(lambdas)
        finally:
            self._xy_chol.indefinite_last = False

    # ------------------------------------------------------------------ results of a factor
    def diag_block_diagonal(self, k: int) -> np.ndarray:
        D = self.L[k][k]
        if isinstance(D, BlockDiag):
            idx = np.arange(D.p)
            return D.data[:, idx, idx].ravel()
        return np.diag(D).copy()

    def logdet_re(self) -> float:
        """``log det(Lambda'Z'WZ Lambda + I)`` (lme4's ``ldL2``)."""
        return float(sum(2.0 * np.log(self.diag_block_diagonal(k)).sum() for k in range(self.K)))

    def logdet_fixed(self) -> float:
        """``log det(R_X' R_X)`` (lme4's ``ldRX2``)."""
        d = np.diag(self.L[self.K][self.K])[:-1]
        return float(2.0 * np.log(d).sum())

    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares: the square of the last diagonal element."""
        return float(self.L[self.K][self.K][-1, -1] ** 2)

    def solve_u_beta(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Spherical random effects ``u`` (one vector per term) and ``beta``, by blocked back
        substitution in ``L'``."""
        K = self.K
        LKK = self.L[K][K]
        pX = LKK.shape[0] - 1
        beta = sla.solve_triangular(LKK[:pX, :pX], LKK[-1, :pX], lower=True, trans="T",
                                    check_finite=False) if pX else np.zeros(0)
        rhs = [self.L[K][k][-1, :] - self.L[K][k][:pX, :].T @ beta for k in range(K)]
        return self.back_solve_re(rhs), beta

    def back_solve_re(self, R: list[np.ndarray]) -> list[np.ndarray]:
        """``L_Z'^-1 R`` by blocked back substitution in the random-effects part of the
        factor (``R`` given and returned per term: vectors or ``q_k x c`` columns)."""
        K = self.K
        # every out[i] read below (i > k) is filled before it is read
        out: list[np.ndarray] = [np.zeros(0)] * K
        for k in range(K - 1, -1, -1):
            rhs = np.array(R[k], dtype=float)
            for i in range(k + 1, K):
                rhs -= _tmatvec(self.L[i][k], out[i])
            out[k] = _solve_diag_t(self.L[k][k], rhs)
        return out

    def inverse_diag_blocks(self, k: int) -> np.ndarray:
        """Diagonal ``p_k x p_k`` blocks (one per level) of ``(L_Z L_Z')^{-1}`` for term ``k``,
        where ``L_Z`` is the random-effects part of ``L``. Shape ``(m_k, p_k, p_k)``.

        Forms block column ``k`` of ``L_Z^{-1}`` densely (``q x q_k`` at most)."""
        K, ps, ms = self.K, self.ps, self.ms
        qk = ms[k] * ps[k]
        # only Y[k:] is used, each filled before it is read
        Y: list[np.ndarray] = [np.zeros(0)] * K
        Y[k] = _solve_diag(self.L[k][k], np.eye(qk))
        for i in range(k + 1, K):
            acc = np.zeros((ms[i] * ps[i], qk))
            for j in range(k, i):
                acc += _matmat(self.L[i][j], Y[j])
            Y[i] = _solve_diag(self.L[i][i], -acc)
        out = np.zeros((ms[k], ps[k], ps[k]))
        for i in range(k, K):
            Yi = Y[i].reshape(-1, ms[k], ps[k])
            out += np.einsum("rca,rcb->cab", Yi, Yi)
        return out

    def dense_re_factor(self) -> np.ndarray:
        """The random-effects part ``L_Z`` of the factor as one dense lower-triangular matrix
        (for moderate sizes: analytic GLMM gradients need ``(L_Z L_Z')^{-1}`` densely)."""
        K = self.K
        sizes = [self.ms[k] * self.ps[k] for k in range(K)]
        off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        out = np.zeros((off[-1], off[-1]))
        for i in range(K):
            for j in range(i + 1):
                block = self.L[i][j]
                dense = block if isinstance(block, np.ndarray) else block.to_dense()
                if i == j:
                    dense = np.tril(dense)
                out[off[i]:off[i + 1], off[j]:off[j + 1]] = dense
        return out

    def describe(self) -> list[list[str]]:
        """Storage type of every block of ``L`` (lower triangle), for printing."""
        return self.block_types


# --------------------------------------------------------------------------- block kernels
def _tmatvec(B, v: np.ndarray) -> np.ndarray:
    """``B' v`` for any block type (``v`` a vector or columns)."""
    if isinstance(B, BlockSparse):
        return B.t_matvec(v) if v.ndim == 1 else B.to_csr().T @ v
    if isinstance(B, BlockDiag):
        shape = (B.m, B.p) + v.shape[1:]
        return np.einsum("mji,mj...->mi...", B.data, v.reshape(shape)).reshape(v.shape)
    return B.T @ v


def _matmat(B, Y: np.ndarray) -> np.ndarray:
    if isinstance(B, BlockSparse):
        return B.to_csr() @ Y
    return B @ Y


def _solve_diag_t(D, r: np.ndarray) -> np.ndarray:
    """Solve ``D' x = r`` for a lower-triangular diagonal block ``D`` (``r`` a vector or
    columns)."""
    if isinstance(D, BlockDiag):
        if D.p == 1:
            return r / D.data[:, 0, 0].reshape((-1,) + (1,) * (r.ndim - 1))
        Dt = np.transpose(D.data, (0, 2, 1))
        R3 = r.reshape(D.m, D.p, -1)
        return np.linalg.solve(Dt, R3).reshape(r.shape)
    return sla.solve_triangular(D, r, lower=True, trans="T", check_finite=False)


def _solve_diag(D, R: np.ndarray) -> np.ndarray:
    """Solve ``D X = R`` for a lower-triangular diagonal block ``D`` (``R`` 2-d)."""
    if isinstance(D, BlockDiag):
        if D.p == 1:
            return R / D.data[:, 0, 0][:, None]
        R3 = R.reshape(D.m, D.p, -1)
        return np.linalg.solve(D.data, R3).reshape(R.shape)
    return sla.solve_triangular(D, R, lower=True, check_finite=False)

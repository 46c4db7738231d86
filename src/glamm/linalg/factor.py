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
from scipy.linalg import blas as _blas
import scipy.sparse as sp

from .blocks import BlockDiag, BlockSparse
from .threads import LARGE_BLOCK, LARGE_THREADS, large_block_threads

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


# --------------------------------------------------------------------------- numeric operations
class _FillDiag:
    """``L[k][k] = lambda' A[k][k] lambda + I`` (BlockDiag or dense target)."""

    def __init__(self, L, A: BlockDiag, k: int, iso: bool = False):
        self.L, self.A, self.k, self.iso = L, A, k, iso
        self.eye = np.eye(A.p)[None, :, :]
        if isinstance(L, np.ndarray):
            m, p = A.m, A.p
            idx = np.arange(m)[:, None] * p + np.arange(p)[None, :]
            self.flat = (idx[:, :, None] * L.shape[1] + idx[:, None, :]).ravel()

    def run(self, lams):
        lam = lams[self.k]
        blocks = (lam.T @ self.A.data @ lam) if lam.shape[0] > 1 and not self.iso \
            else self.A.data * (lam[0, 0] ** 2)
        blocks = blocks + self.eye
        if isinstance(self.L, BlockDiag):
            self.L.data[...] = blocks
        else:
            self.L[...] = 0.0
            self.L.reshape(-1)[self.flat] = blocks.ravel()


class _FillOff:
    """``L[i][j] = lambda_i' A[i][j] lambda_j`` for two random-effects terms."""

    def __init__(self, L, A: BlockSparse, i: int, j: int, iso_i: bool = False,
                 iso_j: bool = False):
        self.L, self.A, self.i, self.j = L, A, i, j
        self.iso_i, self.iso_j = iso_i or A.p_row == 1, iso_j or A.p_col == 1
        if isinstance(L, BlockSparse):
            self.pos = L.block_positions(A.rows, A.cols)
        else:
            er, ec = A.element_coords()
            self.flat = er * L.shape[1] + ec

    def run(self, lams):
        li, lj = lams[self.i], lams[self.j]
        if self.iso_i and self.iso_j:
            vals = self.A.data * (li[0, 0] * lj[0, 0])
        elif self.iso_i:
            vals = li[0, 0] * (self.A.data @ lj)
        elif self.iso_j:
            vals = lj[0, 0] * (li.T @ self.A.data)
        else:
            vals = li.T @ self.A.data @ lj
        if isinstance(self.L, BlockSparse):
            self.L.data[...] = 0.0
            self.L.data[self.pos] = vals
        else:
            self.L[...] = 0.0
            self.L.reshape(-1)[self.flat] = vals.ravel()


class _FillFixed:
    """``L[K][j] = A[K][j] (I kron lambda_j)`` (dense ``(p+1) x q_j``)."""

    def __init__(self, L: np.ndarray, A: np.ndarray, j: int, p: int):
        self.L, self.A, self.j, self.p = L, A, j, p
        self.A3 = A.reshape(A.shape[0], -1, p)
        self.iso = False

    def run(self, lams):
        lam = lams[self.j]
        if self.p == 1 or self.iso:
            np.multiply(self.A, lam[0, 0], out=self.L)
        else:
            self.L[...] = (self.A3 @ lam).reshape(self.L.shape)


class _Copy:
    def __init__(self, L: np.ndarray, A: np.ndarray):
        self.L, self.A = L, A

    def run(self, lams):
        self.L[...] = self.A


def _enumerate_pairs(A: BlockSparse, B: BlockSparse, lower_only: bool):
    """All ``(block of A, block of B)`` index pairs sharing a column level (blocks of ``A``
    major), optionally only those whose row in ``A`` is at or below the row in ``B``."""
    cb = B.colptr
    nb_col = np.diff(cb)
    col_a = A.cols
    reps = nb_col[col_a]                        # partners of each block of A
    total = int(reps.sum())
    ia = np.repeat(np.arange(A.nb, dtype=np.int64), reps)
    group_start = np.cumsum(reps) - reps        # first pair of each block of A
    ib = np.arange(total, dtype=np.int64) + np.repeat(cb[:-1][col_a] - group_start, reps)
    if lower_only:
        keep = A.rows[ia] >= B.rows[ib]
        ia, ib = ia[keep], ib[keep]
    return ia, ib


def _flat_targets(T, ra: np.ndarray, rb: np.ndarray, pa: int, pb: int) -> np.ndarray:
    """Flat index into the storage of ``T`` of every element of the ``pa x pb`` products of
    blocks at block rows ``ra`` (of T's rows) and ``rb`` (of T's columns)."""
    s = np.arange(pa)[None, :, None]
    u = np.arange(pb)[None, None, :]
    if isinstance(T, np.ndarray):
        flat = (ra[:, None, None] * pa + s) * T.shape[1] + rb[:, None, None] * pb + u
    elif isinstance(T, BlockDiag):
        if np.any(ra != rb):
            raise AssertionError("fill outside a block-diagonal target")
        flat = ra[:, None, None] * (pa * pa) + s * pa + u
    else:
        pos = T.block_positions(ra, rb)
        flat = pos[:, None, None] * (pa * pb) + s * pb + u
    return flat.ravel()


class _PairUpdate:
    """``T -= A B'`` for two sparse blocks sharing their column levels, through a list of
    (block of A, block of B, target position) triples computed once."""

    def __init__(self, T, A: BlockSparse, B: BlockSparse, lower_only: bool):
        self.T, self.A, self.B = T, A, B
        self.ia, self.ib = _enumerate_pairs(A, B, lower_only)
        flat = _flat_targets(T, A.rows[self.ia], B.rows[self.ib], A.p_row, B.p_row)
        self.targets, inverse = np.unique(flat, return_inverse=True)
        self.inverse = inverse.ravel()
        self.scalar = A.p_row == 1 and B.p_row == 1 and A.p_col == 1

    def run(self, lams):
        if self.scalar:
            prod = self.A.data[self.ia, 0, 0] * self.B.data[self.ib, 0, 0]
        else:
            prod = np.einsum("nik,njk->nij", self.A.data[self.ia], self.B.data[self.ib]).ravel()
        acc = np.bincount(self.inverse, weights=prod, minlength=self.targets.shape[0])
        data = self.T if isinstance(self.T, np.ndarray) else self.T.data
        flat = data.reshape(-1)
        flat[self.targets] -= acc


class _FirstTermUpdate:
    """``T -= L[a][0] L[b][0]'`` when the first term is scalar, computed from ``A`` directly.

    Blocks below the first diagonal block are never updated before they are divided, so
    ``L[a][0] = Lambda_a' A[a][0] lambda_0 D^{-1}`` with ``D = diag(sqrt(lambda_0^2 A[0][0] + 1))``
    (``Lambda_a = I`` for the ``[X y]`` row) and the product is
    ``lambda_0^2 Lambda_a' (A[a][0] D^{-2} A[b][0]') Lambda_b``. Pair products of two sparse
    blocks are summed once into a constant sparse matrix, so each ``theta`` costs one sparse
    mat-vec (plus, for vector-valued terms ``a`` or ``b``, a block-wise product with their
    ``lambda``); with a dense ``[X y]`` row it is one sparse-times-dense product."""

    def __init__(self, T, A_a, A_b, D: BlockDiag, a: int | None, b: int | None,
                 lower_only: bool, sparse_a: bool = True, sparse_b: bool = True):
        self.T, self.D, self.a, self.b = T, D, a, b
        # sparse kernels only where the factor's blocks are sparse; a block of A that fills
        # the factor's dense block is used densely (one BLAS product)
        self.kind = (isinstance(A_a, BlockSparse) and sparse_a,
                     isinstance(A_b, BlockSparse) and sparse_b)
        self.A_a, self.A_b = A_a, A_b
        #: lambda_a / lambda_b multiples of the identity (set by the factor)
        self.iso_a = self.iso_b = False
        self.pa = A_a.p_row if isinstance(A_a, BlockSparse) else 1
        self.pb = A_b.p_row if isinstance(A_b, BlockSparse) else 1
        self.scalar = self.pa == 1 and self.pb == 1
        if self.kind == (True, True):
            pa, pb = self.pa, self.pb
            ia, ib = _enumerate_pairs(A_a, A_b, lower_only)
            flat = _flat_targets(T, A_a.rows[ia], A_b.rows[ib], pa, pb)
            size = T.size if isinstance(T, np.ndarray) else T.data.size
            # rows indexed by T's storage (aggregation without a sort), then kept only where
            # something lands; a (target, column) pair occurs once, so the entries of M are
            # the (pair, s, t) products themselves, and ``perm`` records which
            entry_id = np.arange(1, flat.shape[0] + 1, dtype=float)
            cols = np.repeat(A_a.cols[ia], pa * pb)
            M = sp.csr_matrix((entry_id, (flat, cols)), shape=(size, A_a.m_col))
            self.targets = np.flatnonzero(np.diff(M.indptr))
            self.M = M[self.targets]
            perm = self.M.data.astype(np.int64) - 1
            pair, rem = np.divmod(perm, pa * pb)
            self.ia, self.ib = ia[pair], ib[pair]
            self.s, self.t = np.divmod(rem, pb)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the constants from the current values of ``A`` (after a GLMM reweighting)."""
        if self.kind == (True, True):
            if self.scalar:
                self.M.data[:] = self.A_a.data[self.ia, 0, 0] * self.A_b.data[self.ib, 0, 0]
            else:
                self.M.data[:] = (self.A_a.data[self.ia, self.s, 0]
                                  * self.A_b.data[self.ib, self.t, 0])
        else:
            self.Aa = _sparse_or_dense(self.A_a, self.kind[0])
            self.Ab = _sparse_or_dense(self.A_b, self.kind[1])

    def run(self, lams):
        w = 1.0 / self.D.data[:, 0, 0] ** 2
        la = lams[self.a] if self.a is not None else None
        lb = lams[self.b] if self.b is not None else None
        if self.scalar:
            scale = lams[0][0, 0] ** 2
            if la is not None:
                scale *= la[0, 0]
            if lb is not None:
                scale *= lb[0, 0]
            if self.kind == (True, True):
                data = self.T if isinstance(self.T, np.ndarray) else self.T.data
                data.reshape(-1)[self.targets] -= scale * (self.M @ w)
            elif self.kind == (False, True):
                self.T -= scale * (self.Ab @ (self.Aa * w).T).T
            elif self.kind == (True, False):
                self.T -= scale * (self.Aa @ (self.Ab * w).T)
            else:
                self.T -= scale * ((self.Aa * w) @ self.Ab.T)
            return
        # vector-valued terms: the product without the lambdas, then lambda_a' . lambda_b
        l0sq = lams[0][0, 0] ** 2
        if self.iso_a:   # lambda_a = theta_a I: a scaling
            l0sq *= la[0, 0]
            la = None
        if self.iso_b:
            l0sq *= lb[0, 0]
            lb = None
        if self.kind == (True, True):
            storage = self.T if isinstance(self.T, np.ndarray) else self.T.data
            P = np.zeros(storage.size)
            P[self.targets] = self.M @ w
            if isinstance(self.T, np.ndarray):
                P = _lambda_sandwich(P.reshape(self.T.shape), la, self.pa, lb, self.pb)
                self.T -= l0sq * P
            else:
                P = P.reshape(self.T.data.shape)
                if la is not None:
                    P = la.T @ P
                if lb is not None:
                    P = P @ lb
                self.T.data -= l0sq * P
            return
        if self.kind == (False, True):
            P = (self.Ab @ (self.Aa * w).T).T
        elif self.kind == (True, False):
            P = self.Aa @ (self.Ab * w).T
        else:
            P = (self.Aa * w) @ self.Ab.T
        self.T -= l0sq * _lambda_sandwich(np.asarray(P), la, self.pa, lb, self.pb)


def _lambda_sandwich(P: np.ndarray, la, pa: int, lb, pb: int) -> np.ndarray:
    """``(I kron lambda_a)' P (I kron lambda_b)`` for a dense ``P`` (``None``: identity)."""
    if la is not None:
        P = np.einsum("sx,rsk->rxk", la, P.reshape(-1, pa, P.shape[1])).reshape(P.shape)
    if lb is not None:
        P = (P.reshape(P.shape[0], -1, pb) @ lb).reshape(P.shape)
    return P


def _sparse_or_dense(block, sparse: bool):
    """A block of ``A`` as CSR or (cached) dense array."""
    if isinstance(block, BlockSparse):
        return block.to_csr() if sparse else block.to_dense(cached=True)
    return block


class _DenseUpdate:
    """``T -= A B'`` where the target is dense and at least one factor is dense."""

    def __init__(self, T: np.ndarray, A, B):
        self.T, self.A, self.B = T, A, B

    def run(self, lams):
        A, B = self.A, self.B
        if isinstance(A, BlockSparse):
            self.T -= A.to_csr() @ B.T
        elif isinstance(B, BlockSparse):
            self.T -= (B.to_csr() @ A.T).T
        else:
            self.T -= A @ B.T


class _Chol:
    """Cholesky factor of a diagonal block, in place."""

    def __init__(self, D):
        self.D = D

    def run(self, lams):
        D = self.D
        if isinstance(D, BlockDiag):
            if D.p == 1:
                np.sqrt(D.data, out=D.data)
            else:
                D.data[...] = np.linalg.cholesky(D.data)
        elif D.shape[0] >= LARGE_BLOCK and LARGE_THREADS > 1:
            with large_block_threads():
                _dense_cholesky(D)
        else:
            _dense_cholesky(D)


def _dense_cholesky(D: np.ndarray) -> None:
    """Lower Cholesky factor of the C-ordered dense block ``D``, in place (upper part left).

    ``D.T`` is a Fortran-ordered view whose upper triangle is ``D``'s lower triangle, so
    LAPACK's upper factor of ``D.T``, written in place, is ``L`` in ``D``."""
    _, info = sla.lapack.dpotrf(D.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"block not positive definite (minor {info})")


class _RDiv:
    """``T = T D^{-T}`` for the lower-triangular factor ``D`` of the diagonal block above."""

    def __init__(self, T, D):
        self.T, self.D = T, D

    def run(self, lams):
        T, D = self.T, self.D
        if isinstance(D, BlockDiag):
            if D.p == 1:
                d = D.data[:, 0, 0]
                if isinstance(T, BlockSparse):
                    T.data /= d[T.cols][:, None, None]
                else:
                    T /= d[None, :]
            else:
                Dinv = np.linalg.inv(D.data)
                if isinstance(T, BlockSparse):
                    T.data[...] = np.einsum("nij,nkj->nik", T.data, Dinv[T.cols])
                else:
                    r = T.shape[0]
                    T3 = T.reshape(r, D.m, D.p)
                    T[...] = np.einsum("rcj,ckj->rck", T3, Dinv).reshape(r, -1)
        elif T.flags.c_contiguous and T.size:
            # T' := D^{-1} T' in place (T.T is a Fortran-ordered view): BLAS's triangular
            # solve directly, without SciPy's wrapper (a tenth of the call overhead, which
            # dominates for the small blocks of smooths)
            out = _blas.dtrsm(1.0, D, T.T, side=0, lower=1, trans_a=0, overwrite_b=1)
            if not np.shares_memory(out, T):   # pragma: no cover - f2py copied after all
                T[...] = out.T
        else:
            T[...] = sla.solve_triangular(D, T.T, lower=True, check_finite=False).T


# --------------------------------------------------------------------------- the factor
class BlockedCholesky:
    """Blocked Cholesky factor of the penalized cross-product matrix.

    Parameters
    ----------
    A:
        Lower blocks of ``A`` from :func:`glamm.linalg.crossprod.crossprod_blocks`.
    ps:
        Number of columns per level (``p_k``) of each random-effects term.

    Attributes
    ----------
    L:
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
                sparse_ok = diag_sparse and P[i][j] is not None and \
                    P[i][j].nnz <= SPARSE_DENSITY * ms[i] * ms[j]
                if sparse_ok:
                    coo = P[i][j].tocoo()
                    order = np.lexsort((coo.row, coo.col))
                    L[i][j] = BlockSparse(
                        rows=coo.row[order].astype(np.int64), cols=coo.col[order].astype(np.int64),
                        data=np.zeros((coo.nnz, ps[i], ps[j])), m_row=ms[i], m_col=ms[j])
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
        for j in range(K + 1):
            for k in range(j):
                (fixed_ops if j == K else ops).append(
                    self._update_op(L[j][j], L[j][k], L[j][k], j, j, k, lower_only=True))
            (fixed_ops if j == K else ops).append(_Chol(L[j][j]))
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
        precompute constants from ``A`` recompute them. Needed after every GLMM reweighting."""
        for op in self.ops:
            if hasattr(op, "refresh"):
                op.refresh()

    def update(self, lambdas: list[np.ndarray], re_only: bool = False) -> None:
        """Refill and factor ``L`` for the per-term factors ``lambdas`` (each ``p_k x p_k``).
        With ``re_only`` only the random-effects blocks (enough for ``logdet_re``; the
        ``[X y]`` row is left as it was), e.g. for weights that make ``X'WX`` indefinite."""
        for op in (self.re_ops if re_only else self.ops):
            op.run(lambdas)

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
        u: list[np.ndarray | None] = [None] * K
        for k in range(K - 1, -1, -1):
            LKk = self.L[K][k]
            rhs = LKk[-1, :] - LKk[:pX, :].T @ beta
            for i in range(k + 1, K):
                rhs = rhs - _tmatvec(self.L[i][k], u[i])
            u[k] = _solve_diag_t(self.L[k][k], rhs)
        return u, beta  # type: ignore[return-value]

    def inverse_diag_blocks(self, k: int) -> np.ndarray:
        """Diagonal ``p_k x p_k`` blocks (one per level) of ``(L_Z L_Z')^{-1}`` for term ``k``,
        where ``L_Z`` is the random-effects part of ``L``. Shape ``(m_k, p_k, p_k)``.

        Forms block column ``k`` of ``L_Z^{-1}`` densely (``q x q_k`` at most)."""
        K, ps, ms = self.K, self.ps, self.ms
        qk = ms[k] * ps[k]
        Y: list[np.ndarray | None] = [None] * K
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
    """``B' v`` for any block type."""
    if isinstance(B, BlockSparse):
        return B.to_csr().T @ v
    if isinstance(B, BlockDiag):
        return np.einsum("mji,mj->mi", B.data, v.reshape(B.m, B.p)).ravel()
    return B.T @ v


def _matmat(B, Y: np.ndarray) -> np.ndarray:
    if isinstance(B, BlockSparse):
        return B.to_csr() @ Y
    return B @ Y


def _solve_diag_t(D, r: np.ndarray) -> np.ndarray:
    """Solve ``D' x = r`` for a lower-triangular diagonal block ``D``."""
    if isinstance(D, BlockDiag):
        if D.p == 1:
            return r / D.data[:, 0, 0]
        Dt = np.transpose(D.data, (0, 2, 1))
        return np.linalg.solve(Dt, r.reshape(D.m, D.p, 1))[:, :, 0].ravel()
    return sla.solve_triangular(D, r, lower=True, trans="T", check_finite=False)


def _solve_diag(D, R: np.ndarray) -> np.ndarray:
    """Solve ``D X = R`` for a lower-triangular diagonal block ``D`` (``R`` 2-d)."""
    if isinstance(D, BlockDiag):
        if D.p == 1:
            return R / D.data[:, 0, 0][:, None]
        R3 = R.reshape(D.m, D.p, -1)
        return np.linalg.solve(D.data, R3).reshape(R.shape)
    return sla.solve_triangular(D, R, lower=True, check_finite=False)

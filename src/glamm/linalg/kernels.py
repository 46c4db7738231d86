"""The numeric operations of the blocked Cholesky factor (glamm.linalg.factor): each refills,
updates, factors or divides one block of ``L`` for new ``lambda``s, with its index arrays
computed once when the factor's symbolic phase creates it. Not public API.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import blas as _blas

from .. import jit
from .blocks import BlockDiag, BlockSparse
from .threads import dense_factor_threads


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
        #: the position in ``L``'s pattern of each block of ``A`` (``None``: the same pattern,
        #: written without a scatter)
        self.pos: np.ndarray | None = None
        if isinstance(L, BlockSparse) and (L.rows is not A.rows or L.cols is not A.cols):
            self.pos = L.block_positions(A.rows, A.cols)
            if self.pos.size == L.nb and np.array_equal(self.pos, np.arange(L.nb)):
                self.pos = None   # (no fill: L has A's pattern)
        elif not isinstance(L, BlockSparse):
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
            if self.pos is None:
                self.L.data[...] = vals
            else:
                self.L.data[...] = 0.0
                self.L.data[self.pos] = vals
            self.L.version += 1
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
    """``T -= A B'`` for two sparse blocks sharing their column levels. A dense ``T`` with
    the compiled kernels: one pass over the column levels, every pair of a level's blocks
    updating one tile (MixedModels.jl's ``rankUpdate!``; nothing prepared). Otherwise through a
    list of (block of A, block of B, target position) triples computed on first use."""

    def __init__(self, T, A: BlockSparse, B: BlockSparse, lower_only: bool):
        self.T, self.A, self.B = T, A, B
        self.lower_only = lower_only
        self.scalar = A.p_row == 1 and B.p_row == 1 and A.p_col == 1
        self._pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._colptr: tuple[np.ndarray, np.ndarray] | None = None
        if not isinstance(T, np.ndarray):   # (structured targets: checked at once)
            self._pair_lists()

    def _pair_lists(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ia, ib, targets, inverse)``: the pairs, the distinct target entries and each
        pair element's target."""
        if self._pairs is None:
            A, B = self.A, self.B
            ia, ib = _enumerate_pairs(A, B, self.lower_only)
            flat = _flat_targets(self.T, A.rows[ia], B.rows[ib], A.p_row, B.p_row)
            targets, inverse = np.unique(flat, return_inverse=True)
            self._pairs = (ia, ib, targets, inverse.ravel())
        return self._pairs

    def run(self, lams):
        k = jit.load("glamm.linalg._pair_kernels")
        if k is not None and isinstance(self.T, np.ndarray):
            if self._colptr is None:
                self._colptr = (self.A.colptr.astype(np.int64), self.B.colptr.astype(np.int64))
            pa, pb = self._colptr
            k.column_rank_update(self.A.data, self.A.rows, pa, self.B.data, self.B.rows, pb,
                                 self.T, self.lower_only)
            return
        ia, ib, targets, inverse = self._pair_lists()
        if k is not None:
            # (one compiled pass: gather, product and sum per target, no pair-sized arrays)
            acc = np.empty(targets.shape[0])
            k.pair_products(self.A.data, ia, self.B.data, ib, inverse, acc)
        elif self.scalar:
            prod = self.A.data[ia, 0, 0] * self.B.data[ib, 0, 0]
            acc = np.bincount(inverse, weights=prod, minlength=targets.shape[0])
        else:
            prod = np.einsum("nik,njk->nij", self.A.data[ia], self.B.data[ib]).ravel()
            acc = np.bincount(inverse, weights=prod, minlength=targets.shape[0])
        data = self.T if isinstance(self.T, np.ndarray) else self.T.data
        flat = data.reshape(-1)
        flat[targets] -= acc
        if isinstance(self.T, BlockSparse):
            self.T.version += 1


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
            s, t = np.divmod(rem, pb)
            # the entries of M are A_a[ia, s, 0] * A_b[ib, t, 0]: kept as flat positions in
            # the two blocks' storage (their last axis has length 1: the scalar first term)
            self.fa = ia[pair] * pa + s
            self.fb = ib[pair] * pb + t
        self.refresh()

    def refresh(self) -> None:
        """Recompute the constants from the current values of ``A`` (after a GLMM reweighting;
        a gather and a product per pair of entries, compiled where the kernels are on: at
        200k rows there are millions)."""
        if self.kind == (True, True):
            a = self.A_a.data.reshape(-1)
            b = self.A_b.data.reshape(-1)
            k = jit.load("glamm.linalg._pair_kernels")
            if k is not None:
                k.gather_product(a, self.fa, b, self.fb, self.M.data)
            else:
                np.multiply(a[self.fa], b[self.fb], out=self.M.data)
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
                if isinstance(self.T, BlockSparse):
                    self.T.version += 1
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
    """Cholesky factor of a diagonal block, in place.

    ``indefinite_last`` (set by :meth:`BlockedCholesky.update` for the ``[X y]`` block only)
    tolerates a last pivot that is not positive: the rows before it are factored as usual,
    the last row by a triangular solve, and its diagonal becomes NaN. The last pivot of
    ``[X y]`` is the penalized residual sum of squares, which a Newton step with some
    negative weights (observed information of a non-log-concave density) can make negative
    although the system for ``u`` and ``beta`` is positive definite."""

    def __init__(self, D):
        self.D = D
        self.indefinite_last = False

    def run(self, lams):
        D = self.D
        if self.indefinite_last:
            saved = D.copy()
            try:
                _dense_cholesky(D)
            except np.linalg.LinAlgError:
                _cholesky_but_last(D, saved)
            return
        if isinstance(D, BlockDiag):
            if D.p == 1:
                if not D.data.min() > 0.0:   # (NaN fails too)
                    raise np.linalg.LinAlgError("block not positive definite")
                np.sqrt(D.data, out=D.data)
            else:
                D.data[...] = np.linalg.cholesky(D.data)
        else:
            _dense_cholesky(D)


def _cholesky_but_last(D: np.ndarray, saved: np.ndarray) -> None:
    """Into ``D``: the Cholesky factor of ``saved`` (symmetric, lower triangle read) with
    its last pivot allowed to be non-positive (NaN on the diagonal there); raises
    ``LinAlgError`` if the leading block is not positive definite."""
    n = saved.shape[0]
    with dense_factor_threads(n):
        lead = np.linalg.cholesky(np.tril(saved[:-1, :-1]) + np.tril(saved[:-1, :-1], -1).T)
    row = sla.solve_triangular(lead, saved[-1, :-1], lower=True, check_finite=False)
    rest = float(saved[-1, -1] - row @ row)
    D[:n - 1, :n - 1] = lead
    D[-1, :-1] = row
    D[-1, -1] = np.sqrt(rest) if rest > 0 else np.nan


def _dense_cholesky(D: np.ndarray) -> None:
    """Lower Cholesky factor of the C-ordered dense block ``D``, in place (upper part left).

    ``D.T`` is a Fortran-ordered view whose upper triangle is ``D``'s lower triangle, so
    LAPACK's upper factor of ``D.T``, written in place, is ``L`` in ``D``."""
    with dense_factor_threads(D.shape[0]):
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
                    T.version += 1
                else:
                    T /= d[None, :]
            else:
                Dinv = np.linalg.inv(D.data)
                if isinstance(T, BlockSparse):
                    T.data[...] = np.einsum("nij,nkj->nik", T.data, Dinv[T.cols])
                    T.version += 1
                else:
                    r = T.shape[0]
                    T3 = T.reshape(r, D.m, D.p)
                    T[...] = np.einsum("rcj,ckj->rck", T3, Dinv).reshape(r, -1)
        elif T.flags.c_contiguous and T.size:
            # T' := D^{-1} T' in place (T.T is a Fortran-ordered view): BLAS's triangular
            # solve directly, without SciPy's wrapper (a tenth of the call overhead, which
            # dominates for the small blocks of smooths)
            # D.T is a Fortran-ordered view of D' (upper triangular): no copy of D is made
            out = _blas.dtrsm(1.0, D.T, T.T, side=0, lower=0, trans_a=1, overwrite_b=1)
            if not np.shares_memory(out, T):   # pragma: no cover - f2py copied after all
                T[...] = out.T
        else:
            T[...] = sla.solve_triangular(D, T.T, lower=True, check_finite=False).T

"""Entries of ``G^{-1}`` for ``G = L_Z L_Z'`` (the random-effects part of the blocked factor) on
the pattern the Laplace gradient reads, without forming the dense ``q x q`` inverse.

Partition the random effects into the first term (index set 1, ``q_1`` columns, whose diagonal
block ``A = L[0][0]`` is block diagonal: one ``p_1 x p_1`` triangle per level) and the rest
(``R``, ``q_R`` columns), so that ``L_Z = [[A, 0], [B, C]]``. With ``W = B A^{-1}`` (sparse:
``B`` holds the levels of the other terms each first-term level meets):

    Sigma_RR = (C C')^{-1}
    Sigma_R1 = -Sigma_RR W
    Sigma_11 = A^{-T} A^{-1} + W' Sigma_RR W    (only its diagonal p_1 x p_1 blocks)

Every entry the gradient gathers is one of these: a row of ``Z Lambda`` touches a single level
of the first term, so pairs inside the first term's columns never cross levels, and an entry
``Sigma_R1[r, s]`` needs ``Sigma_RR`` only where ``r`` meets the levels of column ``s`` of
``W``. ``Sigma_RR`` is itself the inverse of a blocked factor's trailing part: when it is
large (:data:`DENSE_REST`) and its first diagonal block is block diagonal again (``hid``
after ``sid`` in ``(1 | sid) + (1 | hid) + (1 | mid)`` with students nested in both schools),
the same partition applies recursively, else it is formed densely (``O(q_R^3)``). For nested
designs the cost is then ``O(q)``.
"""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .. import jit
from .blocks import BlockDiag, BlockSparse, to_dense
from .threads import dense_factor_threads

#: up to this many random effects after the first term, ``Sigma_RR`` is formed densely (its
#: cost ``q_R^3 / 3`` is then small, and the entries of ``Sigma_R1`` come from one sparse
#: product); beyond, recursively where the next diagonal block is block diagonal
DENSE_REST = 800


class DenseInverse:
    """``G^{-1}`` held densely (any structure); the same interface as :class:`SelectedInverse`."""

    def __init__(self, Ginv: np.ndarray):
        self.Ginv = Ginv

    def entries(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``G^{-1}[i, j]`` elementwise."""
        return self.Ginv[i, j]

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``G^{-1} rhs`` (a vector or a matrix of columns)."""
        return self.Ginv @ rhs


class DiagonalInverse:
    """``G^{-1}`` of a diagonal ``G`` (one scalar random-effects term: ``lam^2 Z'WZ + I``),
    from its diagonal ``d``; the same interface as :class:`SelectedInverse`."""

    def __init__(self, d: np.ndarray):
        self.inv = 1.0 / d

    def entries(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``G^{-1}[i, j]`` elementwise (0 off the diagonal)."""
        i, j = np.asarray(i), np.asarray(j)
        return np.where(i == j, self.inv[i], 0.0)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``G^{-1} rhs`` (a vector or a matrix of columns)."""
        return rhs * self.inv.reshape((-1,) + (1,) * (rhs.ndim - 1))


def spd_inverse_from_factor(L: np.ndarray) -> np.ndarray:
    """``(L L')^{-1}`` from a dense lower-triangular ``L`` (LAPACK potri; only its lower
    triangle is read, so a potrf result with junk above the diagonal will do), symmetric."""
    if L.shape[0] == 0:
        return np.zeros((0, 0))
    inv = spd_inverse_lower(L)
    out = np.tril(inv)
    out += np.tril(inv, -1).T
    return out


def spd_inverse_lower(L: np.ndarray) -> np.ndarray:
    """:func:`spd_inverse_from_factor` with only its lower triangle valid (what is above the
    diagonal is left as LAPACK leaves it): for readers that take entry ``(i, j)`` from
    ``(max(i, j), min(i, j))``, without the two passes that symmetrize it. ``L`` may be
    overwritten."""
    if L.shape[0] == 0:
        return np.zeros((0, 0))
    with dense_factor_threads(L.shape[0]):
        inv, info = sla.lapack.dpotri(L, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("G is singular")
    return inv


class SelectedInverse:
    """The blocks of ``G^{-1}`` described in the module docstring, from a factored
    :class:`~glamm.linalg.factor.BlockedCholesky` whose diagonal block ``start`` is block
    diagonal (the inverse of the trailing part from term ``start`` on).

    Parameters
    ----------
    fac : BlockedCholesky
        The factor after :meth:`~glamm.linalg.factor.BlockedCholesky.update`; only its
        random-effects blocks are read (and not kept: later updates do not affect this object).
    start : int
        The first term of the trailing part (0: all of ``G``).
    """

    def __init__(self, fac, start: int = 0):
        D = fac.L[start][start]
        assert isinstance(D, BlockDiag)
        K = fac.K
        self._fac, self._start = fac, start
        m1, p1 = fac.ms[start], fac.ps[start]
        self.p1, self.q1 = p1, m1 * p1
        sizes = [fac.ms[k] * fac.ps[k] for k in range(start + 1, K)]
        self._off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.qR = int(self._off[-1])
        # A^{-1}, one triangle per level of the first term
        self.A_inv = (1.0 / D.data[:, 0, 0])[:, None, None] if p1 == 1 \
            else np.linalg.inv(D.data)
        # W = B A^{-1} (sparse, q_R x q_1)
        self.W = self._rest_times_inverse() if self.qR else sp.csr_matrix((0, self.q1))
        self._ell: tuple[np.ndarray, np.ndarray] | None = None
        # Sigma_RR: recursively where the next diagonal block is block diagonal, else dense
        self._C: np.ndarray | None = None
        self._S_R1: np.ndarray | None = None
        #: Sigma_R1 on W's pattern: CSC keys (column q_R + row), values, and W (CSC)
        self._S_R1_sparse: tuple | None = None
        if self.qR > DENSE_REST and isinstance(fac.L[start + 1][start + 1], BlockDiag):
            self.S_RR: SelectedInverse | DenseInverse = SelectedInverse(fac, start + 1)
            self.S_11 = self._diagonal_blocks()
        else:
            S_RR = spd_inverse_from_factor(self.C) if self.qR else np.zeros((0, 0))
            self.S_RR = DenseInverse(S_RR)
            self.S_11 = self._diagonal_blocks_dense(S_RR)

    def _diagonal_blocks_dense(self, S_RR: np.ndarray) -> np.ndarray:
        """:meth:`_diagonal_blocks_dense_numpy`, or with the compiled kernels one pass over
        the first term's levels that also keeps ``Sigma_R1`` on ``W``'s pattern only (no
        dense ``q_R x q_1`` product)."""
        k = jit.load("glamm.linalg._grad_kernels")
        if k is None or not self.qR:
            return self._diagonal_blocks_dense_numpy(S_RR)
        Wc = self.W.tocsc()
        Wc.sort_indices()
        p1 = self.p1
        counts = np.diff(Wc.indptr).reshape(-1, p1)
        if p1 > 1 and np.any(counts != counts[:, :1]):
            return self._diagonal_blocks_dense_numpy(S_RR)   # (levels with uneven columns)
        S = np.einsum("cba,cbd->cad", self.A_inv, self.A_inv)
        SR1 = np.empty(Wc.nnz)
        indptr = Wc.indptr.astype(np.int64)
        indices = Wc.indices.astype(np.int64)
        k.level_inverse_blocks(indptr, indices, np.ascontiguousarray(Wc.data),
                               np.ascontiguousarray(S_RR), p1, S, SR1,
                               int(counts.max(initial=0)))
        # entries looked up by (column, row) key, in the CSC order
        col = np.repeat(np.arange(self.q1, dtype=np.int64), np.diff(indptr))
        self._S_R1_sparse = (col * self.qR + indices, SR1, Wc)
        return S

    def _diagonal_blocks_dense_numpy(self, S_RR: np.ndarray) -> np.ndarray:
        """As :meth:`_diagonal_blocks` for a dense ``Sigma_RR``, through ``M = Sigma_RR W``
        (``q_R x q_1``, ``q_R nnz(W)`` operations), which then gives ``Sigma_R1 = -M``."""
        p1 = self.p1
        S = np.einsum("cba,cbd->cad", self.A_inv, self.A_inv)
        if not self.qR:
            return S
        M = np.ascontiguousarray((self.W.T @ S_RR).T)
        Wc = self.W.tocoo()
        c, a = Wc.col // p1, Wc.col % p1
        flat = S.reshape(-1)
        for b in range(p1):
            flat += np.bincount((c * p1 + a) * p1 + b,
                                weights=Wc.data * M[Wc.row, c * p1 + b], minlength=flat.size)
        np.negative(M, out=M)   # Sigma_R1 = -Sigma_RR W, in place (q_R x q_1 can be large)
        self._S_R1 = M
        return S

    # ------------------------------------------------------------------ pieces
    def _rest_times_inverse(self) -> sp.csr_matrix:
        """``W = B A^{-1}``: the blocks below the first term's diagonal block, stacked, with
        the columns of each first-term level multiplied by its triangle's inverse."""
        fac, start = self._fac, self._start
        parts = []
        for i in range(start + 1, fac.K):
            Bi = fac.L[i][start]
            parts.append(Bi.to_csr().copy() if isinstance(Bi, BlockSparse)
                         else sp.csr_matrix(to_dense(Bi)))
        B = parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
        m1, p1 = self.A_inv.shape[0], self.p1
        if p1 == 1:   # a column scaling
            B.data *= self.A_inv[:, 0, 0][B.indices]
            return B
        A_inv = sp.bsr_matrix((self.A_inv, np.arange(m1), np.arange(m1 + 1)),
                              shape=(self.q1, self.q1))
        return (B @ A_inv).tocsr()

    @property
    def ell(self) -> tuple[np.ndarray, np.ndarray]:
        """``W`` by columns, each column's nonzeros padded to the longest column (ELL form):
        their rows ``R_pad`` and values ``V_pad`` (``q_1 x width``; padding has value 0)."""
        if self._ell is None:
            W = self.W.tocsc()
            W.eliminate_zeros()
            counts = np.diff(W.indptr)
            width = int(counts.max()) if counts.size else 0
            slot = np.arange(W.nnz) - np.repeat(W.indptr[:-1], counts)
            col = np.repeat(np.arange(self.q1), counts)
            R_pad = np.zeros((self.q1, width), dtype=np.int64)
            V_pad = np.zeros((self.q1, width))
            R_pad[col, slot] = W.indices
            V_pad[col, slot] = W.data
            self._ell = (R_pad, V_pad)
        return self._ell

    @property
    def C(self) -> np.ndarray:
        """The trailing factor ``C`` (``q_R x q_R``, lower, dense; built on first use)."""
        if self._C is None:
            self._C = self.rest_factor(self._fac, self._start)
        return self._C

    @staticmethod
    def rest_factor(fac, start: int = 0, order: Literal["C", "F"] = "C") -> np.ndarray:
        """The factor's random-effects blocks after term ``start`` as one dense lower
        triangle (the trailing factor ``C`` of the partition), in memory ``order`` (``"F"``
        lets LAPACK work on it in place: :func:`spd_inverse_lower`). Above the diagonal of
        each diagonal block is whatever the factor left there (no copy is spent on zeroing
        it): every reader takes the lower triangle only (LAPACK's ``potri`` with ``lower``,
        triangular solves with ``lower=True``)."""
        sizes = [fac.ms[k] * fac.ps[k] for k in range(start + 1, fac.K)]
        off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        C = np.zeros((off[-1], off[-1]), order=order)
        for i in range(start + 1, fac.K):
            a, b = off[i - start - 1], off[i - start]
            for j in range(start + 1, i + 1):
                C[a:b, off[j - start - 1]:off[j - start]] = to_dense(fac.L[i][j])
        return C

    def _diagonal_blocks(self) -> np.ndarray:
        """``(m_1, p_1, p_1)``: the diagonal blocks of ``A^{-T} A^{-1} + W' Sigma_RR W``, the
        latter from pairs of nonzeros of the same columns of ``W``."""
        Ainv, p1 = self.A_inv, self.p1
        S = np.einsum("cba,cbd->cad", Ainv, Ainv)
        m1 = S.shape[0]
        R_pad, V_pad = self.ell
        R3 = R_pad.reshape(m1, p1, -1)
        V3 = V_pad.reshape(m1, p1, -1)
        width = R3.shape[2]
        for a in range(p1):
            for b in range(p1):
                for k in range(width):
                    for k2 in range(width):
                        v = V3[:, a, k] * V3[:, b, k2]
                        use = v != 0.0
                        if use.any():
                            S[use, a, b] += v[use] * self.S_RR.entries(R3[use, a, k],
                                                                       R3[use, b, k2])
        return S

    def _rest_first(self, r: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``Sigma_R1[r, s] = -sum_j Sigma_RR[r, j] W[j, s]`` over the nonzeros of column
        ``s`` of ``W``."""
        if self._S_R1 is not None:
            return self._S_R1[r, s]
        if self._S_R1_sparse is not None:
            keys, vals, Wc = self._S_R1_sparse
            assert isinstance(self.S_RR, DenseInverse)   # (the kernel's case)
            S_RR = self.S_RR.Ginv
            r = np.asarray(r, dtype=np.int64)
            s = np.asarray(s, dtype=np.int64)
            want = s * self.qR + r
            pos = np.minimum(np.searchsorted(keys, want), max(keys.shape[0] - 1, 0))
            hit = keys[pos] == want if keys.shape[0] else np.zeros(want.shape, dtype=bool)
            out = np.where(hit, vals[pos] if keys.shape[0] else 0.0, 0.0)
            # entries W does not store (an exact zero dropped, e.g. at theta = 0): from the
            # column of W directly
            for e in np.flatnonzero(~hit):
                lo, hi = Wc.indptr[s[e]], Wc.indptr[s[e] + 1]
                out[e] = -float(S_RR[r[e], Wc.indices[lo:hi]] @ Wc.data[lo:hi])
            return out
        R_pad, V_pad = self.ell
        out = np.zeros(r.shape[0])
        for k in range(R_pad.shape[1]):
            v = V_pad[s, k]
            use = v != 0.0
            if use.any():
                out[use] -= v[use] * self.S_RR.entries(r[use], R_pad[s[use], k])
        return out

    # ------------------------------------------------------------------ interface
    def without_factor(self) -> SelectedInverse:
        """A copy that answers :meth:`entries` without the factor it was computed from (and
        without its trailing solves, which need it): what is shipped to Dask workers, whose
        rows look up entries of ``G^{-1}`` (:mod:`glamm.scale.glmm_gradient`)."""
        out = copy.copy(self)
        _ = out.ell   # (built here, once, rather than on every worker)
        out._fac = None
        if isinstance(self.S_RR, SelectedInverse):
            out.S_RR = self.S_RR.without_factor()
        return out

    def entries(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``G^{-1}[i, j]`` elementwise, for index pairs on the gradient's pattern (two
        columns of the first term must belong to the same level)."""
        q1, p1 = self.q1, self.p1
        i = np.asarray(i)
        j = np.asarray(j)
        out = np.empty(np.broadcast(i, j).shape)
        in_i, in_j = i < q1, j < q1
        both = in_i & in_j
        if both.any():
            a, b = i[both], j[both]
            out[both] = self.S_11[a // p1, a % p1, b % p1]
        m = ~in_i & in_j
        if m.any():
            out[m] = self._rest_first(i[m] - q1, j[m])
        m = in_i & ~in_j
        if m.any():
            out[m] = self._rest_first(j[m] - q1, i[m])
        m = ~in_i & ~in_j
        if m.any():
            out[m] = self.S_RR.entries(i[m] - q1, j[m] - q1)
        return out

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``G^{-1} rhs`` by block forward and back substitution (a vector or columns)."""
        q1, p1 = self.q1, self.p1
        m1 = q1 // p1 if p1 else 0
        r1, rR = rhs[:q1], rhs[q1:]
        tail = rhs.shape[1:]
        k = int(np.prod(tail)) if tail else 1
        Ainv = self.A_inv
        # forward: y1 = A^{-1} r1, yR = C^{-1} (rR - B y1), where B y1 = B A^{-1} r1 = W r1
        y1 = np.einsum("cab,cbk->cak", Ainv, r1.reshape(m1, p1, k))
        if self.qR:
            C = self.C
            yR = sla.solve_triangular(C, rR.reshape(-1, k) - self.W @ r1.reshape(q1, k),
                                      lower=True, check_finite=False)
            xR = sla.solve_triangular(C, yR, lower=True, trans="T", check_finite=False)
            # x1 = A^{-T} (y1 - B' xR) and B' xR = A' W' xR, so x1 = A^{-T} y1 - W' xR
            x1 = (np.einsum("cba,cbk->cak", Ainv, y1).reshape(q1, k) - self.W.T @ xR)
        else:
            xR = np.zeros((0, k))
            x1 = np.einsum("cba,cbk->cak", Ainv, y1).reshape(q1, k)
        out = np.concatenate([x1, xR])
        return out.reshape(rhs.shape)


def re_inverse(fac) -> DenseInverse | SelectedInverse:
    """The cheapest exact representation of ``(L_Z L_Z')^{-1}`` for the gradient: selected
    blocks when the first term's diagonal block is block diagonal (always, unless the first
    term's pattern has fill), else the dense inverse."""
    if isinstance(fac.L[0][0], BlockDiag):
        return SelectedInverse(fac)
    return DenseInverse(spd_inverse_from_factor(fac.dense_re_factor()))

"""Entries of ``G^{-1}`` for ``G = L_Z L_Z'`` (the random-effects part of the blocked factor) on
the pattern the Laplace gradient reads, without forming the dense ``q x q`` inverse.

Partition the random effects into the first term (index set 1, ``q_1`` columns, whose diagonal
block ``A = L[0][0]`` is block diagonal: one ``p_1 x p_1`` triangle per level) and the rest
(``R``, ``q_R`` columns), so that ``L_Z = [[A, 0], [B, C]]``. With ``W = B A^{-1}``:

    Sigma_RR = (C C')^{-1}                      (dense, q_R x q_R)
    Sigma_R1 = -Sigma_RR W                      (dense, q_R x q_1)
    Sigma_11 = A^{-T} A^{-1} + W' Sigma_RR W    (only its diagonal p_1 x p_1 blocks)

Every entry the gradient gathers is one of these: a row of ``Z Lambda`` touches a single level
of the first term, so pairs inside the first term's columns never cross levels. The cost is
``O(q_R^2 q_1 + q_R^3)`` instead of ``O(q^3)``; for nested designs (``school/student``: the
students first, a few schools after) that is a small multiple of ``q_1``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .blocks import BlockDiag, to_dense


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


class SelectedInverse:
    """The blocks of ``G^{-1}`` described in the module docstring, from a factored
    :class:`~glamm.linalg.factor.BlockedCholesky` whose first diagonal block is block diagonal.

    Parameters
    ----------
    fac : BlockedCholesky
        The factor after :meth:`~glamm.linalg.factor.BlockedCholesky.update`; only its
        random-effects blocks are read (and not kept: later updates do not affect this object).
    """

    def __init__(self, fac):
        D = fac.L[0][0]
        assert isinstance(D, BlockDiag)
        K = fac.K
        self.p1 = fac.ps[0]
        self.q1 = fac.ms[0] * fac.ps[0]
        sizes = [fac.ms[k] * fac.ps[k] for k in range(1, K)]
        off = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        qR = int(off[-1])
        m1, p1 = fac.ms[0], self.p1
        # A^{-1}, one lower triangle per level of the first term
        if p1 == 1:
            Ainv = (1.0 / D.data[:, 0, 0])[:, None, None]
        else:
            Ainv = np.linalg.inv(D.data)
        # B (q_R x q_1) and C (q_R x q_R, lower) densely
        B = np.zeros((qR, self.q1))
        C = np.zeros((qR, qR))
        for i in range(1, K):
            rows = slice(off[i - 1], off[i])
            B[rows] = to_dense(fac.L[i][0])
            for j in range(1, i + 1):
                block = to_dense(fac.L[i][j])
                C[rows, off[j - 1]:off[j]] = np.tril(block) if i == j else block
        self.A_inv = Ainv
        self.C = C
        self.W = np.einsum("rca,cab->rcb", B.reshape(qR, m1, p1), Ainv).reshape(qR, self.q1)
        if qR:
            inv, info = sla.lapack.dpotri(C, lower=1)
            if info != 0:
                raise np.linalg.LinAlgError("G is singular")
            S_RR = np.tril(inv)
            S_RR += np.tril(inv, -1).T
        else:
            S_RR = np.zeros((0, 0))
        self.S_RR = S_RR
        M = S_RR @ self.W
        W3 = self.W.reshape(qR, m1, p1)
        M3 = M.reshape(qR, m1, p1)
        self.S_11 = (np.einsum("cba,cbd->cad", Ainv, Ainv)
                     + np.einsum("rca,rcb->cab", W3, M3))
        np.negative(M, out=M)   # Sigma_R1 = -Sigma_RR W, in place (q_R x q_1 can be large)
        self.S_R1 = M

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
            out[m] = self.S_R1[i[m] - q1, j[m]]
        m = in_i & ~in_j
        if m.any():
            out[m] = self.S_R1[j[m] - q1, i[m]]
        m = ~in_i & ~in_j
        if m.any():
            out[m] = self.S_RR[i[m] - q1, j[m] - q1]
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
        if self.C.shape[0]:
            yR = sla.solve_triangular(self.C, rR.reshape(-1, k) - self.W @ r1.reshape(q1, k),
                                      lower=True, check_finite=False)
            xR = sla.solve_triangular(self.C, yR, lower=True, trans="T", check_finite=False)
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
    L = fac.dense_re_factor()
    inv, info = sla.lapack.dpotri(L, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("G is singular")
    out = np.tril(inv)
    out += np.tril(inv, -1).T
    return DenseInverse(out)

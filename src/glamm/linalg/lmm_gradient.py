"""The sums over the tiles of ``A_ZZ`` that the derivative of ``ldL2 = log det G`` in
``theta`` needs (:mod:`glamm.lmm.gradient`): for each random-effects term ``t``

    Q_t[b, a] = sum over the tiles (rows of term k, a level of t) of the column block t of
                A_ZZ of  sum_x H[x, b] (lambda_k' A_tile)[x, a],

``H`` being ``G^-1`` (``G = Lambda'A_ZZ Lambda + I``) on the tile.

:class:`TileSums` splits the random effects into the first term and the rest, as
:mod:`glamm.linalg.selinv` does: the rest's inverse ``S_RR`` is formed densely (one LAPACK
``potri``), and the first term's levels are visited one at a time in a compiled pass
(:func:`glamm.linalg._grad_kernels.first_term_sums`) that forms ``G^-1`` on each level's
tiles from ``S_RR`` on the level's rows only. :func:`logdet_tile_sums` is the reference it
is tested against (and the path without the compiled kernels): the same sums from
:class:`~glamm.linalg.selinv.SelectedInverse`. Not public API.
"""

from __future__ import annotations

import numpy as np

from .. import jit
from .blocks import BlockDiag, BlockSparse
from .selinv import SelectedInverse, re_inverse, spd_inverse_lower

_MODULE = "glamm.linalg._grad_kernels"


class TileSums:
    """``Q_t`` for every term (:func:`logdet_tile_sums`) from a factor and its
    cross-products, with the tile structure prepared once (the patterns never change).

    Parameters
    ----------
    fac : BlockedCholesky
        The factor (read at each call, after its ``update``).
    A : list of list
        The cross-products it was built on (read at each call).
    """

    def __init__(self, fac, A: list):
        self.fac, self.A = fac, A
        K = fac.K
        ps, ms = fac.ps, fac.ms
        self.off = np.concatenate([[0], np.cumsum([m * p for m, p in zip(ms, ps)])]
                                  ).astype(np.int64)
        # the rest-first tiles (A[i][0], i >= 1), all terms together, sorted by first-term level
        self.p_max = max(ps[1:], default=1)
        levels: list[np.ndarray] = []
        bases: list[np.ndarray] = []
        tps: list[np.ndarray] = []
        terms: list[np.ndarray] = []
        for i in range(1, K):
            B = A[i][0]
            assert isinstance(B, BlockSparse)
            levels.append(B.cols)
            bases.append(self.off[i] - self.off[1] + B.rows * ps[i])
            tps.append(np.full(B.nb, ps[i]))
            terms.append(np.full(B.nb, i))

        def cat(parts: list, dt) -> np.ndarray:
            return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dtype=dt)

        lev = cat(levels, np.int64)
        order = np.argsort(lev, kind="stable")
        self.base = cat(bases, np.int64)[order]
        self.tp = cat(tps, np.int64)[order]
        self.term = cat(terms, np.int64)[order]
        self.ptr = np.searchsorted(lev[order], np.arange(ms[0] + 1)).astype(np.int64)
        rows_per_level = np.bincount(lev, weights=cat(tps, np.float64), minlength=ms[0])
        self.max_rows = int(rows_per_level.max(initial=0))
        self.n_tiles = lev.shape[0]
        # where each block's tiles go in the level order
        dest = np.empty(self.n_tiles, dtype=np.int64)
        dest[order] = np.arange(self.n_tiles)
        sizes = [A[i][0].nb for i in range(1, K)]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        #: one later term whose tiles are already in level order (A's blocks are stored by
        #: column level): the kernel reads the blocks' own values, no gathered copies
        self.in_place = K == 2 and bool(np.array_equal(order, np.arange(self.n_tiles)))
        self.dest = [] if self.in_place else \
            [dest[bounds[i - 1]:bounds[i]] for i in range(1, K)]
        if self.in_place and ps[1] == 1 and A[1][0].rows.dtype == np.int64:
            self.base = A[1][0].rows   # (the same numbers: one scalar term's tile rows)
        self._rf: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, lams: list[np.ndarray]) -> list[np.ndarray]:
        k = jit.load(_MODULE)
        if k is None:
            return logdet_tile_sums(self.fac, self.A, lams)
        fac, A, K = self.fac, self.A, self.fac.K
        ps = fac.ps
        p0 = ps[0]
        lam0 = lams[0]
        # (its lower triangle: the readers below take (i, j) from (max, min))
        S_RR = spd_inverse_lower(SelectedInverse.rest_factor(fac, order="F")) if K > 1 \
            else np.zeros((0, 0))
        # the rest-first tiles' values in the factor and in A, in level order
        pm = self.p_max
        lam_pad = np.zeros((K, max(pm, p0), max(pm, p0)))
        lam_pad[0, :p0, :p0] = lam0
        for i in range(1, K):
            lam_pad[i, :ps[i], :ps[i]] = lams[i]
        if self.in_place:
            B, Lb = A[1][0], fac.L[1][0]
            L_rf = Lb.data if isinstance(Lb, BlockSparse) else _gather_tiles(Lb, B, ps[1], p0)
            A_rf = B.data
        else:
            if self._rf is None:
                self._rf = (np.zeros((self.n_tiles, pm, p0)), np.zeros((self.n_tiles, pm, p0)))
            L_rf, A_rf = self._rf
            for i in range(1, K):
                B = A[i][0]
                Lb = fac.L[i][0]
                pi = ps[i]
                dest = self.dest[i - 1]
                L_rf[dest, :pi] = Lb.data if isinstance(Lb, BlockSparse) \
                    else _gather_tiles(Lb, B, pi, p0)
                A_rf[dest, :pi] = B.data
        D = fac.L[0][0]
        assert isinstance(D, BlockDiag)
        N00 = np.einsum("yx,lya->lxa", lam0, A[0][0].data)
        Q0 = np.zeros((p0, p0))
        Q_rest = np.zeros((K, pm, pm))
        k.first_term_sums(np.ascontiguousarray(D.data), N00, L_rf, A_rf, lam_pad, self.ptr,
                          self.base, self.tp, self.term, S_RR, Q0, Q_rest, self.max_rows)
        Q = [Q0] + [Q_rest[i, :ps[i], :ps[i]].copy() for i in range(1, K)]
        # tiles among the later terms: S_RR read on them directly
        off = self.off - self.off[1] if K > 1 else self.off
        for i in range(1, K):
            for j in range(1, i + 1):
                _add_tile_sums(Q, A[i][j], i, j, lams, off, fac.ms, ps,
                               lambda r, c: S_RR[np.maximum(r, c), np.minimum(r, c)])
        return Q


def _gather_tiles(L: np.ndarray, B: BlockSparse, pi: int, pj: int) -> np.ndarray:
    """The values of a dense block ``L`` on the tiles of ``B`` (``(nb, pi, pj)``)."""
    er, ec = B.element_coords()
    return L[er, ec].reshape(B.nb, pi, pj)


def _add_tile_sums(Q: list, B, i: int, j: int, lams: list, off: np.ndarray, ms: list,
                   ps: list, entries) -> None:
    """Add the tiles of the block ``A[i][j]`` to ``Q[j]`` (and, for ``i > j``, their
    transposes' to ``Q[i]``), with ``G^-1`` on them from ``entries(rows, cols)`` (global
    element indices from ``off``)."""
    if isinstance(B, BlockDiag):
        m, p = B.m, B.p
        idx = off[i] + np.arange(m)[:, None] * p + np.arange(p)[None, :]
        rows, cols = np.broadcast_arrays(idx[:, :, None], idx[:, None, :])
        H = entries(rows.ravel(), cols.ravel()).reshape(m, p, p)
        N = np.einsum("yx,lya->lxa", lams[i], B.data)             # lambda' A_l
        Q[i] += np.einsum("lxb,lxa->ba", H, N)
        return
    if isinstance(B, BlockSparse):
        er, ec = B.element_coords()
        T = B.data
    else:   # a dense block: every (row level, column level) pair is a tile
        rr, cc = np.meshgrid(np.arange(ms[i]), np.arange(ms[j]), indexing="ij")
        T = B.reshape(ms[i], ps[i], ms[j], ps[j]).transpose(0, 2, 1, 3).reshape(-1, ps[i], ps[j])
        tile = BlockSparse(rows=rr.ravel(), cols=cc.ravel(), data=T, m_row=ms[i], m_col=ms[j])
        er, ec = tile.element_coords()
    H = entries(off[i] + er, off[j] + ec).reshape(T.shape)        # (nb, p_i, p_j)
    M1 = np.einsum("yx,tya->txa", lams[i], T)                      # lambda_i' A_tile
    Q[j] += np.einsum("txb,txa->ba", H, M1)
    if i != j:
        M2 = np.einsum("tay,yx->tax", T, lams[j])                  # A_tile lambda_j
        Q[i] += np.einsum("tbx,tax->ba", H, M2)


def logdet_tile_sums(fac, A: list, lams: list[np.ndarray]) -> list[np.ndarray]:
    """``Q_t`` (``p_t x p_t``) for every term, from the factor ``fac`` at ``lams`` and the
    cross-products ``A`` it was built on, with ``G^-1`` from
    :func:`glamm.linalg.selinv.re_inverse` (the reference for :class:`TileSums`)."""
    K = fac.K
    ps, ms = fac.ps, fac.ms
    off = np.concatenate([[0], np.cumsum([m * p for m, p in zip(ms, ps)])]).astype(np.int64)
    Ginv = re_inverse(fac)
    Q = [np.zeros((p, p)) for p in ps]
    for i in range(K):
        for j in range(i + 1):
            _add_tile_sums(Q, A[i][j], i, j, lams, off, ms, ps, Ginv.entries)
    return Q

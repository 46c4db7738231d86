"""What the blocked Cholesky factor will cost, predicted from the level codes alone.

:class:`~glamm.linalg.factor.BlockedCholesky` decides the storage of every block of ``L`` from
the level-by-level fill pattern (its symbolic phase). This module repeats that decision
without forming anything the factor would form: the pattern products it needs are cheap
(a diagonal block of ``L`` stays diagonal only if every block to its left has at most one
entry per column, and only then are products below it computed), and a block that will be
dense is only measured. From the layout it counts, per evaluation of the objective:

- the memory of every block of ``L`` (a dense ``q_j x q_j`` block is ``8 q_j^2`` bytes) and of
  the constants the numeric operations keep (the first-term update's list of entry pairs,
  one per pair of cross-product entries that share a level of the first term, and dense
  copies of cross-product blocks used densely);
- the floating-point work: ``q^3 / 3`` per dense Cholesky factorization, the triangular
  solves and dense products, and the pair-list updates (memory-bound, counted apart).

The time is the dense work over a BLAS rate measured once per process (one single-threaded
factorization of :data:`RATE_PROBE_SIZE` rows) plus the pair-list entries over
:data:`PAIR_RATE`. It is an estimate for planning (the exact fit's wall), not a benchmark.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .. import jit
from .factor import SPARSE_DENSITY, _union

#: rows of the dense factorization that measures the BLAS rate (about 1 GFLOP)
RATE_PROBE_SIZE = 1500
#: pair-list entries (gather, multiply, scatter-add) processed per second: a conservative
#: rate for the memory-bound sparse updates
PAIR_RATE = 2.0e8
#: bytes kept per entry of the first-term update's pair list (value, column index and the two
#: source positions), and the extra peak while it is built (the pair and target index arrays
#: and the triples sorted into CSR): 120 bytes per entry at the peak in all, as measured for
#: MovieLens-shaped models of 0.17M and 0.75M ratings (1.4 and 11.0 GB peak resident memory,
#: 10M and 94M entries; benchmarks/run_huge_crossed.py)
PAIR_BYTES = 32
PAIR_BUILD_BYTES = 88
#: bytes per stored block entry of a sparse pattern beyond its values (row and column level)
INDEX_BYTES = 16

_RATE: list[float] = []


def measured_flop_rate() -> float:
    """Floating-point operations per second of a single-threaded dense Cholesky
    factorization on this machine (measured once per process, the best of three)."""
    if not _RATE:
        import scipy.linalg as sla

        from .threads import single_threaded

        n = RATE_PROBE_SIZE
        rng = np.random.default_rng(0)
        G = rng.standard_normal((n, 64))
        S = G @ G.T + n * np.eye(n)
        best = np.inf
        with single_threaded(1):
            for _ in range(3):
                M = S.copy(order="F")
                t0 = time.perf_counter()
                sla.lapack.dpotrf(M, lower=1, overwrite_a=1, clean=0)
                best = min(best, time.perf_counter() - t0)
        _RATE.append(n**3 / 3.0 / max(best, 1e-6))
    return _RATE[0]


def available_memory() -> int:
    """Bytes of memory available to a new allocation: ``MemAvailable`` in ``/proc/meminfo``
    where there is one, else the physical memory (``os.sysconf``)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):   # pragma: no cover - non-POSIX
        return 8 * 2**30


@dataclass(frozen=True)
class BlockCost:
    """One block of ``L`` (or one operation's constants) in the prediction.

    Attributes
    ----------
    row, col : int
        Block indices (terms ``0..K-1``; ``K`` is the ``[X y]`` block).
    label : str
        The term(s) it belongs to, e.g. ``"g2"`` or ``"g2 x g1"``.
    kind : str
        ``"dense"``, ``"diagonal"``, ``"sparse"`` (blocks of ``L``) or ``"pair list"`` (the
        first-term update's constants), ``"dense copy"`` (a block of ``A`` used densely).
    shape : tuple of int
        Rows and columns (elements, not levels); for a pair list ``(entries, 1)``.
    nbytes : int
        Memory it holds.
    """

    row: int
    col: int
    label: str
    kind: str
    shape: tuple[int, int]
    nbytes: int


@dataclass
class FactorCost:
    """The predicted cost of one evaluation of the exact (blocked Cholesky) objective.

    Attributes
    ----------
    blocks : list of BlockCost
        Every block of ``L`` and every operation's constants.
    dense_flops : float
        Dense floating-point work per evaluation (factorizations, solves, products).
    pair_entries : float
        Entries of the pair-list updates per evaluation (memory-bound work).
    build_bytes : int
        Extra peak memory while the factor is built (the pair list's construction).
    flop_rate : float
        The dense rate used (operations per second).
    """

    blocks: list[BlockCost] = field(default_factory=list)
    dense_flops: float = 0.0
    pair_entries: float = 0.0
    build_bytes: int = 0
    flop_rate: float = 0.0

    @property
    def memory_bytes(self) -> int:
        """Peak memory of the factor and its operations (steady state plus construction)."""
        return int(sum(b.nbytes for b in self.blocks) + self.build_bytes)

    @property
    def seconds_per_evaluation(self) -> float:
        return float(self.dense_flops / self.flop_rate + self.pair_entries / PAIR_RATE)

    def table(self):
        """The blocks as a pandas DataFrame (``block, kind, rows, cols, MiB``)."""
        import pandas as pd

        return pd.DataFrame({
            "block": [b.label for b in self.blocks],
            "kind": [b.kind for b in self.blocks],
            "rows": [b.shape[0] for b in self.blocks],
            "cols": [b.shape[1] for b in self.blocks],
            "MiB": [b.nbytes / 2**20 for b in self.blocks],
        })

    def __str__(self) -> str:
        from ..results.formatting import format_factor_cost

        return format_factor_cost(self)

    def largest_dense(self) -> BlockCost | None:
        """The largest dense diagonal block of ``L`` of a random-effects term (the Schur
        complement of a term crossed with an earlier one; ``None`` if there is none)."""
        dense = [b for b in self.blocks if b.kind == "dense" and b.row == b.col]
        return max(dense, key=lambda b: b.nbytes) if dense else None


def _csr_pattern(rows: np.ndarray, cols: np.ndarray, m_row: int, m_col: int) -> sp.csr_matrix:
    ones = np.ones(rows.shape[0], dtype=np.int8)
    return sp.csr_matrix((ones, (rows, cols)), shape=(m_row, m_col))


def _col_counts(P: sp.csr_matrix) -> np.ndarray:
    return np.bincount(P.indices, minlength=P.shape[1])


def _thin_product(P: sp.csr_matrix, Q: sp.csr_matrix) -> sp.csr_matrix:
    """Pattern of ``P @ Q.T`` where ``Q`` has at most one entry per column (so the product
    has at most ``nnz(P)`` entries)."""
    R = (P @ Q.T).tocsr()
    R.data[:] = 1
    return R


def level_pairs(refs: list[np.ndarray], ms: list[int]) -> dict[tuple[int, int], tuple]:
    """The distinct level pairs ``(rows, cols)`` of every pair of terms ``i > j`` (the
    patterns of the cross-product blocks ``A[i][j]``), from the per-row level codes."""
    out = {}
    for i in range(len(refs)):
        for j in range(i):
            key = np.sort(refs[j].astype(np.int64) * ms[i] + refs[i])
            # (distinct values of the sorted keys: NumPy's hash-based unique is several
            # times slower on tens of millions of keys)
            uniq = key[np.concatenate([[True], key[1:] != key[:-1]])] if key.size else key
            out[(i, j)] = (uniq % ms[i], uniq // ms[i])
    return out


def factor_cost(refs: list[np.ndarray], ms: list[int], ps: list[int], p_fixed: int,
                labels: list[str] | None = None, flop_rate: float | None = None
                ) -> FactorCost:
    """Predict the layout, memory and time per evaluation of the blocked Cholesky factor.

    Parameters
    ----------
    refs : list of ndarray
        Per term, the level code of every row (terms in the frame's order).
    ms, ps : list of int
        Levels and columns per level of every term.
    p_fixed : int
        Columns of ``X`` (the ``[X y]`` block has ``p_fixed + 1`` rows).
    labels : list of str, optional
        Term names for the report (default ``term0``, ``term1``, ...).
    flop_rate : float, optional
        Dense operations per second (default: :func:`measured_flop_rate`, measured only when
        the dense work is large enough to matter).

    Returns
    -------
    FactorCost
    """
    K = len(ms)
    labels = list(labels) if labels is not None else [f"term{k}" for k in range(K)]
    pairs = level_pairs(refs, ms)
    P: list[list] = [[None] * (i + 1) for i in range(K)]
    for (i, j), (r, c) in pairs.items():
        P[i][j] = _csr_pattern(r, c, ms[i], ms[j])
    kinds: list[list[str]] = [[""] * (i + 1) for i in range(K)]
    for j in range(K):
        diag = all(P[j][k] is not None and _col_counts(P[j][k]).max(initial=0) <= 1
                   for k in range(j))
        kinds[j][j] = "diagonal" if diag else "dense"
        for i in range(j + 1, K):
            if not diag:
                kinds[i][j], P[i][j] = "dense", None
                continue
            for k in range(j):
                if P[i][j] is not None:
                    P[i][j] = None if P[i][k] is None else _union(
                        P[i][j], _thin_product(P[i][k], P[j][k]))
            pat = P[i][j]
            if pat is not None and pat.nnz <= SPARSE_DENSITY * ms[i] * ms[j]:
                kinds[i][j] = "sparse"
            else:
                kinds[i][j], P[i][j] = "dense", None
    qs = [ms[k] * ps[k] for k in range(K)]
    nxy = p_fixed + 1
    cost = FactorCost()
    blocks = cost.blocks
    for i in range(K):
        for j in range(i + 1):
            lab = labels[i] if i == j else f"{labels[i]} x {labels[j]}"
            kind = kinds[i][j]
            if kind == "dense":
                nbytes = 8 * qs[i] * qs[j]
            elif kind == "diagonal":
                nbytes = 8 * ms[i] * ps[i] ** 2
            else:
                nbytes = P[i][j].nnz * (8 * ps[i] * ps[j] + INDEX_BYTES)
            blocks.append(BlockCost(i, j, lab, kind, (qs[i], qs[j]), int(nbytes)))
            if i != j:   # the block of A itself
                nnz = pairs[(i, j)][0].shape[0]
                blocks.append(BlockCost(i, j, lab, "cross-products", (qs[i], qs[j]),
                                        int(nnz * (8 * ps[i] * ps[j] + INDEX_BYTES))))
    for j in range(K):   # the [X y] row of L and of A
        blocks.append(BlockCost(K, j, f"[X y] x {labels[j]}", "dense", (nxy, qs[j]),
                                16 * nxy * qs[j]))
    # --- the numeric operations: updates T -= L[i][k] L[j][k]', factorizations, solves
    flops = 0.0
    pair_entries = 0.0
    # a dense target of two sparse blocks is updated column by column in a compiled pass
    # that keeps nothing (glamm.linalg.factor._update_op), where the kernels are on
    column_kernel = jit.load("glamm.linalg._pair_kernels") is not None
    counts = {(i, k): _col_counts(P[i][k]) for i in range(K) for k in range(i)
              if kinds[i][k] == "sparse"}
    dense_copies: set[int] = set()
    for j in range(K + 1):
        nj = qs[j] if j < K else nxy
        for i in range(j, K + 1):
            ni = qs[i] if i < K else nxy
            t_dense = i == K or kinds[i][j] == "dense"
            for k in range(j):
                a_sparse = i < K and kinds[i][k] == "sparse"
                b_sparse = j < K and kinds[j][k] == "sparse"
                first = k == 0 and ps[0] == 1 and (t_dense or (a_sparse and b_sparse))
                if a_sparse and b_sparse:
                    ca, cb = counts[(i, k)], counts[(j, k)]
                    n_pairs = float((ca * (ca + 1) // 2).sum() if i == j else (ca * cb).sum())
                    entries = n_pairs * ps[i] * ps[j] * (1 if first else ps[k])
                    pair_entries += entries
                    if t_dense and column_kernel:
                        continue   # (the compiled column-wise update keeps nothing)
                    # the pair list the update keeps, and its construction's peak
                    blocks.append(BlockCost(i, j, f"{labels[i]} x {labels[j]} update",
                                            "pair list", (int(entries), 1),
                                            int(entries * PAIR_BYTES)))
                    cost.build_bytes = max(cost.build_bytes, int(entries * PAIR_BUILD_BYTES))
                    continue
                if first:   # blocks of A used densely (one cached copy each)
                    dense_copies.update(x for x, sp_ in ((i, a_sparse), (j, b_sparse))
                                        if x < K and not sp_)
                flops += 2.0 * ni * nj * qs[k]
            if i == j:
                dense_diag = i == K or kinds[j][j] == "dense"
                flops += nj**3 / 3.0 if dense_diag else ms[j] * ps[j] ** 3 / 3.0
            elif kinds[j][j] == "dense":   # T = T D^-T with a dense triangular D
                flops += float(ni) * nj * nj
    for x in sorted(dense_copies):
        blocks.append(BlockCost(x, 0, f"{labels[x]} x {labels[0]}", "dense copy",
                                (qs[x], qs[0]), 8 * qs[x] * qs[0]))
    cost.dense_flops = flops
    cost.pair_entries = pair_entries
    if flop_rate is None:
        flop_rate = measured_flop_rate() if flops > 1e9 else 2.0e10
    cost.flop_rate = float(flop_rate)
    return cost

"""Exact quantiles of values spread over partitions, in bounded memory.

``numpy.quantile`` (its default, linear interpolation) needs the order statistics at ranks
``floor(h)`` and ``ceil(h)``, ``h = prob (n - 1)``. Three passes find them without gathering
the values: the range (:func:`value_range`), the counts in equal bins over it
(:func:`bin_counts`), which locate each wanted rank's bin and its rank inside, and then only
the values of those bins (:func:`values_in_bins`), sorted on the driver
(:func:`quantiles_from_bins`). Each function here works on one partition's values or on the
sums; :func:`glamm.scale.dask_frame.DaskLmerResult.scaled_residual_quantiles` runs them.
"""

from __future__ import annotations

import numpy as np

#: bins of the counting pass
N_BINS = 1 << 16


def value_range(values: np.ndarray) -> tuple[float, float, int]:
    """``(min, max, count)`` of one partition's values (``(inf, -inf, 0)`` when empty)."""
    if values.size == 0:
        return float("inf"), float("-inf"), 0
    return float(values.min()), float(values.max()), int(values.size)


def merge_ranges(a: tuple[float, float, int], b: tuple[float, float, int]
                 ) -> tuple[float, float, int]:
    return min(a[0], b[0]), max(a[1], b[1]), a[2] + b[2]


def _bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: ``edges[b] <= v < edges[b + 1]``, the last bin closed."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many of one partition's values fall in each bin."""
    return np.bincount(_bins(values, edges), minlength=edges.size - 1)


def wanted_bins(counts: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each 0-based rank among all values: its bin, and its rank inside the bin."""
    cum = np.cumsum(counts)
    bins = np.searchsorted(cum, ranks, side="right")
    before = np.where(bins > 0, cum[np.maximum(bins - 1, 0)], 0)
    return bins, ranks - before


def values_in_bins(values: np.ndarray, edges: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """One partition's values in the bins ``bins``, with their bin: ``(k, 2)``."""
    b = _bins(values, edges)
    keep = np.isin(b, bins)
    return np.column_stack([b[keep].astype(float), values[keep]])


def quantiles_from_bins(pairs: np.ndarray, bins: np.ndarray, inside: np.ndarray,
                        probs: np.ndarray, n: int) -> np.ndarray:
    """The quantiles ``probs`` (``numpy.quantile``'s linear rule) from the gathered values of
    the wanted bins (:func:`values_in_bins` of every partition, stacked) and the ranks found
    by :func:`wanted_bins` for the order statistics ``floor(h), ceil(h)`` of each prob."""
    stats = np.empty(bins.size)
    for i, (b, r) in enumerate(zip(bins, inside)):
        stats[i] = np.sort(pairs[pairs[:, 0] == b, 1])[r]
    h = np.asarray(probs, dtype=float) * (n - 1)
    lo, hi = stats[0::2], stats[1::2]
    return lo + (h - np.floor(h)) * (hi - lo)


def wanted_ranks(probs: np.ndarray, n: int) -> np.ndarray:
    """Ranks ``floor(h), ceil(h)`` for each prob, interleaved."""
    h = np.asarray(probs, dtype=float) * (n - 1)
    return np.column_stack([np.floor(h), np.ceil(h)]).astype(np.int64).ravel()

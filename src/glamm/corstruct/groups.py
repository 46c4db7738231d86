"""The model's rows split into the groups of a correlation structure, batched by size.

Rows of different groups are uncorrelated, so the residual covariance is block diagonal with
one block per group. Groups of equal size form a batch: an ``(k, m)`` array of row positions
(``k`` groups of ``m`` rows, each group's rows in data order, as nlme keeps them), so every
per-group operation (correlation block, Cholesky factor, whitening) runs on ``(k, m, m)``
arrays at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupLayout:
    """Groups and their batches.

    Attributes
    ----------
    codes : ndarray of int
        Group of each row (``0 .. ngroups - 1``).
    labels : list of str
        Group labels (one group, ``["1"]``, when the structure has no grouping).
    batches : list of ndarray
        One ``(k, m)`` array of row positions per distinct group size ``m``, increasing.
    """

    codes: np.ndarray
    labels: list[str]
    batches: list[np.ndarray]

    @property
    def ngroups(self) -> int:
        return len(self.labels)

    @property
    def sizes(self) -> np.ndarray:
        """Number of rows of each group."""
        return np.bincount(self.codes, minlength=self.ngroups)

    @property
    def max_size(self) -> int:
        return int(self.sizes.max()) if self.codes.size else 0


def group_layout(codes: np.ndarray, labels: list[str]) -> GroupLayout:
    """Batch the rows by group size.

    Parameters
    ----------
    codes : ndarray of int
        Group code of each row.
    labels : list of str
        Label of each code (codes without rows are dropped).

    Returns
    -------
    GroupLayout
        The layout; each group's rows keep their order in the data.
    """
    codes = np.asarray(codes, dtype=np.int64)
    present = np.unique(codes)
    if present.size < len(labels):   # renumber the groups that have rows
        remap = np.full(len(labels), -1, dtype=np.int64)
        remap[present] = np.arange(present.size)
        codes, labels = remap[codes], [labels[i] for i in present]
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(labels))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    batches = []
    for m in np.unique(sizes):
        groups = np.flatnonzero(sizes == m)
        batches.append(order[starts[groups][:, None] + np.arange(m)[None, :]])
    return GroupLayout(codes, list(labels), batches)

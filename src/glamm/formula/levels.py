"""Levels fixed in advance: the dictionaries of the factors of a model when its data come in
partitions (:mod:`glamm.scale`).

A model frame built on one partition must code every level the way the frame of the whole
data would: the grouping factors' levels (and ``a:b`` interactions), and the levels of the
factor covariates, which decide the columns formulaic builds. :class:`FixedLevels` carries
those dictionaries, collected in one pass over the partitions
(:func:`glamm.scale.metadata.collect` and ``merge``), to
:func:`glamm.formula.design.build_model_frame`, which then codes the partition against them
and keeps every fixed-effects column (aliasing is decided from all partitions together).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .evaluate import level_label


@dataclass(frozen=True)
class FixedLevels:
    """The level dictionaries of a model's factors over the whole data.

    Attributes
    ----------
    factors : dict of str to list
        Factor covariates (columns of the fixed part or of a random term's left side): the
        raw values in level order (R's: sorted values, or a categorical's categories with
        the unused ones left out). A partition's column becomes a categorical with exactly
        these categories, so formulaic builds the same columns everywhere.
    groups : dict of str to ndarray
        Grouping columns: the raw values in level order.
    interactions : dict of tuple to ndarray
        Grouping interactions ``a:b``: the sorted combined keys of the combinations that
        occur (as :func:`glamm.formula.random_terms.grouping_factor` forms them from the
        columns' codes, first factor slowest).
    """

    factors: dict[str, list] = field(default_factory=dict)
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    interactions: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)

    def codes(self, col: pd.Series, name: str) -> np.ndarray:
        """Codes of grouping column ``name`` (``-1`` for a value outside the dictionary)."""
        values = col.to_numpy() if not isinstance(col.dtype, pd.CategoricalDtype) else \
            np.asarray(col, dtype=object)
        index = pd.Index(self.groups[name]).infer_objects()   # (numbers: a fast lookup)
        return np.asarray(index.get_indexer(values), dtype=np.int64)

    def group_labels(self, name: str) -> list[str]:
        return [level_label(v) for v in self.groups[name]]

    def with_factor_categories(self, data: pd.DataFrame) -> pd.DataFrame:
        """``data`` with every factor covariate as a categorical of the global levels."""
        out = data.copy()
        for c, values in self.factors.items():
            if c in out.columns:
                ordered = isinstance(out[c].dtype, pd.CategoricalDtype) and out[c].cat.ordered
                out[c] = pd.Categorical(np.asarray(out[c], dtype=object), categories=values,
                                        ordered=ordered)
        return out


def interaction_key(codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """Combined key of an interaction's per-column codes (first factor slowest)."""
    key = np.zeros(codes[0].shape[0], dtype=np.int64)
    for c, size in zip(codes, sizes):
        key = key * size + c
    return key


def interaction_labels(keys: np.ndarray, labels: list[list[str]]) -> list[str]:
    """``a:b`` labels of the combined ``keys`` of columns whose labels are ``labels``."""
    sizes = [len(lab) for lab in labels]
    out = []
    for k in np.asarray(keys).tolist():
        idx = []
        for size in reversed(sizes):
            k, r = divmod(k, size)
            idx.append(r)
        idx.reverse()
        out.append(":".join(labels[j][idx[j]] for j in range(len(labels))))
    return out

"""Pass 1 over a partitioned data set: which rows a model keeps and the level dictionaries.

:func:`model_columns` reads the formula once (on the driver) for the columns the model uses;
:func:`collect` runs on each partition (plain pandas, no Dask) and returns a small
:class:`Metadata` (row counts, the distinct values of the factors among the kept rows);
:func:`merge` adds two of them (any order, any tree); :func:`fixed_levels` turns the total
into the dictionaries every partition is coded against in pass 2
(:class:`~glamm.formula.levels.FixedLevels`), ordered as the in-memory frame orders them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.bars import parse_formula
from ..formula.design import _split_offsets, _used_columns
from ..formula.levels import FixedLevels, interaction_key
from ..formula.random_terms import COORDS_TERM
from ..smooths.spec import split_smooths


@dataclass(frozen=True)
class ModelColumns:
    """The columns a model reads, found from the formula and the columns' types.

    Attributes
    ----------
    used : list of str
        Every column the model reads (a row missing any of them is dropped).
    factors : list of str
        Factor covariates: non-numeric columns of the fixed part or of a term's left side.
    groups : list of str
        Grouping columns.
    interactions : list of tuple
        Grouping interactions (terms grouped by ``a:b``, or nested ``a/b``).
    weights : str or None
        The weights column (rows of weight 0 are left out of an LMM).
    """

    used: list[str]
    factors: list[str]
    groups: list[str]
    interactions: list[tuple[str, ...]]
    weights: str | None


def _is_factor(dtype) -> bool:
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) \
        or pd.api.types.is_string_dtype(dtype)


def model_columns(formula: str, dtypes: pd.Series, weights: str | None,
                  offset: str | None) -> ModelColumns:
    """The :class:`ModelColumns` of ``formula`` on data whose column types are ``dtypes``;
    features that need all rows at once are refused here, before any pass.

    Parameters
    ----------
    formula : str
        lme4-style formula.
    dtypes : Series
        The data's column types, indexed by column name.
    weights, offset : str or None
        Column names (arrays cannot be aligned with partitioned rows).
    """
    columns = pd.Index(dtypes.index)
    empty = pd.DataFrame(columns=columns)
    parsed = parse_formula(formula)
    fixed, offsets = _split_offsets(parsed.fixed_rhs)
    fixed, smooths = split_smooths(fixed)
    if smooths or any(re.search(r"(?<![\w.])(s|te|t2)\(", sp.expr) for sp in parsed.random):
        raise FormulaError("smooth terms (s(), t2(), te()) are not available on partitioned "
                           "data: their bases are computed from all rows at once")
    for spec in parsed.random:
        if COORDS_TERM.match(spec.expr):
            raise FormulaError(f"random-effects term {spec}: coords() is not available on "
                               "partitioned data (its locations are found from all rows)")
    for name, what in ((weights, "weights"), (offset, "offset")):
        if name is not None and name not in columns:
            raise DataError(f"{what} column {name!r} is not in the data (columns: "
                            f"{', '.join(map(str, columns))})")
    used = _used_columns(parsed.response + " " + fixed + " "
                         + " ".join(f"offset({e})" for e in offsets), empty)
    groups: list[str] = []
    interactions: list[tuple[str, ...]] = []
    lhs: list[str] = []
    for spec in parsed.random:
        for f in spec.factors:
            if f not in columns:
                raise FormulaError(f"unknown grouping column {f!r} in random-effects term "
                                   f"{spec}; the data has columns "
                                   f"{', '.join(map(str, columns))}")
            if f not in groups:
                groups.append(f)
        if len(spec.factors) > 1 and tuple(spec.factors) not in interactions:
            interactions.append(tuple(spec.factors))
        lhs += _used_columns(spec.expr, empty)
    used += [c for c in lhs + groups if c not in used]
    used += [c for c in (weights, offset) if c is not None and c not in used]
    covariates = _used_columns(fixed, empty) + lhs
    factors = [c for c in dict.fromkeys(covariates) if _is_factor(dtypes[c])]
    return ModelColumns(used=used, factors=factors, groups=groups,
                        interactions=interactions, weights=weights)


@dataclass
class Metadata:
    """What pass 1 learns from some partitions (:func:`collect`, :func:`merge`).

    Attributes
    ----------
    kept : list of int
        Rows kept, per partition in order.
    n_na, n_zero_weight : int
        Rows dropped for a missing value, and rows of weight 0.
    values : dict of str to ndarray
        The distinct values of each factor and grouping column among the kept rows.
    categories : dict of str to tuple or None
        A categorical column's categories (``None`` for other columns; a marker when the
        partitions' categories differ, whose levels are then sorted as for text).
    combinations : dict of tuple to DataFrame
        The distinct rows of each grouping interaction's columns among the kept rows.
    """

    kept: list[int]
    n_na: int
    n_zero_weight: int
    values: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, tuple | None] = field(default_factory=dict)
    combinations: dict[tuple[str, ...], pd.DataFrame] = field(default_factory=dict)


def kept_rows(part: pd.DataFrame, cols: ModelColumns) -> tuple[np.ndarray, int, int]:
    """The rows of ``part`` a linear mixed model keeps (no missing value in a used column, a
    weight other than 0) and the numbers dropped for each reason."""
    mask = ~part[cols.used].isna().any(axis=1).to_numpy() if cols.used else \
        np.ones(len(part), dtype=bool)
    n_na = int((~mask).sum())
    n_zero = 0
    if cols.weights is not None:
        zero = mask & (pd.to_numeric(part[cols.weights], errors="coerce").to_numpy() == 0)
        n_zero = int(zero.sum())
        mask &= ~zero
    return mask, n_na, n_zero


def collect(part: pd.DataFrame, cols: ModelColumns) -> Metadata:
    """Pass 1 on one partition."""
    mask, n_na, n_zero = kept_rows(part, cols)
    rows = part.loc[mask]
    out = Metadata(kept=[int(mask.sum())], n_na=n_na, n_zero_weight=n_zero)
    for c in dict.fromkeys(cols.factors + cols.groups):
        col = rows[c]
        out.values[c] = np.asarray(pd.unique(np.asarray(col, dtype=object)), dtype=object)
        out.categories[c] = (tuple(col.cat.categories)
                             if isinstance(col.dtype, pd.CategoricalDtype) else None)
    for inter in cols.interactions:
        combos = rows[list(inter)].drop_duplicates()
        out.combinations[inter] = combos.astype(object).reset_index(drop=True)
    return out


_CONFLICT = ("conflict",)


def merge(a: Metadata | None, b: Metadata | None) -> Metadata | None:
    """The :class:`Metadata` of the partitions of ``a`` followed by those of ``b``."""
    if a is None or b is None:
        return a if b is None else b
    out = Metadata(kept=a.kept + b.kept, n_na=a.n_na + b.n_na,
                   n_zero_weight=a.n_zero_weight + b.n_zero_weight)
    for c, v in a.values.items():
        out.values[c] = np.asarray(pd.unique(np.concatenate([v, b.values[c]])), dtype=object)
        ca, cb = a.categories[c], b.categories[c]
        out.categories[c] = ca if ca == cb else _CONFLICT
    for inter, combos in a.combinations.items():
        out.combinations[inter] = pd.concat([combos, b.combinations[inter]]) \
            .drop_duplicates().reset_index(drop=True)
    return out


def _ordered_values(name: str, values: np.ndarray, categories: tuple | None) -> np.ndarray:
    """A column's levels in the in-memory frame's order: a categorical's categories (the
    unused ones left out), else the sorted values (``pandas.factorize(sort=True)``)."""
    if categories == _CONFLICT:
        # partitions whose categories differ: as pandas.concat of such columns, the values
        # sorted (the order of no partition's categories is the whole data's)
        categories = None
    if categories is not None:
        present = set(values.tolist())
        return np.asarray([v for v in categories if v in present], dtype=object)
    _, uniques = pd.factorize(pd.Series(values, dtype=object), sort=True)
    return np.asarray(uniques, dtype=object)


def fixed_levels(meta: Metadata, cols: ModelColumns) -> FixedLevels:
    """The level dictionaries of pass 2 from the whole data's :class:`Metadata`."""
    factors = {c: list(_ordered_values(c, meta.values[c], meta.categories[c]))
               for c in cols.factors}
    groups = {c: _ordered_values(c, meta.values[c], meta.categories[c]) for c in cols.groups}
    levels = FixedLevels(factors=factors, groups=groups)
    for inter, combos in meta.combinations.items():
        codes = [levels.codes(combos[f], f) for f in inter]
        key = interaction_key(codes, [len(groups[f]) for f in inter])
        levels.interactions[inter] = np.unique(key)
    return levels

"""Factor loadings: random effects that are latent variables measured through several items
(galamm's ``load_var``, ``factor`` and ``lambda``).

The user names latent variables (``factor``) and writes them as columns of random-effects terms,
``(0 + ability | school/sid)``; glamm creates those columns (ones). The loading matrix
``lambda_`` has one row per level of ``load_var`` (the item) and one column per factor; ``nan``
marks a free loading, a number a fixed one (``0`` excludes an item from a factor, ``1`` fixes
the factor's scale). Row ``i`` of a loaded column for factor ``f`` then carries
``lambda_[item_i, f]`` instead of 1, so

    eta_i = x_i' beta + sum_f lambda_[item_i, f] * eta_{f, group_i} + ...

which is galamm's ``lambda_mapping_Zt``. In glamm's representation that is a per-row rescaling
of the term's ``z`` (:meth:`LoadingMap.z_values`), which the random design
(:class:`~glamm.terms.design.RandomDesign`) takes through ``set_z``; the level codes and so
the sparsity of every factor stay as they are.

:class:`LoadingSpec` checks and holds the user's input; :class:`LoadingMap` ties it to the
terms of a built model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, GlammError


@dataclass(frozen=True)
class LoadingSpec:
    """The loading structure as the user gave it, checked against the data.

    Parameters
    ----------
    load_var : str
        The data column whose levels the rows of ``matrix`` belong to.
    factors : tuple of str
        Names of the latent variables (the columns of ``matrix``).
    levels : tuple of str
        The levels of ``load_var`` in row order (a categorical's categories, else the sorted
        distinct values).
    matrix : ndarray
        ``(len(levels), len(factors))``; ``nan`` where a loading is free.
    """

    load_var: str
    factors: tuple[str, ...]
    levels: tuple[str, ...]
    matrix: np.ndarray

    @classmethod
    def from_user(cls, data: pd.DataFrame, load_var: str, factor: str | Sequence[str],
                  lambda_: Any) -> LoadingSpec:
        """Check galamm-style arguments against ``data``.

        Parameters
        ----------
        data : pandas.DataFrame
            The data (before the factor columns are added).
        load_var : str
            Column whose levels index the rows of ``lambda_``.
        factor : str or sequence of str
            Latent variable name(s); they must not be data columns.
        lambda_ : array-like or mapping
            ``(levels, factors)`` matrix with ``nan`` for free loadings, or a dict from level
            to a row (a number, or a sequence with one entry per factor).

        Raises
        ------
        GlammError
            The loading matrix does not match the levels or factors, a factor name is a data
            column, or a factor has no fixed nonzero loading (its scale is not identified).
        """
        factors = (factor,) if isinstance(factor, str) else tuple(factor)
        if not factors:
            raise GlammError("factor must name at least one latent variable")
        if len(set(factors)) != len(factors):
            raise GlammError(f"factor names must be distinct, got {list(factors)}")
        for f in factors:
            if f in data.columns:
                raise GlammError(
                    f"factor {f!r} is also a column of the data; a latent variable's column is "
                    "created by glamm, so give it a name the data does not use")
        if load_var not in data.columns:
            raise DataError(f"load_var {load_var!r} is not a column of the data; the data has "
                            f"columns {', '.join(map(str, data.columns))}")
        levels = _levels(data[load_var])
        matrix = _matrix(lambda_, levels, factors, load_var)
        for j, f in enumerate(factors):
            fixed = matrix[:, j]
            if not np.any(np.isfinite(fixed) & (fixed != 0)):
                raise GlammError(
                    f"factor {f!r} has no loading fixed to a nonzero number, so its scale is not "
                    "identified (fix one, usually the first item's, to 1)")
        return cls(load_var, factors, levels, matrix)

    @property
    def free(self) -> np.ndarray:
        """``(row, column)`` positions of the free loadings, column by column (galamm's order:
        the first factor's items, then the next factor's)."""
        rows, cols = np.nonzero(np.isnan(self.matrix.T))
        return np.column_stack([cols, rows])

    @property
    def n_free(self) -> int:
        return int(np.isnan(self.matrix).sum())

    def free_names(self) -> list[str]:
        """``lambda[level, factor]`` labels of the free loadings."""
        return [f"lambda[{self.levels[i]},{self.factors[j]}]" for i, j in self.free]

    def item_codes(self, values: Any) -> np.ndarray:
        """The row of the loading matrix (position of the load_var level) of every value.

        Raises
        ------
        DataError
            A value is missing or not among the levels.
        """
        index = {lev: i for i, lev in enumerate(self.levels)}
        labels = [None if pd.isna(v) else _label(v) for v in np.asarray(values, dtype=object)]
        codes = np.array([-1 if lab is None else index.get(lab, -1) for lab in labels],
                         dtype=np.int64)
        if np.any(codes < 0):
            bad = sorted({str(lab) for lab, c in zip(labels, codes) if c < 0})
            raise DataError(f"load_var {self.load_var!r} has values {bad[:5]} that are not "
                            f"among the levels of lambda_ ({', '.join(self.levels)})")
        return codes

    def full_matrix(self, free: np.ndarray) -> np.ndarray:
        """The loading matrix with the free entries set to ``free``."""
        out = self.matrix.copy()
        pos = self.free
        out[pos[:, 0], pos[:, 1]] = free
        return out


def _levels(column: pd.Series) -> tuple[str, ...]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return tuple(str(c) for c in column.cat.categories)
    values = column.dropna().unique()
    try:
        values = np.sort(values)
    except TypeError:
        values = np.array(sorted(values, key=str), dtype=object)
    return tuple(_label(v) for v in values)


def _label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _matrix(lambda_: Any, levels: tuple[str, ...], factors: tuple[str, ...],
            load_var: str) -> np.ndarray:
    k = len(factors)
    if isinstance(lambda_, Mapping):
        given = {str(key): value for key, value in lambda_.items()}
        unknown = sorted(set(given) - set(levels))
        missing = [lev for lev in levels if lev not in given]
        if unknown or missing:
            raise GlammError(
                f"lambda_ is keyed by the levels of {load_var!r} ({', '.join(levels)}); "
                + (f"unknown keys {unknown}" if unknown else "")
                + ("; " if unknown and missing else "")
                + (f"missing levels {missing}" if missing else ""))
        rows = [np.atleast_1d(np.asarray(given[lev], dtype=float)) for lev in levels]
        if any(r.shape != (k,) for r in rows):
            raise GlammError(f"every row of lambda_ needs {k} entries, one per factor "
                             f"({', '.join(factors)})")
        matrix = np.vstack(rows)
    else:
        try:
            matrix = np.array(lambda_, dtype=float)
        except (TypeError, ValueError):
            raise GlammError("lambda_ must be a numeric matrix (nan for free loadings) or a "
                             "dict from level to row") from None
        if matrix.ndim == 1 and k == 1:
            matrix = matrix[:, None]
        if matrix.ndim != 2 or matrix.shape[1] != k:
            raise GlammError(f"lambda_ needs {k} column(s), one per factor "
                             f"({', '.join(factors)}), got shape {matrix.shape}")
        if matrix.shape[0] != len(levels):
            raise GlammError(
                f"lambda_ has {matrix.shape[0]} rows but load_var {load_var!r} has "
                f"{len(levels)} levels ({', '.join(levels)}); give one row per level, in this "
                "order, or a dict keyed by level")
    if np.any(np.isinf(matrix)):
        raise GlammError("lambda_ has infinite entries")
    return matrix


class LoadingMap:
    """The loadings of a built model: which columns of which terms are loaded, the load_var
    level of every row, and the current free values.

    Parameters
    ----------
    spec : LoadingSpec
        The checked user input.
    reterms : list of ReTerm
        The model's terms (their column names are matched with the factor names).
    item : ndarray
        Row index into ``spec.levels`` for every observation (``-1`` not allowed).

    Raises
    ------
    GlammError
        No random-effects term uses a factor.
    """

    def __init__(self, spec: LoadingSpec, reterms: Sequence[Any], item: np.ndarray):
        self.spec = spec
        self.item = np.asarray(item, dtype=np.int64)
        #: per loaded term: (term index, [(column index, factor index), ...])
        self.terms: list[tuple[int, list[tuple[int, int]]]] = []
        used: set[int] = set()
        for k, t in enumerate(reterms):
            cols = [(c, spec.factors.index(name)) for c, name in enumerate(t.cnames)
                    if name in spec.factors]
            if cols:
                self.terms.append((k, cols))
                used.update(f for _, f in cols)
        unused = [f for j, f in enumerate(spec.factors) if j not in used]
        if unused:
            raise GlammError(
                f"factor(s) {unused} appear in no random-effects term; write them as the "
                "columns of a term, e.g. (0 + " + unused[0] + " | group)")
        self.base_z = {k: np.array(reterms[k].z, dtype=float) for k, _ in self.terms}
        self.values = np.ones(spec.n_free)

    @property
    def n_free(self) -> int:
        return self.spec.n_free

    def z_values(self, free: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``(term index, z)`` of every loaded term with the free loadings at ``free``."""
        full = self.spec.full_matrix(free)
        out = []
        for k, cols in self.terms:
            z = self.base_z[k].copy()
            for c, f in cols:
                z[:, c] = z[:, c] * full[self.item, f]
            out.append((k, z))
        return out

    def apply(self, free: np.ndarray, zs: list[np.ndarray], item: np.ndarray) -> list[np.ndarray]:
        """The terms' ``z`` for other rows (new data, with load_var rows ``item``) with the
        loadings at ``free`` applied to the loaded columns."""
        full = self.spec.full_matrix(free)
        out = list(zs)
        for k, cols in self.terms:
            z = np.array(zs[k], dtype=float, copy=True)
            for c, f in cols:
                z[:, c] = z[:, c] * full[item, f]
            out[k] = z
        return out

    def table(self, free: np.ndarray) -> pd.DataFrame:
        """The loading matrix at ``free`` (rows: load_var levels; columns: factors)."""
        return pd.DataFrame(self.spec.full_matrix(free), index=list(self.spec.levels),
                            columns=list(self.spec.factors))

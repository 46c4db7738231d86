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
    #: per level of load_var, the right-hand side of its ``factor_interactions`` formula for
    #: the (single) factor, ``None`` for ``~1``
    interactions: tuple[str | None, ...] | None = None

    @classmethod
    def from_user(cls, data: pd.DataFrame, load_var: str, factor: str | Sequence[str],
                  lambda_: Any, factor_interactions: Any = None) -> LoadingSpec:
        """Check galamm-style arguments against ``data``.

        Parameters
        ----------
        data : pandas.DataFrame
            The data (before the factor columns are added).
        load_var : str
            Column whose levels index the rows of ``lambda_``.
        factor : str or sequence of str
            Latent variable name(s); they must not be data columns.
        lambda_ : array-like, mapping or DataFrame
            ``(levels, factors)`` matrix with ``nan`` for free loadings, or a dict from level
            to a row (a number, or a sequence with one entry per factor), or a DataFrame
            indexed by level (columns named as the factors, or in their order).
        factor_interactions : sequence or mapping, optional
            galamm's ``factor_interactions`` for a one-factor model: one formula per level of
            ``load_var`` (``"~1"``: the loading is ``lambda_[level]``; ``"~x"``: it is
            ``lambda_[level] + lambda_x * x``, one extra free loading per covariate column),
            or a dict from level to formula, or a one-element list holding either.

        Raises
        ------
        GlammError
            The loading matrix does not match the levels or factors, a factor name is a data
            column, or a factor has no fixed nonzero loading (its scale is not identified).
        """
        factors = _factor_names(factor)
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
        interactions = _interactions(factor_interactions, levels, factors, load_var)
        return cls(load_var, factors, levels, matrix, interactions)

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
        """``lambda[level, factor]`` labels of the free loadings of the matrix (the
        interaction loadings, named by :class:`LoadingMap`, follow them)."""
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
        missing = [i for i, lab in enumerate(labels) if lab is None]
        if missing:
            raise DataError(f"load_var {self.load_var!r} is missing in {len(missing)} row(s) "
                            f"(positions {missing[:5]}); every row needs its level for its "
                            "loadings")
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


def _factor_names(factor: Any) -> tuple[str, ...]:
    """``factor`` (a name or a sequence of names) as a tuple of strings."""
    if isinstance(factor, str):
        return (factor,)
    if isinstance(factor, Sequence) and all(isinstance(f, str) for f in factor):
        return tuple(factor)
    raise GlammError(f"factor must be a name or a list of names (strings), got {factor!r}")


def _interactions(given: Any, levels: tuple[str, ...], factors: tuple[str, ...],
                  load_var: str) -> tuple[str | None, ...] | None:
    """``factor_interactions`` as one right-hand side (or ``None`` for ``~1``) per level."""
    if given is None:
        return None
    if len(factors) != 1:
        raise GlammError("factor_interactions are available for models with one factor only "
                         "(as in galamm)")
    if isinstance(given, Sequence) and not isinstance(given, str) and len(given) == 1 \
            and len(levels) != 1 and not isinstance(given[0], str):
        given = given[0]   # galamm's list with one element per factor
    if isinstance(given, Mapping):
        missing = [lev for lev in levels if lev not in {str(k) for k in given}]
        if missing:
            raise GlammError(f"factor_interactions lacks the levels {missing} of {load_var!r}")
        forms = [given[k] for lev in levels for k in given if str(k) == lev]
    elif isinstance(given, Sequence) and not isinstance(given, str):
        forms = list(given)
        if len(forms) != len(levels):
            raise GlammError(
                f"factor_interactions has {len(forms)} formulas but load_var {load_var!r} has "
                f"{len(levels)} levels ({', '.join(levels)}); give one per level, '~1' where "
                "the loading does not depend on covariates")
    else:
        raise GlammError("factor_interactions must be a list of formulas, one per level of "
                         f"{load_var!r} (e.g. ['~1', '~1', '~x'])")
    out: list[str | None] = []
    for lev, form in zip(levels, forms):
        if not isinstance(form, str) or not form.strip().startswith("~"):
            raise GlammError(f"factor_interactions for level {lev!r} must be a formula string "
                             f"such as '~x', got {form!r}")
        rhs = form.strip()[1:].strip()
        out.append(None if rhs in ("1", "") else rhs)
    return tuple(out)


def _levels(column: pd.Series) -> tuple[str, ...]:
    """The levels of load_var that occur, in the categorical's order (unused categories, as
    after subsetting a data set, have no row in the loading matrix)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.dropna().astype(str))
        return tuple(str(c) for c in column.cat.categories if str(c) in present)
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


def _from_pandas(lambda_: pd.DataFrame | pd.Series, levels: tuple[str, ...],
                 factors: tuple[str, ...], load_var: str) -> np.ndarray | dict[str, Any]:
    """A loading matrix given as a DataFrame (or, for one factor, a Series): columns named as
    the factors are put in the order of ``factor`` (other names are taken in order), rows are
    matched to the levels of ``load_var`` by the index (a default ``RangeIndex`` is taken in
    order). Returns the matrix, or a dict by level for :func:`_matrix` to check."""
    frame = lambda_.to_frame() if isinstance(lambda_, pd.Series) else lambda_
    if isinstance(lambda_, pd.Series) and len(factors) != 1:
        raise GlammError(f"lambda_ as a Series has one column but there are {len(factors)} "
                         f"factors ({', '.join(factors)}); give a DataFrame")
    names = [str(c) for c in frame.columns]
    named = [c for c in names if c in factors]
    if isinstance(lambda_, pd.DataFrame) and named:
        if sorted(named) != sorted(factors) or len(names) != len(factors):
            raise GlammError(f"lambda_ has columns {names}; name them as the factors "
                             f"({', '.join(factors)}) or leave them unnamed")
        frame = frame.set_axis(names, axis=1)[list(factors)]
    try:
        values = frame.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise GlammError("lambda_ must hold numbers (nan for free loadings)") from None
    if isinstance(frame.index, pd.RangeIndex):
        return values
    labels = [_label(v) for v in frame.index]
    if sorted(labels) != sorted(levels) or len(set(labels)) != len(labels):
        raise GlammError(f"lambda_'s index {labels} does not match the levels of {load_var!r} "
                         f"({', '.join(levels)}); index it by level, or use a default "
                         "RangeIndex to give the rows in this order")
    return dict(zip(labels, values))


def _matrix(lambda_: Any, levels: tuple[str, ...], factors: tuple[str, ...],
            load_var: str) -> np.ndarray:
    k = len(factors)
    if isinstance(lambda_, (pd.DataFrame, pd.Series)):
        lambda_ = _from_pandas(lambda_, levels, factors, load_var)
    if isinstance(lambda_, Mapping):
        given = {_label(key): value for key, value in lambda_.items()}
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


def interaction_covariates(spec: LoadingSpec, data: pd.DataFrame,
                           item: np.ndarray) -> list[tuple[int, str, np.ndarray]]:
    """The covariates of the ``factor_interactions`` loadings for the rows of ``data``
    (``item``: their load_var rows): one ``(level, column name, values)`` per extra loading,
    the values zero outside the level's rows. Each formula must keep its intercept (it carries
    the level's own loading)."""
    from ..formula.evaluate import column_names, model_matrix_checked

    out: list[tuple[int, str, np.ndarray]] = []
    if spec.interactions is None:
        return out
    for level, rhs in enumerate(spec.interactions):
        if rhs is None:
            continue
        where = f"factor_interactions formula of level {spec.levels[level]!r}"
        mm = model_matrix_checked(rhs, data, where)
        names = column_names(mm)
        if "Intercept" not in names:
            raise GlammError(f"the {where} ('~{rhs}') has no intercept; the intercept carries "
                             "the level's own loading (write '~x', not '~0 + x')")
        values = np.asarray(mm, dtype=float)
        rows = item == level
        for j, name in enumerate(names):
            if name == "Intercept":
                continue
            col = np.where(rows, values[:, j], 0.0)
            if np.any(~np.isfinite(col)):
                raise DataError(f"the {where} has missing or infinite values in column "
                                f"{name!r}")
            out.append((level, name, col))
    return out


def loaded_fixed_columns(frame: Any, factors: Sequence[str]) -> list[tuple[int, int]]:
    """``(column of X, factor)`` for the unpenalized columns of the smooths on the latent
    scale (``sl(x, factor=f)``, every level of a factor ``by`` included)."""
    xnames = list(frame.xnames)
    out = []
    for sm in frame.smooths:
        if sm.factor in factors:
            f = list(factors).index(sm.factor)
            out += [(xnames.index(name), f) for name in sm.fixed_names if name in xnames]
    return out


def _column_factor(name: str, factors: Sequence[str], group: str) -> int | None:
    """The factor loading a random-effects column: its name is the factor's (``ability``) or
    an interaction with one (``domain1:ability1``, a covariate times the latent variable);
    ``None`` for an ordinary column."""
    hits = [f for f in factors if f in name.split(":")]
    if len(hits) > 1:
        raise GlammError(f"random-effects column {name!r} of the term for {group!r} "
                         f"multiplies several latent factors ({', '.join(hits)}); a column "
                         "can carry one factor's loadings")
    return list(factors).index(hits[0]) if hits else None


class LoadingMap:
    """The loadings of a built model: which columns of which terms are loaded, the load_var
    level of every row, and the current free values.

    The loading of row ``i`` for factor ``f`` is ``lambda_[item_i, f]`` plus, for a
    ``factor_interactions`` model, ``sum_r lambda_r * x_r[i]`` over the interaction loadings
    of its level (their covariates ``x_r`` are zero in other rows). The free values are the
    matrix's free entries (galamm's order) followed by the interaction loadings.

    Parameters
    ----------
    spec : LoadingSpec
        The checked user input.
    reterms : list of ReTerm
        The model's terms (their column names are matched with the factor names).
    item : ndarray
        Row index into ``spec.levels`` for every observation.
    covariates : list of (int, str, ndarray), optional
        The interaction loadings' covariates (:func:`interaction_covariates`).
    X : ndarray, optional
        The fixed-effects matrix, when some of its columns are loaded.
    x_cols : sequence of (int, int), optional
        Its loaded columns and their factors (:func:`loaded_fixed_columns`).

    Raises
    ------
    GlammError
        No random-effects term uses a factor.
    """

    def __init__(self, spec: LoadingSpec, reterms: Sequence[Any], item: np.ndarray,
                 covariates: list[tuple[int, str, np.ndarray]] | None = None,
                 X: np.ndarray | None = None,
                 x_cols: Sequence[tuple[int, int]] = ()):
        self.spec = spec
        self.item = np.asarray(item, dtype=np.int64)
        self.covariates = list(covariates or [])
        #: per loaded term: (term index, [(column index, factor index), ...]); a smooth on the
        #: latent scale (``sl()``: its spec names the factor) is loaded whole
        self.terms: list[tuple[int, list[tuple[int, int]]]] = []
        used: set[int] = set()
        for k, t in enumerate(reterms):
            latent = getattr(t.smooth, "factor", None)
            if latent in spec.factors:
                cols = [(c, spec.factors.index(latent)) for c in range(t.p)]
            else:
                cols = [(c, f) for c, name in enumerate(t.cnames)
                        if (f := _column_factor(name, spec.factors, t.group)) is not None]
            if cols:
                self.terms.append((k, cols))
                used.update(f for _, f in cols)
        #: loaded columns of X (an ``sl()`` smooth's unpenalized part): (column, factor)
        self.x_cols = list(x_cols)
        used.update(f for _, f in self.x_cols)
        self.base_X = None if X is None or not self.x_cols else np.array(X, dtype=float)
        unused = [f for j, f in enumerate(spec.factors) if j not in used]
        _check_free_levels_observed(spec, self.item)
        if unused:
            raise GlammError(
                f"factor(s) {unused} appear in no random-effects term; write them as the "
                "columns of a term, e.g. (0 + " + unused[0] + " | group)")
        self.base_z = {k: np.array(reterms[k].z, dtype=float) for k, _ in self.terms}
        self.values = np.ones(self.n_free)
        if self.covariates:   # interaction loadings start at 0 (the loading of the level)
            self.values[spec.n_free:] = 0.0

    @property
    def n_free(self) -> int:
        return self.spec.n_free + len(self.covariates)

    def free_names(self) -> list[str]:
        """Labels of the free loadings: ``lambda[level,factor]``, then
        ``lambda[level,factor:covariate]`` for the interaction loadings."""
        f = self.spec.factors[0]
        return self.spec.free_names() + [f"lambda[{self.spec.levels[level]},{f}:{name}]"
                                         for level, name, _ in self.covariates]

    def row_loadings(self, free: np.ndarray, item: np.ndarray | None = None,
                     covariates: list[tuple[int, str, np.ndarray]] | None = None) -> np.ndarray:
        """``(n, factors)``: the loading of every row (the fitted rows by default, or rows
        with load_var rows ``item`` and interaction covariates ``covariates``)."""
        item = self.item if item is None else item
        covariates = self.covariates if covariates is None else covariates
        m = self.spec.n_free
        out = self.spec.full_matrix(free[:m])[item]
        for r, (_, _, x) in enumerate(covariates):
            out[:, 0] = out[:, 0] + free[m + r] * x
        return out

    def derivative(self, r: int) -> tuple[int, np.ndarray]:
        """Free loading ``r``: its factor and ``d loading_i / d lambda_r`` for every row."""
        m = self.spec.n_free
        if r < m:
            level, f = self.spec.free[r]
            return int(f), (self.item == level).astype(float)
        return 0, self.covariates[r - m][2]

    def X_values(self, free: np.ndarray, X: np.ndarray | None = None,
                 item: np.ndarray | None = None,
                 covariates: list[tuple[int, str, np.ndarray]] | None = None) -> np.ndarray:
        """The fixed-effects matrix with its loaded columns times the rows' loadings (the
        fitted rows' by default, or ``X`` of other rows with their ``item`` and
        ``covariates``)."""
        if X is None:
            assert self.base_X is not None
            X = self.base_X
        out = np.array(X, dtype=float, copy=True)
        if not self.x_cols:
            return out
        rows = self.row_loadings(free, item, (covariates or []) if item is not None else None)
        for j, f in self.x_cols:
            out[:, j] = out[:, j] * rows[:, f]
        return out

    def z_values(self, free: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``(term index, z)`` of every loaded term with the free loadings at ``free``."""
        rows = self.row_loadings(free)
        out = []
        for k, cols in self.terms:
            z = self.base_z[k].copy()
            for c, f in cols:
                z[:, c] = z[:, c] * rows[:, f]
            out.append((k, z))
        return out

    def apply(self, free: np.ndarray, zs: list[np.ndarray], item: np.ndarray,
              covariates: list[tuple[int, str, np.ndarray]] | None = None) -> list[np.ndarray]:
        """The terms' ``z`` for other rows (new data, with load_var rows ``item`` and
        interaction covariates ``covariates``) with the loadings at ``free`` applied."""
        rows = self.row_loadings(free, item, covariates or [])
        out = list(zs)
        for k, cols in self.terms:
            z = np.array(zs[k], dtype=float, copy=True)
            for c, f in cols:
                z[:, c] = z[:, c] * rows[:, f]
            out[k] = z
        return out


def zero_variance_loadings(spec: LoadingSpec, f: int, item: np.ndarray, groups: np.ndarray,
                           score: np.ndarray, info: np.ndarray,
                           z: np.ndarray | None = None) -> np.ndarray | None:
    """Loadings along which a latent variance stuck at zero can grow.

    At a zero variance the loadings have no effect, so an optimizer gets no signal about them
    and may stop there although the likelihood rises for other loadings. For a term
    ``(0 + f | group)`` with variance ``psi``, the log-likelihood changes by
    ``psi / 2 * lambda' M lambda + O(psi^2)`` with ``M = sum_g u_g u_g' - diag(h)``:
    ``u_g[j]`` sums the scores ``d log p / d eta`` of group ``g``'s rows of item ``j`` (times
    the column's unloaded values ``z``) and ``h[j]`` the observed information of item ``j``'s
    rows (times ``z^2``; exact for the Gaussian and the
    Laplace approximation alike). A positive eigenvalue of ``M`` (over the items whose
    loading is free or a nonzero number) means the variance can grow along its eigenvector.

    Parameters
    ----------
    spec : LoadingSpec
        The loading structure.
    f : int
        The factor (column of the loading matrix) the term carries.
    item, groups : ndarray
        Per row: the load_var row and the term's level code.
    score, info : ndarray
        Per row: ``d log p / d eta`` and ``-d2 log p / d eta2`` at the fit.
    z : ndarray, optional
        Per row: the term's column before the loadings (ones for a factor's own column).

    Returns
    -------
    ndarray or None
        The factor's column of the loading matrix along the top eigenvector, scaled to the
        fixed nonzero loadings (least squares); ``None`` when no direction raises the
        likelihood or the eigenvector misses the fixed loadings.
    """
    column = spec.matrix[:, f]
    k = len(spec.levels)
    z = np.ones_like(score) if z is None else z
    U = np.zeros((int(groups.max()) + 1, k))
    np.add.at(U, (groups, item), score * z)
    M = U.T @ U - np.diag(np.bincount(item, weights=info * z**2, minlength=k))
    allowed = np.flatnonzero(np.isnan(column) | (column != 0))
    vals, vecs = np.linalg.eigh(M[np.ix_(allowed, allowed)])
    if vals[-1] <= 1e-8 * max(float(np.max(np.abs(vals))), 1e-300):
        return None
    v = np.zeros(k)
    v[allowed] = vecs[:, -1]
    fixed = np.flatnonzero(np.isfinite(column) & (column != 0))
    norm = float(v[fixed] @ v[fixed])
    if norm < 1e-6:   # (the fixed loadings would need loadings beyond any sensible start)
        return None
    return v * float(v[fixed] @ column[fixed]) / norm


def _check_free_levels_observed(spec: LoadingSpec, item: np.ndarray) -> None:
    """Every free loading needs rows of its level among the rows used (the others may have
    been dropped for missing values); else it is not identified."""
    counts = np.bincount(item, minlength=len(spec.levels))
    empty = [name for (level, _), name in zip(spec.free, spec.free_names())
             if counts[level] == 0]
    if empty:
        raise DataError(
            f"the free loading(s) {empty} have no observations: every row of their level of "
            f"{spec.load_var!r} was dropped for missing values, so they are not identified "
            "(fix them in lambda_ or drop the level)")

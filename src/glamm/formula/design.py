"""Build the numeric model (response, fixed-effects matrix, random-effects terms) from a formula
and a data frame.

Stages: parse the formula (``bars.parse_formula``) -> check every expression in it against the
whitelist (``safety``; nothing is evaluated before) -> find the columns it uses -> drop rows with
missing values in them -> evaluate the response, the fixed-effects matrix (formulaic) and each
random-effects term -> drop aliased fixed-effects columns -> order the terms as lme4 does (by
decreasing number of levels). The formulaic model specs are kept so that new data can be
turned into the same columns (``ModelFrame.new_X``, ``ModelFrame.new_re``). Input tables are
converted by :mod:`.data_input`; expressions and columns are evaluated by :mod:`.evaluate`;
each random-effects term is built by :mod:`.random_terms`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..smooths.construct import construct as construct_smooth
from ..smooths.spec import as_random_term, split_smooths
from ..terms.covariance import ScaledIdentity
from ..terms.reterm import ReTerm, TermRole
from .bars import ParsedFormula, parse_formula
from .data_input import as_pandas
from .evaluate import (
    as_vector,
    column_names,
    eval_glm_response,
    eval_numeric,
    factor_codes,
    level_label,
    model_matrix_checked,
)
from .levels import FixedLevels
from .naming import lme4_names
from .random_terms import COORDS_TERM, build_reterm
from .safety import check_expression, checked_terms, formula_context

_IDENT = re.compile(r"`([^`]+)`|([A-Za-z_.][A-Za-z0-9_.]*)")


@dataclass
class ModelFrame:
    """Numeric form of a mixed model and what is needed to rebuild it for new data.

    Attributes
    ----------
    y, X : ndarray
        Response ``(n,)`` and fixed-effects matrix ``(n, p)`` (aliased columns already dropped).
    xnames : list[str]
        lme4-style names of the columns of ``X``.
    dropped_columns : list[str]
        Names of fixed-effects columns dropped as linear combinations of earlier ones.
    reterms : list[ReTerm]
        Random-effects terms, ordered by decreasing number of levels (lme4's order).
    weights, offset : ndarray
        Prior weights and offset, ``(n,)`` each (ones and zeros when not given).
    n_dropped_na : int
        Number of rows dropped for missing values in the columns the model uses.
    n_zero_weight : int
        Number of rows with prior weight 0 left out of a linear mixed model (their residual
        variance ``sigma^2 / 0`` is infinite, so they carry no information; see
        :func:`build_model_frame`).
    row_index : Index
        Index labels (of the input data frame) of the rows used.
    """

    parsed: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    reterms: list[ReTerm]
    weights: np.ndarray
    offset: np.ndarray
    n_dropped_na: int
    row_index: pd.Index
    dropped_columns: list[str] = field(default_factory=list)
    xspec: Any = field(default=None, repr=False)
    x_keep: np.ndarray | None = field(default=None, repr=False)
    offset_exprs: tuple[str, ...] = ()
    offset_column: str | None = None
    offset_is_array: bool = False
    trials: np.ndarray | None = None
    #: levels (as labels) of the factor covariates, and the numeric covariates, for new data
    factor_levels: dict = field(default_factory=dict)
    numeric_columns: tuple = ()
    #: smooth terms (glamm.smooths.construct.Smooth), in formula order; their unpenalized
    #: columns are the last ``n_smooth_fixed`` columns of ``X``
    smooths: list = field(default_factory=list)
    n_zero_weight: int = 0

    @property
    def n_smooth_fixed(self) -> int:
        return sum(sm.n_fixed for sm in self.smooths)

    @property
    def n_parametric(self) -> int:
        """Number of parametric columns of ``X`` (those before the smooths' fixed columns)."""
        return self.X.shape[1] - self.n_smooth_fixed

    @property
    def n(self) -> int:
        return self.y.shape[0]

    # --- new data -------------------------------------------------------------------------
    def check_new_levels(self, data: pd.DataFrame) -> np.ndarray:
        """Raise a :class:`DataError` for a level of a factor covariate that was not in the
        fitted data (R: "factor f has new level z"); return the rows with a missing value in
        a covariate (their predictions are NaN, as R's NA)."""
        missing = np.zeros(len(data), dtype=bool)
        for col, levels in self.factor_levels.items():
            if col not in data.columns:
                continue
            values = data[col]
            missing |= values.isna().to_numpy()
            labels = {level_label(v) for v in values.dropna().unique()}
            new = sorted(labels - set(levels))
            if new:
                raise DataError(f"newdata has level(s) {new[:5]} of factor {col!r} that were not "
                                f"in the fitted data (levels: {', '.join(levels)})")
        for col in self.numeric_columns:
            if col in data.columns:
                missing |= data[col].isna().to_numpy()
        return missing

    def new_X(self, data: pd.DataFrame) -> np.ndarray:
        """Fixed-effects matrix for new data, with the same columns as ``X`` (rows with a
        missing covariate are NaN)."""
        missing = self.check_new_levels(data)
        mm = self.xspec.get_model_matrix(data, na_action="ignore", context=formula_context())
        X = np.asarray(mm, dtype=float)
        X = X[:, self.x_keep] if self.x_keep is not None else X
        if self.smooths:
            ok = ~missing
            parts = [X]
            for sm in self.smooths:
                cols = np.full((len(data), sm.n_fixed), np.nan)
                if ok.any():
                    cols[ok] = sm.split(sm.design(data.loc[ok]))[1]
                parts.append(cols)
            X = np.hstack(parts)
        if missing.any():
            X = X.copy()
            X[missing] = np.nan
        return X

    def new_offset(self, data: pd.DataFrame) -> np.ndarray:
        """The offset for new data: ``offset(...)`` terms of the formula plus the ``offset=``
        column, if one was named. An offset given as an array cannot be rebuilt."""
        if self.offset_is_array:
            raise DataError(
                "the model was fitted with an offset given as an array, which cannot be "
                "evaluated on new data; name a column (offset='col') or write offset(col) in "
                "the formula"
            )
        off = np.zeros(len(data))
        if self.offset_column is not None:
            off += eval_numeric(self.offset_column, data, "offset")
        for expr in self.offset_exprs:
            off += eval_numeric(expr, data, "offset")
        return off


def _used_columns(text: str, data: pd.DataFrame) -> list[str]:
    cols = []
    for m in _IDENT.finditer(text):
        name = m.group(1) or m.group(2)
        if name in data.columns and name not in cols:
            cols.append(name)
    return cols


def _drop_aliased(X: np.ndarray, names: list[str], tol: float = 1e-7) -> np.ndarray:
    """Boolean mask of columns to keep: a column is dropped when it is (numerically) a linear
    combination of the columns before it, as lme4's rank check does with R's pivoting QR."""
    p = X.shape[1]
    if p == 0:
        return np.ones(0, dtype=bool)
    # numpy's stubs type every mode's result as QRResult; mode="r" returns the R array
    r: np.ndarray = np.linalg.qr(X, mode="r")  # type: ignore[assignment]
    keep = unaliased_columns(r, np.linalg.norm(X, axis=0), tol)
    if not keep.all():
        # re-check the kept columns together (an early drop changes nothing in exact arithmetic,
        # but guards against rounding in near-collinear designs)
        _check_full_rank(X[:, keep])
    return keep


def unaliased_columns(r: np.ndarray, norms: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """The columns :func:`_drop_aliased` keeps, from the triangular factor ``r`` of ``X``
    (``X = Q r``, or the R of the stacked R's of row blocks of ``X``, equal up to the signs
    of its rows) and the column norms of ``X``."""
    p = norms.shape[0]
    keep = np.ones(p, dtype=bool)
    diag = np.abs(np.diag(r)) if r.shape[0] >= p else np.concatenate(
        [np.abs(np.diag(r)), np.zeros(p - r.shape[0])]
    )
    for j in range(p):
        if norms[j] == 0 or diag[j] < tol * max(norms[j], 1.0):
            keep[j] = False
    return keep


def _check_full_rank(sub: np.ndarray) -> None:
    """Raise when the kept fixed-effects columns (or their triangular factor) are still rank
    deficient."""
    if np.linalg.matrix_rank(sub) < sub.shape[1]:
        raise DataError("the fixed-effects model matrix is rank deficient in a way glamm "
                        "cannot resolve by dropping columns; simplify the fixed effects")


def drop_aliased_from_r(r: np.ndarray, norms: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """:func:`_drop_aliased` from the triangular factor ``r`` of ``X`` and the column norms
    (the partitioned path: ``r`` from the partitions' factors, :mod:`glamm.scale`)."""
    keep = unaliased_columns(r, norms, tol)
    if not keep.all():
        _check_full_rank(r[:, keep])
    return keep


def build_model_frame(
    formula: str,
    data: pd.DataFrame,
    weights: Any = None,
    offset: Any = None,
    glm_response: bool = False,
    covariances: dict | None = None,
    levels: FixedLevels | None = None,
) -> ModelFrame:
    """Evaluate ``formula`` on ``data``; see the module docstring for the stages.

    Parameters
    ----------
    formula : str
        lme4-style formula string.
    data : DataFrame
        a pandas DataFrame; a dict of columns, a polars DataFrame or any table with the
        Arrow or dataframe-interchange protocol is converted (:func:`as_pandas`).
    weights : Any, optional
        prior weights, a column name or an array of length ``len(data)``.
    offset : Any, optional
        a column name or an array of length ``len(data)``; ``offset(expr)`` terms in the
        formula are added to it.
    glm_response : bool, optional
        also accept the responses of a GLMM: ``cbind(successes, failures)`` (the
        response becomes the proportion and ``ModelFrame.trials`` the number of trials), a
        boolean column, or a two-level factor (first level = 0, second = 1, as R's binomial).
    covariances : dict, optional
        known matrices for ``propto(0 + f | g, K)`` terms, by name (arrays ordered as the
        term's columns, or DataFrames labelled by the levels).
    levels : FixedLevels, optional
        ``data`` is one partition of a larger data set whose level dictionaries these are
        (:mod:`glamm.scale`): factors and grouping factors are coded against them (so every
        partition has the same columns and level codes), and no fixed-effects column is
        dropped as aliased here (``x_keep`` is all true; the caller decides from every
        partition together). Smooth terms are refused: their bases depend on all rows.
    """
    data = as_pandas(data)
    if len(data) == 0:
        raise DataError("the data frame has no rows")
    parsed = parse_formula(formula)
    fixed_terms, offset_exprs = _split_offsets(parsed.fixed_rhs)
    fixed_terms, smooth_specs = split_smooths(fixed_terms)
    for spec in parsed.random:
        if re.search(r"(?<![\w.])(s|te)\(", spec.expr):
            raise FormulaError(f"random-effects term {spec} contains a smooth; smooth terms "
                               "go in the fixed part, e.g. y ~ s(x) + (1 | g)")
    re_smooths = [sp_ for sp_ in smooth_specs if sp_.bs == "re"]
    for sp_ in re_smooths:
        g = sp_.terms[-1]
        if g in data.columns and pd.api.types.is_numeric_dtype(data[g]) \
                and not isinstance(data[g].dtype, pd.CategoricalDtype):
            raise DataError(
                f"smooth term {sp_.text!r}: bs='re' reads its last covariate {g!r} as a "
                "grouping factor, but it is numeric; convert it to a pandas Categorical for a "
                "random effect per value (mgcv would instead fit one ridge-penalized slope)")
    if re_smooths:   # mgcv's s(g, bs="re"): an ordinary random-effects term
        smooth_specs = [sp_ for sp_ in smooth_specs if sp_.bs != "re"]
        parsed = dataclasses.replace(
            parsed, random=parsed.random + tuple(as_random_term(sp_) for sp_ in re_smooths))
    _check_formula(parsed, fixed_terms, offset_exprs, data, glm_response)
    if levels is not None and smooth_specs:
        raise FormulaError("smooth terms (s(), t2(), te()) are not available on partitioned "
                           "data: their bases are computed from all rows at once")

    # vectors given as arrays are attached before row dropping so they stay aligned
    w_full = as_vector(weights, data, "weights")
    o_full = as_vector(offset, data, "offset")

    used = _used_columns(parsed.response + " " + fixed_terms + " "
                         + " ".join(f"offset({e})" for e in offset_exprs), data)
    for sspec in smooth_specs:
        for c in (*sspec.terms, *([sspec.by] if sspec.by else [])):
            if c not in data.columns:
                raise FormulaError(f"unknown column {c!r} in smooth term {sspec.text!r}; the "
                                   f"data has columns {', '.join(map(str, data.columns))}")
            if c not in used:
                used.append(c)
    for spec in parsed.random:
        for f in spec.factors:
            if f not in data.columns:
                raise FormulaError(
                    f"unknown grouping column {f!r} in random-effects term {spec}; the data "
                    f"has columns {', '.join(map(str, data.columns))}"
                )
        used += [c for c in _used_columns(spec.expr, data) + list(spec.factors) if c not in used]
    if isinstance(weights, str):
        used.append(weights)
    if isinstance(offset, str):
        used.append(offset)

    mask = ~data[used].isna().any(axis=1).to_numpy() if used else np.ones(len(data), bool)
    if w_full is not None:
        mask &= ~np.isnan(w_full)
    if o_full is not None:
        mask &= ~np.isnan(o_full)
    n_dropped = int((~mask).sum())
    n_zero_weight = 0
    if w_full is not None and not glm_response:
        zero = mask & (w_full == 0)
        n_zero_weight = int(zero.sum())
        mask &= ~zero
    frame = data.loc[mask] if n_dropped + n_zero_weight else data
    if len(frame) == 0:
        raise DataError(
            f"no rows left after dropping {n_dropped} rows with missing values in the columns "
            f"the model uses ({', '.join(used)})"
            + (f" and {n_zero_weight} rows with zero weight" if n_zero_weight else "")
        )
    n = len(frame)
    # unused categories are dropped, as R's model.frame does (drop.unused.levels): otherwise a
    # factor random slope would get a column, a variance and correlations for an empty level
    # (a partition takes the whole data's categories instead)
    unused = [] if levels is not None else [
        c for c in used if isinstance(frame[c].dtype, pd.CategoricalDtype)
        and frame[c].nunique(dropna=True) < len(frame[c].cat.categories)]
    if levels is not None:
        frame = levels.with_factor_categories(frame)
    if unused:
        frame = frame.copy()
        for c in unused:
            frame[c] = frame[c].cat.remove_unused_categories()

    trials = None
    if glm_response:
        y, trials = eval_glm_response(parsed.response, frame)
    else:
        y = eval_numeric(parsed.response, frame, "response")
    bad = ~np.isfinite(y)
    if bad.any():
        first = frame.index[np.flatnonzero(bad)[0]]
        raise DataError(
            f"the response {parsed.response!r} has {int(bad.sum())} NaN or infinite value(s) "
            f"after evaluation (first at row {first!r})"
        )

    fixed_terms, renames = _poly_for_ordered(fixed_terms, frame)
    mm = model_matrix_checked(fixed_terms, frame, "fixed-effects part")
    X_all = np.asarray(mm, dtype=float)
    names_all = lme4_names(column_names(mm), renames)
    if not np.all(np.isfinite(X_all)):
        bad = names_all[int(np.flatnonzero(~np.isfinite(X_all).all(axis=0))[0])]
        raise DataError(f"fixed-effects column {bad!r} has NaN or infinite values")
    keep = _drop_aliased(X_all, names_all) if levels is None else np.ones(len(names_all), bool)
    X = X_all[:, keep]
    xnames = [nm for nm, k in zip(names_all, keep) if k]
    dropped = [nm for nm, k in zip(names_all, keep) if not k]

    reterms = [build_reterm(spec, frame, n, covariances, levels) for spec in parsed.random]
    smooths = []
    for sspec in smooth_specs:
        smooths.extend(construct_smooth(sspec, frame))
    if smooths:
        fixed_parts = [X]
        for sm in smooths:
            Xr, Xf = sm.split(sm.X)
            fixed_parts.append(Xf)
            xnames = xnames + sm.fixed_names
            if sm.rank > 0:
                reterms.append(ReTerm(
                    group=sm.label, levels=(sm.label,), refs=np.zeros(n, dtype=np.int64), z=Xr,
                    cnames=tuple(f"{sm.label}.r{i + 1}" for i in range(sm.rank)),
                    covariance=ScaledIdentity(sm.rank, log_scale=True), expr=sm.spec.text,
                    factors=(), smooth=sm, role=TermRole.SMOOTH))
        X = np.hstack(fixed_parts)
        if np.linalg.matrix_rank(X) < X.shape[1]:
            raise DataError(
                "the unpenalized part of the smooth terms (" + ", ".join(
                    sm.label for sm in smooths if sm.n_fixed) + ") is collinear with the "
                "parametric terms (e.g. a linear term x together with s(x)); drop the "
                "duplicated parametric term")
    # the order of the terms (and of u): grouped terms first, by decreasing number of levels
    # as lme4 (stable for ties), then the smooths. "Smooths last" is an invariant the smooths'
    # inference relies on (smooths.inference.smooth_fit reads their trailing block of the
    # factor) and asserts
    order = sorted(range(len(reterms)),
                   key=lambda i: (reterms[i].role is TermRole.SMOOTH, -reterms[i].nlevels))
    reterms = [reterms[i] for i in order]

    w = np.ones(n) if w_full is None else w_full[mask]
    # GLMMs accept zero weights (binomial proportions with no trials contribute nothing, as
    # in lme4). In an LMM a row of weight 0 has infinite residual variance and carries no
    # information: it was dropped above, so the fit equals one on the data without it (as R's
    # lm and logLik.lm; lme4 keeps it and then adds log(0) to the deviance)
    ok_w = np.isfinite(w) & ((w >= 0) if glm_response else (w > 0))
    if not np.all(ok_w):
        bad_row = frame.index[int(np.flatnonzero(~ok_w)[0])]
        need = "non-negative" if glm_response else "positive"
        raise DataError(f"weights must be {need} and finite (row {bad_row!r} is not)")
    off = np.zeros(n) if o_full is None else o_full[mask].copy()
    for expr in offset_exprs:
        off += eval_numeric(expr, frame, "offset")
    if not np.all(np.isfinite(off)):
        raise DataError("the offset has NaN or infinite values")

    grouping = {f for spec in parsed.random for f in spec.factors}
    response_cols = set(_used_columns(parsed.response, data))
    named = {v for v in (weights, offset) if isinstance(v, str)}
    covariates = [c for c in used if c not in grouping and c not in response_cols
                  and c not in named]
    factor_levels, numeric_cols = {}, []
    for c in covariates:
        col = frame[c]
        if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(col) \
                or pd.api.types.is_string_dtype(col):
            factor_levels[c] = factor_codes(col)[1] if levels is None else \
                [level_label(v) for v in col.cat.categories]
        else:
            numeric_cols.append(c)

    return ModelFrame(
        parsed=parsed,
        y=y,
        X=X,
        xnames=xnames,
        reterms=reterms,
        weights=w,
        offset=off,
        n_dropped_na=n_dropped,
        row_index=frame.index,
        dropped_columns=dropped,
        xspec=mm.model_spec,
        x_keep=keep,
        offset_exprs=tuple(offset_exprs),
        offset_column=offset if isinstance(offset, str) else None,
        offset_is_array=offset is not None and not isinstance(offset, str),
        trials=trials,
        factor_levels=factor_levels,
        numeric_columns=tuple(numeric_cols),
        smooths=smooths,
        n_zero_weight=n_zero_weight,
    )


def _check_formula(parsed: ParsedFormula, fixed_terms: str, offset_exprs: list[str],
                   data: pd.DataFrame, glm_response: bool) -> None:
    """Check every part of the formula that will be evaluated against the whitelist
    (:mod:`.safety`) before any of it is: the response, the offsets, the fixed part (smooth
    terms already taken out; they are never evaluated) and the left side of each bar.

    Parameters
    ----------
    parsed : ParsedFormula
        The split formula.
    fixed_terms : str
        The fixed right-hand side without its ``offset(...)`` and ``s(...)`` terms.
    offset_exprs : list[str]
        The arguments of the ``offset(...)`` terms.
    data : pandas.DataFrame
        The data (its column names are the names a formula may use).
    glm_response : bool
        Whether ``cbind(successes, failures)`` is accepted as the response.
    """
    columns = data.columns
    check_expression(parsed.response, "response", columns, cbind=glm_response)
    for expr in offset_exprs:
        check_expression(expr, "offset", columns)
    checked_terms(fixed_terms, "fixed-effects part", columns)
    for spec in parsed.random:
        m = COORDS_TERM.match(spec.expr)
        if m is not None:   # coords(x, y): plain column names only
            for c in m.group(1).split(","):
                if not re.fullmatch(r"\s*`?[A-Za-z_.][A-Za-z0-9_.]*`?\s*", c):
                    raise FormulaError(f"random-effects term {spec}: coords() takes column "
                                       f"names, got {c.strip()!r}")
            continue
        checked_terms(spec.expr, f"random-effects term {spec}", columns)


def _poly_for_ordered(rhs: str, data: pd.DataFrame) -> tuple[str, dict[str, str]]:
    """Give ordered factors R's default polynomial contrasts: a bare ordered column ``f`` in the
    fixed part becomes ``C(f, contr.poly)``, named back to ``f.L``, ``f.Q``, ... as in R.
    Columns already wrapped in ``C(f, ...)`` by the user are left alone."""
    renames: dict[str, str] = {}
    for col in data.columns:
        if not (isinstance(data[col].dtype, pd.CategoricalDtype) and data[col].cat.ordered):
            continue
        name = str(col)
        plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) is not None
        if not plain or f"C({name}" in rhs.replace(" ", ""):
            continue
        pattern = re.compile(rf"(?<![\w.`]){re.escape(name)}(?![\w.(`])")
        if pattern.search(rhs):
            wrapped = f"C({name}, contr.poly)"
            rhs = pattern.sub(wrapped, rhs)
            renames[wrapped] = name
    return rhs, renames


def _split_offsets(fixed_rhs: str) -> tuple[str, list[str]]:
    """Pull ``offset(expr)`` terms out of the fixed right-hand side."""
    from .bars import _split_top_level

    terms, offsets = [], []
    for t in _split_top_level(fixed_rhs, "+"):
        t = t.strip()
        if t.startswith("offset(") and t.endswith(")"):
            offsets.append(t[len("offset(") : -1])
        else:
            terms.append(t)
    return (" + ".join(terms) if terms else "1"), offsets

"""Build the numeric model (response, fixed-effects matrix, random-effects terms) from a formula
and a data frame.

Stages: parse the formula (``bars.parse_formula``) -> check every expression in it against the
whitelist (``safety``; nothing is evaluated before) -> find the columns it uses -> drop rows with
missing values in them -> evaluate the response, the fixed-effects matrix (formulaic) and each
random-effects term -> drop aliased fixed-effects columns -> order the terms as lme4 does (by
decreasing number of levels). The formulaic model specs are kept so that new data can be
turned into the same columns (``ModelFrame.new_X``, ``ModelFrame.new_re``).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from formulaic import model_matrix

from ..errors import DataError, FormulaError
from ..smooths.construct import construct as construct_smooth
from ..smooths.spec import as_random_term, split_smooths
from ..terms.covariance import ScaledIdentity, Unstructured
from ..terms.reterm import ReTerm, TermRole
from .bars import ParsedFormula, RandomTermSpec, parse_formula
from .naming import lme4_names
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
            labels = {_level_label(v) for v in values.dropna().unique()}
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
            off += _eval_numeric(self.offset_column, data, "offset")
        for expr in self.offset_exprs:
            off += _eval_numeric(expr, data, "offset")
        return off


def _used_columns(text: str, data: pd.DataFrame) -> list[str]:
    cols = []
    for m in _IDENT.finditer(text):
        name = m.group(1) or m.group(2)
        if name in data.columns and name not in cols:
            cols.append(name)
    return cols


def _model_matrix(text: str, data: pd.DataFrame, where: str, shown: str | None = None):
    """formulaic's ``model_matrix`` of the right-hand side ``text``, parsed and checked against
    the whitelist (:mod:`.safety`) first and evaluated in glamm's restricted context; errors are
    turned into a :class:`FormulaError` that names the unknown column (or repeats formulaic's
    reason) and the formula part."""
    formula = checked_terms(text, where, data.columns)
    try:
        return model_matrix(formula, data, na_action="ignore", context=formula_context())
    except Exception as exc:  # formulaic raises several types
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # strip terminal colour codes
        shown = text if shown is None else shown
        m = re.search(r"`([^`]+)` is not present in the dataset", msg) or \
            re.search(r"name '([^']+)' is not defined", msg)
        if m:
            raise FormulaError(
                f"unknown column {m.group(1)!r} in the {where} ({shown!r}); the data has columns "
                f"{', '.join(map(str, data.columns))}"
            ) from None
        hint = ""
        if "^" in shown and "xor" in msg:
            hint = " (formulas use Python syntax inside I(): write x**2, not x^2)"
        raise FormulaError(f"cannot evaluate the {where} {shown!r}: {msg}{hint}") from None


def _eval_numeric(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    if expr in data.columns:
        col = data[expr]
        if isinstance(col.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        ):
            raise DataError(f"the {what} column {expr!r} is not numeric (dtype {col.dtype})")
        return col.to_numpy(dtype=float)
    check_expression(expr, what, data.columns)
    mm = _model_matrix(f"0 + I({expr})", data, what, shown=expr)
    if mm.shape[1] != 1:
        raise DataError(f"the {what} {expr!r} does not evaluate to one numeric column")
    return np.asarray(mm, dtype=float)[:, 0]


_CBIND = re.compile(r"^cbind\((?P<inner>.*)\)$", re.S)


def _eval_glm_response(expr: str, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Response of a GLMM: ``cbind(s, f)`` -> (s / (s + f), s + f); a boolean or two-level
    factor column -> 0/1 (first level 0); anything else as a numeric expression."""
    m = _CBIND.match(expr.strip())
    if m:
        from .bars import _split_top_level

        parts = [p.strip() for p in _split_top_level(m.group("inner"), ",")]
        if len(parts) != 2:
            raise FormulaError(f"cbind() in the response needs exactly two columns, got {expr!r}")
        succ = _eval_numeric(parts[0], data, "response (successes)")
        fail = _eval_numeric(parts[1], data, "response (failures)")
        if np.any(succ < 0) or np.any(fail < 0):
            raise DataError(f"cbind(successes, failures) in {expr!r} has negative counts")
        trials = succ + fail
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, succ / np.where(trials > 0, trials, 1.0), 0.0)
        return y, trials
    if expr in data.columns:
        col = data[expr]
        if pd.api.types.is_bool_dtype(col):
            return col.to_numpy(dtype=float), None
        if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(col) \
                or pd.api.types.is_string_dtype(col):
            codes, labels = _factor_codes(col)
            if len(labels) != 2:
                raise DataError(
                    f"the factor response {expr!r} has {len(labels)} levels ({labels[:5]}); a "
                    "binomial response needs exactly 2 (the first is failure)"
                )
            return (codes == 1).astype(float), None
    return _eval_numeric(expr, data, "response"), None


def _level_label(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def row_labels(data: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    """The grouping-factor label of every row, as the fitted levels are labelled (numbers
    without a spurious ``.0``, interactions joined with ``:``)."""
    parts = [np.array([_level_label(v) for v in data[f].to_numpy()], dtype=object)
             for f in factors]
    if len(parts) == 1:
        return parts[0]
    return np.array([":".join(x) for x in zip(*parts)], dtype=object)


def _factor_codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and labels of one grouping column; unused categories are dropped (as R's factor)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cat = col.cat.remove_unused_categories()
        codes = cat.cat.codes.to_numpy().astype(np.int64)
        return codes, [_level_label(c) for c in cat.cat.categories]
    codes, uniques = pd.factorize(col, sort=True)
    return codes.astype(np.int64), [_level_label(u) for u in uniques]


def grouping_factor(data: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Level codes and labels of the (interaction of the) grouping columns ``factors``.

    Interactions use R's ``a:b`` order: levels sorted by the first factor, then the second;
    only combinations present in the data are kept; labels are joined with ``:``.
    """
    parts = [_factor_codes(data[f]) for f in factors]
    if len(parts) == 1:
        return parts[0]
    key = np.zeros(len(data), dtype=np.int64)
    sizes = [len(lab) for _, lab in parts]
    for (codes, _), size in zip(parts, sizes):
        key = key * size + codes            # lexicographic: first factor slowest
    uniq, inverse = np.unique(key, return_inverse=True)
    labels = []
    for k in uniq.tolist():
        idx = []
        for size in reversed(sizes):
            k, r = divmod(k, size)
            idx.append(r)
        idx.reverse()
        labels.append(":".join(parts[j][1][idx[j]] for j in range(len(parts))))
    return inverse.ravel().astype(np.int64), labels


def _drop_aliased(X: np.ndarray, names: list[str], tol: float = 1e-7) -> np.ndarray:
    """Boolean mask of columns to keep: a column is dropped when it is (numerically) a linear
    combination of the columns before it, as lme4's rank check does with R's pivoting QR."""
    p = X.shape[1]
    if p == 0:
        return np.ones(0, dtype=bool)
    keep = np.ones(p, dtype=bool)
    norms = np.linalg.norm(X, axis=0)
    # numpy's stubs type every mode's result as QRResult; mode="r" returns the R array
    r: np.ndarray = np.linalg.qr(X, mode="r")  # type: ignore[assignment]
    diag = np.abs(np.diag(r)) if r.shape[0] >= p else np.concatenate(
        [np.abs(np.diag(r)), np.zeros(p - r.shape[0])]
    )
    for j in range(p):
        if norms[j] == 0 or diag[j] < tol * max(norms[j], 1.0):
            keep[j] = False
    if not keep.all():
        # re-check the kept columns together (an early drop changes nothing in exact arithmetic,
        # but guards against rounding in near-collinear designs)
        sub = X[:, keep]
        if np.linalg.matrix_rank(sub) < sub.shape[1]:
            raise DataError("the fixed-effects model matrix is rank deficient in a way glamm "
                            "cannot resolve by dropping columns; simplify the fixed effects")
    return keep


def _build_reterm(spec: RandomTermSpec, data: pd.DataFrame, n: int) -> ReTerm:
    for f in spec.factors:
        if f not in data.columns:
            raise FormulaError(
                f"unknown grouping column {f!r} in random-effects term {spec}; the data has "
                f"columns {', '.join(map(str, data.columns))}"
            )
    refs, levels = grouping_factor(data, spec.factors)
    if spec.expr.replace(" ", "") in ("1", "1+1"):
        # intercept-only, the commonest term: no formulaic call needed (new data: ones)
        return ReTerm(group=spec.group, levels=tuple(levels), refs=refs, z=np.ones((n, 1)),
                      cnames=("(Intercept)",), covariance=Unstructured(1), expr=spec.expr,
                      factors=spec.factors, zspec=None)
    mm = _model_matrix(spec.expr, data, f"random-effects term {spec}")
    z = np.asarray(mm, dtype=float)
    if z.shape[1] == 0:
        raise FormulaError(f"random-effects term {spec} has no columns")
    cnames = tuple(lme4_names(list(mm.columns)))
    return ReTerm(
        group=spec.group,
        levels=tuple(levels),
        refs=refs,
        z=z,
        cnames=cnames,
        covariance=Unstructured(z.shape[1]),
        expr=spec.expr,
        factors=spec.factors,
        zspec=mm.model_spec,
    )


def _as_vector(arg: Any, data: pd.DataFrame, what: str) -> np.ndarray | None:
    if arg is None:
        return None
    if isinstance(arg, str):
        if arg not in data.columns:
            raise DataError(
                f"{what} column {arg!r} is not in the data "
                f"(columns: {', '.join(map(str, data.columns))})"
            )
        return _eval_numeric(arg, data, what)
    vec = np.asarray(arg, dtype=float).ravel()
    if vec.shape[0] != len(data):
        raise DataError(f"{what} has length {vec.shape[0]} but the data has {len(data)} rows")
    return vec


#: the types ``data`` may have, for error messages
ACCEPTED_DATA = ("a pandas DataFrame, a polars DataFrame, a dict of columns, or a table with "
                 "the Arrow PyCapsule (__arrow_c_stream__) or dataframe interchange "
                 "(__dataframe__) protocol, e.g. a pyarrow Table")


def as_pandas(data: Any) -> pd.DataFrame:
    """``data`` as a pandas DataFrame, glamm's internal table type.

    Parameters
    ----------
    data : pandas.DataFrame, dict, polars.DataFrame or Arrow-compatible table
        A pandas DataFrame is returned as it is; a dict of columns goes through
        ``pandas.DataFrame``; objects with ``__arrow_c_stream__`` (polars, pyarrow, ...) are
        read through pyarrow, others with ``__dataframe__`` through pandas' interchange
        protocol. Arrow dictionary columns become pandas Categoricals. Polars' categorical
        types become unordered Categoricals (treatment contrasts, as R's factors):
        ``Categorical`` with its categories sorted (polars compares them lexically; R sorts
        factor levels), ``Enum`` with its categories in the Enum's order.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        ``data`` is none of these, or pyarrow is needed and missing.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        return pd.DataFrame(data)
    if hasattr(data, "__arrow_c_stream__"):
        return _from_arrow(data)
    if hasattr(data, "__dataframe__"):
        with warnings.catch_warnings():   # pandas 3 deprecates the protocol, not our use
            warnings.filterwarnings("ignore", message=".*Interchange Protocol is deprecated")
            return pd.api.interchange.from_dataframe(data, allow_copy=True)
    lazy = " (a lazy frame: call .collect() first)" if hasattr(data, "collect") else ""
    raise DataError(f"data must be {ACCEPTED_DATA}; got {type(data).__module__}."
                    f"{type(data).__qualname__}{lazy}")


def _from_arrow(data: Any) -> pd.DataFrame:
    """A table with the Arrow PyCapsule stream protocol, read through pyarrow."""
    try:
        import pyarrow as pa
    except ImportError:
        raise DataError(f"reading a {type(data).__name__} needs the pyarrow package "
                        "(pip install pyarrow), or pass a pandas DataFrame") from None
    df = pa.table(data).to_pandas()
    if type(data).__module__.split(".")[0] == "polars":
        for name, dtype in data.schema.items():
            kind = str(dtype)
            if kind.startswith("Categorical"):
                df[name] = df[name].cat.as_unordered().cat.reorder_categories(
                    sorted(df[name].cat.categories))
            elif kind.startswith("Enum"):
                df[name] = df[name].cat.as_unordered()
    return df


def build_model_frame(
    formula: str,
    data: pd.DataFrame,
    weights: Any = None,
    offset: Any = None,
    glm_response: bool = False,
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

    # vectors given as arrays are attached before row dropping so they stay aligned
    w_full = _as_vector(weights, data, "weights")
    o_full = _as_vector(offset, data, "offset")

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
    unused = [c for c in used if isinstance(frame[c].dtype, pd.CategoricalDtype)
              and frame[c].nunique(dropna=True) < len(frame[c].cat.categories)]
    if unused:
        frame = frame.copy()
        for c in unused:
            frame[c] = frame[c].cat.remove_unused_categories()

    trials = None
    if glm_response:
        y, trials = _eval_glm_response(parsed.response, frame)
    else:
        y = _eval_numeric(parsed.response, frame, "response")
    bad = ~np.isfinite(y)
    if bad.any():
        first = frame.index[np.flatnonzero(bad)[0]]
        raise DataError(
            f"the response {parsed.response!r} has {int(bad.sum())} NaN or infinite value(s) "
            f"after evaluation (first at row {first!r})"
        )

    fixed_terms, renames = _poly_for_ordered(fixed_terms, frame)
    mm = _model_matrix(fixed_terms, frame, "fixed-effects part")
    X_all = np.asarray(mm, dtype=float)
    names_all = lme4_names(list(mm.columns), renames)
    if not np.all(np.isfinite(X_all)):
        bad = names_all[int(np.flatnonzero(~np.isfinite(X_all).all(axis=0))[0])]
        raise DataError(f"fixed-effects column {bad!r} has NaN or infinite values")
    keep = _drop_aliased(X_all, names_all)
    X = X_all[:, keep]
    xnames = [nm for nm, k in zip(names_all, keep) if k]
    dropped = [nm for nm, k in zip(names_all, keep) if not k]

    reterms = [_build_reterm(spec, frame, n) for spec in parsed.random]
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
        off += _eval_numeric(expr, frame, "offset")
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
            factor_levels[c] = _factor_codes(col)[1]
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

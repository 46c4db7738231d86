"""Evaluating formula parts on a data frame: a right-hand side through formulaic (checked
against the whitelist of :mod:`.safety` first), a numeric expression or column (offsets,
weights, a response), a GLMM response (``cbind(s, f)``, booleans, two-level factors), and the
labels and codes of grouping factors. Used by :mod:`.design` to build the model frame and
again for new data.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from formulaic import model_matrix

from ..errors import DataError, FormulaError
from .safety import check_expression, checked_terms, formula_context


def model_matrix_checked(text: str, data: pd.DataFrame, where: str, shown: str | None = None):
    """formulaic's ``model_matrix`` of the right-hand side ``text``, parsed and checked against
    the whitelist (:mod:`.safety`) first and evaluated in glamm's restricted context; errors are
    turned into a :class:`FormulaError` that names the unknown column (or repeats formulaic's
    reason) and the formula part."""
    formula = checked_terms(text, where, data.columns)
    try:
        # (NumPy output: 1.5-2 ms less per call than formulaic's pandas frames, and every
        # caller wants the array; the names are in ``column_names(mm)``)
        return model_matrix(formula, data, na_action="ignore", context=formula_context(),
                            output="numpy")
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


def column_names(mm) -> list[str]:
    """The column names of a :func:`model_matrix_checked` result."""
    return [str(c) for c in mm.model_spec.column_names]


def eval_numeric(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    if expr in data.columns:
        col = data[expr]
        if isinstance(col.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
        ):
            raise DataError(f"the {what} column {expr!r} is not numeric (dtype {col.dtype})")
        return col.to_numpy(dtype=float)
    check_expression(expr, what, data.columns)
    mm = model_matrix_checked(f"0 + I({expr})", data, what, shown=expr)
    if mm.shape[1] != 1:
        raise DataError(f"the {what} {expr!r} does not evaluate to one numeric column")
    return np.asarray(mm, dtype=float)[:, 0]


_CBIND = re.compile(r"^cbind\((?P<inner>.*)\)$", re.S)


def eval_glm_response(expr: str, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Response of a GLMM: ``cbind(s, f)`` -> (s / (s + f), s + f); a boolean or two-level
    factor column -> 0/1 (first level 0); anything else as a numeric expression."""
    m = _CBIND.match(expr.strip())
    if m:
        from .bars import _split_top_level

        parts = [p.strip() for p in _split_top_level(m.group("inner"), ",")]
        if len(parts) != 2:
            raise FormulaError(f"cbind() in the response needs exactly two columns, got {expr!r}")
        succ = eval_numeric(parts[0], data, "response (successes)")
        fail = eval_numeric(parts[1], data, "response (failures)")
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
            codes, labels = factor_codes(col)
            if len(labels) != 2:
                raise DataError(
                    f"the factor response {expr!r} has {len(labels)} levels ({labels[:5]}); a "
                    "binomial response needs exactly 2 (the first is failure)"
                )
            return (codes == 1).astype(float), None
    return eval_numeric(expr, data, "response"), None


def level_label(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def row_labels(data: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    """The grouping-factor label of every row, as the fitted levels are labelled (numbers
    without a spurious ``.0``, interactions joined with ``:``)."""
    parts = [np.array([level_label(v) for v in data[f].to_numpy()], dtype=object)
             for f in factors]
    if len(parts) == 1:
        return parts[0]
    return np.array([":".join(x) for x in zip(*parts)], dtype=object)


def factor_codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and labels of one grouping column; unused categories are dropped (as R's factor)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cat = col.cat.remove_unused_categories()
        codes = cat.cat.codes.to_numpy().astype(np.int64)
        return codes, [level_label(c) for c in cat.cat.categories]
    codes, uniques = pd.factorize(col, sort=True)
    return codes.astype(np.int64), [level_label(u) for u in uniques]


def as_vector(arg: Any, data: pd.DataFrame, what: str) -> np.ndarray | None:
    if arg is None:
        return None
    if isinstance(arg, str):
        if arg not in data.columns:
            raise DataError(
                f"{what} column {arg!r} is not in the data "
                f"(columns: {', '.join(map(str, data.columns))})"
            )
        return eval_numeric(arg, data, what)
    vec = np.asarray(arg, dtype=float).ravel()
    if vec.shape[0] != len(data):
        raise DataError(f"{what} has length {vec.shape[0]} but the data has {len(data)} rows")
    return vec

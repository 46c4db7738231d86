"""``glamm.clmm``: cumulative link mixed models for ordinal responses (R's ``ordinal::clmm``).

The model is a GLMM whose family is :class:`~glamm.families.ordinal.Ordinal`: the response's
categories are coded ``1..K``, the fixed-effects matrix loses its intercept (the thresholds take
its place) and the thresholds are the family's own parameters, fitted with the rest by the
GLMM machinery (Laplace, or adaptive quadrature for one grouping factor).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import DataError, FormulaError, GlammError
from .families.ordinal import CUMULATIVE_LINKS, Ordinal
from .formula.design import ModelFrame
from .results.call import records_call

if TYPE_CHECKING:
    from .results.clmm_result import ClmmResult


@records_call
def clmm(
    formula: str,
    data: Any,
    link: str = "logit",
    nagq: int = 1,
    weights: Any = None,
    offset: Any = None,
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
    control: dict | None = None,
    laplace: str = "observed",
    verbose: int = 0,
) -> "ClmmResult":
    """Fit a cumulative link mixed model, ``P(y <= k | b) = F(theta_k - X beta - Z b)``.

    Parameters
    ----------
    formula : str
        lme4-style formula whose response is an ordered categorical column, e.g.
        ``"rating ~ temp + contact + (1 | judge)"``. The fixed part's intercept is replaced by
        the thresholds (``0 +`` is not allowed).
    data : DataFrame
        the data (anything :func:`glamm.formula.data_input.as_pandas` accepts).
    link : str, optional
        ``"logit"`` (default, proportional odds), ``"probit"`` or ``"cloglog"`` (Gumbel-min,
        as ordinal).
    nagq : int, optional
        1 (default): the Laplace approximation (any random effects); larger: adaptive
        Gauss-Hermite quadrature with that many points (one grouping factor).
    weights, offset : column name or array, optional
        prior weights (case weights, as ordinal) and an offset added to ``eta``.
    start : ndarray, optional
        starting ``theta`` (lme4 order).
    verbose : int
        Print the optimizer's progress, as lme4's ``verbose`` (``1``: one line per
        objective evaluation; ``2``: with the parameters; default 0).
    optimizer : str, optional
        derivative-free backend of the fast stage.
    control : dict, optional
        optimizer settings of the last stage.
    laplace : str, optional
        ``"observed"`` (default; the exact Laplace approximation, as ordinal) or
        ``"expected"``.

    Returns
    -------
    ClmmResult

    Raises
    ------
    DataError
        the response is not an ordered categorical, or has fewer than two observed levels.
    FormulaError
        the response is not a column, or the formula has no intercept.
    """
    from .checks import check_glmm_frame
    from .formula.bars import parse_formula
    from .formula.data_input import as_pandas
    from .glmer_api import fit_glmm_model, glmm_model, resolve_nagq
    from .results.clmm_result import ClmmResult

    if link not in CUMULATIVE_LINKS:
        raise DataError(f"clmm: link must be one of {', '.join(CUMULATIVE_LINKS)}, "
                        f"got {link!r}")
    data = as_pandas(data)
    parsed = parse_formula(formula)
    coded, levels = ordinal_response(data, parsed.response)
    from .formula.design import build_model_frame

    frame = without_intercept(build_model_frame(formula, coded, weights=weights,
                                                offset=offset))
    frame, levels, notes = observed_levels(frame, levels, parsed.response)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    check_glmm_frame(frame)
    family = Ordinal(link, levels)
    model = glmm_model(frame, family, laplace=laplace)
    nagq = resolve_nagq(nagq, frame, fast=False)
    record = fit_glmm_model(model, nagq, start=start, optimizer=optimizer, control=control)
    result = ClmmResult(model, record, family)
    result.notes = notes
    return result


def ordinal_response(data: pd.DataFrame, response: str) -> tuple[pd.DataFrame, list[str]]:
    """``data`` with the response column replaced by its category codes ``1..K`` over all
    its levels (missing values stay missing), and the levels in order."""
    if response not in data.columns:
        raise FormulaError(f"clmm: the response {response!r} must be a column of the data "
                           "(an ordered categorical)")
    col = data[response]
    if not isinstance(col.dtype, pd.CategoricalDtype):
        raise DataError(
            f"clmm: the response {response!r} must be an ordered categorical (pandas "
            f"Categorical with ordered=True), not {col.dtype}; convert it with "
            f"pd.Categorical(data[{response!r}], categories=[...in order...], ordered=True)")
    if not col.dtype.ordered:
        raise DataError(
            f"clmm: the response {response!r} is a categorical but not ordered; make it "
            f"ordered, e.g. data[{response!r}].cat.as_ordered() (levels in the order "
            f"{list(map(str, col.cat.categories))})")
    codes = col.cat.codes.to_numpy().astype(float) + 1.0
    codes[codes <= 0] = np.nan
    coded = data.copy()
    coded[response] = codes
    return coded, [str(c) for c in col.cat.categories]


def observed_levels(frame: ModelFrame, levels: list[str], response: str
                    ) -> tuple[ModelFrame, list[str], list[str]]:
    """As ordinal: the response's levels are those observed with positive weight in the
    rows the model uses; the frame's codes are renumbered ``1..K`` over them. Returns the
    frame, the levels and a note on the levels left out (if any)."""
    y = frame.y
    used = np.unique(y[frame.weights > 0]).astype(int)
    names = [levels[k - 1] for k in used]
    if len(used) < 2:
        only = f" ({names[0]!r})" if names else ""
        raise DataError(f"clmm: the response {response!r} has {len(used)} observed level"
                        f"{'' if len(used) == 1 else 's'}{only}; an ordinal model needs at "
                        "least two")
    notes = []
    if len(used) < len(levels):
        unused = [lev for lev in levels if lev not in names]
        notes.append("levels without observations dropped from the response: "
                     + ", ".join(unused))
        codes = np.clip(np.searchsorted(used, y) + 1.0, 1.0, float(len(used)))
        frame = dataclasses.replace(frame, y=codes)
    return frame, names, notes


def without_intercept(frame: ModelFrame) -> ModelFrame:
    """``frame`` without its ``(Intercept)`` column (the thresholds take its place); factors
    keep the coding they have with an intercept, as in ordinal."""
    names = list(frame.xnames)
    if "(Intercept)" not in names:
        raise FormulaError("clmm: the formula must keep the intercept (the thresholds take its "
                           "place); remove '0 +' or '- 1'")
    if frame.smooths:
        raise GlammError("clmm does not support smooth terms")
    j = names.index("(Intercept)")
    keep = np.ones(frame.X.shape[1], dtype=bool)
    keep[j] = False
    x_keep = frame.x_keep
    if x_keep is not None:
        full = np.flatnonzero(x_keep)
        x_keep = x_keep.copy()
        x_keep[full[j]] = False
    else:
        x_keep = keep
    return dataclasses.replace(frame, X=frame.X[:, keep], xnames=names[:j] + names[j + 1:],
                               x_keep=x_keep)

"""Diagnostics of a GLMM fit, before and after the optimization: separated binomial data,
fitted probabilities of numerically 0 or 1, and the accuracy of the quadrature rule.

Each function returns plain-language notes (kept on the result and printed in its summary);
the caller (:func:`glamm.glmer`) turns them into warnings. Nothing here changes the fitted
model: the quadrature check evaluates on a working copy.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError, GlammError
from ..formula.design import ModelFrame
from .separation import extreme_fitted, separated_columns, separation_message, threshold_columns


def separation_notes(frame: ModelFrame, model: Any) -> list[str]:
    """Before the fit: binomial data separated by a 0/1 column (a factor level, an indicator)
    or by a numeric column at a threshold. Marks ``model.separated`` (the fit then goes on as
    lme4's does, with those coefficients wherever the optimizer stops)."""
    if not model.family.can_separate:
        return []
    sep = separated_columns(frame.X, frame.xnames, model.y, model.wt)
    split = threshold_columns(frame.X, frame.xnames, model.y, model.wt)
    model.separated = bool(sep or split)
    notes = []
    if sep:
        notes.append(
            f"complete or quasi-complete separation: every observation with {', '.join(sep)} "
            "= 1 has the same outcome, so the estimate(s) of those coefficients are not "
            "finite (reported values are wherever the optimizer stopped)")
    if split:
        notes.append(
            f"complete or quasi-complete separation: {', '.join(split)} splits the "
            "observations with a success from those with a failure at a threshold, so the "
            "estimate(s) of those coefficients are not finite (reported values are wherever "
            "the optimizer stopped)")
    return notes


def raise_if_separated(frame: ModelFrame, model: Any, exc: GlammError) -> None:
    """After a failed fit, raise a :class:`DataError` naming the column(s) that separate
    binomial data (found none: return, and the caller re-raises ``exc``)."""
    if not model.family.can_separate:
        return
    why = separation_message(frame.X, frame.xnames, model.y, model.wt)
    if why is not None:
        raise DataError(
            f"the fit cannot proceed: {why}, so some coefficients have no finite estimate; "
            "drop or merge what separates the data, or put a prior on the coefficients with "
            "penalized=True") from exc


def extreme_fitted_notes(result: Any) -> list[str]:
    """After the fit: fitted probabilities within 1e-10 of 0 or 1 (binomial models)."""
    if not result.model.family.can_separate:
        return []
    k = extreme_fitted(result.fitted("response"))
    return [f"fitted probabilities numerically 0 or 1 for {k} observation(s)"] if k else []


#: the accuracy check uses at most this many quadrature points per cluster
MAX_CHECK_NODES = 200_000


def quadrature_accuracy_notes(result: Any, extra_points: int = 6) -> list[str]:
    """After a quadrature fit: the log-likelihood at the estimates with ``extra_points`` more
    points per dimension; a difference above 1e-3 means the rule is not accurate there."""
    if result.nagq <= 1:
        return []
    from ..results.scratch import working_copy
    from .agq import AdaptiveQuadrature

    q = sum(t.p for t in result.model.reterms)
    finer = min(result.nagq + extra_points, 100)
    while finer > result.nagq and finer ** q > MAX_CHECK_NODES:
        finer -= 1   # many random effects per cluster: as many more points as affordable
    if finer <= result.nagq:
        return []
    scratch, _ = working_copy(result.model)   # the fitted model keeps its state
    check = AdaptiveQuadrature(scratch, finer).loglik(result.theta, result.fixef.to_numpy())
    if not abs(check - result.loglik) > 1e-3:   # (NaN: no verdict)
        return []
    return [f"with {finer} quadrature points the log-likelihood at these estimates is "
            f"{check:.4f} ({check - result.loglik:+.4f}); {result.nagq} points are not "
            "accurate here (typical of variances on the boundary) and more points may change "
            "the estimates"]

"""Linear models with correlated residuals and no random effects: :func:`gls`, R's
``nlme::gls``.

    glamm.gls("Reaction ~ Days", sleep, correlation="ar1(Days | Subject)", reml=False)
    glamm.gls("resp ~ z", spatial, correlation="exp(x + y, nugget=True)", reml=False)
    glamm.gls("distance ~ age * Sex", orthodont, correlation="cs(1 | Subject)")
    glamm.gls("y ~ x", d, dispformula="~ (1 | g)")

The stages: the correlation string parsed (:mod:`glamm.corstruct.spec`), rows with missing
values in any column the model uses dropped, the model frame built as for :func:`glamm.glm`, the
groups batched (:mod:`glamm.corstruct.groups`), the structure set up on them
(:mod:`glamm.corstruct.correlation`), the variance function's design
(:func:`glamm.lmm.dispersion.dispersion_design`), the profiled criterion optimized
(:mod:`glamm.corstruct.fit`), and the result
(:class:`~glamm.results.gls_result.GlsResult`).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .arguments import resolve_keywords
from .corstruct.correlation import make_structure
from .corstruct.fit import GlsProblem, fit_gls, profile, starting_values
from .corstruct.groups import group_layout
from .corstruct.spec import CorrelationSpec, parse_correlation
from .errors import ConvergenceWarning, DataError, FormulaError, GlammError
from .formula.data_input import as_pandas
from .formula.design import build_model_frame
from .formula.random_terms import grouping_factor
from .linalg.threads import single_threaded
from .lmm.dispersion import DispersionDesign, dispersion_design
from .results.call import records_call
from .results.gls_result import GlsResult

_IDENT = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")


def _check_columns(spec: CorrelationSpec, data: pd.DataFrame) -> None:
    """Every column of the structure exists; times and coordinates are numeric."""
    for col in spec.columns:
        if col not in data.columns:
            raise FormulaError(f"correlation {spec.text!r}: unknown column {col!r}; the data has "
                               f"columns {', '.join(map(str, data.columns))}")
    for col in spec.covariates:
        c = data[col]
        if isinstance(c.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(c) \
                or pd.api.types.is_bool_dtype(c):
            raise DataError(f"correlation {spec.text!r}: column {col!r} must be numeric (a "
                            f"time, position or coordinate), but it is {c.dtype}")


def _dispformula_columns(text: str, data: pd.DataFrame) -> list[str]:
    return [c for c in dict.fromkeys(_IDENT.findall(text)) if c in data.columns]


def _layout_and_structure(spec: CorrelationSpec | None, rows: pd.DataFrame):
    n = len(rows)
    if spec is None:
        layout = group_layout(np.arange(n), [str(i + 1) for i in range(n)])
        return layout, None
    if spec.groups:
        codes, labels = grouping_factor(rows, spec.groups)
    else:
        codes, labels = np.zeros(n, dtype=np.int64), ["1"]
    layout = group_layout(codes, labels)
    cov = np.column_stack([rows[c].to_numpy(dtype=float) for c in spec.covariates]) \
        if spec.covariates else None
    if cov is not None and not np.all(np.isfinite(cov)):
        raise DataError(f"correlation {spec.text!r}: the covariates have infinite values")
    return layout, make_structure(spec, layout, cov)


def _complete_rows(data: pd.DataFrame, spec: CorrelationSpec | None,
                   dispformula: str | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Which rows have every column the correlation and variance function use, and those
    rows (re-indexed); the structure's columns are checked first."""
    extra: list[str] = []
    if spec is not None:
        _check_columns(spec, data)
        extra += list(spec.columns)
    if dispformula is not None:
        extra += _dispformula_columns(dispformula, data)
    keep = np.ones(len(data), dtype=bool)
    for c in dict.fromkeys(extra):
        keep &= data[c].notna().to_numpy()
    if not keep.any():
        raise DataError(f"no rows left after dropping rows with missing values in "
                        f"{', '.join(dict.fromkeys(extra))}")
    base = data.reset_index(drop=True) if keep.all() else data.loc[keep].reset_index(drop=True)
    return keep, base


def _variance_design(text: str | None, rows: pd.DataFrame) -> DispersionDesign | None:
    if text is None:
        return None
    disp = dispersion_design(text, rows)
    if disp.kind == "power_fitted":
        raise GlammError("dispformula ~ power(fitted) (nlme's varPower()) is not available in "
                         "gls; use a covariate, ~ power(x)")
    return disp


@records_call
def gls(
    formula: str,
    data: Any,
    correlation: str | None = None,
    dispformula: str | None = None,
    reml: bool = True,
    optimizer: str = "bobyqa",
    verbose: int = 0,
    **kwargs: Any,
) -> GlsResult:
    """Fit a linear model with correlated and/or heteroscedastic residuals by generalized
    least squares, as R's ``nlme::gls``.

    Parameters
    ----------
    formula : str
        A formula without random-effects terms, e.g. ``"distance ~ age * Sex"``.
    data : pandas.DataFrame
        The data (or any table :func:`glamm.formula.data_input.as_pandas` takes).
    correlation : str, optional
        The residual correlation structure, ``name(form[, nugget=True][, metric=...])``:
        ``ar1(t | g)`` (nlme's ``corAR1``: ``phi^|t_i - t_j|`` for whole-number lags; for
        unequally spaced or continuous times use ``car1``), ``car1(t | g)``
        (``corCAR1``), ``cs(1 | g)`` (``corCompSymm``), ``symm(1 | g)`` or ``symm(t | g)``
        (``corSymm``, a free correlation per pair of positions) and the spatial
        ``exp``, ``gau``, ``lin``, ``ratio``, ``spher`` (``corExp``, ...), e.g.
        ``exp(x + y, nugget=True)``, on the distance of the named numeric columns. ``| g``
        restricts the correlation to rows of the same group (``g1/g2``: within the
        combinations); without it all rows form one group. ``1`` instead of a covariate uses
        the order of the rows within each group (nlme's ``~ 1``). ``None``: independent rows.
    dispformula : str, optional
        A residual variance function as for :func:`glamm.lmer` (``"~ (1 | g)"``: nlme's
        ``varIdent``; ``"~ x"``: log SD linear in ``x``; ``"~ power(x)"``: ``varPower``);
        the covariance is ``sigma^2 S R S`` with ``S = diag(exp(D delta))``.
    reml : bool
        REML (default, as nlme's ``gls``) or maximum likelihood.
    verbose : int
        Print the optimizer's progress, as lme4's ``verbose`` (``1``: one line per
        objective evaluation; ``2``: with the parameters; default 0).
    optimizer : str
        Optimizer of the correlation and variance parameters (default ``"bobyqa"``).
    **kwargs : Any
        lme4's spelling ``REML=``; anything else is an
        :class:`~glamm.errors.ArgumentError`.

    Returns
    -------
    GlsResult
        The fitted model.

    Raises
    ------
    FormulaError
        An unknown structure, option or column; random-effects or smooth terms.
    DataError
        A non-numeric time or coordinate column, repeated or non-integer times for ``ar1``,
        groups too small for a correlation, coincident locations without a nugget.

    Warns
    -----
    ConvergenceWarning
        The optimizer did not report convergence (the summary says so too).
    """
    (reml,) = resolve_keywords(gls, kwargs, reml=reml)
    data = as_pandas(data)
    spec = parse_correlation(correlation) if correlation is not None else None
    keep, base = _complete_rows(data, spec, dispformula)
    frame = build_model_frame(formula, base)
    if frame.reterms or frame.smooths:
        raise FormulaError("gls() fits no random effects or smooth terms; use glamm.lmer for "
                           "those (the residual correlation structures of gls are given by "
                           "correlation=)")
    used = np.asarray(frame.row_index, dtype=np.int64)
    rows = base if used.size == len(base) else base.iloc[used].reset_index(drop=True)
    layout, structure = _layout_and_structure(spec, rows)
    disp = _variance_design(dispformula, rows)
    problem = GlsProblem(frame.X, frame.y - frame.offset, layout, structure,
                         None if disp is None else disp.D, bool(reml))
    with single_threaded(1):   # BLAS threads only slow the many small solves
        x, record = fit_gls(problem, optimizer)
        if disp is not None and disp.center:
            # the power form was fitted with log|v| centered; nlme's sigma is at |v| = 1
            disp = dataclasses.replace(disp, D=disp.D + disp.center, center=0.0)
            problem = dataclasses.replace(problem, D=disp.D)
        pr = profile(problem, x)
        if pr is None:   # pragma: no cover - the optimum is a finite point of the criterion
            raise GlammError("gls(): the criterion is not finite at the optimum")
        frame = dataclasses.replace(
            frame, n_dropped_na=frame.n_dropped_na + int((~keep).sum()),
            row_index=data.index[keep][used])
        result = GlsResult(frame, problem, x, pr, record, spec, disp, optimizer)
    if not record.converged:
        warnings.warn(f"gls(): the optimizer stopped without converging "
                      f"({record.returnvalue}); the estimates are where it stopped",
                      ConvergenceWarning, stacklevel=2)
    return result


def lme_correlated(formula: str, data: Any, correlation: str, dispformula: str | None,
                   reml: bool, optimizer: str, covariances: dict | None = None) -> Any:
    """:func:`glamm.lmer` with ``correlation=``: nlme's ``lme`` with a residual correlation
    structure. The marginal covariance of group ``g`` is ``sigma^2 (S R_g S + Z_g lambda
    lambda' Z_g')``: one random-effects term whose grouping is the correlation's, each
    group's block factored densely (:class:`~glamm.corstruct.fit.GlsProblem` with its
    ``Z``); the search is over the correlation's, the variance function's and the random
    effects' parameters, started from the fit without the correlation. Not public API (call
    :func:`glamm.lmer`)."""
    from .lmer_api import lmer
    from .results.gls_result import LmeResult

    data = as_pandas(data)
    spec = parse_correlation(correlation)
    keep, base = _complete_rows(data, spec, dispformula)
    frame = build_model_frame(formula, base, covariances=covariances)
    if len(frame.reterms) != 1 or frame.smooths:
        raise FormulaError("lmer(correlation=) takes one random-effects term (nlme's lme with "
                           "a correlation), whose grouping factor is the correlation's, and "
                           "no smooths")
    term = frame.reterms[0]
    if not spec.groups or set(spec.groups) != set(term.factors):
        raise FormulaError(f"correlation {spec.text!r}: its groups (after '|') must be the "
                           f"random-effects term's grouping factor {term.group!r}, e.g. "
                           f"ar1(t | {term.group})")
    used = np.asarray(frame.row_index, dtype=np.int64)
    rows = base.iloc[used].reset_index(drop=True)
    layout = group_layout(term.refs, list(term.levels))
    cov = np.column_stack([rows[c].to_numpy(dtype=float) for c in spec.covariates]) \
        if spec.covariates else None
    structure = make_structure(spec, layout, cov)
    disp = _variance_design(dispformula, rows)
    problem = GlsProblem(frame.X, frame.y - frame.offset, layout, structure,
                         None if disp is None else disp.D, bool(reml), Z=term.z,
                         re_covariance=term.covariance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = lmer(formula, base, reml=reml, covariances=covariances)
    with single_threaded(1):
        z0 = starting_values(dataclasses.replace(problem, Z=None, re_covariance=None))
        x0 = np.concatenate([z0, start.theta])
        x, record = fit_gls(problem, optimizer, x0=x0)
        if disp is not None and disp.center:
            disp = dataclasses.replace(disp, D=disp.D + disp.center, center=0.0)
            problem = dataclasses.replace(problem, D=disp.D)
        pr = profile(problem, x)
        if pr is None:   # pragma: no cover - the optimum is a finite point of the criterion
            raise GlammError("lmer(correlation=): the criterion is not finite at the optimum")
        frame = dataclasses.replace(frame, n_dropped_na=frame.n_dropped_na + int((~keep).sum()))
        result = LmeResult(frame, problem, x, pr, record, spec, disp, optimizer)
    if not record.converged:
        warnings.warn(f"lmer(correlation=): the optimizer stopped without converging "
                      f"({record.returnvalue})", ConvergenceWarning, stacklevel=3)
    return result

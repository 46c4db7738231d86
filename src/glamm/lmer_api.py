"""``glamm.lmer``: linear mixed models (lme4's ``lmer``), a short composition of the public
stages: formula + data -> :class:`~glamm.formula.design.ModelFrame` -> objective
(:class:`~glamm.lmm.model.LinearMixedModel`) -> optimizer -> :class:`~glamm.results.
lmer_result.LmerResult`; the variants without a residual and with a variance function."""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .arguments import resolve_keywords
from .checks import (
    check_lmm_frame,
    check_lmm_response,
    grouped_terms,
    warn_scaling,
)
from .errors import ArgumentError, DataError, GlammError, SingularFitWarning
from .formula.data_input import is_dask_frame
from .formula.design import ModelFrame, build_model_frame
from .linalg.threads import single_threaded
from .lmm.approximate import ApproximateLinearMixedModel, fit_approximate
from .lmm.fit import optimize_theta
from .lmm.method import make_lmm_model
from .lmm.model import LinearMixedModel
from .results.call import records_call
from .results.lmer_result import LmerResult
from .scale.dask_frame import lmer_dask

if TYPE_CHECKING:  # pragma: no cover
    pass


@records_call
def lmer(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    weights: Any = None,
    offset: Any = None,
    start: np.ndarray | str | None = "auto",
    optimizer: str = "auto",
    control: dict | None = None,
    dispformula: str | None = None,
    covariances: dict | None = None,
    correlation: str | None = None,
    verbose: int = 0,
    method: str = "auto",
    max_memory: float | None = None,
    max_time: float | None = None,
    approximation: dict | None = None,
    **kwargs: Any,
) -> LmerResult:
    """Fit a linear mixed model by REML (default) or maximum likelihood.

    Parameters
    ----------
    formula: lme4-style formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data: a pandas DataFrame, or a ``dask.dataframe.DataFrame`` (fitted in two passes over
        its partitions on the active Dask scheduler, holding only the cross-products:
        :mod:`glamm.scale`; ``weights``/``offset`` then name columns).
    reml: optimize the REML criterion (default ``True``); ``False`` for maximum likelihood.
    weights: prior weights (column name or array); the residual variance of row ``i`` is
        ``sigma^2 / weights[i]``.
    offset: a known term added to the linear predictor (column name or array).
    start: starting ``theta`` (lme4 order), or ``None`` for lme4's start (1 for diagonal and
        0 for off-diagonal elements), ``"warm"`` (from one quick fit per term) or ``"auto"``
        (default: ``"warm"`` for models with a large dense block in the factor, where
        evaluations are expensive, lme4's start otherwise); see
        :func:`glamm.lmm.fit.optimize_theta`.
    verbose: print the optimizer's progress, as lme4's ``verbose``: ``1`` one line per
        objective evaluation, ``2`` with the parameters too (default 0: silent).
    optimizer: ``"auto"`` (default: nlopt's L-BFGS on the analytic gradient of the
        objective for models with one random-effects term or with many random effects,
        with BOBYQA after it when a parameter ends on its bound or the gradient is not
        small at its end; nlopt's BOBYQA otherwise; see :func:`glamm.lmm.fit.optimize_theta`),
        ``"bobyqa"``, ``"nelder_mead"`` or ``"lbfgsb"`` (SciPy, numerical gradients).
    control: optimizer settings overriding the defaults: ``ftol_rel`` (1e-15), ``ftol_abs``
        (0), ``xtol_abs`` (1e-10), ``initial_step`` (0.75), ``maxfeval`` (100000). The
        defaults are tighter than lme4's: with lme4's own settings BOBYQA stops up to 4e-6
        short in deviance on some models (e.g. a 3x3 unstructured term), enough to move
        standard deviations by 1e-4 relative.
    dispformula: heteroscedastic residuals: ``"~ (1 | g)"`` gives each level of ``g`` its
        own residual variance (galamm's grouped form, nlme's ``varIdent``; the first level is
        the reference), ``"~ x1 + x2"`` makes the log residual SD linear in covariates
        (glmmTMB's ``dispformula``, whose Gaussian coefficients are on the log-variance scale,
        twice these). The estimates are in ``result.variance_function``; ``sigma`` is the
        reference level's (grouped) or the SD at covariates 0 (log-linear). ``start`` then
        applies to nothing (``theta`` and the variance function are searched from lme4's
        start). ``"~ 0"``: no residual, the random-effects structure carries all the variance
        (glmmTMB's ``dispformula = ~0``, e.g. with ``us`` or ``ar1`` over the repeated
        measures).
    covariances: known matrices for ``propto(0 + f | g, K)`` terms, by name: arrays in the
        order of the term's columns, or DataFrames labelled by the factor's levels.
    correlation: a residual correlation structure within the groups of the (one)
        random-effects term, as for :func:`glamm.gls` (``"ar1(Days | Subject)"``,
        ``"exp(x + y | g, nugget=True)"``, ...): nlme's ``lme`` with ``correlation``; the
        result is a :class:`~glamm.results.gls_result.LmeResult`.

    method: ``"auto"`` (default), ``"exact"`` or ``"approximate"``. The exact fit factors the
        penalized system blockwise; a factor crossed with a larger one makes a dense block of
        its size (``8 q^2`` bytes), which :func:`glamm.estimate_lmm_cost` predicts before
        anything is allocated. ``"exact"`` raises :class:`~glamm.errors.MemoryEstimateError`
        when the prediction exceeds ``max_memory``. ``"approximate"``
        (:mod:`glamm.lmm.approximate`, two or more grouped terms) eliminates the first term
        exactly, solves the rest by preconditioned conjugate gradients and estimates the
        log-determinant by stochastic Lanczos quadrature with seeded probes: ``beta``,
        ``sigma`` and ``theta`` are close to the exact ones, and the log-likelihood carries a
        Monte-Carlo standard error (``result.approximation``, printed in the summary).
        ``"auto"`` fits exactly when the prediction fits ``max_memory`` and ``max_time``,
        approximately otherwise (with an :class:`~glamm.errors.ApproximateFitWarning`).
    max_memory: bytes the exact factor may use (default 80% of the memory available).
    max_time: seconds an exact fit may take under ``method="auto"`` (default 4 hours, as
        predicted for 60 evaluations).
    approximation: settings of the approximate method (``probes`` 30, ``lanczos_steps`` 30,
        ``final_probes`` 100, ``cg_tol`` 1e-10, ``cg_maxiter``, ``seed``; see
        :class:`~glamm.lmm.approximate.ApproximationSettings`).

    Random-effects terms may carry a covariance structure as glmmTMB writes them:
    ``us(e | g)`` (lme4's default), ``diag``, ``cs`` (one SD per effect, one correlation),
    ``homcs`` (one SD), ``ar1``, ``toep``, ``rr(e | g, d=2)``, ``propto(0 + f | g, K)``, and
    the distance-based ``ou``, ``exp``, ``gau`` and ``mat`` (``kappa=`` fixes the Matérn
    smoothness) with ``coords(x, y)`` naming the columns that locate the effects.

    Returns
    -------
    :class:`~glamm.results.lmer_result.LmerResult`
    """
    (reml,) = resolve_keywords(lmer, kwargs, reml=reml)
    if method != "auto" and (correlation is not None or dispformula is not None):
        raise GlammError(f"method={method!r} applies to lmer without dispformula or "
                         f"correlation (those fits are exact)")
    if is_dask_frame(data):
        if correlation is not None or dispformula is not None:
            raise ArgumentError("correlation= and dispformula= are not available on a Dask "
                                "DataFrame (they need the rows in memory)")
        if method == "approximate":
            raise ArgumentError("method='approximate' is not available on a Dask DataFrame")
        return lmer_dask(formula, data, reml, weights, offset, start, optimizer, control,
                         covariances)
    if correlation is not None:
        from .gls_api import lme_correlated

        return lme_correlated(formula, data, correlation, dispformula, reml, optimizer,
                              covariances)
    if dispformula is not None and re.fullmatch(r"\s*~\s*0\s*", dispformula):
        return _lmer_without_residual(formula, data, reml, weights, offset, optimizer,
                                      control, covariances)
    if dispformula is not None:
        return _heteroscedastic_lmer(formula, data, reml, weights, offset, optimizer, control,
                                     dispformula, covariances)
    frame = build_model_frame(formula, data, weights=weights, offset=offset,
                              covariances=covariances)
    check_lmm_frame(frame)
    warn_scaling(frame)
    model, _ = make_lmm_model(frame, reml, method, max_memory, max_time, approximation)
    if isinstance(model, ApproximateLinearMixedModel):
        optsum = fit_approximate(model, start, optimizer, control)
    else:
        optsum = optimize_theta(model, start=start, optimizer=optimizer, **(control or {}))
    with single_threaded(1):
        result = LmerResult(model, optsum)
    if isinstance(model, ApproximateLinearMixedModel):
        result.approximation = model.approximation_record()
    if result.is_singular:
        warnings.warn("boundary (singular) fit: see result.is_singular", SingularFitWarning,
                      stacklevel=2)
    return result


#: the residual variance (relative to the random effects' scale) of the stand-in LMM that
#: carries a model without a residual (its estimates come from the exact marginal fit)
NO_RESIDUAL_FRACTION = 1e-8


def _lmer_without_residual(formula: str, data: Any, reml: bool, weights: Any, offset: Any,
                           optimizer: str, control: dict | None,
                           covariances: dict | None) -> LmerResult:
    """:func:`lmer` with ``dispformula="~ 0"``: the random-effects structure carries all the
    variance (e.g. an unstructured or ar1 covariance of the repeated measures), fitted on the
    exact marginal likelihood (:mod:`glamm.lmm.no_residual`)."""
    from .lmm.no_residual import MarginalModel

    frame = build_model_frame(formula, data, weights=weights, offset=offset,
                              covariances=covariances)
    grouped_terms(frame, "linear model")
    if frame.X.shape[1] >= frame.n:
        raise DataError(f"{frame.X.shape[1]} fixed effects for {frame.n} observations")
    check_lmm_response(frame)
    warn_scaling(frame)
    marginal = MarginalModel(frame, reml=reml)
    # a start from the data (MarginalModel.theta_initial) is near the optimum: small first
    # steps keep BOBYQA off the singular boundary (a zero variance), where the deviance is
    # infinite and its quadratic model breaks down
    settings = {"initial_step": 0.1, **(control or {})}
    optsum = optimize_theta(marginal, start=None,   # type: ignore[arg-type]
                            optimizer=optimizer, **settings)
    assert optsum.final is not None   # set by every optimizer run
    exact = marginal.fit_at(optsum.final)
    # the same LMM with a negligible residual carries the layout, new-data predictions and
    # the tables; every estimate comes from the exact fit
    model = LinearMixedModel(dataclasses.replace(
        frame, weights=np.asarray(frame.weights, dtype=float) / NO_RESIDUAL_FRACTION),
        reml=reml)
    model.objective(optsum.final)
    with single_threaded(1):
        result = LmerResult(model, optsum, exact=exact)
    if result.is_singular:
        warnings.warn("boundary (singular) fit: see result.is_singular", SingularFitWarning,
                      stacklevel=3)
    return result


def _heteroscedastic_lmer(formula: str, data: Any, reml: bool, weights: Any, offset: Any,
                          optimizer: str, control: dict | None, dispformula: str,
                          covariances: dict | None = None) -> LmerResult:
    """:func:`lmer` with ``dispformula`` (glamm.lmm.dispersion)."""
    from .formula.data_input import as_pandas
    from .lmm.dispersion import dispersion_design

    frame = build_model_frame(formula, data, weights=weights, offset=offset,
                              covariances=covariances)
    check_lmm_frame(frame)
    warn_scaling(frame)
    rows = as_pandas(data).loc[frame.row_index]
    disp = dispersion_design(dispformula, rows.reset_index(drop=True))
    result = heteroscedastic_fit(frame, disp, reml, optimizer, control)
    if result.is_singular:
        warnings.warn("boundary (singular) fit: see result.is_singular", SingularFitWarning,
                      stacklevel=3)
    return result


def _lmm_fitted(model: LinearMixedModel) -> np.ndarray:
    """Fitted values ``X beta + Z b + offset`` of an LMM at its current ``theta``."""
    from .lmm.estimates import fixed_and_random

    beta, b = fixed_and_random(model)
    frame = model.frame
    return frame.X @ beta + model.design.eta_re(b) + frame.offset


def heteroscedastic_fit(frame: ModelFrame, disp: Any, reml: bool, optimizer: str,
                        control: dict | None) -> LmerResult:
    """Fit the LMM of ``frame`` with the residual variance function ``disp``
    (:func:`glamm.lmm.dispersion.fit_heteroscedastic`) and make the result count and report
    it. The result's frame carries the fitted weights (prior weights times the variance
    function); ``result.prior_weights`` keeps the user's. Not public API."""
    from .lmm.dispersion import (
        delta_stderr,
        fit_heteroscedastic,
        fit_power_of_fitted,
        variance_table,
    )

    w0 = np.asarray(frame.weights, dtype=float).copy()
    if disp.kind == "power_fitted":   # nlme's varPower(): a fixed point in the fitted values
        model, optsum, delta, disp = fit_power_of_fitted(
            frame, disp, reml, optimizer, _lmm_fitted, **(control or {}))
    else:
        model = LinearMixedModel(frame, reml=reml)
        optsum, delta = fit_heteroscedastic(model, disp, optimizer, **(control or {}))
    if disp.center:
        # the power forms were fitted with log|v| centered; the result reports nlme's
        # parametrization (sigma where |v| = 1): the same fit with the weights times
        # exp(-2 center delta), so sigma^2 times exp(-2 center delta) and theta (relative to
        # sigma) times exp(center delta)
        theta = np.asarray(model.theta, dtype=float) * float(np.exp(disp.center * delta[0]))
        disp = dataclasses.replace(disp, D=disp.D + disp.center, center=0.0)
        model = LinearMixedModel(dataclasses.replace(
            frame, weights=w0 * np.exp(-2.0 * (disp.D @ delta))), reml=reml)
        model.objective(theta)
    with single_threaded(1):
        result = LmerResult(model, optsum, n_dispersion=delta.size)
        se = delta_stderr(frame, disp, w0, reml, result.theta, delta)
    result.variance_function = variance_table(disp, delta, float(result.sigma), se)
    result.dispersion_design = disp
    result.prior_weights = w0
    return result

"""User-facing fitting functions: short compositions of the public stages (lme4's modular
design): formula + data -> :class:`~glamm.formula.design.ModelFrame` -> objective
(:class:`~glamm.lmm.model.LinearMixedModel`) -> optimizer -> fitted result."""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from .arguments import check_start_theta, resolve_keywords
from .checks import check_glm_response, check_lmm_response, warn_scaling
from .errors import DataError, GlammError, SingularFitWarning
from .formula.design import ModelFrame, build_model_frame
from .galamm_steps import (
    check_start_block,
    fixed_column_factor,
    galamm_start,
    leave_zero_latent_variance,
    rows_kept,
    start_parts,
)
from .linalg.threads import single_threaded
from .lmm.fit import optimize_theta
from .lmm.model import LinearMixedModel
from .results.lmer_result import LmerResult

if TYPE_CHECKING:  # pragma: no cover
    from .results.glmer_result import GlmerResult
    from .results.zi_random_result import ZiRandomResult


def _grouped_terms(frame: ModelFrame, model: str) -> list:
    """The checks every mixed model shares: some random-effects term, and at least 2 levels
    per grouping factor. Returns the grouped terms (a smooth's penalized part has one 'level'
    by design and is left out)."""
    if not frame.reterms:
        raise DataError("the formula has no random-effects terms such as (1 | group); "
                        f"fit a {model} without random effects instead")
    grouped = [t for t in frame.reterms if t.is_grouped]
    for t in grouped:
        # a structured covariance (ar1, a spatial exp) is identified within one level
        if t.nlevels < 2 and not t.covariance.structured:
            raise DataError(
                f"grouping factor {t.group!r} has only {t.nlevels} level in the {frame.n} rows "
                "used; a random effect needs at least 2 levels"
            )
    return grouped


def check_lmm_frame(frame: ModelFrame) -> None:
    """lme4's identifiability checks for a Gaussian model (errors name the term and counts)."""
    n = frame.n
    for t in _grouped_terms(frame, "linear model"):
        if t.nlevels >= n:
            raise DataError(
                f"grouping factor {t.group!r} has {t.nlevels} levels for {n} observations; the "
                "random effects are not identifiable from the residual (need fewer levels "
                "than observations)"
            )
        if t.q >= n and t.p > 1 and not t.covariance.structured:
            raise DataError(
                f"term ({t.expr} | {t.group}) has {t.q} random effects for {n} observations; "
                "the model is not identifiable"
            )
    if frame.X.shape[1] >= n:
        raise DataError(f"{frame.X.shape[1]} fixed effects for {n} observations")
    check_lmm_response(frame)


def lmer(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    weights: Any = None,
    offset: Any = None,
    start: np.ndarray | str | None = "auto",
    optimizer: str = "bobyqa",
    control: dict | None = None,
    dispformula: str | None = None,
    covariances: dict | None = None,
    correlation: str | None = None,
    **kwargs: Any,
) -> LmerResult:
    """Fit a linear mixed model by REML (default) or maximum likelihood.

    Parameters
    ----------
    formula: lme4-style formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data: a pandas DataFrame.
    reml: optimize the REML criterion (default ``True``); ``False`` for maximum likelihood.
    weights: prior weights (column name or array); the residual variance of row ``i`` is
        ``sigma^2 / weights[i]``.
    offset: a known term added to the linear predictor (column name or array).
    start: starting ``theta`` (lme4 order), or ``None`` for lme4's start (1 for diagonal and
        0 for off-diagonal elements), ``"warm"`` (from one quick fit per term) or ``"auto"``
        (default: ``"warm"`` for models with a large dense block in the factor, where
        evaluations are expensive, lme4's start otherwise); see
        :func:`glamm.lmm.fit.optimize_theta`.
    optimizer: ``"bobyqa"`` (default, nlopt's LN_BOBYQA), ``"nelder_mead"`` or ``"lbfgsb"``.
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
    model = LinearMixedModel(frame, reml=reml)
    optsum = optimize_theta(model, start=start, optimizer=optimizer, **(control or {}))
    with single_threaded(1):
        result = LmerResult(model, optsum)
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
    _grouped_terms(frame, "linear model")
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


def glmer(
    formula: str,
    data: pd.DataFrame,
    family: Any = "binomial",
    link: Any = None,
    nagq: int | str = 1,
    fast: bool = False,
    weights: Any = None,
    offset: Any = None,
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
    control: dict | None = None,
    laplace: str = "observed",
    penalized: bool | dict = False,
    family_index: Any = None,
    family_by: Any = None,
    trials: Any = None,
    dispformula: str | None = None,
    ziformula: str | None = None,
    **kwargs: Any,
) -> "GlmerResult | ZiRandomResult":
    """Fit a generalized linear mixed model by the Laplace approximation.

    Parameters
    ----------
    formula: lme4-style formula. Binomial responses may be 0/1 numbers, booleans, a two-level
        factor (first level = failure), proportions with ``weights`` = numbers of trials, or
        ``cbind(successes, failures)``.
    data: a pandas DataFrame.
    family: a family name (``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"Gamma"``,
        ``"inverse_gaussian"``, ``"negative_binomial"``) or a :class:`glamm.families.Family`.
    link: link name overriding the family's canonical link (``"logit"``, ``"probit"``,
        ``"cloglog"``, ``"log"``, ``"identity"``, ``"inverse"``, ``"sqrt"``, ``"1/mu^2"``).
    nagq: quadrature points per random effect: 1 (default) is the Laplace approximation;
        larger values use adaptive Gauss-Hermite quadrature (models with one grouping factor
        only, any number of correlated or ``||`` random effects on it); ``"auto"`` takes
        GLMMadaptive's default (11 points for up to two random effects, 7 otherwise). The
        log-likelihood keeps all constants, so values are comparable across ``nagq``.
    fast: optimize ``theta`` only, with ``beta`` found inside PIRLS (lme4's ``nAGQ = 0``);
        the default then optimizes all parameters jointly from there.
    weights: prior weights (column name or array); for binomial proportions, the trials.
    offset: column name or array added to the linear predictor (``offset(x)`` in the formula
        also works).
    start: starting ``theta`` (lme4 order) for the fast fit; default lme4's.
    optimizer: ``"bobyqa"`` (default) or ``"nelder_mead"``.
    control: optimizer settings (``ftol_rel``, ``ftol_abs``, ``xtol_abs``, ``initial_step``,
        ``maxfeval``) for the last stage.
    laplace: ``"observed"`` (default; the exact Laplace approximation, with the observed
        information in the log-determinant, as glmmTMB) or ``"expected"`` (Fisher weights, as
        lme4). Identical for canonical links (logit binomial, log Poisson).
    penalized: ``True`` puts a Student-t penalty (location 0, scale 1, 3 df) on every
        non-intercept fixed effect, as GLMMadaptive's ``penalized = TRUE``; a dict with
        ``mean``, ``scale``, ``df`` changes it (a large ``df`` is close to a ridge penalty).
        The estimates maximize the log-likelihood plus the log prior; ``loglik`` stays the
        log-likelihood and ``penalized_loglik`` adds the prior.
    family_index: per-row families (galamm's mixed response types): with ``family`` a list,
        a column (or array) of 1-based positions in the list, one per row. Each family keeps
        its own link (give it as ``("binomial", "probit")`` or a Family), dispersion and
        normalizing constants; the log-likelihood is the sum over rows.
    family_by: per-row families from a dict, ``family={"a": "gaussian", "b": "binomial"}``:
        the column whose values are the dict's keys.
    trials: in a mixed response, the binomial rows' numbers of trials (a column); their
        response then counts successes.
    dispformula: a residual variance function for families with a dispersion: galamm's
        ``"~ (1 | g)"`` (one variance per level of ``g``, relative to the first),
        ``"~ (0 + v | g)"`` (only for rows where ``v`` is nonzero, e.g. the Gaussian rows of a
        mixed response) or ``"~ x1 + x2"`` (log residual SD linear in covariates). Row ``i``'s
        dispersion is its family's times ``exp(2 (D delta)_i)``.
    ziformula: zero inflation for a count family (``"poisson"``, ``"nbinom2"``, ``"nbinom1"``,
        ``"genpois"``, ``"compois"``), glmmTMB's
        ``ziformula``: the probability of an extra zero is logistic in the covariates,
        ``"~ mined"`` (``"~ 1"``: a constant). With the hurdle
        families (``"truncated_poisson"``, ``"truncated_nbinom2"``, ``"truncated_nbinom1"``,
        ``"truncated_genpois"``, ``"truncated_compois"``) it is the model of
        ``P(y = 0)``, the positive counts zero-truncated (without it: a zero-truncated
        model). It may have random effects on the count part's grouping factor,
        ``"~ mined + (1 | site)"``; the result is then a
        :class:`~glamm.results.zi_random_result.ZiRandomResult` (both parts' effects
        integrated jointly per level, Laplace or ``nagq`` points per dimension).

    Returns
    -------
    :class:`~glamm.results.glmer_result.GlmerResult`
    """
    from .glmm import diagnostics
    from .results.glmer_result import GlmerResult

    nagq, fast, penalized = resolve_keywords(glmer, kwargs, nagq=nagq, fast=fast,
                                             penalized=penalized)
    from .zi_random_api import glmer_zi_random, has_zero_part_random_effects

    if has_zero_part_random_effects(ziformula):
        unsupported = {"fast": fast, "penalized": penalized, "dispformula": dispformula,
                       "family_index": family_index, "family_by": family_by,
                       "trials": trials}
        given = [k for k, v in unsupported.items() if v not in (None, False)]
        if given or laplace != "observed" or optimizer != "bobyqa":
            raise GlammError("random effects in ziformula do not combine with "
                             + ", ".join(given + (["laplace"] if laplace != "observed"
                                                  else [])
                                         + (["optimizer"] if optimizer != "bobyqa"
                                            else [])) + " yet")
        assert ziformula is not None
        return glmer_zi_random(formula, data, family, link, 1 if nagq == "auto" else int(nagq),
                               weights, offset, ziformula, start, control)
    frame, fam, disp = glmm_frame(formula, data, family, link, weights, offset, family_index,
                                  family_by, trials, dispformula, ziformula)
    model = glmm_model(frame, fam, laplace=laplace, penalized=penalized, fast=fast,
                       dispersion_design=disp)
    notes = _warned(diagnostics.separation_notes(frame, model))
    nagq = resolve_nagq(nagq, frame, fast)
    try:
        record = fit_glmm_model(model, nagq, fast=fast, start=start, optimizer=optimizer,
                                control=control)
    except GlammError as exc:
        diagnostics.raise_if_separated(frame, model, exc)
        raise
    with single_threaded(1):
        result = GlmerResult(model, record, fam)
    return _finish_glmm(result, notes)


_HURDLES = {"truncated_poisson": "poisson", "truncated_nbinom2": "negative_binomial",
            "truncated_nbinom1": "nbinom1", "truncated_genpois": "genpois",
            "truncated_compois": "compois",
            "hurdle_poisson": "poisson", "hurdle_negative_binomial": "negative_binomial"}
_ZERO_INFLATED = {"zi_poisson": "poisson", "zi_negative_binomial": "negative_binomial",
                  "zi_nbinom2": "negative_binomial", "zi_nbinom1": "nbinom1",
                  "zi_genpois": "genpois", "zi_compois": "compois"}


def glmm_frame(formula: str, data: Any, family: Any, link: Any, weights: Any, offset: Any,
               family_index: Any = None, family_by: Any = None, trials: Any = None,
               dispformula: str | None = None,
               ziformula: str | None = None) -> tuple[ModelFrame, Any, Any]:
    """Stage 1 of :func:`glmer`: the frame, the family on its rows (per-row families:
    :mod:`glamm.family_spec`; a zero-inflated or hurdle family with ``ziformula``) and the
    residual variance function (or ``None``), checked."""
    from .family_spec import family_for_frame, family_spec
    from .formula.data_input import as_pandas

    data = as_pandas(data)
    hurdle = False
    if isinstance(family, str):
        key = family.lower().replace(".", "_")
        if key in _HURDLES:
            hurdle, family = True, _HURDLES[key]
        elif key in _ZERO_INFLATED:
            family = _ZERO_INFLATED[key]
            ziformula = "~ 1" if ziformula is None else ziformula
    spec = family_spec(family, link, data, family_index, family_by, trials)
    if spec.mixed:   # codes are by position
        data = data.reset_index(drop=True)
    frame = build_model_frame(formula, data, weights=weights, offset=offset, glm_response=True)
    fam, frame = family_for_frame(spec, frame)
    if ziformula is not None or hurdle:
        if not np.allclose(frame.weights, 1.0) or frame.trials is not None:
            raise GlammError("prior weights are not available with zero inflation or hurdles "
                             "yet (each row's mixture weighs 1)")
        fam = _zero_part(fam, ziformula, data.loc[frame.row_index], hurdle)
    check_glmm_frame(frame, fam)
    disp = None
    if dispformula is not None:
        from .lmm.dispersion import glmm_dispersion_design

        disp = glmm_dispersion_design(dispformula, data.loc[frame.row_index], fam)
    return frame, fam, disp


def _zero_part(fam: Any, ziformula: str | None, rows: pd.DataFrame, hurdle: bool) -> Any:
    """The count family ``fam`` with the zero part of ``ziformula`` (fixed effects) on the
    model's rows, as :class:`~glamm.families.zero_inflated.ZeroInflated`."""
    from .families.zero_inflated import ZeroInflated
    from .formula.evaluate import model_matrix_checked

    if getattr(fam, "families", None) is not None:
        raise GlammError("ziformula is not available with per-row families")
    from .families.zero_inflated import COUNT_FAMILIES

    if fam.name not in COUNT_FAMILIES:
        raise GlammError(f"ziformula (zero inflation) is for count families with zeros "
                         f"(poisson, nbinom2, nbinom1, genpois, compois and their "
                         f"truncated_ forms); the {fam.name} family has no zero inflation")
    text = "~ 0" if ziformula is None else ziformula
    rhs = text.split("~", 1)[1] if "~" in text else text
    if "|" in rhs:
        # (glmer sends such models to zi_random_api before building this family)
        raise GlammError(f"ziformula {text!r}: random effects in the zero part are fitted by "
                         "glamm.glmer only")
    if rhs.strip() in ("0", "-1", ""):
        if not hurdle:
            return fam   # no zero inflation
        Z, names, spec = np.zeros((len(rows), 0)), [], None
    else:
        mm = model_matrix_checked(rhs, rows.reset_index(drop=True), "ziformula", shown=text)
        from .formula.naming import lme4_names

        Z, names = np.asarray(mm, dtype=float), list(lme4_names(list(mm.columns)))
        spec = mm.model_spec
        if not np.all(np.isfinite(Z)):
            raise DataError(f"ziformula {text!r}: missing or infinite covariate values in "
                            "the model's rows")
    return ZeroInflated(fam, Z, names, hurdle=hurdle, zi_spec=spec)


def _finish_glmm(result: Any, notes: list[str]) -> Any:
    """The diagnostics after a GLMM or galamm fit: fitted probabilities of 0 or 1 (warned),
    the quadrature's accuracy (a note), the singular-fit warning; the notes go on the
    result."""
    from .glmm import diagnostics

    notes = notes + _warned(diagnostics.extreme_fitted_notes(result), stacklevel=4)
    notes += diagnostics.quadrature_accuracy_notes(result)   # printed in the summary
    result.notes = notes
    if result.is_singular:
        warnings.warn("boundary (singular) fit: see result.is_singular", SingularFitWarning,
                      stacklevel=3)
    return result


def _warned(notes: list[str], stacklevel: int = 3) -> list[str]:
    """Issue each note as a warning at the user's call of :func:`glmer` (``stacklevel``
    counted from here); returns them."""
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=stacklevel)
    return notes


def glmm_model(frame: ModelFrame, family: Any, laplace: str = "observed",
               penalized: bool | dict = False, fast: bool = False,
               dispersion_design: Any = None) -> Any:
    """The GLMM objective for ``frame`` (stage 2 of :func:`glmer`), with the Student-t penalty
    on the fixed effects when ``penalized`` and a residual variance function
    (:class:`~glamm.lmm.dispersion.DispersionDesign`) when given."""
    from .glmm.model import GeneralizedLinearMixedModel

    model = GeneralizedLinearMixedModel(frame, family, laplace=laplace,
                                        dispersion_design=dispersion_design)
    if penalized:
        from .glmm.penalty import StudentTPenalty

        if fast:
            raise GlammError("fast=True cannot be combined with penalized fixed effects")
        model.penalty = StudentTPenalty.from_spec(penalized, frame.xnames)
    return model


def resolve_nagq(nagq: int | str, frame: ModelFrame, fast: bool) -> int:
    """The number of quadrature points: ``"auto"`` is GLMMadaptive's default for models with
    one grouping factor (and no smooths), else the Laplace approximation (1)."""
    if nagq == "auto":
        from .glmm.agq import default_nagq

        q = sum(t.p for t in frame.reterms)
        one_group = len({t.factors for t in frame.reterms}) == 1 and not frame.smooths
        nagq = default_nagq(q) if one_group else 1
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise GlammError(f"nagq must be a positive integer or 'auto', got {nagq!r}")
    if nagq > 1 and fast:
        raise GlammError("fast=True is a Laplace fit; it cannot be combined with nagq > 1")
    return int(nagq)


def fit_glmm_model(model: Any, nagq: int, fast: bool = False, start: np.ndarray | None = None,
                   optimizer: str = "bobyqa", control: dict | None = None) -> Any:
    """Stage 3 of :func:`glmer`: adaptive quadrature for ``nagq > 1``, else the Laplace fit,
    on internally rescaled fixed-effects columns when they are badly scaled
    (:mod:`glamm.glmm.rescale`). Returns the :class:`~glamm.glmm.fit.GlmmFitRecord`."""
    from .glmm.fit import fit_agq, fit_glmm
    from .glmm.rescale import fit_rescaled, needs_rescaling

    settings = control or {}
    start = check_start_theta(start, model.layout.initial().size, model.layout.names())
    if nagq > 1:
        return fit_agq(model, nagq, optimizer=optimizer, **settings)

    def fit(m: Any) -> Any:
        return fit_glmm(m, fast=fast, start=start, optimizer=optimizer, **settings)

    if not needs_rescaling(model.frame, model):
        return fit(model)
    return fit_rescaled(model.frame, model, lambda fr: glmm_model(
        fr, model.response.base_family, laplace=model.laplace_information,
        dispersion_design=model.response.dispersion_design), fit)


def check_glmm_frame(frame: ModelFrame, family: Any = None) -> None:
    """Identifiability checks for a GLMM (fewer levels are needed than for an LMM: a random
    intercept per observation is identifiable, e.g. for overdispersed counts); with the
    ``family``, also a response without a finite estimate (:func:`check_glm_response`) and
    predictors on very different scales (a warning)."""
    _grouped_terms(frame, "generalized linear model")
    if family is not None:
        check_glm_response(frame, family)
        warn_scaling(frame, stacklevel=4)


def galamm(
    formula: str,
    data: Any,
    family: Any = "gaussian",
    link: Any = None,
    load_var: str | None = None,
    factor: str | list[str] | None = None,
    lambda_: Any = None,
    factor_interactions: Any = None,
    weights: Any = None,
    offset: Any = None,
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
    control: dict | None = None,
    laplace: str = "observed",
    dispformula: str | None = None,
    family_index: Any = None,
    family_by: Any = None,
    trials: Any = None,
    nagq: int = 1,
    **kwargs: Any,
) -> Any:
    """Fit a generalized linear mixed model with factor loadings (R's ``galamm``).

    Latent variables named in ``factor`` are written as the columns of random-effects terms,
    ``(0 + ability | school/sid)``; glamm creates those columns. Row ``i`` of such a column
    carries the loading ``lambda_[level of load_var in row i, factor]``, so each item measures
    the latent variable with its own loading. The model is fitted by maximum likelihood with
    the Laplace approximation (exact for a Gaussian response), over the variance parameters,
    the fixed effects, the free loadings and the dispersion.

    Parameters
    ----------
    formula : str
        lme4-style formula in which the factor names appear as random-effects columns.
    data : pandas.DataFrame
        The data (or a polars / Arrow table); it must not have columns named as the factors.
    family : str, Family, list or dict
        Response family (default ``"gaussian"``), as for :func:`glmer`; a list (with
        ``family_index``) or a dict (with ``family_by``) for per-row families (galamm's mixed
        response types), each with its own link, dispersion and constants.
    link : str, optional
        Link overriding the family's canonical one.
    load_var : str
        Column whose levels (the items) index the rows of ``lambda_``.
    factor : str or list of str
        Names of the latent variables.
    lambda_ : array-like or dict
        ``(levels of load_var, factors)`` loading matrix: ``nan`` for a free loading, a number
        for a fixed one (each factor needs a fixed nonzero loading, usually the first item's
        at 1, which fixes its scale); or a dict from level to row. (galamm's ``lambda``; the
        keyword ``lambda`` is accepted through ``**{"lambda": ...}`` too.)
    factor_interactions : list of str, optional
        galamm's ``factor_interactions`` (one factor only): one formula per level of
        ``load_var``; ``"~1"`` keeps the level's loading, ``"~x"`` makes it
        ``lambda_[level] + lambda_x * x`` (an extra free loading per covariate column), so
        the latent variable's effect on that item varies with ``x``.
    start : array-like or dict, optional
        Starting ``theta`` (lme4's order), or galamm's named list as a dict with any of
        ``"theta"``, ``"beta"`` and ``"lambda"`` (the free loadings in the order of
        :attr:`~glamm.results.galamm_result.GalammResult.loading_names`). ``beta`` is checked
        but needs no start: it is profiled out (Gaussian) or found by PIRLS in the first
        stage of the fit.
    weights, offset, optimizer, control, laplace
        As for :func:`glmer`.
    dispformula : str, optional
        Heteroscedastic residuals, galamm's ``~ (1 | g)`` (a variance per level of ``g``),
        ``~ (0 + v | g)`` (only on rows where ``v`` is nonzero, e.g. the Gaussian rows of a
        mixed response) or ``~ x1 + x2`` (log residual SD linear in covariates). A Gaussian
        model without loadings is fitted as :func:`lmer` with ``reml=False`` (the profiled
        deviance; its result, with ``variance_function``); otherwise the variance function's
        coefficients join the response parameters of the Laplace fit.
    family_index, family_by, trials
        Per-row families, as for :func:`glmer`.
    nagq : int
        1 (default): the Laplace approximation, as galamm; more points: adaptive
        Gauss-Hermite quadrature from the Laplace optimum (models with one grouping factor
        and no smooths), as for :func:`glmer`.
    **kwargs
        lme4 spellings; ``REML`` is refused (REML is not defined for these models).

    Returns
    -------
    GalammResult
        The fit, with :attr:`~glamm.results.galamm_result.GalammResult.factor_loadings`.
    """
    from .family_spec import family_for_frame, family_spec
    from .formula.data_input import as_pandas
    from .formula.latent import rewrite_latent_smooths
    from .glmm import diagnostics
    from .glmm.fit import fit_agq, fit_glmm
    from .glmm.model import GeneralizedLinearMixedModel
    from .glmm.profiled import fit_gaussian_loadings, profiled_gaussian
    from .lmm.dispersion import glmm_dispersion_design
    from .results.galamm_result import GalammResult
    from .terms.loadings import (
        LoadingMap,
        LoadingSpec,
        interaction_covariates,
        loaded_fixed_columns,
    )

    if "lambda" in kwargs:
        if lambda_ is not None:
            raise GlammError("give the loading matrix once, as lambda_ (or lambda)")
        lambda_ = kwargs.pop("lambda")
    if "REML" in kwargs:
        raise GlammError("REML is not defined for models with factor loadings (galamm fits "
                         "them by maximum likelihood); drop REML=")
    (nagq,) = resolve_keywords(galamm, kwargs, nagq=nagq)
    given = [name for name, v in (("load_var", load_var), ("factor", factor),
                                  ("lambda_", lambda_)) if v is not None]
    data = as_pandas(data).reset_index(drop=True)
    fspec = family_spec(family, link, data, family_index, family_by, trials)
    one = fspec.families[0] if not fspec.mixed else None
    if dispformula is not None and not given and one is not None \
            and profiled_gaussian(one):
        # a Gaussian LMM: the profiled deviance in [theta, delta]
        if start is not None:
            raise GlammError("start is not used with dispformula for a Gaussian model without "
                             "loadings (fitted as lmer); drop it")
        return lmer(formula, data, reml=False, weights=weights, offset=offset,
                    optimizer=optimizer, control=control, dispformula=dispformula)
    if not given:
        if factor_interactions is not None:
            raise GlammError("factor_interactions need load_var, factor and lambda_")
        # no latent variables: a GLMM by the Laplace approximation, as galamm fits it
        parts = start_parts(start)
        if "lambda" in parts and np.size(parts["lambda"]) > 0:
            raise GlammError("start has loadings (lambda) but the model has no factor loadings")
        fitted = cast("GlmerResult", glmer(
            formula, data, family=family, link=link, weights=weights, offset=offset,
            start=parts.get("theta"), optimizer=optimizer, control=control, laplace=laplace,
            nagq=nagq, family_index=family_index, family_by=family_by, trials=trials,
            dispformula=dispformula))   # (no ziformula: a GlmerResult)
        check_start_block(parts, "beta", list(fitted.frame.xnames))
        return fitted
    if len(given) < 3:
        missing = [n for n in ("load_var", "factor", "lambda_") if n not in given]
        raise GlammError(f"factor loadings need load_var, factor and lambda_ together; "
                         f"{', '.join(missing)} missing")
    assert load_var is not None and factor is not None   # all three given (checked above)
    spec = LoadingSpec.from_user(data, load_var, factor, lambda_, factor_interactions)
    user_formula = formula
    formula = rewrite_latent_smooths(formula, spec.factors)   # sl(x, factor=f): s(x, factor=f)
    missing_item = data[load_var].isna().to_numpy()
    if missing_item.any():   # rows without a load_var level have no loading: left out
        weights, offset = (rows_kept(arg, ~missing_item) for arg in (weights, offset))
        data = data.loc[~missing_item].reset_index(drop=True)
        if fspec.codes is not None:
            fspec.codes = fspec.codes[~missing_item]
        if fspec.trials is not None:
            fspec.trials = fspec.trials[~missing_item]
    data = data.assign(**{f: 1.0 for f in spec.factors})
    frame = build_model_frame(formula, data, weights=weights, offset=offset, glm_response=True)
    fam, frame = family_for_frame(fspec, frame)
    check_glmm_frame(frame, fam)
    nagq = resolve_nagq(nagq, frame, False)
    disp = None
    if dispformula is not None:
        disp = glmm_dispersion_design(dispformula, data.loc[frame.row_index], fam)
    frame.n_dropped_na += int(missing_item.sum())
    # loaded columns of X: an sl() smooth's fixed part, and columns that multiply a covariate
    # by a latent variable (galamm's x:f in the fixed effects: the effect of x on the latent
    # scale, times each row's loading)
    x_cols = loaded_fixed_columns(frame, spec.factors)
    smooth_cols = {j for j, _ in x_cols}
    x_cols += [(j, f) for j, name in enumerate(frame.xnames) if j not in smooth_cols
               and (f := fixed_column_factor(name, spec.factors)) is not None]
    # (a factor's column of ones is dropped as collinear next to an intercept: refuse that)
    dropped = [f for f in spec.factors
               if any(f in name.split(":") for name in frame.dropped_columns)]
    if dropped:
        raise GlammError(f"factor(s) {dropped} appear in the fixed effects in a column dropped "
                         "as collinear (a latent variable alone is a column of ones next to "
                         "the intercept); write it with a covariate, x:f, or drop it")
    rows = frame.row_index.to_numpy()
    item = spec.item_codes(data[load_var].to_numpy()[rows])
    covariates = interaction_covariates(spec, data.iloc[rows], item)
    loadings = LoadingMap(spec, frame.reterms, item, covariates, X=frame.X, x_cols=x_cols)
    model = GeneralizedLinearMixedModel(frame, fam, laplace=laplace, loadings=loadings,
                                        dispersion_design=disp)
    start = galamm_start(start, model)
    notes = _warned(diagnostics.separation_notes(frame, model))

    def fit(m: Any, theta0: np.ndarray | None) -> Any:
        if nagq > 1:
            record = fit_agq(m, nagq, optimizer=optimizer, **(control or {}))
        elif profiled_gaussian(fam) and disp is None:
            # beta and sigma profiled out exactly: BOBYQA over theta and the loadings
            record = fit_gaussian_loadings(m, start=theta0, optimizer=optimizer,
                                           **(control or {}))
        else:
            record = fit_glmm(m, start=theta0, optimizer=optimizer, **(control or {}))
        with single_threaded(1):
            return GalammResult(m, record, fam)

    def new_model() -> Any:
        again = LoadingMap(spec, frame.reterms, item, covariates, X=frame.X, x_cols=x_cols)
        return GeneralizedLinearMixedModel(frame, fam, laplace=laplace, loadings=again,
                                           dispersion_design=disp)

    try:
        result = leave_zero_latent_variance(fit(model, start), new_model, fit)
    except GlammError as exc:
        diagnostics.raise_if_separated(frame, model, exc)
        raise
    result.formula = user_formula   # as written (sl() rather than its rewriting)
    return _finish_glmm(result, notes)

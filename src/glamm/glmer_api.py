"""``glamm.glmer``: generalized linear mixed models (lme4's ``glmer``, glmmTMB's families and
zero parts), and the GLMM stages ``galamm`` and ``clmm`` share: the frame (with a zero
part), the model, the choice of quadrature points and the fit."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .arguments import check_start_theta, resolve_keywords
from .checks import (
    check_glmm_frame,
)
from .errors import ArgumentError, DataError, GlammError, SingularFitWarning
from .formula.data_input import is_dask_frame
from .formula.design import ModelFrame, build_model_frame
from .linalg.threads import single_threaded
from .results.call import records_call

if TYPE_CHECKING:  # pragma: no cover
    from .results.glmer_result import GlmerResult
    from .results.zi_random_result import ZiRandomResult


@records_call
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
    verbose: int = 0,
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
    verbose: print the optimizer's progress, as lme4's ``verbose``: ``1`` one line per
        objective evaluation, ``2`` with the parameters too (default 0: silent).
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
    if is_dask_frame(data):
        from .scale.dask_glmm import glmer_dask

        on_dask = {"nagq": nagq != 1, "penalized": bool(penalized),
                 "family_index": family_index is not None, "family_by": family_by is not None,
                 "trials": trials is not None, "dispformula": dispformula is not None,
                 "ziformula": ziformula is not None}
        if any(on_dask.values()):
            raise ArgumentError(", ".join(k for k, v in on_dask.items() if v) + " are not "
                                "available on a Dask DataFrame (the Laplace fit of one "
                                "exponential family is)")
        return glmer_dask(formula, data, family, link, fast, weights, offset, start, optimizer,
                          control, laplace)
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
    from .formula.evaluate import column_names, model_matrix_checked

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

        Z, names = np.asarray(mm, dtype=float), list(lme4_names(column_names(mm)))
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

"""``glamm.galamm``: generalized additive latent and mixed models (the galamm package): factor
loadings, mixed response families, variance functions and smooths on one GLMM fit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .arguments import resolve_keywords
from .checks import check_glmm_frame
from .errors import GlammError
from .formula.design import build_model_frame
from .galamm_steps import (
    check_start_block,
    fixed_column_factor,
    galamm_start,
    leave_zero_latent_variance,
    rows_kept,
    start_parts,
)
from .glmer_api import _finish_glmm, _warned, glmer, resolve_nagq
from .linalg.threads import single_threaded
from .lmer_api import lmer
from .results.call import records_call

if TYPE_CHECKING:  # pragma: no cover
    from .results.glmer_result import GlmerResult


@records_call
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
    verbose: int = 0,
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
    verbose : int
        Print the optimizer's progress, as lme4's ``verbose`` (``1``: one line per
        objective evaluation; ``2``: with the parameters; default 0).
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

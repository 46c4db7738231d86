"""Likelihood-ratio comparison of nested mixed models (lme4's ``anova(m0, m1)``).

Models are put in order of their number of parameters and each is tested against the one
before it: ``Chisq = 2 (logLik_i - logLik_{i-1})`` on ``Df = npar_i - npar_{i-1}`` degrees of
freedom.

Two kinds of comparison are supported:

- linear mixed models (:func:`glamm.lmer`). REML log-likelihoods of models with different
  fixed effects are not comparable, so by default every REML fit is first refitted by maximum
  likelihood (:func:`refit_ml`), as lme4 does;
- generalized models: GLMMs (:func:`glamm.glmer`, log-likelihood by the Laplace
  approximation) and GLMs without random effects (:func:`glamm.glm`, usually the null model
  of a test of the random effects). Their log-likelihoods are full ones (all normalizing
  constants), so they are compared as they are; there is no REML and nothing is refitted.

The two are mixed only for a Gaussian response: a generalized fit of the Gaussian family (a
:func:`glamm.galamm` model with factor loadings, say) has the same full log-likelihood as a
linear mixed model fitted by maximum likelihood, so it can be tested against an
:func:`glamm.lmer` fit of the same data (REML fits are refitted by ML first).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ArgumentError, DataError, GlammError
from ..glm_api import GlmResult
from ..lmm.fit import optimize_theta
from ..results.glmer_result import GlmerResult
from ..results.gls_result import GlsResult
from ..results.lmer_result import LmerResult

#: fitted results that are compared as generalized models (no REML, no refitting)
GENERALIZED = (GlmerResult, GlmResult)
#: Gaussian fits that may be REML fits (refitted by ML before a comparison)
LINEAR = (LmerResult, GlsResult)

REFIT_NOTE = "refitting model(s) with ML (instead of REML)"

#: OptSummary's optimizer labels mapped back to the names ``optimize_theta`` accepts
_OPTIMIZER_NAMES = {
    "nlopt:LN_BOBYQA": "bobyqa",
    "nlopt:LN_NELDERMEAD": "nelder_mead",
    "scipy:L-BFGS-B": "lbfgsb",
}
_SETTINGS = ("ftol_rel", "ftol_abs", "xtol_abs", "initial_step", "maxfeval")

COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def _described(m: Any) -> str:
    """The model's formula, with its residual variance function if it has one."""
    design = getattr(m, "dispersion_design", None)
    text = str(m.formula)
    return text if design is None else f"{text}, dispformula {design.text}"


class _PrintedTable(pd.DataFrame):
    """A ``pandas.DataFrame`` that prints whole in R's layout (its subclass's ``_format``) in
    ``print``, the REPL and notebooks; anything derived from it (a column, a slice,
    arithmetic) is a plain DataFrame or Series."""

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def _format(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self._format()

    def __repr__(self) -> str:
        return self._format()

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


class AnovaTable(_PrintedTable):
    """The table :func:`anova` returns for two or more models, in lme4's layout
    (:func:`glamm.results.summary.format_anova`: the refit note, the ``Models:`` list, the
    columns with significance stars)."""

    def _format(self) -> str:
        from ..results.summary import format_anova

        return format_anova(self)


class FTestTable(_PrintedTable):
    """The F tests of one model's fixed-effects terms (:func:`anova` with one linear mixed
    model; columns ``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)``, indexed by term), in
    lmerTest's layout (:func:`glamm.results.summary.format_f_table`)."""

    def _format(self) -> str:
        from ..results.summary import format_f_table

        return format_f_table(self)


def _term_tests(model, type: int | None, ddf: str) -> FTestTable:
    """:func:`anova` of one model: lmerTest's type III F tests of a linear mixed model."""
    from ..results.lmer_result import LmerResult
    from .ddf import anova_type3

    if not isinstance(model, LmerResult):
        raise GlammError(
            "anova() of one model tests its fixed-effects terms by F tests, which are for "
            "linear mixed models (glamm.lmer fits); for a generalized model compare nested "
            "fits by likelihood ratio tests, anova(m0, m1)")
    if type not in (None, 3, "3", "III"):
        raise GlammError(f"anova() of one model computes type III tests (type=3), got "
                         f"type={type!r}")
    table = anova_type3(model, ddf)
    out = FTestTable(table)
    out.attrs.update(table.attrs)
    return out


def refit_ml(m: LmerResult | GlsResult) -> LmerResult | GlsResult:
    """Refit a model by maximum likelihood on the same model frame.

    The ML optimization starts from the fitted ``theta`` of ``m`` and uses the optimizer and
    stopping settings recorded in ``m.optsum``. A model already fitted by ML is returned
    unchanged.

    Parameters
    ----------
    m : LmerResult or GlsResult
        A fitted :class:`~glamm.results.lmer_result.LmerResult` (or a
        :class:`~glamm.results.gls_result.GlsResult`: :meth:`GlsResult.refit_ml`).

    Returns
    -------
    LmerResult or GlsResult
        A new result of the same type with ``reml=False``.
    """
    if not m.reml:
        return m
    if isinstance(m, GlsResult):
        return m.refit_ml()
    if m.dispersion_design is not None:   # the variance function is refitted too
        import dataclasses

        from ..lmer_api import heteroscedastic_fit

        assert m.prior_weights is not None   # set with the dispersion design
        frame = dataclasses.replace(m.frame, weights=m.prior_weights)
        return heteroscedastic_fit(frame, m.dispersion_design, False,
                                   _OPTIMIZER_NAMES.get(m.optsum.optimizer, "bobyqa"), None)
    model = m.model.copy_with(reml=False)
    optimizer = _OPTIMIZER_NAMES.get(m.optsum.optimizer, "bobyqa")
    settings = {k: getattr(m.optsum, k) for k in _SETTINGS if hasattr(m.optsum, k)}
    optsum = optimize_theta(model, start=m.theta, optimizer=optimizer, **settings)
    return LmerResult(model, optsum)


def _effective_weights(m) -> np.ndarray:
    """Prior weights times binomial trials (``cbind`` responses), the weights the likelihood
    uses; so ``cbind(s, f) ~ ...`` and ``s / (s + f) ~ ...`` with ``weights = s + f`` match."""
    prior = getattr(m, "prior_weights", None)   # a heteroscedastic lmer fit: the user's
    w = np.asarray(m.frame.weights if prior is None else prior, dtype=float)
    trials = getattr(m.frame, "trials", None)
    return w if trials is None else w * np.asarray(trials, dtype=float)


def _check_comparable(models: Sequence, labels: Sequence[str]) -> None:
    nobs = [m.nobs for m in models]
    if len(set(nobs)) > 1:
        counts = ", ".join(f"{lab}: {n}" for lab, n in zip(labels, nobs))
        raise DataError(
            f"models were fitted to different numbers of observations ({counts}); a likelihood "
            "ratio test needs the same rows (check for missing values in the extra variables)"
        )
    y0 = np.asarray(models[0].frame.y)
    w0 = _effective_weights(models[0])
    for lab, m in zip(labels[1:], models[1:]):
        if not np.allclose(np.asarray(m.frame.y), y0, rtol=1e-12, atol=0.0):
            raise DataError(
                f"model {lab} was fitted to a different response than {labels[0]}; "
                "likelihoods are only comparable for the same data"
            )
        if not np.allclose(_effective_weights(m), w0, rtol=1e-12, atol=0.0):
            raise DataError(f"model {lab} was fitted with different weights than {labels[0]}")


def _approximate_se(models: Sequence, labels: Sequence[str]) -> np.ndarray | None:
    """The log-likelihoods' Monte-Carlo standard errors when the models are approximate
    fits (``lmer(method="approximate")``), ``None`` when all are exact; an error for a mix,
    or for approximate REML fits (a refit by ML would be exact)."""
    recs = [getattr(m, "approximation", None) for m in models]
    if all(r is None for r in recs):
        return None
    exact = [lab for lab, r in zip(labels, recs) if r is None]
    if exact:
        raise GlammError(f"anova() cannot compare approximate fits with exact ones "
                         f"({', '.join(exact)}); fit all models by the same method")
    if any(m.reml for m in models):
        raise GlammError("anova() of approximate fits needs them fitted by ML (reml=False)")
    return np.array([r["loglik_se"] for r in recs if r is not None], dtype=float)


def _check_types(models: Sequence) -> None:
    for i, m in enumerate(models):
        if not isinstance(m, (*LINEAR, *GENERALIZED)):
            raise ArgumentError(
                f"argument {i + 1} of anova() is a {type(m).__name__}, not a fitted model from "
                "glamm.lmer, glamm.glmer, glamm.glm or glamm.gls"
            )


def _is_generalized(models: Sequence, labels: Sequence[str]) -> bool:
    """``True`` for GLMMs and GLMs, ``False`` for LMMs; a mix of the two is an error."""
    linear = [lab for lab, m in zip(labels, models) if isinstance(m, LINEAR)]
    general = [lab for lab, m in zip(labels, models) if isinstance(m, GENERALIZED)]
    other = [lab for lab, m in zip(labels, models)
             if isinstance(m, GENERALIZED) and m.family != "gaussian"]
    if linear and other:
        raise GlammError(
            "anova() cannot compare linear mixed models (glamm.lmer: "
            f"{', '.join(linear)}) with generalized models of a non-Gaussian family "
            f"(glamm.glmer / glamm.galamm / glamm.glm: {', '.join(other)}); their "
            "likelihoods are of different kinds of response"
        )
    return bool(general)


def anova(
    *models: LmerResult | GlmerResult | GlmResult | GlsResult,
    refit: bool = True,
    names: Sequence[str] | None = None,
    type: int | None = None,
    ddf: str = "Satterthwaite",
) -> pd.DataFrame:
    """Likelihood-ratio tests between nested models, as lme4's ``anova(m0, m1)``; with one
    linear mixed model, F tests of its fixed-effects terms, as lmerTest's ``anova(m)``.

    Parameters
    ----------
    *models : LmerResult, GlmerResult, GlmResult or GlsResult
        Two or more fitted models of the same data, usually nested: either all linear mixed
        models (:class:`~glamm.results.lmer_result.LmerResult`; generalized least squares
        fits of :func:`glamm.gls` count as these), or all generalized ones:
        GLMMs (:class:`~glamm.results.glmer_result.GlmerResult`) and GLMs without random
        effects (:class:`~glamm.glm_api.GlmResult`, e.g. the null model of a test of the
        random effects). ``npar`` counts each model's own parameters (for a GLMM the
        random-effects parameters, the coefficients and any dispersion or shape). For a
        Gaussian response the two kinds mix: a Gaussian GLMM or galamm fit (full
        log-likelihood, maximum likelihood) is compared with ML fits of :func:`glamm.lmer`.
    refit : bool
        Linear mixed models only: if ``True`` (default) and any model was fitted by REML,
        refit every REML fit by maximum likelihood first (:func:`refit_ml`); the table then
        records ``df.attrs["note"] = "refitting model(s) with ML (instead of REML)"``. With
        ``False`` the stored log-likelihoods are used as they are (all models must then use
        the same method). Generalized models are always compared by their (Laplace)
        log-likelihoods as fitted.
    names : sequence of str, optional
        Row labels, one per model in the order given (default ``"m0"``, ``"m1"``, ...).
    type : int, optional
        One linear mixed model only: the type of the F tests; 3 (the default, lmerTest's):
        each term's coefficients jointly zero, the other terms in the model.
    ddf : str
        One linear mixed model only: the denominator degrees of freedom,
        ``"Satterthwaite"`` (default), ``"Kenward-Roger"``, ``"residual"`` or
        ``"asymptotic"`` (see :meth:`~glamm.results.lmer_result.LmerResult.coef_table`).

    Returns
    -------
    AnovaTable
        A ``pandas.DataFrame`` indexed by label, rows sorted by number of parameters, with
        columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)``; the first row
        has no test. ``df.attrs`` holds ``"formulas"`` (label -> formula), ``"method"``
        (``"ML"`` or ``"REML"``), ``"refitted"`` (labels refitted by ML) and, when refitting
        happened, ``"note"``. It prints whole in lme4's layout
        (:func:`glamm.results.summary.format_anova`).

    Raises
    ------
    TypeError
        An argument is not a fitted model.
    DataError
        The models were fitted to different numbers of observations or different data.
    GlammError
        Linear mixed models mixed with generalized ones of a non-Gaussian family,
        ``refit=False`` with a mix of REML
        and ML fits, or ``names`` of the wrong length.
    """
    if not models:
        raise ArgumentError("anova() needs at least two fitted models")
    _check_types(models)
    if len(models) == 1:
        return _term_tests(models[0], type, ddf)
    if names is None:
        labels = [f"m{i}" for i in range(len(models))]
    else:
        labels = [str(n) for n in names]
        if len(labels) != len(models):
            raise GlammError(f"names has {len(labels)} entries for {len(models)} models")
        if len(set(labels)) != len(labels):
            raise GlammError(f"names must be distinct, got {labels}")
    generalized = _is_generalized(models, labels)
    _check_comparable(models, labels)
    approx_se = _approximate_se(models, labels)

    used = list(models)
    refitted: list[str] = []
    # generalized fits are ML fits; a Gaussian one may be compared with lmer fits (above)
    methods = {m.reml for m in models if isinstance(m, LINEAR)} | (
        {False} if generalized else set())
    if refit and True in methods:
        used = []
        for lab, m in zip(labels, models):
            if isinstance(m, LINEAR) and m.reml:
                refitted.append(lab)
                used.append(refit_ml(m))
            else:
                used.append(m)
    elif len(methods) > 1:
        raise GlammError(
            "cannot compare REML and ML fits without refitting; use refit=True or fit all "
            "models by the same method"
        )

    order = sorted(range(len(used)), key=lambda i: used[i].npar)  # stable for ties
    npar = np.array([used[i].npar for i in order], dtype=np.int64)
    loglik = np.array([used[i].loglik for i in order], dtype=float)
    chisq = np.full(len(order), np.nan)
    dfs = pd.array([pd.NA] * len(order), dtype="Int64")
    pval = np.full(len(order), np.nan)
    for r in range(1, len(order)):
        chisq[r] = 2.0 * max(0.0, loglik[r] - loglik[r - 1])
        d = int(npar[r] - npar[r - 1])
        dfs[r] = d
        pval[r] = float(stats.chi2.sf(chisq[r], d)) if d > 0 else np.nan

    if approx_se is not None:
        se = np.hypot(approx_se[order][1:], approx_se[order][:-1])
        close = [labels[order[r]] for r in range(1, len(order)) if chisq[r] < 6.0 * se[r - 1]]
        if close:
            warnings.warn(
                f"approximate fits: the likelihood-ratio statistic of {', '.join(close)} is "
                f"within 3 Monte-Carlo standard errors of the log-likelihoods (their "
                f"log-determinants are stochastic estimates); raise approximation="
                f"{{'final_probes': ...}} or compare exact fits", UserWarning, stacklevel=2)
    index = pd.Index([labels[i] for i in order])
    df = AnovaTable(
        {
            "npar": npar,
            "AIC": [float(used[i].aic) for i in order],
            "BIC": [float(used[i].bic) for i in order],
            "logLik": loglik,
            "deviance": -2.0 * loglik,
            "Chisq": chisq,
            "Df": dfs,
            "Pr(>Chisq)": pval,
        },
        index=index,
    )
    df.attrs["formulas"] = {labels[i]: _described(used[i]) for i in order}
    all_reml = all(isinstance(m, LINEAR) and m.reml for m in used)
    df.attrs["method"] = "REML" if not generalized and all_reml else "ML"
    df.attrs["refitted"] = refitted
    if refitted:
        df.attrs["note"] = REFIT_NOTE
    return df

"""Text summaries of fitted models and of model-comparison tables.

Printing only: every number shown here was computed when the model was fitted (or when the
comparison table was built); this module formats stored values and does at most trivial
arithmetic on them (quantiles of the stored residuals, correlations from the stored ``vcov``).

The layout follows lme4's ``print(summary(m))`` and ``anova(m0, m1)`` so that output can be
compared with R side by side: :func:`format_lmer` for linear mixed models, :func:`format_glmer`
for generalized ones, :func:`format_glm` for plain GLMs (no random effects) and
:func:`format_anova` for likelihood-ratio tables. The blocks they share (fit criteria,
residual quantiles, random effects, coefficient tables, correlations, notes) are written once.

Numbers are formatted the way R's ``format()`` does for a column (:mod:`.formatting`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .formatting import (  # noqa: F401  (format_column, abbreviate: public through here)
    _numeric_cells,
    _pvalue,
    _stars,
    _table,
    abbreviate,
    format_column,
    format_number,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..glm_api import GlmResult
    from .galamm_result import GalammResult
    from .glmer_result import GlmerResult
    from .lmer_result import LmerResult

#: fixed-effects correlations are printed only up to this many coefficients
MAX_CORR_FIXED = 10

#: closing note of a singular fit; ``{cls}`` is the result's class name
_SINGULAR_NOTE = (
    "boundary (singular) fit: a variance is estimated as zero or a correlation as +/-1\n"
    "(see {cls}.is_singular; a simpler random-effects structure may fit as well)"
)

#: legend printed under tables with significance stars (R's wording)
_SIGNIF_LEGEND = ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]



# --------------------------------------------------------------------------- summary blocks
# Blocks shared by the LMM, GLMM and GLM summaries take the fitted result (or plain values)
# and return a list of lines; a summary is its blocks joined by blank lines.
def _data_notes(m) -> list[str]:
    """Notes on rows dropped for missing values and aliased fixed-effects columns."""
    lines = []
    if m.n_dropped_na > 0:
        s = "" if m.n_dropped_na == 1 else "s"
        lines.append(f"{m.n_dropped_na} row{s} with missing values dropped")
    n_zero = getattr(getattr(m, "frame", None), "n_zero_weight", 0)
    if n_zero > 0:
        lines.append(f"{n_zero} row{'' if n_zero == 1 else 's'} with zero weight left out")
    if m.dropped_columns:
        k = len(m.dropped_columns)
        lines.append(
            f"fixed-effects model matrix is rank deficient: dropped {k} aliased column"
            f"{'' if k == 1 else 's'} ({', '.join(m.dropped_columns)})"
        )
    return lines


def _header(m: LmerResult) -> list[str]:
    how = "REML" if m.reml else "maximum likelihood"
    lines = [f"Linear mixed model fit by {how} ['{type(m).__name__}']", f"Formula: {m.formula}"]
    return lines + _data_notes(m)


def _family_line(m) -> str:
    """lme4's `` Family: binomial  ( logit )``; per-row families each with its label."""
    families = getattr(m, "families", None)
    if families:
        return " Families: " + ", ".join(f"[{lab}] {fam}" for lab, fam in families.items())
    return f" Family: {m.family}  ( {m.link} )"


def variance_function_block(m) -> list[str]:
    """The table of a residual variance function (``dispformula``), headed by its form;
    nothing for fits without one."""
    from .formatting import _numeric_cells, _table

    vf = getattr(m, "variance_function", None)
    design = getattr(m, "dispersion_design", None)
    if vf is None or design is None:
        return []
    what = {"grouped": "residual variance by level",
            "power": "residual SD proportional to |v|^power",
            "power_fitted": "residual SD proportional to |fitted|^power"}.get(
        design.kind, "log residual SD linear in covariates")
    cols = [_numeric_cells(vf[c].to_numpy(), 5) for c in vf.columns]
    rows = [[str(ix)] + [col[i] for col in cols] for i, ix in enumerate(vf.index)]
    table = _table([str(vf.index.name or "")] + list(vf.columns), rows,
                   ["l"] + ["r"] * len(cols), indent=" ")
    return [f"Variance function ({what}; dispformula {design.text}):", *table]


def _shape_line(m) -> list[str]:
    """The negative binomial's shape, when the family has one (else nothing)."""
    shape = getattr(m, "shape", None)
    if shape is None:
        return []
    return [f" Shape: {format_number(shape, 5)} (negative binomial theta; "
            "Var(y) = mu + mu^2 / theta)"]


def _family_parameter_lines(m) -> list[str]:
    """glmmTMB's lines for the families outside the exponential family: the value of its
    ``sigma()`` and the t's degrees of freedom."""
    if not getattr(m, "extra_family", False):
        return []
    out = [f"Dispersion parameter for {m.family} family (): {format_number(m.sigma, 4)}"]
    fam = m.model.family if hasattr(m, "model") else m._family
    if m.family == "t":
        out.append(f"Degrees of freedom of the t: {format_number(fam.df, 4)}")
    if m.family == "tweedie":
        out.append(f"Tweedie power: {format_number(fam.power, 4)}")
    return out


def _criteria_block(m) -> list[str]:
    """The ``AIC BIC logLik deviance df.resid`` pair of lines (``deviance`` = -2 logLik)."""
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    vals = format_column([m.aic, m.bic, m.loglik, m.deviance], 5) + [str(int(m.df_resid))]
    widths = [max(len(n), len(v)) + 1 for n, v in zip(names, vals)]
    return [
        "".join(n.rjust(w) for n, w in zip(names, widths)),
        "".join(v.rjust(w) for v, w in zip(vals, widths)),
    ]


def _fit_block(m: LmerResult) -> list[str]:
    if m.reml_criterion is not None:   # set exactly for REML fits
        out = [f"REML criterion at convergence: {format_number(m.reml_criterion, 7)}"]
    else:
        out = _criteria_block(m)
    return out + _approximation_lines(getattr(m, "approximation", None))


def _approximation_lines(rec: dict | None) -> list[str]:
    """The label of an approximate fit (``lmer(method="approximate")``); none when exact."""
    if not rec:
        return []
    return [f"Approximate fit (SLQ log-determinant, {rec['probes']} probes, "
            f"{rec['lanczos_steps']} Lanczos steps; CG tolerance {rec['cg_tol']:g}):",
            f"  log-likelihood Monte-Carlo standard error {rec['loglik_se']:.3g} "
            f"(criterion {2 * rec['loglik_se']:.3g})"]


def _quantile_block(title: str, values) -> list[str]:
    """``title`` and the Min / 1Q / Median / 3Q / Max of ``values``."""
    q = np.quantile(np.asarray(values, dtype=float), [0.0, 0.25, 0.5, 0.75, 1.0])
    return _quantile_lines(title, q)


def _quantile_lines(title: str, q: np.ndarray) -> list[str]:
    """``title`` and the five quantiles ``q`` (Min, 1Q, Median, 3Q, Max) laid out."""
    names = ["Min", "1Q", "Median", "3Q", "Max"]
    vals = format_column(q, 4)
    w = max(len(s) for s in names + vals)
    return [
        title,
        " ".join(n.rjust(w) for n in names),
        " ".join(v.rjust(w) for v in vals),
    ]


def _residual_block(m: LmerResult) -> list[str]:
    # a fit whose rows are elsewhere (glamm.scale) computes its quantiles in a pass over them
    quantiles = getattr(m, "scaled_residual_quantiles", None)
    if quantiles is not None:
        title, q = quantiles()
        return _quantile_lines(title, q)
    scaled = np.asarray(m.residuals("pearson")) / m.scale
    return _quantile_block("Scaled residuals:", scaled)


def _pearson_block(m) -> list[str]:
    """Scaled residuals of a GLM(M): Pearson residuals divided by ``sqrt(dispersion)``, as
    lme4's ``residuals(m, "pearson", scaled = TRUE)`` (the division changes nothing for
    families without a dispersion parameter, whose dispersion is 1)."""
    quantiles = getattr(m, "scaled_residual_quantiles", None)
    if quantiles is not None:   # (rows elsewhere: glamm.scale)
        title, q = quantiles()
        return _quantile_lines(title, q)
    rows = getattr(m, "sigma_rows", None)
    scale = rows if rows is not None else math.sqrt(m.dispersion)
    scaled = np.asarray(m.residuals("pearson"), dtype=float) / scale
    return _quantile_block("Scaled residuals:", scaled)


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _random_block(m) -> list[str]:
    """The random-effects table of ``m.varcorr`` (Groups, Name, Variance, Std.Dev., Corr)."""
    vc: pd.DataFrame = m.varcorr
    diag = vc[vc["var2"].map(_is_missing)]
    corr_rows = vc[~vc["var2"].map(_is_missing)]
    variances = _numeric_cells(diag["vcov"].to_numpy(dtype=float), 4)
    sds = _numeric_cells(diag["sdcor"].to_numpy(dtype=float), 4)

    rows: list[list[str]] = []
    any_corr = len(corr_rows) > 0
    prev_group = None
    seen_names: dict[str, list[str]] = {}
    for (grp, v1), var_s, sd_s in zip(zip(diag["group"], diag["var1"]), variances, sds):
        name = "" if _is_missing(v1) else str(v1)
        earlier = seen_names.setdefault(grp, [])
        corr_cells = []
        for other in earlier:
            hit = corr_rows[(corr_rows["group"] == grp) & (corr_rows["var1"] == other)
                            & (corr_rows["var2"] == name)]
            r = float(hit["sdcor"].iloc[0]) if len(hit) else float("nan")
            corr_cells.append("NaN" if math.isnan(r) else f"{r:.2f}")
        earlier.append(name)
        shown_group = str(grp) if grp != prev_group else ""
        prev_group = grp
        row = [shown_group, name, var_s, sd_s]
        if any_corr:
            row.append(" ".join(c.rjust(5) for c in corr_cells))
        rows.append(row)

    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if any_corr else [])
    out = ["Random effects:"] + _table(header, rows, ["l"] * len(header), indent=" ")
    structures = m.structure_lines() if hasattr(m, "structure_lines") else []
    return out + (["Covariance structures:", *structures] if structures else [])


def _nobs_line(m) -> str:
    groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
    return f"Number of obs: {m.nobs}, groups:  {groups}"


def _coef_block(ct: pd.DataFrame, title: str) -> list[str]:
    """A coefficient table as R's ``printCoefmat``: ``Estimate`` and ``Std. Error`` with common
    decimals, the test statistic (the third column, ``t value`` or ``z value``) and, when the
    table has a fourth column of p-values, those with significance stars and their legend."""
    if len(ct) == 0:
        return [f"No {title[:-1].lower()}"]
    p = len(ct)
    est_se = format_column(np.concatenate([ct.iloc[:, 0].to_numpy(dtype=float),
                                           ct.iloc[:, 1].to_numpy(dtype=float)]), 4)
    est, se = est_se[:p], est_se[p:]
    if "df" in ct.columns:   # (lmerTest's layout: df between the SE and the statistic)
        df = [f"{v:.3f}" if np.isfinite(v) else "Inf" for v in ct["df"].to_numpy(dtype=float)]
        ct = ct.drop(columns="df")
    else:
        df = None
    stat = format_column(ct.iloc[:, 2].to_numpy(dtype=float), 4)
    header = ["", "Estimate", "Std. Error"] + (["df"] if df else []) + [str(ct.columns[2])]
    rows = [[str(nm), e, s] + ([d] if df else []) + [t]
            for nm, e, s, d, t in zip(ct.index, est, se, df or [""] * p, stat)]
    align = ["l", "r", "r", "r"] + (["r"] if df else [])
    stars: list[str] = []
    if ct.shape[1] > 3:
        pvals = ct.iloc[:, 3].to_numpy(dtype=float)
        stars = [_stars(v) for v in pvals]
        header += [str(ct.columns[3]), ""]
        rows = [r + [_pvalue(v), st] for r, v, st in zip(rows, pvals, stars)]
        align += ["r", "l"]
    lines = [title] + _table(header, rows, align)
    if any(stars):
        lines += _SIGNIF_LEGEND
    return lines


def _fixed_block(m: LmerResult | GlmerResult, ddf: str | None = None) -> list[str]:
    smooths = getattr(m.frame, "smooths", None)
    if ddf is not None and not smooths:
        return _coef_block(m.coef_table(ddf=ddf), "Fixed effects:")  # type: ignore[call-arg]
    if not smooths:
        return _coef_block(m.coef_table(), "Fixed effects:")
    # with smooths (gamm4's $gam table): the parametric part, then a table per smooth; the
    # smooths' unpenalized columns are part of the smooths, not shown as coefficients
    return _coef_block(m.parametric_table(), "Parametric coefficients:") + [""] + \
        _smooth_block(m)


def _smooth_block(m) -> list[str]:
    """mgcv's "Approximate significance of smooth terms" table."""
    st = m.smooth_table
    stat = str(st.columns[2])
    header = ["", "edf", "Ref.df", stat, "p-value", ""]
    rows = [[str(nm), f"{r['edf']:.3f}", f"{r['Ref.df']:.3f}", f"{r[stat]:.3f}",
             _pvalue(r["p-value"]), _stars(r["p-value"])] for nm, r in st.iterrows()]
    return ["Approximate significance of smooth terms:"] + _table(
        header, rows, ["l", "r", "r", "r", "r", "l"])


def _fixed_corr_block(m) -> list[str]:
    if getattr(m.frame, "smooths", None):
        return []
    names = [str(n) for n in m.fixef.index]
    p = len(names)
    if p < 2 or p > MAX_CORR_FIXED:
        return []
    V = np.asarray(m.vcov, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):   # NaN cells print as NaN
        se = np.sqrt(np.diag(V))
        R = V / np.outer(se, se)
    header = [""] + [abbreviate(n) for n in names[:-1]]
    rows = []
    for i in range(1, p):
        cells = [_corr_cell(R[i, j]) for j in range(i)] + [""] * (p - 1 - i)
        rows.append([names[i]] + cells)
    return ["Correlation of Fixed Effects:"] + _table(header, rows, ["l"] + ["r"] * (p - 1))


#: a printed correlation beyond this distance outside [-1, 1] is not a correlation
_CORR_SLACK = 1e-8


def _corr_cell(r: float) -> str:
    """A correlation to 3 decimals; ``NaN`` for one that is not a number or lies outside
    [-1, 1] (a covariance that is not positive definite; :func:`_stderr_notes` says so)."""
    if not math.isfinite(r) or abs(r) > 1.0 + _CORR_SLACK:
        return "NaN"
    return f"{r:.3f}"


def _stderr_notes(m) -> list[str]:
    """Notes on standard errors that are not finite and fixed-effects correlations outside
    [-1, 1]: the covariance of the estimates is not positive definite there."""
    from ..checks import nonfinite_stderr_note

    names = [str(n) for n in m.fixef.index]
    if not names:
        return []
    V = np.asarray(m.vcov, dtype=float)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(V))
    out = []
    note = nonfinite_stderr_note(names, se)
    if note is not None:
        out.append(note)
    ok = np.isfinite(se) & (se > 0)
    if ok.sum() >= 2:
        Vk = V[np.ix_(ok, ok)]
        R = Vk / np.outer(se[ok], se[ok])
        if np.any(np.abs(R) > 1.0 + _CORR_SLACK):
            out.append("some correlations of the fixed effects lie outside [-1, 1] (printed as "
                       "NaN): their estimated covariance is not positive definite")
    return out


def _notes(m) -> list[str]:
    out = []
    if getattr(m, "is_singular", False):
        out.append(_SINGULAR_NOTE.format(cls=type(m).__name__))
    if not m.converged:
        out.append(f"Model failed to converge: {m.optsum.returnvalue}")
        out.extend(f"  {msg}" for msg in m.optsum.messages)
    out.extend(f"Note: {note}" for note in getattr(m, "notes", []))
    out.extend(f"Note: {note}" for note in _stderr_notes(m))
    return out


def _join(blocks: list[list[str]]) -> str:
    """Blocks separated by blank lines; empty blocks are left out."""
    return "\n\n".join("\n".join(b) for b in blocks if b)


def format_lmer(m: LmerResult, ddf: str | None = None) -> str:
    """lme4-style summary of a fitted linear mixed model.

    Parameters
    ----------
    m : LmerResult
        a :class:`~glamm.results.lmer_result.LmerResult`.

    Returns
    -------
    str
        The summary as one string (no trailing newline): header and formula, notes on dropped rows
        or columns, the fit criteria (AIC, BIC, logLik, deviance, df.resid for ML; the REML
        criterion for REML), scaled residuals, the random-effects table with correlations, the
        number of observations and groups, the fixed-effects table, their correlations (2 to
        ``MAX_CORR_FIXED`` coefficients) and closing notes on singular or unconverged fits.
        With ``ddf`` the fixed-effects table has degrees of freedom and p-values
        (lmerTest's).
    """
    header = _header(m)
    if ddf is not None:
        from ..inference.ddf import _method

        header = header + [f"t tests use {_method(ddf)}'s method"
                           if _method(ddf) in ("Satterthwaite", "Kenward-Roger")
                           else f"t tests use {_method(ddf)} degrees of freedom"]
    return _join([
        header,
        _fit_block(m),
        _residual_block(m),
        _random_block(m) + [_nobs_line(m)],
        _fixed_block(m, ddf),
        _fixed_corr_block(m),
        _notes(m),
    ])


def zero_inflation_block(m) -> list[str]:
    """The zero part's coefficient table (glmmTMB's "Zero-inflation model:"), if any."""
    table = getattr(m, "zero_inflation", None)
    if table is None:
        return []
    hurdle = getattr(m.model.family, "hurdle", False)
    return _coef_block(table, "Zero part (P(y = 0), logit):" if hurdle
                       else "Zero-inflation model (logit):")


def format_glmer(m: GlmerResult) -> str:
    """lme4-style summary of a fitted generalized linear mixed model.

    Parameters
    ----------
    m : GlmerResult
        a :class:`~glamm.results.glmer_result.GlmerResult`.

    Returns
    -------
    str
        The summary as one string (no trailing newline), laid out as lme4's
        ``print(summary(glmer(...)))``: the header (Laplace approximation; fast fits, with
        ``beta`` estimated inside PIRLS as lme4's ``nAGQ = 0``, say so), family and link, the
        negative binomial's shape, the formula, notes on dropped rows or columns, AIC, BIC, logLik,
        deviance (``-2 logLik``) and df.resid, quantiles of the scaled Pearson residuals, the
        random-effects table (a ``Residual`` row only for families with a dispersion parameter),
        the number of observations and groups, the fixed effects with ``z value``, ``Pr(>|z|)``
        and significance stars, their correlations (2 to ``MAX_CORR_FIXED`` coefficients) and
        closing notes on singular or unconverged fits.
    """
    nagq = getattr(m, "nagq", 1)
    how = (f"Adaptive Gauss-Hermite Quadrature, nAGQ = {nagq}" if nagq > 1
           else "Laplace Approximation")
    if m.fast:
        how += "; fast: beta inside PIRLS, as nAGQ = 0"
    if getattr(m, "penalty", None) is not None:
        how += "; penalized fixed effects: Student-t prior"
    return _glmm_summary(
        m, f"Generalized linear mixed model fit by maximum likelihood ({how})", [])


def _glmm_summary(m: GlmerResult, title: str, before_random: list[str]) -> str:
    """The blocks of a GLMM summary: header, criteria, residuals, ``before_random`` (e.g.
    the loadings), random effects, fixed effects and their correlations, notes."""
    header = [
        f"{title} ['{type(m).__name__}']",
        _family_line(m),
        *_shape_line(m),
        *_family_parameter_lines(m),
        f"Formula: {m.formula}",
        *_data_notes(m),
    ]
    return _join([
        header,
        _criteria_block(m),
        _pearson_block(m),
        before_random,
        _random_block(m) + [_nobs_line(m)],
        variance_function_block(m),
        _fixed_block(m),
        zero_inflation_block(m),
        _fixed_corr_block(m),
        _notes(m),
    ])


def format_galamm(m: GalammResult) -> str:
    """Summary of a model with factor loadings (:func:`glamm.galamm`): the layout of
    :func:`format_glmer` with galamm's header and a table of the loadings (with standard
    errors; fixed loadings have none) before the random effects.

    Parameters
    ----------
    m : GalammResult
        a :class:`~glamm.results.galamm_result.GalammResult`.

    Returns
    -------
    str
        The summary as one string (no trailing newline).
    """
    nagq = getattr(m, "nagq", 1)
    how = (f"Adaptive Gauss-Hermite Quadrature, nAGQ = {nagq}" if nagq > 1
           else "Laplace Approximation")
    return _glmm_summary(
        m, f"Generalized additive latent and mixed model fit by maximum likelihood ({how})",
        _loadings_block(m))


def _loadings_block(m: GalammResult) -> list[str]:
    """``Factor loadings:`` and the loading matrix with standard errors (blank where fixed)."""
    table = m.factor_loadings
    cells = [[_loading_cell(v) for v in row] for row in table.to_numpy()]
    loadings = m.model.loadings
    n_levels = len(loadings.spec.levels) if loadings is not None else len(table)
    extras = [name for _, name, _ in loadings.covariates] if loadings is not None else []
    labels = [f"lambda{i + 1}" for i in range(n_levels)]
    labels += [f"lambda{n_levels + 1 + r}_{name}" for r, name in enumerate(extras)]
    header = ["SE" if str(c).startswith("SE") else str(c) for c in table.columns]
    widths = [max(len(header[j]), *(len(r[j]) for r in cells)) for j in range(len(header))]
    lw = max(len(x) for x in labels)
    lines = ["Factor loadings:", " " * lw + " " + " ".join(h.rjust(w) for h, w in
                                                             zip(header, widths))]
    for lab, row in zip(labels, cells):
        lines.append(lab.ljust(lw) + " " + " ".join(c.rjust(w) for c, w in zip(row, widths)))
    return lines


def _loading_cell(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.3f}"


def format_glm(m: GlmResult) -> str:
    """Summary of a generalized linear model without random effects (:func:`glamm.glm`).

    Parameters
    ----------
    m : GlmResult
        a :class:`~glamm.glm_api.GlmResult`.

    Returns
    -------
    str
        The summary as one string (no trailing newline), in the layout of :func:`format_glmer`
        where the two overlap: header, family and link (and a fixed or estimated negative binomial
        shape), formula, notes on dropped rows or columns, AIC, BIC, logLik, deviance
        (``-2 logLik``) and df.resid (``nobs - p``, R's ``df.residual``), scaled Pearson
        residuals, the number of observations, the coefficients (``z`` statistics, or ``t`` for
        families with an estimated dispersion, as R's ``summary.glm``), the dispersion used for
        the standard errors, the residual deviance (R's ``deviance(glm)``) and a note if IRLS did
        not converge.
    """
    header = [
        f"Generalized linear model fit by maximum likelihood ['{type(m).__name__}']",
        _family_line(m),
        *_shape_line(m),
        *_family_parameter_lines(m),
        f"Formula: {m.formula}",
        *_data_notes(m),
    ]
    if getattr(m, "extra_family", False):   # glmmTMB's families: all parameters by ML
        disp = "(" + "; ".join(f"{k} = {format_number(v, 5)}" for k, v in
                               m.family_parameters.items()) + ", estimated by maximum " \
            "likelihood; standard errors from the full observed information)"
    elif m.estimated_dispersion:
        disp = f"(Dispersion parameter for {m.family} family estimated as " \
               f"{format_number(m.dispersion, 5)} from the Pearson residuals)"
    else:
        disp = f"(Dispersion parameter for {m.family} family taken to be 1)"
    tail = [disp, f"Residual deviance: {format_number(m.residual_deviance, 6)} "
                  f"on {int(m.df_resid)} degrees of freedom"]
    notes = [] if m.converged else [f"IRLS did not converge in {m.iterations} iterations"]
    notes += [f"Note: {note}" for note in _stderr_notes(m)]
    return _join([
        header,
        _criteria_block(m),
        _pearson_block(m),
        [f"Number of obs: {m.nobs}"],
        _coef_block(m.coef_table(), "Coefficients:"),
        tail,
        notes,
    ])


# --------------------------------------------------------------------------- anova tables
def format_anova(df: pd.DataFrame) -> str:
    """Print form of a table from :func:`glamm.inference.anova.anova`, like lme4's.

    Parameters
    ----------
    df : DataFrame
        the comparison table (columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df,
        Pr(>Chisq)``). ``df.attrs["note"]`` (e.g. the ML refit message) is printed first and
        ``df.attrs["formulas"]`` (label -> formula) as a ``Models:`` list.

    Returns
    -------
    str
        The table as one string with significance stars and their legend.
    """
    lines: list[str] = []
    note = df.attrs.get("note")
    if note:
        lines.append(note)
    formulas = df.attrs.get("formulas") or {}
    if formulas:
        lines.append("Models:")
        lines.extend(f"{lab}: {formulas[lab]}" for lab in df.index if lab in formulas)

    cols: dict[str, list[str]] = {"npar": [str(int(v)) for v in df["npar"]]}
    for name in ("AIC", "BIC", "logLik", "deviance"):
        cols[name] = format_column(df[name].to_numpy(dtype=float), 5)
    chisq = df["Chisq"].to_numpy(dtype=float)
    shown = format_column(chisq[np.isfinite(chisq)], 5)
    it = iter(shown)
    cols["Chisq"] = [next(it) if math.isfinite(c) else "" for c in chisq]
    cols["Df"] = ["" if pd.isna(v) else str(int(v)) for v in df["Df"]]
    pvals = df["Pr(>Chisq)"].to_numpy(dtype=float)
    cols["Pr(>Chisq)"] = [_pvalue(p) for p in pvals]
    stars = [_stars(p) for p in pvals]

    header = [""] + list(cols) + [""]
    rows = [[str(lab)] + [cols[c][i] for c in cols] + [stars[i]] for i, lab in enumerate(df.index)]
    lines += _table(header, rows, ["l"] + ["r"] * len(cols) + ["l"])
    if any(stars):
        lines += _SIGNIF_LEGEND
    return "\n".join(lines)


def format_f_table(df: pd.DataFrame) -> str:
    """Print form of a table of F tests (:func:`glamm.anova` of one model, lmerTest's layout):
    ``df.attrs["heading"]`` first, then ``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)``
    with significance stars."""
    lines = [df.attrs["heading"]] if df.attrs.get("heading") else []
    if len(df) == 0:
        return "\n".join(lines + ["(no fixed-effects terms to test)"])
    cols: dict[str, list[str]] = {}
    for name in ("Sum Sq", "Mean Sq"):
        cols[name] = format_column(df[name].to_numpy(dtype=float), 5)
    cols["NumDF"] = [f"{v:g}" for v in df["NumDF"].to_numpy(dtype=float)]
    cols["DenDF"] = [f"{v:.3f}" if np.isfinite(v) else "Inf"
                     for v in df["DenDF"].to_numpy(dtype=float)]
    cols["F value"] = format_column(df["F value"].to_numpy(dtype=float), 5)
    pvals = df["Pr(>F)"].to_numpy(dtype=float)
    cols["Pr(>F)"] = [_pvalue(v) for v in pvals]
    stars = [_stars(v) for v in pvals]
    header = [""] + list(cols) + [""]
    rows = [[str(lab)] + [cols[c][i] for c in cols] + [stars[i]]
            for i, lab in enumerate(df.index)]
    lines += _table(header, rows, ["l"] + ["r"] * len(cols) + ["l"])
    if any(stars):
        lines += _SIGNIF_LEGEND
    return "\n".join(lines)

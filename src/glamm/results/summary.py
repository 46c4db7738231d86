"""Text summaries of fitted models and of model-comparison tables.

Printing only: every number shown here was computed when the model was fitted (or when the
comparison table was built); this module formats stored values and does at most trivial
arithmetic on them (quantiles of the stored residuals, correlations from the stored ``vcov``).

The layout follows lme4's ``print(summary(m))`` and ``anova(m0, m1)`` so that output can be
compared with R side by side. Numbers are formatted the way R's ``format()`` does for a column:
one common number of decimals, chosen so that each value keeps about ``digits`` significant
digits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .lmer_result import LmerResult

#: fixed-effects correlations are printed only up to this many coefficients
MAX_CORR_FIXED = 10

_SINGULAR_NOTE = (
    "boundary (singular) fit: a variance is estimated as zero or a correlation as +/-1\n"
    "(see LmerResult.is_singular; a simpler random-effects structure may fit as well)"
)


# --------------------------------------------------------------------------- number formatting
def _decimals_needed(x: float, digits: int) -> int:
    """Decimals needed to show ``x`` to ``digits`` significant digits, trailing zeros dropped."""
    if x == 0.0 or not math.isfinite(x):
        return 0
    text = f"{abs(x):.{digits - 1}e}"  # d.ddde+XX
    mantissa, exponent = text.split("e")
    sig = mantissa.replace(".", "").rstrip("0")
    nsig = max(len(sig), 1)
    return max(0, nsig - 1 - int(exponent))


def format_column(values: Sequence[float], digits: int = 4) -> list[str]:
    """Format numbers with one common number of decimals, like R's ``format()`` on a column.

    Arguments
    ---------
    values: the numbers (``NaN`` prints as ``NaN``, infinities as ``Inf`` / ``-Inf``).
    digits: significant digits each value should keep (default 4). The common number of
        decimals is the largest any value needs, capped so that it does not exceed
        ``max(digits, decimals needed by the largest value)``; this keeps a column such as
        ``-3.9416 ... 0.0289`` from growing extra decimals for its smallest entry.

    Returns
    -------
    list of str, not padded. Columns whose values are huge (``>= 1e15``) or would need more
    than 12 decimals are written in scientific notation.
    """
    arr = np.asarray(list(values), dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return [_special(v) for v in arr]
    need = [_decimals_needed(float(v), digits) for v in finite]
    largest = float(finite[np.argmax(np.abs(finite))])
    dec = min(max(need), max(digits, _decimals_needed(largest, digits)))
    if np.max(np.abs(finite)) >= 1e15 or dec > 12:
        return [f"{v:.{digits - 1}e}" if math.isfinite(v) else _special(v) for v in arr]
    out = []
    for v in arr:
        if not math.isfinite(v):
            out.append(_special(v))
            continue
        s = f"{v:.{dec}f}"
        if float(s) == 0.0 and s.startswith("-"):
            s = s[1:]  # no "-0.00"
        out.append(s)
    return out


def _special(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    return "Inf" if v > 0 else "-Inf"


def format_number(x: float, digits: int = 5) -> str:
    """One number with about ``digits`` significant digits (see :func:`format_column`).

    Arguments
    ---------
    x: the number.
    digits: significant digits (default 5).
    """
    return format_column([x], digits)[0]


def _pvalue(p: float) -> str:
    """R's ``format.pval`` style: ``< 2.2e-16`` for tiny values, 4 significant digits."""
    if not math.isfinite(p):
        return ""
    if p < 2.2e-16:
        return "< 2.2e-16"
    if p < 1e-4:
        return f"{p:.3e}"
    return f"{p:.4g}"


def _stars(p: float) -> str:
    if not math.isfinite(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def abbreviate(name: str, minlength: int = 6) -> str:
    """Shorten a coefficient name for column headers, in the spirit of R's ``abbreviate``.

    Characters are removed from the right: first lower-case vowels (never the first
    character), then other lower-case letters, until the name has ``minlength`` characters;
    a name still too long is truncated. ``"(Intercept)"`` becomes ``"(Intr)"``.

    Arguments
    ---------
    name: the text to shorten.
    minlength: target length (default 6).
    """
    chars = list(name)
    for wanted in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in wanted:
                del chars[i]
            i -= 1
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


def _table(header: list[str], rows: list[list[str]], align: list[str], indent: str = "") -> list[str]:
    """Lay out a text table; ``align`` holds ``"l"`` or ``"r"`` per column."""
    widths = [max([len(header[j])] + [len(r[j]) for r in rows]) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)]
        return (indent + " ".join(parts)).rstrip()

    return [line(header)] + [line(r) for r in rows]


def _numeric_cells(values: Sequence[float], digits: int) -> list[str]:
    """A numeric column as strings of equal width (right-justified)."""
    cells = format_column(values, digits)
    w = max((len(c) for c in cells), default=0)
    return [c.rjust(w) for c in cells]


# --------------------------------------------------------------------------- summary blocks
def _header(m: LmerResult) -> list[str]:
    how = "REML" if m.reml else "maximum likelihood"
    lines = [f"Linear mixed model fit by {how} ['{type(m).__name__}']", f"Formula: {m.formula}"]
    if m.n_dropped_na > 0:
        s = "" if m.n_dropped_na == 1 else "s"
        lines.append(f"{m.n_dropped_na} row{s} with missing values dropped")
    if m.dropped_columns:
        k = len(m.dropped_columns)
        lines.append(
            f"fixed-effects model matrix is rank deficient: dropped {k} aliased column"
            f"{'' if k == 1 else 's'} ({', '.join(m.dropped_columns)})"
        )
    return lines


def _fit_block(m: LmerResult) -> list[str]:
    if m.reml:
        return [f"REML criterion at convergence: {format_number(m.reml_criterion, 7)}"]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    vals = format_column([m.aic, m.bic, m.loglik, m.deviance], 5) + [str(int(m.df_resid))]
    widths = [max(len(n), len(v)) + 1 for n, v in zip(names, vals)]
    return [
        "".join(n.rjust(w) for n, w in zip(names, widths)),
        "".join(v.rjust(w) for v, w in zip(vals, widths)),
    ]


def _residual_block(m: LmerResult) -> list[str]:
    scaled = np.asarray(m.residuals) * np.sqrt(np.asarray(m.frame.weights)) / m.sigma
    q = np.quantile(scaled, [0.0, 0.25, 0.5, 0.75, 1.0])
    names = ["Min", "1Q", "Median", "3Q", "Max"]
    vals = format_column(q, 4)
    w = max(len(s) for s in names + vals)
    return [
        "Scaled residuals:",
        " ".join(n.rjust(w) for n in names),
        " ".join(v.rjust(w) for v in vals),
    ]


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _random_block(m: LmerResult) -> list[str]:
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
    return ["Random effects:"] + _table(header, rows, ["l"] * len(header), indent=" ")


def _nobs_line(m: LmerResult) -> str:
    groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
    return f"Number of obs: {m.nobs}, groups:  {groups}"


def _fixed_block(m: LmerResult) -> list[str]:
    ct = m.coef_table()
    if len(ct) == 0:
        return ["No fixed effects"]
    est_se = format_column(np.concatenate([ct["Estimate"].to_numpy(), ct["Std. Error"].to_numpy()]), 4)
    p = len(ct)
    est, se = est_se[:p], est_se[p:]
    tval = format_column(ct["t value"].to_numpy(), 4)
    rows = [[str(nm), e, s, t] for nm, e, s, t in zip(ct.index, est, se, tval)]
    return ["Fixed effects:"] + _table(["", "Estimate", "Std. Error", "t value"], rows,
                                       ["l", "r", "r", "r"])


def _fixed_corr_block(m: LmerResult) -> list[str]:
    names = [str(n) for n in m.fixef.index]
    p = len(names)
    if p < 2 or p > MAX_CORR_FIXED:
        return []
    V = np.asarray(m.vcov, dtype=float)
    se = np.sqrt(np.diag(V))
    with np.errstate(invalid="ignore", divide="ignore"):
        R = V / np.outer(se, se)
    header = [""] + [abbreviate(n) for n in names[:-1]]
    rows = []
    for i in range(1, p):
        cells = [f"{R[i, j]:.3f}" for j in range(i)] + [""] * (p - 1 - i)
        rows.append([names[i]] + cells)
    return ["Correlation of Fixed Effects:"] + _table(header, rows, ["l"] + ["r"] * (p - 1))


def _notes(m: LmerResult) -> list[str]:
    out = []
    if m.is_singular:
        out.append(_SINGULAR_NOTE)
    if not m.converged:
        out.append(f"Model failed to converge: {m.optsum.returnvalue}")
        out.extend(f"  {msg}" for msg in m.optsum.messages)
    return out


def format_lmer(m: LmerResult) -> str:
    """lme4-style summary of a fitted linear mixed model.

    Arguments
    ---------
    m: a :class:`~glamm.results.lmer_result.LmerResult`.

    Returns
    -------
    The summary as one string (no trailing newline): header and formula, notes on dropped rows
    or columns, the fit criteria (AIC, BIC, logLik, deviance, df.resid for ML; the REML
    criterion for REML), scaled residuals, the random-effects table with correlations, the
    number of observations and groups, the fixed-effects table, their correlations (2 to
    ``MAX_CORR_FIXED`` coefficients) and closing notes on singular or unconverged fits.
    """
    blocks: list[list[str]] = [
        _header(m),
        _fit_block(m),
        _residual_block(m),
        _random_block(m) + [_nobs_line(m)],
        _fixed_block(m),
    ]
    corr = _fixed_corr_block(m)
    if corr:
        blocks.append(corr)
    notes = _notes(m)
    if notes:
        blocks.append(notes)
    return "\n\n".join("\n".join(b) for b in blocks)


# --------------------------------------------------------------------------- anova tables
def format_anova(df: pd.DataFrame) -> str:
    """Print form of a table from :func:`glamm.inference.anova.anova`, like lme4's.

    Arguments
    ---------
    df: the comparison table (columns ``npar, AIC, BIC, logLik, deviance, Chisq, Df,
        Pr(>Chisq)``). ``df.attrs["note"]`` (e.g. the ML refit message) is printed first and
        ``df.attrs["formulas"]`` (label -> formula) as a ``Models:`` list.

    Returns
    -------
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
        lines += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    return "\n".join(lines)


def format_glmer(m) -> str:
    """lme4-like summary of a GLMM fit (placeholder layout until the full table is written)."""
    lines = [
        f"Generalized linear mixed model fit by maximum likelihood ({m.method}) ['GlmerResult']",
        f" Family: {m.family}  ( {m.link} )",
        f"Formula: {m.formula}",
        "",
        f"     AIC      BIC   logLik deviance df.resid",
        f"{m.aic:9.1f} {m.bic:8.1f} {m.loglik:8.1f} {m.deviance:8.1f} {m.df_resid:8d}",
        "",
        "Random effects:",
        m.varcorr.to_string(index=False),
        "Fixed effects:",
        m.coef_table().to_string(),
    ]
    return "\n".join(lines)

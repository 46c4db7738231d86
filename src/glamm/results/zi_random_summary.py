"""The printed summary of a :class:`~glamm.results.zi_random_result.ZiRandomResult`, laid out
as glmmTMB's: the model, the criteria, the random effects of each part, then each part's
coefficient table (R's printCoefmat layout, as glmer's summary)."""

from __future__ import annotations

import pandas as pd

from .summary import _coef_block


def _random_effects(res, part: str) -> str:
    vc = res.varcorr[res.varcorr["part"] == part]
    if vc.empty:
        return "  (none)"
    shown = vc[["group", "name", "variance", "std_dev"]].rename(
        columns={"group": "Groups", "name": "Name", "variance": "Variance",
                 "std_dev": "Std.Dev."})
    corr = [c for c in vc.columns if c.startswith("corr_")]
    for c in corr:
        shown[c.replace("corr_", "Corr ")] = [f"{v:.3f}" if pd.notna(v) else ""
                                             for v in vc[c]]
    for c in ("Variance", "Std.Dev."):
        shown[c] = [f"{v:.6g}" for v in shown[c]]
    return shown.to_string(index=False)


def format_summary(res) -> str:
    method = ("Laplace approximation" if res.nagq == 1
              else f"adaptive Gauss-Hermite quadrature, nagq = {res.nagq}")
    lines = [
        f"Generalized linear mixed model with a zero part ({method})",
        f" Family: {res.family_name}",
        f"Formula:          {res.formula}",
        f"Zero part:        {res.ziformula}",
        "",
        "     AIC      BIC   logLik deviance   df",
        f"{res.aic:8.1f} {res.bic:8.1f} {res.loglik:8.1f} {res.deviance:8.1f} {res.df:4d}",
        "",
        "Random effects, conditional part:",
        _random_effects(res, "cond"),
        "Random effects, zero part:",
        _random_effects(res, "zi"),
        f"Number of obs: {res.nobs}, groups: {res.group_name}, {res.ngroups}",
    ]
    for name, value in res.family_parameters.items():
        lines.append(f"Count family's {name}: {value:.6g}")
    lines += [""] + _coef_block(res.coef_table("cond"), "Conditional model:") + [""]
    lines += _coef_block(res.coef_table("zi"), "Zero (hurdle) part:"
                         if res.model.family.hurdle else "Zero part:")
    if res.is_singular:
        lines += ["", "boundary (singular) fit: a variance or correlation is on its bound"]
    if not res.converged:
        lines += ["", "Convergence: " + "; ".join(res.messages or ["not converged"])]
    lines += [f"Note: {n}" for n in res.notes]
    return "\n".join(lines)

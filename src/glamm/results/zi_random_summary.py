"""The printed summary of a :class:`~glamm.results.zi_random_result.ZiRandomResult`, laid out
as glmmTMB's: the model, the criteria, the random effects of each part, then each part's
coefficient table."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _table(df: pd.DataFrame) -> str:
    out = df.copy()
    for col in out.columns:
        if col == "Pr(>|z|)":
            out[col] = [f"{p:.3g}" if np.isfinite(p) else "NA" for p in out[col]]
        else:
            out[col] = [f"{v:.6g}" if np.isfinite(v) else "NA" for v in out[col]]
    return out.to_string()


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
    lines += ["", "Conditional model:", _table(res.coef_table("cond")), "",
              "Zero part:" if not res.model.family.hurdle else "Zero (hurdle) part:",
              _table(res.coef_table("zi"))]
    if res.is_singular:
        lines += ["", "boundary (singular) fit: a variance or correlation is on its bound"]
    if not res.converged:
        lines += ["", "Convergence: " + "; ".join(res.messages or ["not converged"])]
    lines += [f"Note: {n}" for n in res.notes]
    return "\n".join(lines)

"""Plain-data (JSON-ready) form of fitted models, shared by the result classes."""

from __future__ import annotations

from typing import Any

import numpy as np


def fit_dict(result, **extra: Any) -> dict[str, Any]:
    """The fields every fitted model has (formula, counts, fixed effects and their covariance,
    likelihood criteria, dropped rows and columns), followed by the model's own ``extra``
    fields. Random-effects models add their variance components with :func:`mixed_fields`."""
    out: dict[str, Any] = {
        "formula": result.formula,
        "method": getattr(result, "method", None),
        "nobs": result.nobs,
        "fixef": {k: float(v) for k, v in result.fixef.items()},
        "stderr": {k: float(v) for k, v in result.stderr.items()},
        "vcov": np.asarray(result.vcov).tolist(),
        "loglik": result.loglik,
        "deviance": result.deviance,
        "aic": result.aic,
        "bic": result.bic,
        "df_resid": result.df_resid,
        "n_dropped_na": result.n_dropped_na,
        "dropped_columns": list(result.dropped_columns),
    }
    out.update(extra)
    return out


def mixed_fields(result) -> dict[str, Any]:
    """Variance components, groups, singularity and the optimizer record of a mixed model."""
    out = {
        "ngroups": dict(result.ngroups),
        "theta": dict(zip(result.theta_names, np.asarray(result.theta).tolist())),
        "varcorr": result.varcorr.replace({np.nan: None}).to_dict(orient="records"),
        "is_singular": result.is_singular,
        "optsum": result.optsum.as_dict(),
    }
    zi = getattr(result, "zero_inflation", None)
    if zi is not None:   # the zero part's coefficients (logit scale)
        out["zero_inflation"] = {
            str(k): {"estimate": float(r["Estimate"]),
                     "se": None if not np.isfinite(r["Std. Error"]) else float(r["Std. Error"])}
            for k, r in zi.iterrows()}
    structures = getattr(result, "covariance_structures", None)
    if structures:
        out["covariance_structures"] = structures
    vf = getattr(result, "variance_function", None)
    if vf is not None:   # a dispformula fit: its table, one record per level or term
        out["dispformula"] = result.dispersion_design.text
        out["variance_function"] = {
            str(ix): {c: (None if not np.isfinite(v) else float(v)) for c, v in row.items()}
            for ix, row in vf.iterrows()}
    if getattr(result, "families", None):   # per-row families
        out["families"] = dict(result.families)
        out["family_dispersions"] = {str(k): float(v)
                                     for k, v in result.family_dispersions.items()}
    if getattr(result.frame, "smooths", None):
        table = result.smooth_table
        out["smooths"] = {
            label: {"edf": float(row.iloc[0]), "ref_df": float(row.iloc[1]),
                    "statistic": float(row.iloc[2]), "statistic_name": str(table.columns[2]),
                    "p_value": float(row.iloc[3]),
                    "sp": float(result.sp[label]) if np.isfinite(result.sp[label]) else None}
            for label, row in table.iterrows()}
        pt = result.parametric_table()
        out["parametric"] = {"estimate": pt.iloc[:, 0].to_dict(),
                             "se": pt.iloc[:, 1].to_dict()}
    return out

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
    return {
        "ngroups": dict(result.ngroups),
        "theta": dict(zip(result.theta_names, np.asarray(result.theta).tolist())),
        "varcorr": result.varcorr.replace({np.nan: None}).to_dict(orient="records"),
        "is_singular": result.is_singular,
        "optsum": result.optsum.as_dict(),
    }

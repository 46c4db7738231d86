"""Confidence intervals of a fitted mixed model (lme4's ``confint``): by profiling the
likelihood (:mod:`glamm.inference.profile`), by the Wald approximation, or from a parametric
bootstrap (:mod:`glamm.inference.bootstrap`).

The table has lme4's rows (``.sig01``, ``.sig02``, ..., ``.sigma``, then the fixed effects),
lower and upper bounds as its first two columns (``2.5 %``, ``97.5 %`` at level 0.95) and a
``term`` column with the clearer name of each row (``sd_(Intercept)|Subject``). Not public
API (the results' ``confint`` is).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import GlammError
from .profile import _percent_names, _which
from .varpar import SdCorMap

METHODS = ("profile", "Wald", "boot")


def _method(method: str) -> str:
    for m in METHODS:
        if method.lower() == m.lower():
            return m
    raise GlammError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _variance_names(result) -> tuple[list[str], list[str]]:
    """lme4's names and the aliases of the variance parameters (none where a term has a
    structured covariance, which has no SD / correlation parameterization here)."""
    try:
        mp = SdCorMap(result.model.reterms, with_sigma=_has_sigma(result))
    except GlammError:
        return [], []
    return mp.names, mp.aliases


def _has_sigma(result) -> bool:
    from ..results.lmer_result import LmerResult

    return isinstance(result, LmerResult)


def wald(result, level: float = 0.95) -> pd.DataFrame:
    """Wald intervals ``beta +- z se`` for the fixed effects; the variance parameters' rows
    are NaN, as lme4's."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    lo_name, hi_name = _percent_names(level)
    vnames, valiases = _variance_names(result)
    beta = result.fixef.to_numpy(dtype=float)
    se = result.stderr.to_numpy(dtype=float)
    names = vnames + list(result.fixef.index)
    out = pd.DataFrame({lo_name: np.concatenate([np.full(len(vnames), np.nan), beta - z * se]),
                        hi_name: np.concatenate([np.full(len(vnames), np.nan), beta + z * se]),
                        "term": valiases + list(result.fixef.index)}, index=names)
    return out


def confint(result, parm=None, level: float = 0.95, method: str = "profile", n: int = 500,
            seed=None, boot_type: str = "percentile", n_jobs: int = 1) -> pd.DataFrame:
    """See the results' ``confint`` (e.g. :meth:`glamm.results.lmer_result.LmerResult.confint`)."""
    if not 0.0 < level < 1.0:
        raise GlammError(f"level must be between 0 and 1, got {level!r}")
    method = _method(method)
    if method == "Wald":
        table = wald(result, level)
    elif method == "boot":
        boot = result.bootstrap(n=n, seed=seed, n_jobs=n_jobs)
        table = boot.confint(level=level, method=boot_type)
    else:
        prof = result.profile(which=parm, level=level)
        return prof.confint(level)
    if parm is None:
        return table
    names = list(table.index)
    idx = _which(names, list(table["term"]), sum(n.startswith(".sig") for n in names), parm)
    return table.iloc[idx]


"""The Wald coefficient table the GLMM-type results share: estimates, standard errors, the
ratio (``z value``) and its two-sided normal p-value, as R's ``printCoefmat`` input for
glmer, glmmTMB and ordinal fits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special


def wald_table(estimate: Any, std_error: Any, index: Any = None) -> pd.DataFrame:
    """``Estimate``, ``Std. Error``, ``z value`` and ``Pr(>|z|)`` columns.

    Parameters
    ----------
    estimate, std_error : array_like or pandas.Series
        The estimates and their standard errors (a Series' index labels the rows).
    index : sequence, optional
        Row labels (default: the estimate's index, if it has one).

    Returns
    -------
    pandas.DataFrame
        One row per estimate; a standard error of 0 or NaN gives a NaN or infinite ``z value``
        (and NaN or 0 p-value) rather than a warning. (The normal tail is
        ``scipy.special.ndtr``, what ``scipy.stats.norm.sf`` computes, without importing
        ``scipy.stats``: 20 MB and half a second.)
    """
    if index is None:
        index = estimate.index if isinstance(estimate, pd.Series) else None
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = est / se
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z,
                         "Pr(>|z|)": 2.0 * special.ndtr(-np.abs(z))}, index=index)

"""Checks of the data that run before a fit (degenerate responses, badly scaled predictors)
and after it (standard errors that are not numbers).

A response without variation has no finite estimates (a binary response that is always 0,
Poisson counts that are all 0) or a residual variance of 0 (a constant Gaussian response): the
fit either fails deep inside the linear algebra or returns meaningless numbers, so these are
:class:`~glamm.errors.DataError` s raised before anything is fitted. Predictors on very
different scales are only a warning (lme4's "Some predictor variables are on very different
scales"), naming the columns.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from .errors import DataError
from .formula.design import ModelFrame

#: fixed-effects columns whose standard deviations differ by more than this factor are reported
SCALE_RATIO_WARN = 1e4

#: relative size of least-squares residuals below which a response counts as fitted exactly
EXACT_FIT_TOL = 1e-10


def _value_text(v: float) -> str:
    return f"{v:g}"


def _active_rows(frame: ModelFrame) -> np.ndarray:
    """Rows that carry information (positive prior weight and, for binomial data, trials)."""
    wt = frame.weights * (frame.trials if frame.trials is not None else 1.0)
    return wt > 0


def _constant_error(frame: ModelFrame, active: np.ndarray, why: str) -> DataError:
    return constant_response_error(frame.parsed.response, int(active.sum()), int(frame.n),
                                   float(frame.y[active][0]), why)


def constant_response_error(response: str, n_active: int, n: int, value: float,
                            why: str) -> DataError:
    """The error for a response that is ``value`` in all ``n_active`` rows with a positive
    weight (of ``n``), with the reason ``why`` it cannot be fitted."""
    rows = f"every one of the {n_active} rows" if n_active == n else \
        f"every one of the {n_active} rows with a positive weight"
    return DataError(f"the response {response!r} is constant ({rows} is "
                     f"{_value_text(value)}); {why}")


#: why an LMM cannot fit a constant response
LMM_CONSTANT_WHY = "a linear mixed model needs a response that varies (the residual variance " \
    "would be 0)"


def offset_constant_error(response: str, n_active: int) -> DataError:
    """The error for a response minus the offset that is constant."""
    return DataError(f"the response {response!r} minus the offset is constant "
                     f"(in all {n_active} rows used); the residual variance would be 0")


def exact_fit_error(response: str, xnames: list[str]) -> DataError:
    """The error for a response fitted exactly by the fixed effects."""
    return DataError(f"the response {response!r} is an exact linear function of the fixed "
                     f"effects ({', '.join(xnames)}): every residual is 0, so there is no "
                     "residual variance to estimate")


def check_lmm_response(frame: ModelFrame) -> None:
    """Raise a :class:`DataError` when the response of a linear mixed model leaves nothing to
    estimate: constant (over the rows with a positive weight), or fitted exactly by the fixed
    effects (the residual variance would be 0 and the factorization fails).

    Parameters
    ----------
    frame : ModelFrame
        The numeric model.
    """
    active = _active_rows(frame)
    if not active.any():
        raise DataError("every row has weight 0; there are no data to fit")
    y = frame.y[active]
    z = y - frame.offset[active]
    if np.ptp(y) == 0.0 and np.ptp(z) == 0.0:
        raise _constant_error(frame, active, LMM_CONSTANT_WHY)
    if np.ptp(z) == 0.0:
        raise offset_constant_error(frame.parsed.response, int(active.sum()))
    X = frame.X[active]
    if X.shape[1] == 0:
        return
    if _weighted_ls_residual_norm(X, z, frame.weights[active]) <= \
            EXACT_FIT_TOL * np.linalg.norm(z * np.sqrt(frame.weights[active])):
        raise exact_fit_error(frame.parsed.response, list(frame.xnames))


def _weighted_ls_residual_norm(X: np.ndarray, z: np.ndarray, w: np.ndarray) -> float:
    """Norm of the weighted least-squares residual of ``z`` on ``X`` (full column rank: aliased
    columns are dropped when the frame is built), by the normal equations with one step of
    iterative refinement (as cheap as one ``X' W X``, unlike an SVD of ``X``)."""
    Xw = X * w[:, None]
    xtwx = X.T @ Xw
    try:
        cf = cho_factor(xtwx)
    except np.linalg.LinAlgError:
        return float("inf")
    beta = cho_solve(cf, Xw.T @ z)
    r = z - X @ beta
    beta += cho_solve(cf, Xw.T @ r)
    r = z - X @ beta
    return float(np.linalg.norm(r * np.sqrt(w)))


def check_glm_response(frame: ModelFrame, family) -> None:
    """Raise a :class:`DataError` for a response that has no finite maximum-likelihood
    estimate under ``family``: a binomial response that is all failures or all successes,
    counts that are all 0, or a constant response of a family with a dispersion parameter
    (whose estimate would be 0). Rows with zero weight are ignored.

    Parameters
    ----------
    frame : ModelFrame
        The numeric model (``glm_response=True``: binomial ``y`` are proportions).
    family : glamm.families.Family
        The response distribution.
    """
    active = _active_rows(frame)
    if not active.any():
        raise DataError("every row has weight 0; there are no data to fit")
    y = frame.y[active]
    if np.ptp(y) != 0.0:
        return
    error = glm_constant_response_error(frame.parsed.response, int(active.sum()), frame.n,
                                        float(y[0]), family)
    if error is not None:
        raise error


def glm_constant_response_error(response: str, n_active: int, n: int, value: float,
                                family) -> DataError | None:
    """The error of :func:`check_glm_response` for a response that is ``value`` in all
    ``n_active`` rows of positive weight (of ``n``), or ``None`` where ``family`` can fit
    such a response."""
    if family.name == "binomial" and value in (0.0, 1.0):
        what = "failure" if value == 0.0 else "success"
        return DataError(
            f"the response {response!r} is constant (every one of the {n_active} "
            f"observations is a {what}); the probability of success has no finite estimate")
    if family.name in ("poisson", "negative_binomial") and value == 0.0:
        return constant_response_error(response, n_active, n, value, "counts that are all 0 "
                                       "have no finite estimate of their mean on the log "
                                       "scale")
    if family.has_dispersion:
        return constant_response_error(response, n_active, n, value, f"the {family.name} "
                                       "family needs a response that varies (the dispersion "
                                       "would be 0)")
    return None


def column_scales(X: np.ndarray) -> np.ndarray:
    """Scale of each fixed-effects column: its standard deviation, or 1 for a 0/1 column (the
    intercept, factor levels), whose coefficient is a difference on the response's own scale;
    ``NaN`` for other constant columns.

    Parameters
    ----------
    X : numpy.ndarray
        Fixed-effects matrix ``(n, p)``.
    """
    binary = np.all((X == 0) | (X == 1), axis=0)
    sd = X.std(axis=0) if X.shape[0] else np.zeros(X.shape[1])
    return np.where(binary, 1.0, np.where(sd > 0, sd, np.nan))


def badly_scaled_columns(X: np.ndarray, names: list[str], ratio: float = SCALE_RATIO_WARN
                         ) -> tuple[list[str], str, float] | None:
    """Fixed-effects columns whose scale (:func:`column_scales`) is more than ``ratio`` times
    the smallest, or whose scale is less than a ``ratio``-th of the largest (as lme4's check,
    which also compares with the 0/1 columns).

    Parameters
    ----------
    X : numpy.ndarray
        Fixed-effects matrix ``(n, p)``.
    names : list of str
        Its column names.
    ratio : float
        Ratio of scales above which columns are reported.

    Returns
    -------
    tuple of (list of str, str, float) or None
        ``(outlying columns, the column they are compared with, the largest ratio)``, or
        ``None`` when all columns are on similar scales.
    """
    if X.shape[0] < 2 or X.shape[1] < 2:
        return None
    return outlying_scales(column_scales(X), names, ratio)


def outlying_scales(s: np.ndarray, names: list[str], ratio: float = SCALE_RATIO_WARN
                    ) -> tuple[list[str], str, float] | None:
    """:func:`badly_scaled_columns` from the columns' scales ``s`` (:func:`column_scales`;
    the partitioned path computes them from per-partition moments)."""
    ok = np.flatnonzero(np.isfinite(s))
    if ok.size < 2:
        return None
    lo, hi = ok[np.argmin(s[ok])], ok[np.argmax(s[ok])]
    r = float(s[hi] / s[lo])
    if not r > ratio:
        return None
    if s[lo] == 1.0 or s[hi] / 1.0 > ratio:   # large columns against the small
        ref = lo
        out = [names[j] for j in ok if s[j] > ratio * s[lo]]
    else:
        ref = hi
        out = [names[j] for j in ok if s[j] * ratio < s[hi]]
    return out, names[ref], r


def warn_scaling(frame: ModelFrame, stacklevel: int = 3) -> None:
    """Warn (lme4's "Some predictor variables are on very different scales") naming the
    columns, when the parametric fixed-effects columns differ in scale by more than
    :data:`SCALE_RATIO_WARN` (the smooths' own columns are left out).

    Parameters
    ----------
    frame : ModelFrame
        The numeric model.
    stacklevel : int
        Passed to :func:`warnings.warn` (3: the caller of the fitting function).
    """
    k = frame.n_parametric
    warn_outlying(badly_scaled_columns(frame.X[:, :k], list(frame.xnames[:k])), stacklevel + 1)


def warn_outlying(found: tuple[list[str], str, float] | None, stacklevel: int = 3) -> None:
    """The warning of :func:`warn_scaling` for the result of :func:`outlying_scales`."""
    if found is None:
        return
    cols, ref, r = found
    warnings.warn(
        f"some predictor variables are on very different scales: {', '.join(cols)} against "
        f"{ref} (scales differ by a factor of {r:.2g}; the scale of a 0/1 column counts as 1); "
        "consider rescaling, e.g. with scale() in the formula",
        UserWarning, stacklevel=stacklevel)


def nonfinite_stderr_note(names: list[str], stderr: np.ndarray) -> str | None:
    """The note (and warning text) for standard errors that are not finite numbers, or
    ``None`` when all are.

    Parameters
    ----------
    names : list of str
        Coefficient names.
    stderr : numpy.ndarray
        Their standard errors.
    """
    bad = [n for n, s in zip(names, np.asarray(stderr, dtype=float)) if not np.isfinite(s)]
    if not bad:
        return None
    return (f"the standard errors of {', '.join(bad)} are not finite (NaN): the estimated "
            "covariance of the estimates is not positive definite, typically because the fit "
            "did not reach a maximum (separation, a badly scaled predictor, or an unidentified "
            "parameter); do not use these standard errors or the tests built on them")


def warn_nonfinite_stderr(names: list[str], stderr: np.ndarray, stacklevel: int = 3) -> None:
    """Warn with :func:`nonfinite_stderr_note` when a standard error is not finite."""
    note = nonfinite_stderr_note(names, stderr)
    if note is not None:
        warnings.warn(note, UserWarning, stacklevel=stacklevel)


def grouped_terms(frame: ModelFrame, model: str) -> list:
    """The checks every mixed model shares: some random-effects term, and at least 2 levels
    per grouping factor. Returns the grouped terms (a smooth's penalized part has one 'level'
    by design and is left out)."""
    if not frame.reterms:
        raise DataError("the formula has no random-effects terms such as (1 | group); "
                        f"fit a {model} without random effects instead")
    grouped = [t for t in frame.reterms if t.is_grouped]
    for t in grouped:
        # a structured covariance (ar1, a spatial exp) is identified within one level
        if t.nlevels < 2 and not t.covariance.structured:
            raise DataError(
                f"grouping factor {t.group!r} has only {t.nlevels} level in the {frame.n} rows "
                "used; a random effect needs at least 2 levels"
            )
    return grouped


def check_lmm_frame(frame: ModelFrame, response: bool = True) -> None:
    """lme4's identifiability checks for a Gaussian model (errors name the term and counts);
    ``response=False`` leaves out the response checks (:func:`check_lmm_response`, which need
    the rows; a partitioned fit makes them from the partitions' sums)."""
    n = frame.n
    for t in grouped_terms(frame, "linear model"):
        if t.nlevels >= n:
            raise DataError(
                f"grouping factor {t.group!r} has {t.nlevels} levels for {n} observations; the "
                "random effects are not identifiable from the residual (need fewer levels "
                "than observations)"
            )
        if t.q >= n and t.p > 1 and not t.covariance.structured:
            raise DataError(
                f"term ({t.expr} | {t.group}) has {t.q} random effects for {n} observations; "
                "the model is not identifiable"
            )
    if frame.X.shape[1] >= n:
        raise DataError(f"{frame.X.shape[1]} fixed effects for {n} observations")
    if response:
        check_lmm_response(frame)


def check_glmm_frame(frame: ModelFrame, family: Any = None) -> None:
    """Identifiability checks for a GLMM (fewer levels are needed than for an LMM: a random
    intercept per observation is identifiable, e.g. for overdispersed counts); with the
    ``family``, also a response without a finite estimate (:func:`check_glm_response`) and
    predictors on very different scales (a warning)."""
    grouped_terms(frame, "generalized linear model")
    if family is not None:
        check_glm_response(frame, family)
        warn_scaling(frame, stacklevel=4)

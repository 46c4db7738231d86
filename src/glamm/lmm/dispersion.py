"""Heteroscedastic residuals in a linear mixed model (``dispformula``).

The residual SD of row ``i`` is ``sigma * exp(s_i)`` with ``s = D delta``: ``D`` has one
column per level but the first of a grouping column (galamm's ``~ (1 | g)``, nlme's
``varIdent``) or the covariates of a log-linear form (``~ x1 + x2``, glmmTMB's
``dispformula`` and nlme's ``varExp``-like log-SD). For fixed ``delta`` the model is an LMM
with prior weights ``w_i = w0_i exp(-2 s_i)``, so ``beta`` and ``sigma`` stay profiled out
(Bates et al. 2015, with the log weights in the deviance) and the fit searches
``[theta, delta]``: each evaluation refills the cross-products with the new weights.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.evaluate import column_names, model_matrix_checked
from ..optim.backends import minimize
from ..optim.optsummary import OptSummary
from .model import LinearMixedModel


@dataclass
class DispersionDesign:
    """``D`` (``n x k``) of the log residual-SD multipliers and how to report ``delta``.

    Attributes
    ----------
    kind : str
        ``"grouped"`` (``~ (1 | g)``), ``"loglinear"`` (``~ x1 + x2``), ``"power"``
        (``~ power(v)``: ``D = log|v|``) or ``"power_fitted"`` (``~ power(fitted)``: ``D``
        the log absolute fitted values, refilled by the fit).
    D : ndarray
        The design of ``s = D delta`` on the model's rows.
    names : list of str
        One label per column of ``D``.
    text : str
        The dispformula as written.
    group : str or None
        The grouping column of the grouped form.
    levels : list of str
        Its levels, the reference (multiplier 1) first.
    """

    kind: str
    D: np.ndarray
    names: list[str]
    text: str
    group: str | None = None
    levels: list[str] = field(default_factory=list)
    #: the power forms: ``D = log|v| - center`` (``center`` the mean of ``log|v|``, which
    #: keeps ``delta`` and ``sigma`` apart for the optimizer); ``sigma`` at ``|v| = 1``, nlme's,
    #: is the fitted one times ``exp(-delta center)``
    center: float = 0.0


_NAME = r"([A-Za-z_][A-Za-z0-9_.]*)"
_GROUPED = re.compile(r"^\s*~?\s*\(\s*(?:1|0\s*\+\s*" + _NAME + r")\s*\|\s*" + _NAME
                      + r"\s*\)\s*$")


_POWER = re.compile(r"^\s*~?\s*power\s*\(\s*" + _NAME + r"\s*\)\s*$")


def _power_design(text: str, name: str, data: pd.DataFrame,
                  active: np.ndarray | None) -> DispersionDesign:
    """nlme's ``varPower``: the residual SD proportional to ``|v|^delta``, ``v`` a covariate
    (a log-linear form in ``log|v|``) or, for ``power(fitted)``, the fitted values (filled
    in by the fit: :func:`fit_power_of_fitted`)."""
    if name == "fitted":
        return DispersionDesign("power_fitted", np.zeros((len(data), 1)), ["power(fitted)"],
                                text)
    if name not in data.columns:
        raise FormulaError(f"dispformula {text!r}: unknown column {name!r}")
    v = pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float)
    on = np.ones(v.size, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    bad = on & (~np.isfinite(v) | (v == 0))
    if bad.any():
        raise DataError(f"dispformula {text!r}: {name!r} must be numeric and nonzero (the SD "
                        f"is proportional to |{name}|^power); row {int(np.flatnonzero(bad)[0])} "
                        "is not")
    logv = np.log(np.abs(np.where(on, v, 1.0)))
    center = float(np.mean(logv[on]))
    D = np.where(on, logv - center, 0.0)[:, None]
    return DispersionDesign("power", D, [f"power({name})"], text, center=center)


def dispersion_design(text: str, data: pd.DataFrame,
                      active: np.ndarray | None = None) -> DispersionDesign:
    """Parse ``dispformula`` on the model's rows (``data``: the rows the model kept).

    ``~ (1 | g)``: a log-SD multiplier per level of ``g`` but the first; ``~ (0 + v | g)``
    (galamm's form for mixed responses): the same, only on rows where ``v`` is nonzero (the
    others keep multiplier 1); ``~ x1 + x2``: log SD linear in the covariates;
    ``~ power(v)``: SD proportional to ``|v|^delta`` (nlme's ``varPower(form = ~ v)``) and
    ``~ power(fitted)`` to a power of the fitted values (nlme's ``varPower()``). ``active``
    (optional, one flag per row) marks the rows a multiplier can act on (those whose family
    has a dispersion); the grouped form counts levels on them only.

    Raises
    ------
    FormulaError
        An unknown column, or a form that is none of these.
    DataError
        A grouping column with one level or a level with one row; missing covariates.
    """
    p = _POWER.match(text)
    if p:
        return _power_design(text, p.group(1), data, active)
    m = _GROUPED.match(text)
    if m:
        v, g = m.group(1), m.group(2)
        on = np.ones(len(data), dtype=bool) if active is None else np.asarray(active, bool)
        for name in (v, g):
            if name is not None and name not in data.columns:
                raise FormulaError(f"dispformula {text!r}: unknown column {name!r}")
        if v is not None:
            vv = pd.to_numeric(data[v], errors="coerce").to_numpy(dtype=float)
            if not np.all(np.isfinite(vv)):
                raise DataError(f"dispformula {text!r}: column {v!r} must be numeric without "
                                "missing values (nonzero marks the rows with a variance per "
                                "level)")
            on = on & (vv != 0)
        col = data[g]
        if col[on].isna().any():
            raise DataError(f"dispformula {text!r}: column {g!r} has missing values in the "
                            "model's rows")
        # levels as R's factor() makes them: a categorical's own order, else sorted (numbers
        # as numbers)
        if isinstance(col.dtype, pd.CategoricalDtype):
            levels = list(col.cat.categories)
        else:
            levels = sorted(pd.unique(col[on]).tolist(),
                            key=lambda v: (0, float(v), "") if isinstance(v, (int, float))
                            else (1, 0.0, str(v)))
        values = col.astype(str).to_numpy().astype(object)
        values[~on] = None   # rows without a multiplier belong to no level
        levels = [str(lv) for lv in levels if (values == str(lv)).any()]
        if len(levels) < 2:
            raise DataError(f"dispformula {text!r}: column {g!r} has one level in the model's "
                            "rows; a variance per level needs at least two")
        counts = {lv: int((values == lv).sum()) for lv in levels}
        single = [lv for lv, c in counts.items() if c < 2]
        if single:
            raise DataError(f"dispformula {text!r}: level(s) {single} of {g!r} have a single "
                            "row, too few to estimate a residual variance")
        D = np.column_stack([(values == lv).astype(float) for lv in levels[1:]])
        return DispersionDesign("grouped", D, [f"{g}{lv}" for lv in levels[1:]], text, g,
                                levels)
    if active is not None and not np.all(active):
        raise FormulaError(f"dispformula {text!r}: in a mixed response the variance function "
                           "is the grouped form, ~ (1 | g) or ~ (0 + v | g)")
    rhs = text.split("~", 1)[1] if "~" in text else text
    if "|" in rhs:
        raise FormulaError(f"dispformula {text!r}: the grouped form is ~ (1 | g) with one "
                           "grouping column; otherwise write covariates, ~ x1 + x2")
    mm = model_matrix_checked(rhs, data, "dispformula", shown=text)
    X = np.asarray(mm, dtype=float)
    names = column_names(mm)
    keep = [j for j, n in enumerate(names) if n != "Intercept"]
    D = X[:, keep]
    if D.shape[1] == 0:
        raise FormulaError(f"dispformula {text!r} has no covariates (the intercept is sigma)")
    if not np.all(np.isfinite(D)):
        raise DataError(f"dispformula {text!r}: missing or infinite covariate values in the "
                        "model's rows")
    return DispersionDesign("loglinear", D, [names[j] for j in keep], text)


def glmm_dispersion_design(text: str, data: pd.DataFrame, family) -> DispersionDesign:
    """:func:`dispersion_design` for a GLMM with ``family`` (per-row families too): the
    variance function acts on the rows whose family has a dispersion.

    Raises
    ------
    GlammError
        No family of the model has a dispersion parameter.
    """
    from ..errors import GlammError

    components = getattr(family, "families", [family])
    with_disp = [f.has_dispersion and not f.has_shape for f in components]
    if not any(with_disp):
        raise GlammError(
            f"dispformula needs a family with a dispersion parameter (gaussian, Gamma, "
            f"inverse_gaussian, t, tweedie); {family.name} has none (a variance function "
            f"on a family's own parameter, such as nbinom1's phi or beta's precision, as "
            f"glmmTMB's dispformula does, is not supported yet)")
    active = None
    if hasattr(family, "index"):
        active = np.asarray(with_disp)[family.index]
    design = dispersion_design(text, data.reset_index(drop=True), active)
    if design.kind == "power_fitted":
        raise GlammError("dispformula ~ power(fitted) (nlme's varPower()) is for Gaussian "
                         "models without loadings (lmer); in a GLMM the family's variance "
                         "function already ties the variance to the mean")
    return design


def heteroscedastic_deviance(model: LinearMixedModel, disp: DispersionDesign, w0: np.ndarray):
    """``(set_delta, f)``: ``set_delta(delta)`` puts the weights ``w0 exp(-2 D delta)`` into
    ``model`` (cross-products refilled, log weights in the deviance) and returns them;
    ``f(x)`` is the profiled deviance (or REML criterion) at ``x = [theta, delta]``."""
    frame = model.frame
    yw = frame.y - frame.offset
    nt = model.n_theta

    def set_delta(delta: np.ndarray) -> np.ndarray:
        w = w0 * np.exp(-2.0 * (disp.D @ delta))
        model.cp.update(w, yw)
        model.factor.refresh()
        model.sum_log_w = float(np.log(w).sum())
        return w

    def objective(x: np.ndarray) -> float:
        if not np.all(np.isfinite(x)) or np.max(np.abs(x[nt:]), initial=0.0) > 30:
            return float("inf")
        set_delta(x[nt:])
        return model.objective(x[:nt])

    return set_delta, objective


def delta_stderr(frame, disp: DispersionDesign, w0: np.ndarray, reml: bool, theta: np.ndarray,
                 delta: np.ndarray) -> np.ndarray:
    """Standard errors of ``delta`` (the log residual-SD parameters): ``2 H^-1`` of the
    profiled deviance (or REML criterion) in ``[theta, delta]`` by central differences, whose
    ``delta`` block equals that of the full covariance at the optimum (``beta`` and ``sigma``
    profiled out). ``NaN`` where the Hessian is not positive definite (a variance on its
    bound makes it so in ``theta``; the ``delta`` block is then taken with ``theta`` held)."""
    from ..optim.newton import gradient_hessian

    model = LinearMixedModel(dataclasses.replace(frame, weights=w0), reml=reml)
    _, f = heteroscedastic_deviance(model, disp, w0)
    x = np.concatenate([theta, delta])
    nt = theta.size
    free = np.concatenate([theta > model.theta_lower() + 1e-8, np.ones(delta.size, bool)])
    idx = np.flatnonzero(free)

    def f_free(z: np.ndarray) -> float:
        full = x.copy()
        full[idx] = z
        return f(full)

    _, H = gradient_hessian(f_free, x[idx])
    try:
        cov = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full(delta.size, np.nan)
    var = np.diag(cov)[np.flatnonzero(idx >= nt)]
    return np.where(var > 0, np.sqrt(np.abs(var)), np.nan)


def fit_heteroscedastic(model: LinearMixedModel, disp: DispersionDesign, optimizer: str,
                        x0: np.ndarray | None = None,
                        **settings) -> tuple[OptSummary, np.ndarray]:
    """Minimize the profiled deviance (or REML criterion) over ``[theta, delta]`` and leave
    ``model`` at the optimum on a copy of its frame whose prior weights are the fitted
    ``w0 exp(-2 D delta)``, so every result is that of the weighted LMM at the estimates
    (the frame the model was built with keeps the user's weights).
    Returns the record (its ``final`` holds ``theta``) and ``delta``."""
    frame = model.frame
    w0 = np.asarray(frame.weights, dtype=float).copy()
    nt = model.n_theta
    k = disp.D.shape[1]
    set_delta, objective = heteroscedastic_deviance(model, disp, w0)

    lower = np.concatenate([model.theta_lower(), np.full(k, -np.inf)])
    if x0 is None:
        x0 = np.concatenate([model.theta_initial(), np.zeros(k)])
    opt = {"ftol_rel": 1e-15, "ftol_abs": 0.0, "xtol_abs": 1e-10, **settings}
    record = minimize(objective, x0, lower, optimizer=optimizer, **opt)
    assert record.final is not None
    x = record.final.copy()
    theta, delta = x[:nt], x[nt:]
    # a variance that ended near zero is tried on its bound (as optimize_theta does)
    near = np.flatnonzero(np.isfinite(lower[:nt]) & (theta > lower[:nt])
                          & (theta < lower[:nt] + 1e-4))
    if near.size:
        trial = x.copy()
        trial[near] = lower[near]
        value = objective(trial)
        if value <= record.fmin:
            x, record.fmin = trial, value
            theta, delta = x[:nt], x[nt:]
    model.frame = dataclasses.replace(frame, weights=set_delta(delta))
    model.objective(theta)
    record.final = theta.copy()
    return record, delta.copy()


def fit_power_of_fitted(frame, disp: DispersionDesign, reml: bool, optimizer: str,
                        fitted_of, max_rounds: int = 100, **settings):
    """nlme's ``varPower()`` (SD proportional to ``|fitted|^delta``, the fitted values with
    the random effects): as nlme, the variance covariate is held at the current fitted values
    while ``[theta, delta]`` are optimized, then refreshed, until the fitted values no longer
    move (a fixed point; the log-likelihood is the weighted LMM's there). ``fitted_of(model)``
    gives a fitted model's fitted values. Returns ``(model, record, delta, design)``."""
    from ..errors import GlammError

    model = LinearMixedModel(frame, reml=reml)
    from .fit import optimize_theta

    optimize_theta(model)
    fitted = fitted_of(model)
    prev = None
    start = None
    for _ in range(max_rounds):
        if np.any(fitted == 0) or not np.all(np.isfinite(fitted)):
            raise GlammError("dispformula ~ power(fitted): a fitted value is 0 or not finite; "
                             "the SD cannot be a power of it")
        logv = np.log(np.abs(fitted))
        design = dataclasses.replace(disp, D=(logv - logv.mean())[:, None],
                                     center=float(logv.mean()))
        model = LinearMixedModel(frame, reml=reml)
        record, delta = fit_heteroscedastic(model, design, optimizer, x0=start, **settings)
        start = np.concatenate([record.final, delta])
        new = fitted_of(model)
        moved = np.max(np.abs(new - fitted)) / (1.0 + np.max(np.abs(fitted)))
        fitted = new
        # (the inner search fixes delta to about 1e-7 only, the deviance being flat in it
        # to rounding there, so a tighter test on delta succeeds by chance, or not at all)
        if prev is not None and moved < 1e-8 and abs(delta[0] - prev) < 1e-6:
            return model, record, delta, design
        prev = delta[0]
    raise GlammError(f"dispformula ~ power(fitted): the fitted values did not settle in "
                     f"{max_rounds} rounds")


def variance_table(disp: DispersionDesign, delta: np.ndarray, sigma: float,
                   se: np.ndarray | None = None) -> pd.DataFrame:
    """The estimated variance function: for the grouped form one row per level with galamm's
    variance multiplier (``exp(2 delta)``, the reference level 1), nlme's SD ratio
    (``exp(delta)``) and the residual SD; for the power forms the power (and nlme's
    ``sigma``, the residual SD where ``|v| = 1``, when the fit's is elsewhere); for the
    log-linear form the coefficients of the log
    residual SD (nlme's scale; glmmTMB's Gaussian dispformula is on the log-variance scale,
    twice these). ``se``: standard errors of ``delta`` (:func:`delta_stderr`), on the log-SD
    scale."""
    se = np.full(delta.size, np.nan) if se is None else se
    if disp.kind == "grouped":
        d = np.concatenate([[0.0], delta])
        return pd.DataFrame({"variance ratio": np.exp(2.0 * d), "SD ratio": np.exp(d),
                             "residual SD": sigma * np.exp(d),
                             "SE log SD ratio": np.concatenate([[np.nan], se])},
                            index=pd.Index(disp.levels, name=disp.group))
    if disp.kind in ("power", "power_fitted"):
        table = pd.DataFrame({"power": delta, "SE": se},
                             index=pd.Index(disp.names, name="term"))
        if disp.center:   # the fit's sigma is at the centre; nlme's is at |v| = 1
            table["sigma at |v| = 1"] = sigma * np.exp(-delta * disp.center)
        return table
    return pd.DataFrame({"log-SD coefficient": delta, "SE": se},
                        index=pd.Index(disp.names, name="term"))

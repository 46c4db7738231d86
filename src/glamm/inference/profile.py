"""Likelihood profiles of a linear mixed model and the confidence intervals read from them
(lme4's ``profile`` and ``confint(method = "profile")``).

For each parameter ``p`` the profile is the signed square root of the rise of the ML
deviance when ``p`` is held at a value and every other parameter is re-optimized,

    zeta(x) = sign(x - p_hat) sqrt(d(x) - d_hat),

and the interval at level ``1 - a`` is where ``|zeta|`` reaches the normal quantile
``z_{1 - a/2}``. As in lme4:

- the deviance is the ML one, also for a REML fit (the model is refitted by ML first), so the
  intervals are centred near the ML estimates;
- the variance parameters are the standard deviations and correlations of the terms and the
  residual SD (:mod:`glamm.inference.varpar`); with one of them held, the others and ``sigma``
  are re-optimized (the fixed effects are profiled out exactly, by the penalized least squares
  at each ``theta``);
- a fixed effect held at ``b`` moves into the offset, and ``theta`` is re-optimized for the
  model without its column;
- where a parameter reaches its bound (an SD at 0, a correlation at +-1) before ``zeta``
  reaches the quantile, the interval ends at the bound.

lme4 reads the interval ends off a spline through the profile's points; here each end is the
root of ``zeta(x) = +-z`` found by Brent's method between two points of the trace, so it
is exact to the optimizers' tolerance. With prior weights lme4's profiles of the fixed
effects leave the weights out of their refits (1.1-31: ``sleepstudy`` with weights gives
``Days`` in [10.596, 10.647] against the Wald [9.012, 12.183], with "non-monotonic profile"
warnings); glamm's refits keep them (there [9.008, 12.188]). The traces
(``Profile.traces``) have lme4's shape: ``.zeta``, every parameter's value at that point,
and ``.par``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import optimize as so
from scipy import stats

from ..errors import ConvergenceWarning, GlammError
from ..lmm.fit import optimize_theta
from ..lmm.model import LinearMixedModel
from ..optim.backends import minimize
from .varpar import SdCorMap

#: the walk aims for this change of zeta per step (lme4: cutoff / 8, about 0.5)
_ZETA_STEP = 0.5
#: a step is at most this many times the previous one
_MAX_GROWTH = 10.0
#: the inner optimizations stop at this absolute change of the deviance
_FTOL = 1e-11
#: a deviance this far below the fit's means the fit was not at the optimum
_LOWER_TOL = 1e-6


@dataclasses.dataclass
class _Point:
    x: float
    zeta: float
    values: np.ndarray       # every parameter at this point (the profile's column order)
    start: np.ndarray        # warm start of the inner optimization at neighbouring points


class Profile:
    """The likelihood profiles of an LMM's parameters (:func:`profile`).

    Attributes
    ----------
    traces : DataFrame
        One row per point: ``.zeta``, the value of every parameter there (columns named as
        in ``names``) and ``.par``, the profiled parameter's name.
    names : list of str
        lme4's names of the parameters: ``.sig01``, ..., ``.sigma``, then the fixed effects.
    aliases : list of str
        Clearer names (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``,
        ``sigma``, the fixed effects).
    estimates : Series
        The ML estimates the profiles are centred on.
    """

    def __init__(self, profiler: _ProfilerBase, which: list[int], zeta_max: float,
                 progress: bool | None = None):
        from .progress import progress_bar

        self._prof = profiler
        self.names = profiler.names
        self.aliases = profiler.aliases
        self.estimates = pd.Series(profiler.center, index=self.names)
        self._points: dict[int, list[_Point]] = {}
        bar = progress_bar(len(which), progress, "profile", "parameter")
        try:
            for i in which:
                self._points[i] = profiler.walk(i, zeta_max)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    @property
    def traces(self) -> pd.DataFrame:
        rows = []
        for i, pts in self._points.items():
            for pt in sorted(pts, key=lambda q: q.x):
                rows.append([pt.zeta, *pt.values, self.names[i]])
        return pd.DataFrame(rows, columns=[".zeta", *self.names, ".par"])

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Intervals at ``level`` for the profiled parameters: columns ``2.5 %`` and
        ``97.5 %`` (for level 0.95) and ``term`` (the alias), indexed by lme4's names."""
        z = stats.norm.ppf(0.5 + level / 2.0)
        lo_name, hi_name = _percent_names(level)
        rows = []
        for i, pts in self._points.items():
            lo = self._prof.crossing(i, pts, -z)
            hi = self._prof.crossing(i, pts, z)
            rows.append((self.names[i], lo, hi, self.aliases[i]))
        out = pd.DataFrame(rows, columns=["name", lo_name, hi_name, "term"]).set_index("name")
        out.index.name = None
        return out


def _percent_names(level: float) -> tuple[str, str]:
    a = (1.0 - level) / 2.0
    return f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"


class _ProfilerBase:
    """The walk along one parameter and the interval ends; subclasses hold the deviance
    (``base`` at the estimates ``center``, parameter bounds ``lower`` and ``upper``, ``names``
    and ``aliases``, ``nvp`` variance parameters first) and evaluate :meth:`point`."""

    names: list[str]
    aliases: list[str]
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    base: float
    nvp: int

    def point(self, i: int, x: float, start: np.ndarray) -> _Point:
        raise NotImplementedError

    def first_step(self, i: int) -> float:
        raise NotImplementedError

    def _start_at_center(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _zeta(self, i: int, x: float, dev: float) -> float:
        rise = dev - self.base
        if rise < -_LOWER_TOL * max(1.0, abs(self.base)):
            raise GlammError(
                f"profiling {self.names[i]} found a deviance {-rise:.3g} below the fit's: "
                "the fit had not reached the optimum; refit with tighter optimizer settings")
        if not np.isfinite(rise):
            return math.nan
        return math.copysign(math.sqrt(max(rise, 0.0)), x - self.center[i])

    # ------------------------------------------------------------------ the walk
    def walk(self, i: int, zeta_max: float) -> list[_Point]:
        """Points along parameter ``i`` on both sides of the estimate, until ``|zeta|``
        passes ``zeta_max`` or the parameter reaches a bound."""
        center = float(self.center[i])
        pts = [_Point(center, 0.0, self.center.copy(), self._start_at_center(i))]
        lo, hi = float(self.lower[i]), float(self.upper[i])
        first = self.first_step(i)
        for sign in (1.0, -1.0):
            prev = pts[0]
            step = first
            while True:
                x = min(hi, max(lo, prev.x + sign * step))
                if x == prev.x:
                    break
                pt = self.point(i, x, prev.start)
                pts.append(pt)
                if not np.isfinite(pt.zeta) or abs(pt.zeta) >= zeta_max or x in (lo, hi):
                    break
                dz = abs(pt.zeta - prev.zeta)
                dx = abs(pt.x - prev.x)
                # the step that would change zeta by _ZETA_STEP on the secant's slope
                new = _ZETA_STEP * dx / dz if dz > 1e-12 else _MAX_GROWTH * dx
                step = min(new, _MAX_GROWTH * dx)
                prev = pt
        return pts

    def crossing(self, i: int, pts: list[_Point], target: float) -> float:
        """Where ``zeta`` along parameter ``i`` equals ``target`` (Brent's method between the
        two points of the walk that bracket it); the bound when the walk ended there first;
        NaN if the walk never got that far."""
        side = sorted([p for p in pts if (p.x - self.center[i]) * target >= 0
                       and np.isfinite(p.zeta)], key=lambda p: abs(p.x - self.center[i]))
        for a, b in zip(side[:-1], side[1:]):
            if (a.zeta - target) * (b.zeta - target) <= 0:
                if b.zeta == target:
                    return b.x
                start = a.start

                def g(x: float, start: np.ndarray = start) -> float:
                    return self.point(i, x, start).zeta - target

                return float(so.brentq(g, a.x, b.x, xtol=1e-10 * max(1.0, abs(b.x)),
                                       rtol=1e-12))
        end = side[-1] if side else None
        bound = self.lower[i] if target < 0 else self.upper[i]
        if end is not None and end.x == bound:
            return float(bound)
        return math.nan


class _LmmProfiler(_ProfilerBase):
    """An LMM's ML deviance over the SDs, correlations and ``sigma`` (the fixed effects
    profiled out) and, for a fixed effect held, over ``theta`` of the model without it."""

    def __init__(self, result):
        frame = result.frame
        self.frame = frame
        self.map = SdCorMap(frame.reterms)
        ml = result.model.copy_with(reml=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            optimize_theta(ml, start=np.asarray(result.theta, dtype=float),
                           ftol_rel=1e-12, ftol_abs=0.0, xtol_abs=1e-10)
        self.ml = ml
        assert ml.theta is not None
        self.theta_hat = ml.theta.copy()
        self.base = ml.objective(self.theta_hat)
        self.sigma_hat = ml.sigma()
        u, beta = ml.factor.solve_u_beta()
        self.beta_hat = beta
        self.vp_hat = self.map.from_theta(self.theta_hat, self.sigma_hat)
        self.nvp = self.map.size
        self.p = beta.size
        self.names = self.map.names + list(frame.xnames)
        self.aliases = self.map.aliases + list(frame.xnames)
        self.center = np.concatenate([self.vp_hat, beta])
        self.lower = np.concatenate([self.map.lower(), np.full(self.p, -np.inf)])
        self.upper = np.concatenate([self.map.upper(), np.full(self.p, np.inf)])
        # scales of the inner optimizations' variables (BOBYQA takes one step size)
        scale = np.where(np.array(self.map.kinds) == "cor", 1.0,
                         np.maximum(np.abs(self.vp_hat), 1e-3 * max(self.sigma_hat, 1e-300)))
        self.vp_scale = scale
        se = np.sqrt(np.diag(_vcov_ml(ml, self.sigma_hat))) if self.p else np.zeros(0)
        self.beta_se = np.where(se > 0, se, 1.0)
        self._fixed_models: dict[int, LinearMixedModel] = {}

    # ------------------------------------------------------------------ deviances
    def deviance(self, vp: np.ndarray) -> float:
        """The ML deviance at the SD / correlation vector ``vp`` (``sigma`` last), profiled
        over the fixed effects; ``inf`` outside the parameter space."""
        theta = self.map.to_theta(vp)
        if theta is None:
            return math.inf
        try:
            self.ml.set_theta(theta)
        except np.linalg.LinAlgError:
            return math.inf
        val = self.ml.deviance_at(float(vp[-1]))
        return val if np.isfinite(val) else math.inf

    def _fixed_model(self, j: int) -> LinearMixedModel:
        """The ML model without fixed-effect column ``j`` (its response set per value)."""
        if j not in self._fixed_models:
            X = self.frame.X
            keep = [k for k in range(X.shape[1]) if k != j]
            names = [self.frame.xnames[k] for k in keep]
            sub = dataclasses.replace(self.frame, X=X[:, keep], xnames=names)
            self._fixed_models[j] = LinearMixedModel(sub, reml=False)
        return self._fixed_models[j]

    # ------------------------------------------------------------------ one point
    def point(self, i: int, x: float, start: np.ndarray) -> _Point:
        """Hold parameter ``i`` at ``x``, re-optimize the others from ``start``."""
        if i < self.nvp:
            return self._vp_point(i, x, start)
        return self._beta_point(i - self.nvp, x, start)

    def _vp_point(self, i: int, x: float, start: np.ndarray) -> _Point:
        others = [k for k in range(self.nvp) if k != i]
        sc = self.vp_scale[others]
        lo = self.map.lower()[others] / sc
        up = self.map.upper()[others] / sc
        vp = self.vp_hat.copy()
        vp[i] = x

        def f(z: np.ndarray) -> float:
            vp[others] = z * sc
            return self.deviance(vp)

        z0 = np.clip(start / sc, lo, up)
        os_ = minimize(f, z0, lo, upper=up, ftol_rel=0.0, ftol_abs=_FTOL, xtol_abs=1e-9,
                       initial_step=0.05, maxfeval=20000)
        assert os_.final is not None
        best = os_.final * sc
        vp[others] = best
        dev = os_.fmin
        # the fixed effects at this point (the PLS solution at its theta)
        self.deviance(vp)
        beta = self.ml.factor.solve_u_beta()[1]
        return _Point(x, self._zeta(i, x, dev), np.concatenate([vp, beta]), best)

    def _beta_point(self, j: int, x: float, start: np.ndarray) -> _Point:
        sub = self._fixed_model(j)
        sub.set_response(self.frame.y - x * self.frame.X[:, j])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            os_ = optimize_theta(sub, start=start, ftol_rel=0.0, ftol_abs=_FTOL,
                                 xtol_abs=1e-9)
        assert os_.final is not None
        theta = os_.final
        sigma = sub.sigma()
        beta_rest = sub.factor.solve_u_beta()[1]
        beta = np.insert(beta_rest, j, x)
        values = np.concatenate([self.map.from_theta(theta, sigma), beta])
        return _Point(x, self._zeta(self.nvp + j, x, os_.fmin), values, theta.copy())

    def _start_at_center(self, i: int) -> np.ndarray:
        if i < self.nvp:
            return np.delete(self.vp_hat, i)
        return self.theta_hat.copy()

    def first_step(self, i: int) -> float:
        if i < self.nvp:
            return 0.02 * (1.0 if self.map.kinds[i] == "cor"
                           else max(abs(float(self.center[i])), 0.01 * self.sigma_hat))
        return 0.25 * float(self.beta_se[i - self.nvp])

class _GlmmProfiler(_ProfilerBase):
    """A GLMM's Laplace deviance over the random effects' SDs and correlations, the fixed
    effects and the family's own parameters (which are re-optimized, not profiled); a held
    parameter's others are found by BOBYQA on scaled coordinates from the neighbouring
    point's values. (lme4 profiles GLMMs the same way, by its deviance function over
    ``theta`` and ``beta``.)"""

    def __init__(self, result):
        from ..glmm.fit import full_objective

        model, quad = result._working_model()
        if quad is not None:
            raise GlammError("profiles of a quadrature fit (nagq > 1) are not available yet; "
                             "use method='Wald' or 'boot', or profile the Laplace fit")
        if model.loadings is not None or model.response.mixed:
            raise GlammError("profiles of models with factor loadings or mixed response "
                             "families are not available; use method='Wald'")
        if model.response.lambda_scale_moves or model.penalty is not None:
            raise GlammError(
                "profiles of GLMMs whose family has a dispersion parameter (the random "
                "effects' SDs then move with it) or with penalized fixed effects are not "
                "available yet; use method='Wald' or 'boot'")
        self.model = model
        self.layout = model.parameters
        self.f = full_objective(model)
        frame = result.frame
        self.map = SdCorMap(frame.reterms, with_sigma=False)
        x_hat = result._parameter_vector()
        theta = self.layout.get(x_hat, "theta")
        beta = self.layout.get(x_hat, "beta")
        self.resp_hat = self.layout.get(x_hat, "response")
        self.base = float(self.f(x_hat))
        vp = self.map.from_theta(theta, 1.0)
        self.nvp = self.map.size
        self.p = beta.size
        self.names = self.map.names + list(frame.xnames)
        self.aliases = self.map.aliases + list(frame.xnames)
        self.center = np.concatenate([vp, beta])
        self.full_hat = np.concatenate([self.center, self.resp_hat])
        nr = self.resp_hat.size
        self.lower = np.concatenate([self.map.lower(), np.full(self.p, -np.inf)])
        self.upper = np.concatenate([self.map.upper(), np.full(self.p, np.inf)])
        self._lo_all = np.concatenate([self.lower, np.full(nr, -np.inf)])
        self._up_all = np.concatenate([self.upper, np.full(nr, np.inf)])
        se = result.stderr.to_numpy(dtype=float)
        self.beta_se = np.where(np.isfinite(se) & (se > 0), se, 0.1)
        kinds = np.array(self.map.kinds)
        self._scale = np.concatenate([
            np.where(kinds == "cor", 1.0, np.maximum(np.abs(vp), 0.05)), self.beta_se,
            np.ones(nr)])

    def deviance(self, full: np.ndarray) -> float:
        theta = self.map.to_theta(full[:self.nvp], 1.0)
        if theta is None:
            return math.inf
        x = self.layout.assemble({"theta": theta, "beta": full[self.nvp:self.nvp + self.p],
                                  "response": full[self.nvp + self.p:],
                                  "lambda": np.zeros(0)})
        val = float(self.f(x))
        return val if np.isfinite(val) else math.inf

    def point(self, i: int, x: float, start: np.ndarray) -> _Point:
        others = np.array([k for k in range(self.full_hat.size) if k != i])
        sc = self._scale[others]
        full = self.full_hat.copy()
        full[i] = x

        def g(z: np.ndarray) -> float:
            full[others] = z * sc
            return self.deviance(full)

        lo, up = self._lo_all[others] / sc, self._up_all[others] / sc
        os_ = minimize(g, np.clip(start / sc, lo, up), lo, upper=up, ftol_rel=0.0,
                       ftol_abs=1e-9, xtol_abs=1e-7, initial_step=0.1, maxfeval=20000)
        assert os_.final is not None
        best = os_.final * sc
        full[others] = best
        return _Point(x, self._zeta(i, x, os_.fmin), full[:self.nvp + self.p].copy(), best)

    def _start_at_center(self, i: int) -> np.ndarray:
        return np.delete(self.full_hat, i)

    def first_step(self, i: int) -> float:
        if i < self.nvp:
            return 0.05 * (1.0 if self.map.kinds[i] == "cor"
                           else max(abs(float(self.center[i])), 0.05))
        return 0.25 * float(self.beta_se[i - self.nvp])


def _vcov_ml(model: LinearMixedModel, sigma: float) -> np.ndarray:
    from ..lmm.estimates import vcov_beta

    return vcov_beta(model, sigma)


def _which(names: list[str], aliases: list[str], nvp: int,
           which: str | Iterable[str | int] | None) -> list[int]:
    """Positions selected by ``which``: ``None`` (all), ``"theta_"`` (the variance
    parameters), ``"beta_"`` (the fixed effects), or names / aliases / positions."""
    if which is None:
        return list(range(len(names)))
    items = [which] if isinstance(which, str | int) else list(which)
    out: list[int] = []
    for it in items:
        if it == "theta_":
            out.extend(range(nvp))
        elif it == "beta_":
            out.extend(range(nvp, len(names)))
        elif isinstance(it, int | np.integer):
            if not 0 <= int(it) < len(names):
                raise GlammError(f"parameter position {it} is out of range 0..{len(names) - 1}")
            out.append(int(it))
        elif it in names:
            out.append(names.index(it))
        elif it in aliases:
            out.append(aliases.index(it))
        else:
            raise GlammError(f"unknown parameter {it!r}; the parameters are "
                             f"{', '.join(names)} (or {', '.join(aliases)})")
    return sorted(set(out))


def profile(result, which=None, level: float = 0.99, progress: bool | None = None
            ) -> Profile:
    """Likelihood profiles of a fitted LMM or GLMM (lme4's ``profile``; a GLMM's of its
    Laplace deviance, over the random effects' SDs and correlations and the fixed effects).

    Parameters
    ----------
    result : LmerResult or GlmerResult
        A fitted mixed model with unstructured or scalar random-effects terms (a GLMM by
        the Laplace approximation, of a family without a dispersion parameter).
    which : str, int or list, optional
        The parameters: ``None`` (all), ``"theta_"`` (the SDs, correlations and ``sigma``),
        ``"beta_"`` (the fixed effects), or names (``.sig01``, ``sigma``, ``Days``) and
        positions.
    level : float
        Each profile is followed until ``|zeta|`` passes the normal quantile of this level
        (default 0.99), or to the parameter's bound.
    progress : bool, optional
        Show a progress bar over the parameters (default: in a terminal or notebook).

    Returns
    -------
    Profile
    """
    from ..results.glmer_result import GlmerResult

    if getattr(result, "_exact", None) is not None:
        raise GlammError("profiles are not available for a model without a residual "
                         "(dispformula='~ 0')")
    prof: _ProfilerBase = _GlmmProfiler(result) if isinstance(result, GlmerResult) \
        else _LmmProfiler(result)
    idx = _which(prof.names, prof.aliases, prof.nvp, which)
    return Profile(prof, idx, float(stats.norm.ppf(0.5 + level / 2.0)) + 0.05, progress)

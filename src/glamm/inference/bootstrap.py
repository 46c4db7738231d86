"""Parametric bootstrap of a fitted mixed model (lme4's ``bootMer``, MixedModels.jl's
``parametricbootstrap``).

Each replicate simulates a response from the fitted model (new random effects and new
residuals, :mod:`glamm.inference.simulate`) and refits the model to it. The refits reuse the
model's structure: for an LMM the cross-products are refilled with the new response and
``theta`` is re-optimized from the estimates (no formula, no model frame, no symbolic
factorization per replicate); a GLMM gets a new model object on the same frame. Replicates
have their own random streams (``numpy.random.SeedSequence.spawn``), so the numbers do not
depend on ``n_jobs``.

Intervals from the replicates: percentile (default), basic and normal, as lme4's
``boot.type``, bias-corrected percentile (``"bc"``: shifted by the share of replicates
below the estimate) and BCa (``"bca"``: also accelerated, the acceleration from a jackknife
that leaves out one level of the first grouping factor at a time, the units of a
clustered design). Not public API (the results' ``bootstrap`` is).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, GlammError, SingularFitWarning
from ..optim.backends import backend_of
from .profile import _percent_names
from .progress import progress_bar
from .simulate import simulation_model
from .varpar import SdCorMap

INTERVALS = ("percentile", "basic", "norm", "bc", "bca")
#: optimizer settings of an LMM's refits
REFIT_SETTINGS: dict[str, Any] = {"ftol_rel": 0.0, "ftol_abs": 1e-8, "xtol_abs": 1e-8}


class _LmmRefit:
    """Refits of an LMM to new responses: the model's cross-products refilled, ``theta``
    re-optimized from the estimates."""

    def __init__(self, result):
        from ..lmm.model import LinearMixedModel

        self.result = result
        self.model = LinearMixedModel(result.frame, reml=result.reml)
        self.theta0 = np.asarray(result.theta, dtype=float)
        self.optimizer = backend_of(result.optsum.optimizer)
        try:
            self.map: SdCorMap | None = SdCorMap(result.frame.reterms)
            self.var_names = self.map.names
            self.var_aliases = self.map.aliases
        except GlammError:   # structured covariances: their theta and sigma
            self.map = None
            self.var_names = [f"theta_{nm}" for nm in result.theta_names] + [".sigma"]
            self.var_aliases = list(result.theta_names) + ["sigma"]
        self.names = list(result.fixef.index) + self.var_names
        self.aliases = list(result.fixef.index) + self.var_aliases

    def estimates(self) -> np.ndarray:
        r = self.result
        return self._vector(r.fixef.to_numpy(dtype=float), self.theta0, float(r.sigma))

    def _vector(self, beta: np.ndarray, theta: np.ndarray, sigma: float) -> np.ndarray:
        var = self.map.from_theta(theta, sigma) if self.map is not None \
            else np.concatenate([theta, [sigma]])
        return np.concatenate([beta, var])

    def refit(self, y: np.ndarray):
        from ..lmm.estimates import fixed_and_random
        from ..lmm.fit import optimize_theta

        m = self.model
        m.set_response(y)
        # (lme4's nloptwrap tolerances, as its bootMer refits use: the deviance to 1e-8,
        # far below the replicates' spread; the fit's own 1e-15 relative costs 40% more
        # evaluations)
        self._last = optimize_theta(m, start=self.theta0, optimizer=self.optimizer,
                                    **REFIT_SETTINGS)
        beta, _ = fixed_and_random(m)
        assert m.theta is not None
        return self._vector(beta, m.theta, m.sigma())

    def result_for(self, y: np.ndarray):
        """A full :class:`LmerResult` of the refit (for a user's statistic; on a copy of the
        model, which the next refit does not change)."""
        from ..lmm.model import LinearMixedModel
        from ..results.lmer_result import LmerResult

        self.refit(y)
        frame = self.result.frame
        import dataclasses

        model = LinearMixedModel(dataclasses.replace(frame, y=np.asarray(y, dtype=float)),
                                 reml=self.model.reml)
        assert self.model.theta is not None
        model.set_theta(self.model.theta)
        return LmerResult(model, self._last)


class _GlmmRefit:
    """Refits of a GLMM: a model on the same frame with the new response, fitted from the
    estimates."""

    def __init__(self, result):
        self.result = result
        self.theta0 = np.asarray(result.theta, dtype=float)
        try:
            self.map: SdCorMap | None = SdCorMap(result.frame.reterms, with_sigma=False)
            self.var_names = self.map.names
            self.var_aliases = self.map.aliases
        except GlammError:
            self.map = None
            self.var_names = [f"theta_{nm}" for nm in result.theta_names]
            self.var_aliases = list(result.theta_names)
        resp = result.model.response
        self.resp_names = list(resp.parameter_names)
        self.names = list(result.fixef.index) + self.var_names + self.resp_names
        self.aliases = list(result.fixef.index) + self.var_aliases + self.resp_names

    def _vector(self, model, theta, beta) -> np.ndarray:
        """``beta``, the random effects' SDs and correlations (``lambda`` carries the
        family's scale), the response parameters (log scale, as fitted)."""
        scale = float(model.lambda_scale)
        var = self.map.from_theta(theta, scale) if self.map is not None else theta
        resp = model.response.parameters() if self.resp_names else np.zeros(0)
        return np.concatenate([beta, var, resp])

    def estimates(self) -> np.ndarray:
        r = self.result
        return self._vector(r.model, self.theta0, r.fixef.to_numpy(dtype=float))

    def _model(self, y: np.ndarray):
        import dataclasses

        from ..glmer_api import glmm_model

        r = self.result
        m = glmm_model(dataclasses.replace(r.frame, y=y), r.model.response.base_family,
                       laplace=r.model.laplace_information,
                       dispersion_design=r.model.response.dispersion_design)
        m.penalty = r.model.penalty
        return m

    def refit(self, y: np.ndarray) -> np.ndarray:
        from ..glmm.fit import fit_glmm

        m = self._model(y)
        fit_glmm(m, start=self.theta0)
        assert m.theta is not None
        return self._vector(m, m.theta, m.beta)

    def result_for(self, y: np.ndarray):
        from ..glmm.fit import fit_glmm
        from ..results.glmer_result import GlmerResult

        m = self._model(y)
        record = fit_glmm(m, start=self.theta0)
        return GlmerResult(m, record, m.response.base_family)


def _refitter(result):
    from ..results.glmer_result import GlmerResult
    from ..results.lmer_result import LmerResult

    if isinstance(result, LmerResult):
        return _LmmRefit(result)
    if isinstance(result, GlmerResult):
        if result.record.quadrature is not None:
            raise GlammError("the bootstrap refits by the Laplace approximation; a "
                             "quadrature fit (nagq > 1) is not supported yet")
        return _GlmmRefit(result)
    raise GlammError(f"bootstrap is available for glamm.lmer and glamm.glmer fits, not "
                     f"{type(result).__name__}")


# ------------------------------------------------------------------ the replicate loop
# state a forked worker process inherits (set by the parent just before the pool starts)
_WORKER: dict = {}


def _run_chunk(seeds: list[np.random.SeedSequence]) -> tuple[np.ndarray, list]:
    st = _WORKER
    return _replicates(st["refit"], st["sim"], st["re"], st["stat"], seeds, None)


def _replicates(refit, sim, re, stat: Callable | None, seeds, bar):
    rows = []
    extra = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", SingularFitWarning)
        for ss in seeds:
            rng = np.random.default_rng(ss)
            y = sim.response(sim.eta(re, rng), rng)
            try:
                if stat is None:
                    rows.append(refit.refit(y))
                else:
                    value = stat(refit.result_for(y))
                    extra.append(value)
                    rows.append(np.zeros(0))
            except Exception:   # a replicate the fit fails on is recorded as missing
                rows.append(None)
                if stat is not None:
                    extra.append(None)
            if bar is not None:
                bar.update(1)
    return rows, extra


class BootstrapResult:
    """Replicates of a parametric bootstrap (:meth:`~glamm.results.lmer_result.LmerResult.
    bootstrap`).

    Attributes
    ----------
    replicates : DataFrame
        One row per replicate: the fixed effects, then the variance parameters on the SD /
        correlation scale under lme4's names (``.sig01``, ..., ``.sigma``), then a GLMM's
        response parameters; with ``stat``, the statistic's values instead (a scalar, or one
        column per entry of what it returns). Failed refits are rows of NaN.
    estimates : Series
        The same quantities at the original fit.
    aliases : dict
        Column name -> clearer name (``.sig01`` -> ``sd_(Intercept)|Subject``).
    n_failed : int
        Replicates whose refit failed.
    """

    def __init__(self, replicates: pd.DataFrame, estimates: pd.Series, aliases: dict,
                 seed, result=None, stat: Callable | None = None):
        self.replicates = replicates
        self.estimates = estimates
        self.aliases = aliases
        self.seed = seed
        self.n_failed = int(replicates.isna().all(axis=1).sum())
        self._result = result
        self._stat = stat
        self._jack: pd.DataFrame | None = None

    def jackknife(self) -> pd.DataFrame:
        """The quantities refitted with each level of the first grouping factor left out
        (one row per level; the acceleration of the BCa intervals). Refits through the
        recorded call (``result.update(data=...)``)."""
        if self._jack is not None:
            return self._jack
        r = self._result
        call = getattr(r, "_call", None)
        data = call[1].get("data") if call is not None else None
        if r is None or data is None or not isinstance(data, pd.DataFrame):
            raise GlammError("BCa intervals need the fitted model and its data frame (a "
                             "result of glamm.lmer or glamm.glmer)")
        term = next(t for t in r.frame.reterms if t.is_grouped)
        rows = data.loc[r.frame.row_index]
        codes = term.refs
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for g in range(term.nlevels):
                sub = rows[codes != g]
                fit = r.update(data=sub)
                if self._stat is None:
                    refit = _refitter(fit)
                    vals = pd.Series(refit.estimates(), index=refit.names)
                else:
                    vals = _stat_frame([self._stat(fit)], self._stat(fit))[1]
                out.append(vals.reindex(self.replicates.columns))
        self._jack = pd.DataFrame(out, index=list(term.levels)).reset_index(drop=True)
        return self._jack

    def __repr__(self) -> str:
        return (f"BootstrapResult({len(self.replicates)} replicates, {self.n_failed} failed; "
                f"columns {', '.join(map(str, self.replicates.columns))})")

    def summary(self) -> pd.DataFrame:
        """Per quantity: the estimate, the replicates' mean (its bias) and SD."""
        reps = self.replicates
        return pd.DataFrame({"estimate": self.estimates, "bias": reps.mean() - self.estimates,
                             "std.error": reps.std(ddof=1)})

    def confint(self, level: float = 0.95, method: str = "percentile") -> pd.DataFrame:
        """Bootstrap intervals: ``"percentile"`` (default), ``"basic"`` (``2 est - q``),
        ``"norm"`` (``est - bias +- z sd``), ``"bc"`` (bias-corrected percentile) or
        ``"bca"`` (bias-corrected and accelerated: the acceleration from a jackknife over
        the levels of the first grouping factor, :meth:`jackknife`, one refit per level).
        Rows in lme4's order (variance parameters, then fixed effects), first two columns
        the bounds, then ``term``."""
        if method not in INTERVALS:
            raise GlammError(f"method must be one of {', '.join(INTERVALS)}, got {method!r}")
        a = (1.0 - level) / 2.0
        lo_name, hi_name = _percent_names(level)
        jack = self.jackknife() if method == "bca" else None
        rows = []
        for col in self.replicates.columns:
            x = self.replicates[col].to_numpy(dtype=float)
            x = x[np.isfinite(x)]
            est = float(self.estimates.get(col, np.nan))
            if x.size < 2:
                rows.append((col, np.nan, np.nan))
                continue
            if method == "percentile":
                lo, hi = np.quantile(x, [a, 1 - a])
            elif method == "basic":
                q = np.quantile(x, [a, 1 - a])
                lo, hi = 2 * est - q[1], 2 * est - q[0]
            elif method == "norm":
                z = stats.norm.ppf(1 - a)
                bias = float(np.mean(x)) - est
                sd = float(np.std(x, ddof=1))
                lo, hi = est - bias - z * sd, est - bias + z * sd
            else:
                share = (np.sum(x < est) + 0.5 * np.sum(x == est)) / x.size
                z0 = stats.norm.ppf(min(max(share, 1e-12), 1 - 1e-12))
                z = stats.norm.ppf([a, 1 - a])
                acc = 0.0
                if jack is not None:
                    jv = jack[col].to_numpy(dtype=float)
                    jv = jv[np.isfinite(jv)]
                    dev = jv.mean() - jv
                    den = 6.0 * float(np.sum(dev**2)) ** 1.5
                    acc = float(np.sum(dev**3)) / den if den > 0 else 0.0
                adj = z0 + (z0 + z) / (1.0 - acc * (z0 + z))
                lo, hi = np.quantile(x, stats.norm.cdf(adj))
            rows.append((col, float(lo), float(hi)))
        out = pd.DataFrame(rows, columns=["name", lo_name, hi_name]).set_index("name")
        out.index.name = None
        out["term"] = [self.aliases.get(c, c) for c in out.index]
        order = [c for c in out.index if str(c).startswith(".sig") or c == ".sigma"] + \
            [c for c in out.index if not (str(c).startswith(".sig") or c == ".sigma")]
        return out.loc[order]


def bootstrap(result, n: int = 1000, seed=None, stat: Callable | None = None,
              n_jobs: int = 1, progress: bool | None = None, re: bool = True
              ) -> BootstrapResult:
    """See the results' ``bootstrap``."""
    n = int(n)
    if n < 1:
        raise GlammError(f"n must be at least 1, got {n}")
    refit = _refitter(result)
    sim = simulation_model(result)
    seeds = np.random.SeedSequence(seed).spawn(n)
    n_jobs = int(os.cpu_count() or 1) if n_jobs in (-1, None) else max(1, int(n_jobs))
    bar = progress_bar(n, progress, "bootstrap", "fit")
    try:
        if n_jobs == 1 or n < 2 * n_jobs:
            rows, extra = _replicates(refit, sim, re, stat, seeds, bar)
        else:
            rows, extra = _parallel(refit, sim, re, stat, seeds, n_jobs, bar)
    finally:
        if bar is not None:
            bar.close()
    if stat is None:
        width = len(refit.names)
        data = np.array([r if r is not None else np.full(width, np.nan) for r in rows])
        reps = pd.DataFrame(data.reshape(n, width), columns=refit.names)
        est = pd.Series(refit.estimates(), index=refit.names)
        aliases = dict(zip(refit.names, refit.aliases, strict=True))
    else:
        reps, est = _stat_frame(extra, stat(result))
        aliases = {}
    return BootstrapResult(reps, est, aliases, seed, result=result, stat=stat)


def _parallel(refit, sim, re, stat, seeds, n_jobs, bar):
    """The replicates in ``n_jobs`` processes (forked: they inherit the model), in chunks
    so that the bar moves."""
    import multiprocessing as mp

    try:
        ctx = mp.get_context("fork")
    except ValueError:   # (no fork on this platform: one process)
        return _replicates(refit, sim, re, stat, seeds, bar)
    _WORKER.update(refit=refit, sim=sim, re=re, stat=stat)
    size = max(1, min(50, math.ceil(len(seeds) / (4 * n_jobs))))
    chunks = [seeds[i:i + size] for i in range(0, len(seeds), size)]
    rows: list = []
    extra: list = []
    try:
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
            for r, e in pool.map(_run_chunk, chunks):
                rows.extend(r)
                extra.extend(e)
                if bar is not None:
                    bar.update(len(r))
    finally:
        _WORKER.clear()
    return rows, extra


def _stat_frame(values: list, at_estimate) -> tuple[pd.DataFrame, pd.Series]:
    """The statistic's values as a frame: a scalar -> one column ``stat``; a mapping or
    Series -> its keys; a sequence -> ``stat_0``, ``stat_1``, ..."""
    def as_series(v) -> pd.Series:
        if isinstance(v, pd.Series):
            return v.astype(float)
        if isinstance(v, dict):
            return pd.Series(v, dtype=float)
        arr = np.atleast_1d(np.asarray(v, dtype=float))
        if arr.size == 1 and np.ndim(v) == 0:
            return pd.Series({"stat": float(arr[0])})
        return pd.Series(arr, index=[f"stat_{i}" for i in range(arr.size)])

    est = as_series(at_estimate)
    rows = [as_series(v).reindex(est.index) if v is not None
            else pd.Series(np.nan, index=est.index) for v in values]
    return pd.DataFrame(rows).reset_index(drop=True), est

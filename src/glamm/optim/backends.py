"""Optimizer backends, chosen by name: ``"bobyqa"`` (nlopt's LN_BOBYQA, the default),
``"nelder_mead"`` (nlopt's LN_NELDERMEAD) and ``"lbfgsb"`` (SciPy's L-BFGS-B with numerical
gradients). Each minimizes ``f`` subject to lower bounds and fills an :class:`OptSummary`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import nlopt
import numpy as np

from ..errors import GlammError
from . import trace
from .optsummary import OptSummary

_NLOPT_ALGS = {"bobyqa": nlopt.LN_BOBYQA, "nelder_mead": nlopt.LN_NELDERMEAD}
_NLOPT_CODES = {
    nlopt.SUCCESS: "SUCCESS",
    nlopt.STOPVAL_REACHED: "STOPVAL_REACHED",
    nlopt.FTOL_REACHED: "FTOL_REACHED",
    nlopt.XTOL_REACHED: "XTOL_REACHED",
    nlopt.MAXEVAL_REACHED: "MAXEVAL_REACHED",
    nlopt.MAXTIME_REACHED: "MAXTIME_REACHED",
}


@dataclass
class _BestPoint:
    """The lowest objective value evaluated so far, ``f``, and where, ``x``."""

    f: float
    x: np.ndarray


def backend_of(label: str) -> str:
    """The :func:`minimize` name of the optimizer an :class:`OptSummary` records
    (``"nlopt:LN_BOBYQA"`` -> ``"bobyqa"``), for refits with the fit's own optimizer;
    ``"auto"`` for the LMM's gradient search (``glamm.lmm.fit``); ``"bobyqa"`` for anything
    else."""
    if "analytic gradient" in label:
        return "auto"   # the LMM's gradient search (optimize_theta's "auto")
    name = label.split(":")[-1].lower()
    return {"ln_bobyqa": "bobyqa", "ln_neldermead": "nelder_mead",
            "l-bfgs-b": "lbfgsb"}.get(name, "bobyqa")


def minimize(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    optimizer: str = "bobyqa",
    keep_trace: bool = False,
    log_index: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    **settings,
) -> OptSummary:
    """Minimize ``f`` from ``x0`` with ``x >= lower`` (and ``x <= upper`` if given; not with
    ``log_index``); returns the filled :class:`OptSummary`.

    ``settings`` may override ``ftol_rel``, ``ftol_abs``, ``xtol_abs``, ``initial_step`` and
    ``maxfeval``. ``log_index``: positions of non-negative parameters the optimizer moves on
    the log scale (``x = exp(z)``; for scales spanning orders of magnitude, such as the
    smooths' in glamm.terms.layout). They then approach 0 without reaching it, which callers
    check separately; the summary is reported in ``x``.
    """
    if log_index is not None and len(log_index):
        if upper is not None:
            raise GlammError("upper bounds are not supported with log-scale parameters")
        return _minimize_log(f, x0, lower, optimizer, keep_trace, np.asarray(log_index),
                             settings)
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    name = optimizer.lower()
    if name == "auto":   # the callers' choice where they have a better search (glamm.lmm.fit)
        name = "bobyqa"
    label = f"nlopt:{'LN_BOBYQA' if name == 'bobyqa' else 'LN_NELDERMEAD'}" if name in _NLOPT_ALGS \
        else "scipy:L-BFGS-B" if name == "lbfgsb" else None
    if label is None:
        raise GlammError(f"unknown optimizer {optimizer!r}; choose bobyqa, nelder_mead or lbfgsb")
    os_ = OptSummary(optimizer=label, initial=x0.copy(), lower=lower.copy(), **settings)
    best = _BestPoint(np.inf, x0.copy())

    def wrapped(x: np.ndarray) -> float:
        val = float(f(x))
        os_.feval += 1
        if trace.active():
            trace.report(label.split(":")[-1], os_.feval, val, x)
        if keep_trace:
            os_.trace.append((np.array(x, copy=True), val))
        if val < best.f:
            best.f, best.x = val, np.array(x, copy=True)
        return val

    t0 = time.perf_counter()
    if x0.size == 0:
        os_.final, os_.fmin, os_.converged, os_.returnvalue = x0, wrapped(x0), True, "NO_PARAMETERS"
    elif name in _NLOPT_ALGS:
        n = x0.size
        if name == "bobyqa" and np.any(np.isfinite(lower) & (x0 - lower < os_.initial_step)):
            # BOBYQA moves a start that lies closer to a bound than its first step away from
            # it, and may never come back: the start itself stays a candidate optimum
            wrapped(x0)
        opt = nlopt.opt(_NLOPT_ALGS[name], n)
        opt.set_min_objective(lambda x, grad: wrapped(x))
        opt.set_lower_bounds(lower)
        if upper is not None:
            opt.set_upper_bounds(np.asarray(upper, dtype=float))
        opt.set_ftol_rel(os_.ftol_rel)
        opt.set_ftol_abs(os_.ftol_abs)
        opt.set_xtol_abs(os_.xtol_abs)
        opt.set_maxeval(os_.maxfeval)
        opt.set_initial_step(np.full(n, os_.initial_step))
        try:
            xopt = opt.optimize(x0)
            code = opt.last_optimize_result()
            os_.returnvalue = _NLOPT_CODES.get(code, str(code))
            os_.converged = code in (nlopt.SUCCESS, nlopt.FTOL_REACHED, nlopt.XTOL_REACHED)
            os_.final = np.asarray(xopt, dtype=float)
        except nlopt.RoundoffLimited:
            os_.returnvalue = "ROUNDOFF_LIMITED"
            os_.converged = True
            os_.final = best.x
            os_.messages.append("nlopt stopped at its round-off limit; the best point is kept")
        except (nlopt.ForcedStop, RuntimeError, ValueError) as exc:
            os_.returnvalue = f"FAILURE ({exc})"
            os_.converged = False
            os_.final = best.x
        if os_.returnvalue == "MAXEVAL_REACHED":
            os_.messages.append(f"maximum number of evaluations ({os_.maxfeval}) reached")
    else:
        up = np.full(lower.shape, np.inf) if upper is None else np.asarray(upper, dtype=float)
        bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
                  for lo, hi in zip(lower, up)]
        import scipy.optimize as so  # (on first use: 20 MB)

        res = so.minimize(wrapped, x0, method="L-BFGS-B", bounds=bounds,
                          options={"maxfun": os_.maxfeval, "ftol": 1e-14, "gtol": 1e-8})
        os_.final = np.asarray(res.x, dtype=float)
        os_.returnvalue = str(res.message)
        os_.converged = bool(res.success)
    os_.elapsed = time.perf_counter() - t0
    # the reported optimum is the best point evaluated (a backend may return another one)
    os_.final, os_.fmin = best.x, best.f
    return os_


def _minimize_log(f, x0, lower, optimizer, keep_trace, idx, settings) -> OptSummary:
    """:func:`minimize` with ``x[idx] = exp(z[idx])``."""
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)

    def to_x(z: np.ndarray) -> np.ndarray:
        x = np.array(z, dtype=float, copy=True)
        x[idx] = np.exp(z[idx])
        return x

    z0 = x0.copy()
    z0[idx] = np.log(np.maximum(x0[idx], 1e-8))
    zlo = lower.copy()
    with np.errstate(divide="ignore"):   # a bound at 0 is no bound on the log scale
        zlo[idx] = np.log(np.maximum(lower[idx], 0.0))
    os_ = minimize(lambda z: f(to_x(z)), z0, zlo, optimizer=optimizer, keep_trace=keep_trace,
                   **settings)
    assert os_.final is not None   # set by every minimize run
    os_.initial, os_.lower, os_.final = x0.copy(), lower.copy(), to_x(os_.final)
    os_.trace = [(to_x(z), v) for z, v in os_.trace]
    os_.messages.append(f"parameters {list(map(int, idx))} optimized on the log scale")
    return os_


def minimize_gradient(f: Callable[[np.ndarray], float],
                      grad: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                      lower: np.ndarray, ftol: float = 1e-5, maxiter: int = 5000,
                      gtol: float = 1e-8) -> OptSummary:
    """Minimize ``f`` with ``x >= lower`` by SciPy's L-BFGS-B on the analytic gradient
    ``grad`` (called right after ``f`` at the same point, so it may read state ``f`` left).
    Meant as a first stage: ``ftol`` is L-BFGS-B's relative reduction per iteration, and a
    Newton polish is expected to follow; ``gtol`` bounds the projected gradient's largest
    component at the end (with ``ftol=0`` it is the only test). Non-finite values count as
    ``1e300`` with a zero gradient (the line search then backs off). Returns the filled
    :class:`OptSummary` (its optimum is the best point evaluated)."""
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    os_ = OptSummary(optimizer="scipy:L-BFGS-B (analytic gradient)", initial=x0.copy(),
                     lower=lower.copy(), ftol_rel=ftol)
    best = _BestPoint(np.inf, x0.copy())

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        os_.feval += 1
        val = float(f(x))
        if trace.active():
            trace.report("L-BFGS-B", os_.feval, val, x)
        if not np.isfinite(val):
            return 1e300, np.zeros_like(x)
        if val < best.f:
            best.f, best.x = val, np.array(x, copy=True)
        return val, np.asarray(grad(x), dtype=float)

    t0 = time.perf_counter()
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    import scipy.optimize as so  # (on first use: 20 MB)

    res = so.minimize(value_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": maxiter, "ftol": ftol, "gtol": gtol})
    os_.returnvalue = str(res.message)
    os_.converged = bool(res.success)
    if not os_.converged and res.status == 2 and np.all(np.isfinite(res.jac)):
        # the line search found no lower point: converged if the projected gradient is as
        # small as round-off in the objective allows
        at_lower = np.isfinite(lower) & (res.x <= lower) & (res.jac > 0)
        pg = np.where(at_lower, 0.0, res.jac)
        os_.converged = bool(np.max(np.abs(pg), initial=0.0) <= 1e3 * gtol)
    os_.elapsed = time.perf_counter() - t0
    os_.final, os_.fmin = best.x, best.f
    return os_


def minimize_lbfgs(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray,
                   lower: np.ndarray, gtol: float, ftol_rel: float = 1e-15,
                   xtol_abs: float = 1e-10, maxeval: int = 100_000) -> OptSummary:
    """Minimize with ``x >= lower`` by nlopt's L-BFGS (LD_LBFGS) on a function returning the
    value and the gradient together (one evaluation serves both). nlopt stops when the
    value or the point no longer changes (``ftol_rel``, ``xtol_abs``), or when its line
    search can make no progress (a round-off stop, common at tight tolerances); either way
    the run counts as converged only if the projected gradient at the best point
    evaluated is at most ``gtol`` in every component, which also stops the search as soon
    as it holds. Non-finite values count as
    ``1e300`` with a zero gradient. Returns the filled :class:`OptSummary`."""
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    os_ = OptSummary(optimizer="nlopt:LD_LBFGS (analytic gradient)", initial=x0.copy(),
                     lower=lower.copy(), ftol_rel=ftol_rel, xtol_abs=xtol_abs,
                     maxfeval=maxeval)
    best = _BestPoint(np.inf, x0.copy())
    best_grad = [np.zeros_like(x0)]

    def f(x: np.ndarray, grad: np.ndarray) -> float:
        os_.feval += 1
        val, g = fg(x)
        val = float(val)
        if trace.active():
            trace.report("L-BFGS", os_.feval, val, x)
        if not np.isfinite(val):
            if grad.size:
                grad[:] = 0.0
            return 1e300
        if grad.size:
            grad[:] = g
        if val < best.f:
            best.f, best.x = val, np.array(x, copy=True)
            best_grad[0] = np.array(g, dtype=float, copy=True)
            if _projected_max(best.x, best_grad[0], lower) <= gtol:
                opt.force_stop()   # small enough: nlopt itself has no gradient test
        return val

    t0 = time.perf_counter()
    opt = nlopt.opt(nlopt.LD_LBFGS, x0.size)
    opt.set_min_objective(f)
    opt.set_lower_bounds(lower)
    opt.set_ftol_rel(ftol_rel)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    try:
        opt.optimize(x0)
        code = opt.last_optimize_result()
        os_.returnvalue = _NLOPT_CODES.get(code, str(code))
    except nlopt.ForcedStop:
        os_.returnvalue = "GTOL_REACHED"
    except nlopt.RoundoffLimited:
        os_.returnvalue = "ROUNDOFF_LIMITED"
    except Exception as exc:   # nlopt's own runtime_error: its line search gave up
        os_.returnvalue = f"FAILURE ({type(exc).__name__})"
    pg = _projected_max(best.x, best_grad[0], lower)
    os_.converged = bool(np.isfinite(best.f)) and pg <= gtol
    if not os_.converged:
        os_.messages.append(f"L-BFGS stopped ({os_.returnvalue}) with a projected gradient "
                            f"of {pg:.3g}")
    os_.elapsed = time.perf_counter() - t0
    os_.final, os_.fmin = best.x, best.f
    return os_


def _projected_max(x: np.ndarray, g: np.ndarray, lower: np.ndarray) -> float:
    """The largest component of the gradient ``g`` projected on the feasible set at ``x``
    (components at their lower bound pointing outward count as 0)."""
    at_lower = np.isfinite(lower) & (x <= lower) & (g > 0)
    return float(np.max(np.abs(np.where(at_lower, 0.0, g)), initial=0.0))

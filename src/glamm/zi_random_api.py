"""Zero-inflated and hurdle GLMMs with random effects in the zero part (glmmTMB's
``ziformula = ~ x + (1 | g)``), reached through :func:`glamm.glmer`.

Both parts' random effects must be on one grouping factor (as ``(1 | site)`` in both); each
level's effects are integrated jointly (:mod:`glamm.glmm.two_part`): by the Laplace
approximation, as glmmTMB, or by adaptive Gauss-Hermite quadrature with ``nagq`` points per
dimension, as GLMMadaptive's zero-inflated models. The parameters (covariance parameters,
both parts' coefficients, the count family's own) are estimated by BOBYQA from a GLM start,
then by Newton steps on central differences, whose Hessian gives the standard errors
(glmmTMB's: the full Hessian of the marginal likelihood, not conditional on ``theta``).

Not public API beyond what :func:`glamm.glmer` documents.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DataError, GlammError

if TYPE_CHECKING:
    from .results.zi_random_result import ZiRandomResult

#: relative step of the central-difference Hessian (see fit_two_part)
_HESSIAN_STEP = 1e-3


def has_zero_part_random_effects(ziformula: str | None) -> bool:
    """Whether ``ziformula`` has a random-effects term (a bar)."""
    return ziformula is not None and "|" in ziformula


def glmer_zi_random(formula: str, data: Any, family: Any, link: Any, nagq: int,
                    weights: Any, offset: Any, ziformula: str, start: np.ndarray | None,
                    control: dict | None) -> "ZiRandomResult":
    """Fit the model (see :func:`glamm.glmer`'s ``ziformula``)."""
    from .families.zero_inflated import ZeroInflated
    from .formula.data_input import as_pandas
    from .formula.design import build_model_frame
    from .formula.naming import lme4_names
    from .glmer_api import glmm_frame
    from .glmm.two_part import PartTerm, TwoPartModel
    from .results.zi_random_result import ZiRandomResult

    data = as_pandas(data)
    # the count part and the family, with a placeholder zero part that is replaced below
    frame, fam, _ = glmm_frame(formula, data, family, link, weights, offset,
                               ziformula="~ 1")
    if not isinstance(fam, ZeroInflated):   # pragma: no cover - glmm_frame made one
        raise GlammError("ziformula needs a count family")
    rows = data.loc[frame.row_index].reset_index(drop=True)
    rhs = ziformula.split("~", 1)[1] if "~" in ziformula else ziformula
    probe = "_glamm_zi_response_"
    rows[probe] = 0.0
    zframe = build_model_frame(f"{probe} ~ {rhs}", rows)
    if len(zframe.y) != len(frame.y):
        raise DataError(f"ziformula {ziformula!r}: {len(frame.y) - len(zframe.y)} of the "
                        "model's rows have missing values in the zero part's columns; "
                        "remove them from the data first")
    family2 = ZeroInflated(fam.base, zframe.X, list(lme4_names(list(zframe.xnames))),
                           hurdle=fam.hurdle, zi_spec=zframe.xspec)
    family2._validate_support(frame.y, None)
    group, levels, group_name = _shared_grouping(frame.reterms, zframe.reterms, ziformula)
    terms = ([PartTerm(t.z, t.covariance, "cond", tuple(t.cnames), t) for t in frame.reterms]
             + [PartTerm(t.z, t.covariance, "zi", tuple(t.cnames), t) for t in zframe.reterms])
    model = TwoPartModel(family2, frame.y, frame.X, frame.offset, group, len(levels), terms)
    nagq = int(nagq)
    if nagq < 1:
        raise GlammError(f"nagq must be a positive integer; got {nagq}")
    model.check_quadrature_size(nagq)
    fit = fit_two_part(model, nagq, start, control or {})
    return ZiRandomResult(model, fit, frame=frame, zframe=zframe, group_name=group_name,
                          levels=levels, formula=formula, ziformula=ziformula, nagq=nagq)


def _shared_grouping(cond_terms: list, zi_terms: list, ziformula: str
                     ) -> tuple[np.ndarray, tuple[str, ...], str]:
    """The one grouping factor of both parts: each row's level, the levels and the name."""
    terms = list(cond_terms) + list(zi_terms)
    bad = [t.group for t in terms if not t.is_grouped]
    if bad:
        raise GlammError(f"ziformula {ziformula!r}: smooths are not available with random "
                         "effects in the zero part")
    groups = sorted({t.group for t in terms})
    if len(groups) != 1:
        raise GlammError(f"ziformula {ziformula!r}: with random effects in the zero part, "
                         "both parts' random effects must share one grouping factor (as "
                         f"(1 | site) in both); got {', '.join(groups)}")
    first = terms[0]
    levels = tuple(first.levels)
    for t in terms[1:]:
        if tuple(t.levels) != levels:
            raise GlammError(f"ziformula {ziformula!r}: the grouping factor "
                             f"{first.group!r} has different levels in the two parts")
    return np.asarray(first.refs, dtype=np.intp), levels, first.group


def fit_two_part(model, nagq: int, start: np.ndarray | None, control: dict) -> dict:
    """Estimate the parameters from a GLM start: by the Laplace approximation, L-BFGS-B on
    the analytic gradient then Newton with the Hessian from central differences of that
    gradient; with quadrature, BOBYQA then Newton on central differences of the deviance.
    A variance that ends on its bound is refitted once from its starting value (the lower
    deviance is kept). The last Hessian gives the standard errors. Returns a dict with
    ``x``, ``deviance``, ``hessian``, ``gradient``, ``records`` (the optimizers' summaries),
    ``converged`` and ``messages``."""
    from .glmm.glm import fit_glm
    from .optim.backends import minimize, minimize_gradient
    from .optim.kkt import interior_restart_point
    from .optim.newton import FiniteDifferences, newton_minimize
    from .optim.optsummary import OptSummary

    fam = model.family
    glm = fit_glm(model.X, model.y, np.ones(model.n), model.offset, fam.base)
    mu0 = fam.base.link.inverse(model.X @ glm.beta + model.offset)
    own_gamma = fam.extra_start(model.y, mu0, np.ones(model.n))
    theta0 = model.initial_theta() if start is None else np.asarray(start, dtype=float)
    lower = model.lower()
    x0 = np.concatenate([np.maximum(theta0, lower[:theta0.size]), glm.beta,
                         own_gamma[model.n_own:], own_gamma[:model.n_own]])

    def f(x: np.ndarray) -> float:
        return model.deviance(x, nagq)

    derivs: Any = (_GradientDerivatives(f, model.gradient, model) if nagq == 1
                   else FiniteDifferences(f))

    def optimize_from(x_start: np.ndarray, beat: float = math.inf):
        """The first optimizer from ``x_start``, then Newton; returns the two summaries,
        the point, its deviance, the Newton result, the first optimizer's point and the
        Hessian there (``None`` for all but the first summary where nothing was finite, or
        where the first optimizer ended above ``beat``: a refit that cannot win stops
        there)."""
        if nagq == 1:
            first = minimize_gradient(f, model.gradient, x_start, lower, ftol=1e-10)
        else:
            # quadrature: from the Laplace fit (the answers differ by little), by BOBYQA with
            # small first steps
            laplace = minimize_gradient(lambda z: model.deviance(z, 1), model.gradient,
                                        x_start, lower, ftol=1e-10)
            if laplace.final is not None and np.isfinite(laplace.fmin):
                x_start = laplace.final
            settings = {"ftol_rel": 1e-8, "ftol_abs": 0.0, "xtol_abs": 1e-6,
                        "initial_step": 0.05, **control}
            first = minimize(f, x_start, lower, optimizer="bobyqa", **settings)
        assert first.final is not None
        if not np.isfinite(first.fmin) or first.fmin > beat:
            return first, None, None, math.inf, None, None, None
        x_b = first.final.copy()
        _, hess_b, _ = derivs.grad_hess(x_b)
        record = OptSummary(optimizer="newton", initial=x_b.copy(), lower=lower.copy(),
                            ftol_rel=1e-15)
        scale = np.maximum(np.abs(x_b), 0.1)
        res = newton_minimize(f, x_b, lower, record, scale, derivs=derivs, hessian=hess_b)
        x = res.x if res.fx <= first.fmin else x_b
        dev = min(res.fx, first.fmin)
        record.final, record.fmin, record.converged = x.copy(), dev, bool(res.converged)
        return first, record, x, dev, res, x_b, hess_b

    first, record, x, dev, res, x_b, hess = optimize_from(x0)
    if x is None:
        raise GlammError("the zero-inflated model's likelihood could not be evaluated at any "
                         "value tried; check the response and the covariates' scales")
    messages = []
    # a variance on its bound can be a local optimum (the deviance is flat in a standard
    # deviation at zero): refit from its starting value and keep the lower deviance
    on, trial = interior_restart_point(x, lower, theta0.size, model.initial_theta(), 0.1)
    if on.size:
        alt = optimize_from(trial, beat=dev + 1e-6 * (1.0 + abs(dev)))
        # (only a converged refit counts: far from the bound the Laplace approximation of a
        # zero part with a large random-effect variance can fall below the true deviance,
        # where Newton then fails)
        if alt[2] is not None and alt[4].converged and alt[3] < dev - 1e-10 * (1.0 + abs(dev)):
            messages.append(f"theta{list(map(int, on))} on the bound was a local optimum: "
                            f"refitting from the starting values found a lower deviance "
                            f"({dev:.8g} -> {alt[3]:.8g})")
            first, record, x, dev, res, x_b, hess = alt
    if np.any(np.abs(x - x_b) > 1e-3 * np.maximum(np.abs(x_b), 0.1)):
        grad, hess, _ = derivs.grad_hess(x)   # the Hessian for the standard errors
    else:
        grad = derivs.grad(x)
    model.deviance(x, nagq)   # leave the modes at the answer
    at_bound = np.isfinite(lower) & (x <= lower + 1e-10)
    inward = at_bound & (grad < -1e-4 * max(1.0, abs(dev)))
    if np.any(inward):
        messages.append("a covariance parameter stopped on its bound while the deviance "
                        "decreases inward")
    free = ~at_bound
    gnorm = float(np.max(np.abs(grad[free]))) if free.any() else 0.0
    converged = bool(res.converged) or gnorm < 1e-3
    if not converged:
        messages.append(f"Newton did not converge (largest gradient {gnorm:.2g})")
    return {"x": x, "deviance": dev, "hessian": hess, "gradient": grad,
            "records": [first, record], "converged": converged and not np.any(inward),
            "messages": messages}


class _GradientDerivatives:
    """Newton's derivatives from an analytic gradient: the Hessian by forward differences
    of the gradient (steps ``1e-5 max(|x|, 0.1)``), symmetrized."""

    def __init__(self, f, grad, model=None):
        self.f, self.g, self.record, self.model = f, grad, None, model

    def value(self, x: np.ndarray) -> float:
        if self.record is not None:
            self.record.feval += 1
        return float(self.f(x))

    def grad(self, x: np.ndarray, fx: float | None = None) -> np.ndarray:
        if fx is None:
            self.value(x)
        return np.asarray(self.g(x), dtype=float)

    def grad_hess(self, x: np.ndarray):
        x = np.asarray(x, dtype=float)
        fx = self.value(x)
        g0 = self.grad(x, fx)
        h = 1e-5 * np.maximum(np.abs(x), 0.1)
        H = np.zeros((x.size, x.size))
        if self.model is not None:
            # the difference points' modes are searched from the centre's (a function of
            # x alone, so the Hessian does not depend on the optimizer's path)
            self.model.mode_start = self.model.u.copy()
        try:
            for i in range(x.size):
                e = np.zeros(x.size)
                e[i] = h[i]
                # (the gradient finds its own modes: no deviance is needed at these points;
                # forward differences: the gradient is exact to the modes' tolerance)
                H[:, i] = (np.asarray(self.g(x + e)) - g0) / h[i]
        finally:
            if self.model is not None:
                self.model.mode_start = None
        return g0, 0.5 * (H + H.T), fx

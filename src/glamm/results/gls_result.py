"""The result of :func:`glamm.gls`: generalized least squares with a residual correlation
structure and/or variance function (R's ``nlme::gls``)."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..corstruct.fit import GlsProblem, Profile, criterion
from ..corstruct.spec import CorrelationSpec
from ..formula.design import ModelFrame
from ..lmm.dispersion import DispersionDesign, variance_table
from ..optim.optsummary import OptSummary
from .export import fit_dict
from .formatting import _table, format_column, format_number


class GlsResult:
    """A linear model with correlated residuals fitted by :func:`glamm.gls`.

    Attributes
    ----------
    formula : str
        The formula as given.
    method : str
        ``"REML"`` or ``"ML"``; ``reml`` the flag.
    frame : ModelFrame
        Response, ``X`` and the rows used.
    fixef : pandas.Series
        Coefficients (glamm's / R's names); ``stderr`` their standard errors, ``vcov`` their
        covariance ``r / (n - p) (X' V^-1 X)^-1`` (nlme's ``vcov``: ``r`` the whitened
        residual sum of squares, so ``sigma^2`` for REML and ``sigma^2 n / (n - p)`` for
        ML).
    sigma : float
        Residual SD (nlme's ``sigma``: for REML ``sqrt(r / (n - p))``, for ML ``sqrt(r / n)``;
        with a variance function, the SD where the multiplier is 1).
    loglik : float
        Log-likelihood (the REML one for REML fits), as nlme's ``logLik``; ``deviance`` is
        ``-2 loglik``, ``aic`` and ``bic`` nlme's (``bic`` with ``n - p`` observations for
        REML).
    nobs : int
        Rows used; ``npar`` the number of parameters (coefficients, correlation and variance
        parameters, ``sigma``); ``df_resid = nobs - p``.
    correlation_structure : str or None
        The ``correlation=`` string; ``correlation`` (a DataFrame, lazily) its parameters on
        nlme's scale with approximate standard errors.
    variance_function : pandas.DataFrame or None
        The variance function's table (as for :func:`glamm.lmer`; lazily), ``delta`` its log
        SD parameters, ``dispersion_design`` its design.
    ngroups : int
        Number of groups of the correlation structure.
    optsum : OptSummary
        The optimizer's record (parameters on the unconstrained scale).
    """

    def __init__(self, frame: ModelFrame, problem: GlsProblem, x: np.ndarray, pr: Profile,
                 optsum: OptSummary, spec: CorrelationSpec | None,
                 disp: DispersionDesign | None, optimizer: str):
        self.frame = frame
        self.problem = problem
        self.parameters = np.asarray(x, dtype=float)
        self.optsum = optsum
        self.optimizer = optimizer
        self.spec = spec
        self.dispersion_design = disp
        self.formula = frame.parsed.formula
        self.reml = bool(problem.reml)
        self.method = "REML" if self.reml else "ML"
        self.correlation_structure = None if spec is None else spec.text
        self.structure = problem.structure
        self.ngroups = problem.layout.ngroups if spec is not None else None
        xn = list(frame.xnames)
        n, p = frame.X.shape
        self.nobs = int(n)
        self.df_resid = n - p
        self.sigma = float(pr.sigma)
        self.loglik = -0.5 * pr.criterion
        self.deviance = pr.criterion
        self.npar = p + problem.n_z + problem.n_delta + 1
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        self.bic = -2.0 * self.loglik + math.log(n - p if self.reml else n) * self.npar
        self.fixef = pd.Series(pr.beta.copy(), index=xn, name="Estimate")
        Rinv = np.linalg.inv(pr.RX) if p else np.zeros((0, 0))
        # nlme scales by r / (n - p) for ML fits too
        V = (Rinv @ Rinv.T) * (pr.rss / (n - p))
        self.vcov = pd.DataFrame(V, index=xn, columns=xn)
        self.stderr = pd.Series(np.sqrt(np.diag(V)), index=xn, name="Std. Error")
        self.converged = bool(optsum.converged)
        self.n_dropped_na = frame.n_dropped_na
        self.dropped_columns = list(frame.dropped_columns)
        z, delta = problem.split(self.parameters)
        self.delta = delta.copy()
        self._fitted = frame.X @ pr.beta + frame.offset

    # ------------------------------------------------------------------ parameters
    @cached_property
    def _cov_x(self) -> np.ndarray:
        """Covariance of the unconstrained parameters ``[z, delta]``: twice the inverse
        Hessian of the profiled criterion (central differences); NaN if not invertible."""
        from ..linalg.threads import single_threaded
        from ..optim.newton import gradient_hessian

        x = self.parameters
        out = np.full((x.size, x.size), np.nan)
        free = np.flatnonzero(np.isfinite(x))   # a parameter at its limit has no SE
        if free.size == 0:
            return out
        f = criterion(self.problem)

        def f_free(v: np.ndarray) -> float:
            y = x.copy()
            y[free] = v
            return f(y)

        with single_threaded(1):
            _, H = gradient_hessian(f_free, x[free])
        try:
            cov = 2.0 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            return out
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
            return out
        out[np.ix_(free, free)] = cov
        return out

    def _stderr_x(self) -> np.ndarray:
        return np.sqrt(np.diag(self._cov_x))

    @cached_property
    def variance_function(self) -> pd.DataFrame | None:
        """The variance function's table (as :func:`glamm.lmer`'s: per level the variance
        and SD ratios and residual SD, or the coefficients), with standard errors of the log
        SD parameters from the profiled Hessian; ``None`` without a ``dispformula``."""
        if self.dispersion_design is None:
            return None
        return variance_table(self.dispersion_design, self.delta, self.sigma,
                              self._stderr_x()[self.problem.n_z:])

    @cached_property
    def correlation(self) -> pd.DataFrame | None:
        """The correlation structure's parameters on nlme's scale (``Phi``, ``Rho``,
        ``range``, ``nugget``, ``cor(a,b)``) with approximate standard errors (the inverse
        Hessian of the profiled criterion on the unconstrained scale, carried over by the
        delta method); ``None`` without a structure."""
        st = self.structure
        if st is None:
            return None
        z = self.parameters[:st.n_par]
        est = st.natural(z)
        zf = np.where(np.isfinite(z), z, 0.0)   # the Jacobian where z is finite
        h = 1e-6 * np.maximum(np.abs(zf), 1.0)
        J = np.column_stack([(st.natural(zf + e) - st.natural(zf - e)) / (2 * hi)
                             for e, hi in zip(np.diag(h), h)])
        cov = J @ self._cov_x[:st.n_par, :st.n_par] @ J.T
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(cov))
        return pd.DataFrame({"estimate": est, "std_error": se},
                            index=pd.Index(st.names, name=st.spec.nlme_class))

    def refit_ml(self) -> GlsResult:
        """The same model fitted by maximum likelihood, started at this fit's parameters
        (``self`` if it is an ML fit); :func:`glamm.anova` uses it as for LMMs."""
        import dataclasses

        from ..corstruct.fit import fit_gls, profile
        from ..linalg.threads import single_threaded

        if not self.reml:
            return self
        problem = dataclasses.replace(self.problem, reml=False)
        with single_threaded(1):
            x, record = fit_gls(problem, self.optimizer, x0=self.parameters.copy())
            pr = profile(problem, x)
            assert pr is not None   # the start was a finite point
            return GlsResult(self.frame, problem, x, pr, record, self.spec,
                             self.dispersion_design, self.optimizer)

    # ------------------------------------------------------------------ tables
    def update(self, formula: str | None = None, **changes):
        """Refit with changes, as R's ``update`` (see
        :meth:`glamm.results.base.MixedResultBase.update`)."""
        from .call import update

        return update(self, formula, **changes)

    def _repr_html_(self) -> str:
        from .html import result_html

        return result_html(self)

    def coef_table(self) -> pd.DataFrame:
        """Coefficients with standard errors, ``t`` values and p-values on ``nobs - p``
        degrees of freedom (nlme's ``summary.gls``)."""
        t = self.fixef / self.stderr
        p = 2.0 * stats.t.sf(np.abs(t), self.df_resid)
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.stderr,
                             "t value": t, "Pr(>|t|)": p})

    # ------------------------------------------------------------------ fitted values
    def fitted(self, type: str = "response") -> np.ndarray:
        """Fitted values ``X beta`` (plus any offset); ``type`` ``"response"`` or ``"link"``
        (the same: the identity link)."""
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', got {type!r}")
        return self._fitted.copy()

    def residuals(self, type: str = "response") -> np.ndarray:
        """Residuals as nlme's ``residuals.gls``: ``"response"`` (``y - X beta``, default),
        ``"pearson"`` (divided by the residual SD of the row, ``sigma exp(D delta)``) or
        ``"normalized"`` (the Pearson residuals of each group premultiplied by the inverse
        Cholesky factor of its correlation block: independent with unit variance under
        the model)."""
        from ..corstruct.fit import whiten

        r = self.frame.y - self._fitted
        if type == "response":
            return r
        if type == "pearson":
            return r / (self.sigma * self.problem.scales(self.delta))
        if type == "normalized":
            w = whiten(self.problem, self.parameters, r[:, None])
            assert w is not None   # positive definite at the optimum
            return w[0][:, 0] / self.sigma
        raise ValueError(f"type must be 'response', 'pearson' or 'normalized', got {type!r}")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link") -> np.ndarray:
        """Predictions ``X beta`` (plus offset) for ``newdata`` (default: the fitted rows);
        ``type`` ``"link"`` or ``"response"`` (the same)."""
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}")
        if newdata is None:
            return self.fitted()
        return self.frame.new_X(newdata) @ self.fixef.to_numpy() + \
            self.frame.new_offset(newdata)

    # ------------------------------------------------------------------ printing
    def __repr__(self) -> str:
        return format_gls(self)

    __str__ = __repr__

    def summary(self) -> str:
        """The printed summary (nlme's ``summary.gls`` layout) as a string."""
        return repr(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the fit (numbers as Python floats and lists)."""
        optsum = self.optsum.as_dict()
        # a parameter at its limit is infinite on the unconstrained scale: null in JSON
        optsum["final"] = [v if np.isfinite(v) else None for v in optsum["final"] or []]
        out = fit_dict(self, sigma=self.sigma, npar=self.npar, converged=self.converged,
                       correlation_structure=self.correlation_structure,
                       ngroups=self.ngroups, optsum=optsum)
        cor = self.correlation
        out["correlation"] = None if cor is None else {
            str(k): {"estimate": float(r["estimate"]),
                     "std_error": None if not np.isfinite(r["std_error"])
                     else float(r["std_error"])} for k, r in cor.iterrows()}
        vf = self.variance_function
        if vf is not None:
            out["dispformula"] = self.dispersion_design.text   # type: ignore[union-attr]
            out["variance_function"] = {
                str(ix): {c: (None if not np.isfinite(v) else float(v)) for c, v in row.items()}
                for ix, row in vf.iterrows()}
        return out


def format_gls(m: GlsResult) -> str:
    """nlme's ``summary.gls`` layout: the method, the model, AIC/BIC/logLik, the correlation
    structure and its parameters, the variance function, the coefficients (``t`` tests on
    ``n - p`` degrees of freedom), the residual standard error and degrees of freedom."""
    from .summary import _coef_block, _join, _stderr_notes, variance_function_block

    crit = format_column([m.aic, m.bic, m.loglik], 6)
    names = ["AIC", "BIC", "logLik"]
    widths = [max(len(a), len(b)) + 2 for a, b in zip(names, crit)]
    head = [f"Generalized least squares fit by {'REML' if m.reml else 'maximum likelihood'}",
            f"  Model: {m.formula}",
            "".join(a.rjust(w) for a, w in zip(names, widths)),
            "".join(b.rjust(w) for b, w in zip(crit, widths))]
    if m.n_dropped_na:
        head.append(f"  ({m.n_dropped_na} rows with missing values dropped)")
    cor_block: list[str] = []
    cor = m.correlation
    if cor is not None and m.structure is not None:
        cells = format_column(cor["estimate"].to_numpy(), 7)
        se = cor["std_error"].to_numpy()
        shown = iter(format_column(se[np.isfinite(se)], 4))
        ses = [next(shown) if np.isfinite(v) else "" for v in se]
        rows = [[str(nm), c, s] for nm, c, s in zip(cor.index, cells, ses)]
        cor_block = [f"Correlation Structure: {m.structure.title}",
                     f" Formula: {m.structure.formula()}"
                     + (f"  ({m.problem.layout.ngroups} groups)"
                        if m.structure.spec.groups else ""),
                     " Parameter estimate(s):",
                     *_table(["", "estimate", "approx. SE"], rows, ["l", "r", "r"],
                             indent=" ")]
        if hasattr(m.structure, "matrix"):   # symm: nlme's lower triangle too
            cor_block += _symm_lines(m.structure.matrix(m.parameters[:m.structure.n_par]))
    tail = [f"Residual standard error: {format_number(m.sigma, 7)}",
            f"Degrees of freedom: {m.nobs} total; {m.df_resid} residual"]
    notes = [] if m.converged else [f"Optimizer did not report convergence: "
                                    f"{m.optsum.returnvalue}"]
    notes += [f"Note: {note}" for note in _stderr_notes(m)]
    return _join([head, cor_block, variance_function_block(m),
                  _coef_block(m.coef_table(), "Coefficients:"), tail, notes])


def _symm_lines(R: np.ndarray) -> list[str]:
    """The estimated general correlation matrix's lower triangle, as nlme prints it."""
    K = R.shape[0]
    header = [""] + [str(j + 1) for j in range(K - 1)]
    rows = [[str(i + 1)] + [f"{R[i, j]:.3f}" for j in range(i)] + [""] * (K - 1 - i)
            for i in range(1, K)]
    return [" Correlation:", *_table(header, rows, ["l"] + ["r"] * (K - 1), indent=" ")]



class LmeResult(GlsResult):
    """A linear mixed model with a residual correlation structure (:func:`glamm.lmer` with
    ``correlation=``; nlme's ``lme`` with ``correlation``): everything
    :class:`GlsResult` has, and the random effects.

    Attributes
    ----------
    theta : ndarray
        The random-effects term's parameters (relative to ``sigma``, lme4's convention).
    varcorr : pandas.DataFrame
        The variance components (``group, var1, var2, vcov, sdcor``, lme4's
        ``as.data.frame(VarCorr(m))``), the residual last.
    ranef : dict of DataFrame
        The conditional modes (BLUPs) of the random effects by group.
    ngroups : dict
        Levels of the grouping factor.
    """

    def __init__(self, frame: ModelFrame, problem: GlsProblem, x: np.ndarray, pr: Profile,
                 optsum: OptSummary, spec: CorrelationSpec | None,
                 disp: DispersionDesign | None, optimizer: str):
        super().__init__(frame, problem, x, pr, optsum, spec, disp, optimizer)
        term = frame.reterms[0]
        self.term = term
        self.theta = problem.theta_of(self.parameters).copy()
        self.npar += problem.n_theta
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        n, p = frame.X.shape
        self.bic = -2.0 * self.loglik + math.log(n - p if self.reml else n) * self.npar
        lam = term.covariance.lambda_(self.theta)
        S = self.sigma ** 2 * lam @ lam.T
        rows = [(term.group, *r) for r in term.covariance.summary_rows(S, term.cnames)]
        rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        self.varcorr = pd.DataFrame(
            {"group": np.array([r[0] for r in rows], dtype=object),
             "var1": np.array([r[1] for r in rows], dtype=object),
             "var2": np.array([r[2] for r in rows], dtype=object),
             "vcov": np.array([r[3] for r in rows], dtype=float),
             "sdcor": np.array([r[4] for r in rows], dtype=float)})
        self.ngroups = {term.group: term.nlevels}   # type: ignore[assignment]  # as lmer's
        if not self.reml:
            # lme's ML standard errors use the ML sigma (gls's the n - p one)
            V = self.vcov.to_numpy() * (n - p) / n
            self.vcov = pd.DataFrame(V, index=self.vcov.index, columns=self.vcov.columns)
            self.stderr = pd.Series(np.sqrt(np.diag(V)), index=self.stderr.index,
                                    name="Std. Error")
        b = self._conditional_modes(pr.beta, lam)
        self.ranef = {term.group: pd.DataFrame(b, index=pd.Index(term.levels, name=term.group),
                                               columns=list(term.cnames))}
        self._fitted = self._fitted + np.einsum("ip,ip->i", term.z, b[term.refs])

    def _conditional_modes(self, beta: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``b_g = lambda lambda' Z_g' V_g^-1 r_g`` (``V_g`` relative to ``sigma^2``)."""
        problem, term = self.problem, self.term
        z, delta = problem.split(self.parameters)
        s = problem.scales(delta)
        r = problem.y - problem.X @ beta
        S = lam @ lam.T
        b = np.zeros((term.nlevels, term.p))
        assert problem.Z is not None   # an lme problem has its random effects' Z
        for bi, rows in enumerate(problem.layout.batches):
            k, m = rows.shape
            sb = s[rows]
            R = problem.structure.block(z, bi) if problem.structure is not None and m > 1 \
                else np.broadcast_to(np.eye(m), (k, m, m))
            Zb = problem.Z[rows]
            V = R * (sb[:, :, None] * sb[:, None, :]) + Zb @ S @ np.swapaxes(Zb, 1, 2)
            Vr = np.linalg.solve(V, r[rows][:, :, None])[:, :, 0]
            levels = term.refs[rows[:, 0]]
            b[levels] = np.einsum("pq,gmq,gm->gp", S, Zb, Vr)
        return b

    def structure_lines(self) -> list[str]:
        """The random-effects structure's natural parameters (structured terms)."""
        cov = self.term.covariance
        if getattr(cov, "structured", False) and hasattr(cov, "describe"):
            return [f" {self.term.group}: {cov.describe(self.theta, self.sigma)}"]
        return []

    def __repr__(self) -> str:
        from .summary import _random_block

        text = format_gls(self).replace("Generalized least squares fit by",
                                        "Linear mixed model with correlated residuals fit by")
        return text + "\n\n" + "\n".join(_random_block(self))

    __str__ = __repr__

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["theta"] = self.theta.tolist()
        out["varcorr"] = self.varcorr.replace({np.nan: None}).to_dict(orient="records")
        return out

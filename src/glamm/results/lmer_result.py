"""The fitted linear mixed model returned by :func:`glamm.lmer`.

All numbers are computed when the fit is made (conditional variances lazily, on first use);
printing lives in :mod:`glamm.results.summary` and never computes anything new.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlammError
from ..lmm import estimates
from ..lmm.model import LinearMixedModel
from ..optim.optsummary import OptSummary
from .base import MixedResultBase
from .export import fit_dict, mixed_fields
from .scratch import working_copy
from .smooth_results import SmoothResultsMixin


class LmerResult(SmoothResultsMixin, MixedResultBase):
    """A fitted LMM.

    Attributes
    ----------
    formula : str
        The model formula as given.
    reml : bool
        Whether the REML criterion was optimized.
    fixef : Series
        Fixed effects (lme4 names: ``(Intercept)``, ``Days``, ``fb``).
    stderr : Series
        Standard errors of the fixed effects.
    vcov : DataFrame
        Covariance matrix of the fixed effects.
    theta : ndarray
        Relative covariance parameters, lme4 order (``theta_names`` labels them).
    sigma : float
        Residual standard deviation.
    varcorr : DataFrame
        One row per variance, covariance and the residual (columns ``group, var1, var2,
        vcov, sdcor``), like R's ``as.data.frame(VarCorr(m))``.
    ranef : dict of str to DataFrame
        ``{grouping factor: DataFrame}`` of conditional modes (index: level labels).
    ranef_condvar : dict of str to DataFrame
        Same shape as ``ranef``; conditional variances given ``beta``.
    loglik : float
        Log-likelihood (for REML fits the REML log-likelihood, as lme4's ``logLik``).
    deviance : float
        ``-2 loglik`` of an ML fit; for a REML fit the ML deviance at the REML estimates.
    reml_criterion : float or None
        The REML criterion (REML fits) or ``None``.
    aic, bic : float
        Information criteria.
    npar : int
        Number of parameters (beta, theta and sigma).
    nobs, df_resid, n_dropped_na : int
        Observations used, residual degrees of freedom, rows dropped for missing values.
    ngroups : dict of str to int
        Levels per grouping factor.
    dropped_columns : list of str
        Fixed-effects columns dropped as linearly dependent.
    is_singular : bool
        A variance or correlation is on the boundary.
    optsum : OptSummary
        :class:`~glamm.optim.optsummary.OptSummary` of the run.
    approximation : dict or None
        ``None`` for an exact fit; for ``lmer(method="approximate")`` what the numbers rest
        on: ``probes``, ``lanczos_steps``, ``cg_tol``, ``cg_iterations``, ``logdet_se`` and
        ``loglik_se`` (the Monte-Carlo standard errors of the log-determinant and of
        ``loglik``, which carries half the former; see :mod:`glamm.lmm.approximate`).

    The methods ``fitted()`` and ``residuals(type)`` return ``(n,)`` arrays (response scale,
    offset included), as on every glamm result.
    ``model`` (the :class:`~glamm.lmm.model.LinearMixedModel`) and ``frame`` are not public
    API; their layout may change.
    """

    model: LinearMixedModel
    approximation: dict | None = None

    def __init__(self, model: LinearMixedModel, optsum: OptSummary, n_dispersion: int = 0,
                 exact: Any = None):
        # n_dispersion: parameters of a residual variance function (dispformula), counted
        # in npar, AIC, BIC and the residual degrees of freedom; exact: for a model without a
        # residual (dispformula="~ 0"), its estimates from the exact marginal likelihood
        # (glamm.lmm.no_residual.ExactFit), with ``model`` the same LMM with a negligible
        # residual for everything else (layout, new data)
        self.model = model
        self._exact = exact
        self.frame = model.frame
        self.optsum = optsum
        self.formula = self.frame.parsed.formula
        self.reml = model.reml
        self.theta = np.asarray(model.theta, dtype=float).copy()
        self.theta_names = model.theta_names()
        f = model.factor
        self._obj = float(model.objective_from_factor() if exact is None else exact.objective)
        #: the profiled scale of the random effects' covariance (``sigma^2 lambda lambda'``):
        #: ``sigma``, except without a residual (dispformula="~ 0"), where ``sigma`` is 0
        self.scale = model.sigma() if exact is None else exact.sigma
        #: the residual SD (lme4's ``sigma()``; 0 for a model without a residual)
        self.sigma = self.scale if exact is None else 0.0
        beta, b = estimates.fixed_and_random(model) if exact is None else (exact.beta, exact.b)
        self._beta = beta
        self._V = estimates.vcov_beta(model, self.scale) if exact is None else exact.vcov
        self._b = b
        self.nobs = model.n
        self.npar = model.p + model.n_theta + n_dispersion + (1 if exact is None else 0)
        self.loglik = -0.5 * self._obj
        self.reml_criterion = self._obj if self.reml else None
        self.deviance = float(model.objective_from_factor(reml=False) if exact is None
                              else exact.deviance)
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        self.bic = -2.0 * self.loglik + np.log(self.nobs) * self.npar
        self.df_resid = self.nobs - self.npar
        self.ngroups, self.is_singular = self._groups_and_singularity(model.theta_slices)
        self.n_dropped_na = self.frame.n_dropped_na
        self.dropped_columns = list(self.frame.dropped_columns)
        self.pwrss = f.pwrss()
        eta_fixed = self.frame.X @ beta + self.frame.offset
        self._fitted = eta_fixed + model.design.eta_re(b)
        self._scratch: LinearMixedModel | None = None

    def refit(self, y) -> LmerResult:
        """The same model fitted to a new response (MixedModels.jl's ``refit!``, lme4's
        ``refit(m, newresp)``): the same rows, weights, offset and terms; only the
        cross-products are refilled, and ``theta`` is optimized from this fit's estimates
        with its optimizer settings. ``y``: one value per fitted row (the response as the
        model sees it, before the offset is taken off). Returns a new result; this one is not
        changed."""
        import dataclasses

        from ..lmm.fit import optimize_theta
        from ..optim.backends import backend_of

        if self._exact is not None or getattr(self, "variance_function", None) is not None:
            raise GlammError("refit is not available for models without a residual or with a "
                             "residual variance function; fit again with glamm.lmer")
        if self.approximation is not None:
            raise GlammError("refit is not available for an approximate fit; fit again with "
                             "glamm.lmer(..., method='approximate')")
        y = self._new_response(y)
        model = LinearMixedModel(dataclasses.replace(self.frame, y=y), reml=self.reml)
        os_ = self.optsum
        settings = {k: getattr(os_, k) for k in ("ftol_rel", "ftol_abs", "xtol_abs",
                                                 "initial_step", "maxfeval")}
        new_os = optimize_theta(model, start=self.theta,
                                optimizer=backend_of(os_.optimizer), **settings)
        out = LmerResult(model, new_os)
        out._call = getattr(self, "_call", None)
        return out

    # ------------------------------------------------------------------ tables
    # (built on first use: pandas tables cost most of a small fit's result, and a bootstrap
    # or a refit often never reads them)
    @cached_property
    def fixef(self) -> pd.Series:   # type: ignore[override]  # (an attribute elsewhere)
        return pd.Series(self._beta, index=self.frame.xnames, name="Estimate")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        xn = self.frame.xnames
        return pd.DataFrame(self._V, index=xn, columns=xn)

    @cached_property
    def stderr(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self._V)), index=self.frame.xnames, name="Std. Error")

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        return self._varcorr_rows(self.term_covariances(),
                                  self.sigma if self._exact is None else None)

    @cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        return self._ranef_tables(self._b)

    def term_covariances(self) -> list[np.ndarray]:
        """``sigma^2 lambda lambda'`` of each random-effects term (lme4 order)."""
        lams = self.model.lambdas(self.theta)
        return [self.scale**2 * lam @ lam.T for lam in lams]

    @cached_property
    def ranef_condcov(self) -> list[np.ndarray]:
        """Per term (lme4 order), the ``(levels, p, p)`` conditional covariances."""
        return estimates.conditional_covariances(self.model, self.scale)

    @cached_property
    def ranef_condvar(self) -> dict[str, pd.DataFrame]:
        return self._condvar_tables(self.ranef_condcov)

    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """Fixed effects with standard errors and t values, indexed by coefficient.

        Parameters
        ----------
        ddf : str, optional
            Add denominator degrees of freedom and p-values (lmerTest's and pbkrtest's
            tables: columns ``Estimate, Std. Error, df, t value, Pr(>|t|)``):
            ``"Satterthwaite"``, ``"Kenward-Roger"`` (with its adjusted standard errors; REML
            fits), ``"residual"`` (``n - p``) or ``"asymptotic"`` (normal). Default ``None``:
            lme4's table without them.
        """
        if ddf is not None:
            from ..inference.ddf import coef_table

            return coef_table(self, ddf)
        return pd.DataFrame(
            {"Estimate": self.fixef, "Std. Error": self.stderr, "t value": self.fixef / self.stderr}
        )

    def contrast(self, L, ddf: str = "Satterthwaite", rhs=None) -> pd.DataFrame:
        """F test of the linear hypothesis ``L beta = rhs`` (lmerTest's ``contest``).

        Parameters
        ----------
        L : array_like or DataFrame
            One row per contrast, one column per fixed effect (a DataFrame or Series may
            name only some coefficients; the others get 0).
        ddf : str
            ``"Satterthwaite"`` (default), ``"Kenward-Roger"``, ``"residual"`` or
            ``"asymptotic"``.
        rhs : array_like, optional
            The hypothesized values (default 0).

        Returns
        -------
        DataFrame
            One row: ``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)``.
        """
        from ..inference.ddf import contrast_test

        return contrast_test(self, L, ddf, rhs)

    @property
    def converged(self) -> bool:
        return bool(self.optsum.converged)

    @property
    def method(self) -> str:
        return "REML" if self.reml else "ML"

    # ------------------------------------------------------------------ fitted values
    def fitted(self, type: str = "response") -> np.ndarray:
        """Fitted values ``X beta + Z b + offset`` (``type`` ``"response"`` or ``"link"``: the
        same for an LMM; the argument exists so every glamm result takes it)."""
        if type not in ("response", "link"):
            raise GlammError(f"type must be 'response' or 'link', got {type!r}")
        return self._fitted.copy()

    def residuals(self, type: str = "response") -> np.ndarray:
        """Residuals ``y - fitted`` (``"response"``, the default, as lme4's; also
        ``"working"``), or times the square roots of the prior weights (``"pearson"``, and
        ``"deviance"``, which equals it for a Gaussian response)."""
        r = self.frame.y - self._fitted
        if type in ("response", "working"):
            return r
        if type in ("pearson", "deviance"):
            return r * np.sqrt(self.frame.weights)
        raise GlammError("type must be 'response', 'working', 'pearson' or 'deviance', "
                         f"got {type!r}")

    # ------------------------------------------------------------------ prediction
    def predict(
        self, newdata: pd.DataFrame | None = None, re: bool = True, allow_new_levels: bool = False
    ) -> np.ndarray:
        """Predictions on the response scale.

        Parameters
        ----------
        newdata : DataFrame, optional
            data frame with the columns the model uses; ``None`` predicts the fitted data.
        re : bool, optional
            include the random effects (``False``: population level, ``X beta + offset``
            plus any smooth terms, which belong to the mean curve).
        allow_new_levels : bool, optional
            levels not seen in fitting get a random effect of zero instead of
            raising an error.
        """
        if newdata is None:
            if re:
                return self._fitted.copy()
            return self.frame.X @ self.fixef.to_numpy() + self.frame.offset + \
                self._smooth_re(None)
        X = self.frame.new_X(newdata)
        eta = X @ self.fixef.to_numpy() + self.frame.new_offset(newdata)
        if not re:
            return eta + self._smooth_re(newdata)
        refs, zs = self._new_re_design(newdata, allow_new_levels)
        return eta + self.model.design.eta_re(self._b, refs, zs)

    #: the statistic of the parametric table: t (no p-values, as lme4)
    _coef_stat = "t"

    def _smooth_state(self, theta=None):
        """The factor at ``theta`` (default: the estimates), on a working copy of the model
        (the fitted model is never changed)."""
        if self._scratch is None:
            self._scratch, _ = working_copy(self.model)
        self._scratch.set_theta(self.theta if theta is None else theta)
        return self._scratch.factor, self.scale**2, True, self.scale**2

    def _theta_covariance(self) -> np.ndarray:
        """``2 H^-1`` of the profiled deviance (or REML criterion) in ``theta`` by central
        differences; ``NaN`` rows and columns for ``theta`` on its bound."""
        from ..optim.newton import gradient_hessian

        objective = (self.model.working_copy().objective if self._exact is None
                     else self._exact.marginal.objective)
        lower = self.model.theta_lower()
        free = ~(np.isfinite(lower) & (self.theta <= lower + 1e-8))
        idx = np.flatnonzero(free)
        theta = self.theta

        def f(z: np.ndarray) -> float:
            x = theta.copy()
            x[idx] = z
            return objective(x)

        out = np.full((theta.size, theta.size), np.nan)
        if idx.size:
            _, H = gradient_hessian(f, theta[idx])
            with np.errstate(invalid="ignore"):
                out[np.ix_(idx, idx)] = 2.0 * np.linalg.pinv(H)
        return out

    @property
    def sigma_rows(self) -> np.ndarray:
        """Each row's residual standard deviation, ``sigma / sqrt(w_i)`` (``w_i`` the prior
        weight times the variance function of a ``dispformula`` fit)."""
        return self.scale / np.sqrt(np.asarray(self.frame.weights, dtype=float))

    @property
    def dispersion_rows(self) -> np.ndarray:
        """Each row's residual variance, ``sigma_rows ** 2``."""
        return self.sigma_rows ** 2

    #: heteroscedastic residuals (``dispformula``): the estimated variance function
    #: (:func:`glamm.lmm.dispersion.variance_table`) and the design, else ``None``
    variance_function: pd.DataFrame | None = None
    dispersion_design: Any = None
    #: the user's prior weights of a heteroscedastic fit (its frame holds the fitted ones)
    prior_weights: np.ndarray | None = None

    def summary(self, ddf: str | None = None) -> str:
        """The printed summary as a string; with ``ddf`` (``"Satterthwaite"``,
        ``"Kenward-Roger"``, ...) the fixed-effects table has lmerTest's df and p-value
        columns (see :meth:`coef_table`)."""
        return self._format(ddf)

    def _format(self, ddf: str | None = None) -> str:
        from .summary import format_lmer, variance_function_block

        text = format_lmer(self, ddf=ddf)
        block = variance_function_block(self)
        return text + "\n\n" + "\n".join(block) if block else text

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the fit (for ``--json`` output)."""
        return fit_dict(self, sigma=self.sigma, reml_criterion=self.reml_criterion,
                        **mixed_fields(self))



"""Smooth-term results shared by the LMM and GLMM result classes (gamm4's ``$gam`` part):
coefficients in the smooths' bases, ``Vp``, effective degrees of freedom, smoothing
parameters, the smooth test table and estimated curves.

The result classes provide ``_smooth_state()``: the factor holding the penalized system at the
optimum, the residual scale, and whether the scale is estimated. Not public API.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import GlammError
from .wald import wald_table

if TYPE_CHECKING:
    from ..formula.design import ModelFrame
    from ..glmm.model import GeneralizedLinearMixedModel
    from ..lmm.model import LinearMixedModel


class SmoothResultsMixin:
    """Methods for models with ``s(...)`` terms (empty results otherwise)."""

    # set by the result classes
    model: LinearMixedModel | GeneralizedLinearMixedModel
    frame: ModelFrame
    theta: np.ndarray
    fixef: pd.Series
    nobs: int
    _b: list[np.ndarray]

    #: "t" (LMMs: t values) or "z" (GLMMs: z values and normal p-values)
    _coef_stat = "t"

    def _smooth_state(self, theta=None):   # pragma: no cover - provided by the result classes
        """(factor at the estimates, or with ``theta`` instead; the covariance scale; whether
        the scale is estimated; the residual scale ``sig2`` of mgcv's tests)."""
        raise NotImplementedError

    @property
    def smooths(self) -> list:
        """The fitted smooths (one per ``s()`` term, one per level of a factor ``by``)."""
        return list(self.frame.smooths)

    @property
    def smooth_labels(self) -> list[str]:
        """mgcv's labels of the smooths, e.g. ``["s(x0)", "s(x2)"]``."""
        return [sm.label for sm in self.frame.smooths]

    @cached_property
    def _smooth_fit(self):
        from ..smooths.inference import smooth_fit

        if not self.frame.smooths:
            raise GlammError("the model has no smooth terms s(...)")
        fac, scale, scale_estimated, sig2 = self._smooth_state()
        model = self.model
        thetas = [self.theta[s] for s in model.layout.slices]
        lambda_scale = float(getattr(model, "lambda_scale", 1.0))

        def unit_factor():
            unit = self.theta.copy()
            for t, s in zip(model.reterms, model.layout.slices):
                if t.is_smooth:
                    unit[s] = 1.0
            return self._smooth_state(unit)[0]

        try:
            return smooth_fit(self.frame, model.reterms, fac, [float(t[0]) for t in thetas],
                              scale, self.nobs, self.fixef.to_numpy(), self._b,
                              scale_estimated, lambda_scale=lambda_scale,
                              unit_factor=unit_factor, sig2=sig2)
        finally:
            self._smooth_state(self.theta)   # leave the model's factor at the estimates

    @property
    def smooth_table(self) -> pd.DataFrame:
        """Per smooth: effective degrees of freedom, reference df, the test statistic (``F``
        when the scale is estimated, ``Chi.sq`` otherwise) and its p-value (mgcv's
        ``summary.gam`` table as gamm4 reports it; Wood 2013); a smooth whose penalty has no
        null space (``bs="ts"``, ``"cs"``) is tested as a random effect, as mgcv's
        ``reTest`` (``Ref.df`` is then the rank)."""
        return self._smooth_fit.table.copy()

    @property
    def edf(self) -> pd.Series:
        """Effective degrees of freedom per smooth."""
        return self._smooth_fit.edf.copy()

    @property
    def sp(self) -> pd.Series:
        """Smoothing parameters per smooth: residual scale over the variance of the smooth's
        penalized part (mgcv's ``sp`` on its rescaled penalty)."""
        return self._smooth_fit.sp.copy()

    @property
    def gam_coef(self) -> pd.Series:
        """All coefficients as mgcv reports them: parametric, then each smooth's in its own
        (constrained) basis, named ``s(x).1``, ``s(x).2``, ..."""
        return self._smooth_fit.coef.copy()

    @property
    def Vp(self) -> pd.DataFrame:
        """Bayesian posterior covariance of :attr:`gam_coef` (mgcv's ``Vp``)."""
        return self._smooth_fit.Vp.copy()

    def parametric_table(self) -> pd.DataFrame:
        """The parametric coefficients with standard errors from :attr:`Vp` (conditional on
        the smoothing parameters, as gamm4's ``summary(m$gam)``), and ``t`` values (LMMs) or
        ``z`` values with normal p-values (GLMMs)."""

        fit = self._smooth_fit
        k = self.frame.n_parametric
        est = fit.coef.iloc[:k]
        se = pd.Series(np.sqrt(np.diag(fit.Vp.to_numpy())[:k]), index=est.index)
        if self._coef_stat == "t":
            return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": est / se})
        return wald_table(est, se)

    def _smooth_re(self, newdata: pd.DataFrame | None) -> np.ndarray | float:
        """The smooths' penalized parts of the linear predictor (kept in population-level
        predictions: a smooth is part of the mean curve, not a grouping effect)."""
        design = self.model.design
        ks = [k for k, t in enumerate(design.terms) if t.population_level]
        if newdata is None:
            return design.eta_re(self._b, terms=ks)
        n = len(newdata)
        refs = [np.zeros(n, dtype=np.int64) for _ in design.terms]
        zs = [t.new_z(newdata) if k in ks else None for k, t in enumerate(design.terms)]
        # entries of terms not in ks are None and never read (eta_re's z is typed too narrowly)
        return design.eta_re(self._b, refs, zs, terms=ks)  # type: ignore[arg-type]

    def _find_smooth(self, label: str):
        for sm in self.frame.smooths:
            if label in (sm.label, sm.term_label) or \
                    sm.spec.text.replace(" ", "") == label.replace(" ", ""):
                return sm
        raise GlammError(f"no smooth {label!r}; the model has {', '.join(self.smooth_labels)}")

    def smooth_estimates(self, smooth: str, x=None, n: int = 100) -> pd.DataFrame:
        """The estimated (centred) smooth with standard errors.

        Parameters
        ----------
        smooth : str
            the smooth's label, e.g. ``"s(x2)"`` (``"s(x):fA"`` for a factor ``by``
            level).
        x : array_like, optional
            covariate values (an array for a one-covariate smooth, a ``DataFrame`` with
            the covariate columns otherwise, and optionally a numeric ``by`` column, else
            ``by`` = 1); default ``None``: ``n`` evenly spaced values over the data's
            range (a grid of ``n`` x ``n`` points for two covariates is not made: give
            ``x``).
        n : int, optional
            number of grid points (default 100).

        Returns
        -------
        DataFrame
            The covariate column(s), ``estimate`` and ``se`` (Bayesian standard errors of
            the smooth alone, as mgcv's ``predict(type="terms")``).
        """
        from ..smooths.inference import smooth_curve

        sm = self._find_smooth(smooth)
        terms = list(sm.spec.terms)
        if x is None:
            if len(terms) > 1:
                raise GlammError(f"{sm.label} has several covariates: give x as a DataFrame")
            col = sm.data_range
            grid = pd.DataFrame({terms[0]: np.linspace(col[0], col[1], n)})
        elif isinstance(x, pd.DataFrame):
            missing = [t for t in terms if t not in x.columns]
            if missing:
                raise GlammError(f"x lacks the covariate column(s) {missing} of {sm.label}")
            keep = terms + ([sm.spec.by] if sm.spec.by is not None and sm.by_level is None
                            and sm.spec.by in x.columns else [])
            grid = x[keep].reset_index(drop=True)
        else:
            if len(terms) > 1:
                raise GlammError(f"{sm.label} has several covariates: give x as a DataFrame")
            grid = pd.DataFrame({terms[0]: np.asarray(x, dtype=float).ravel()})
        data = grid.copy()
        if sm.spec.by is not None and sm.spec.by not in data.columns:
            data[sm.spec.by] = sm.by_level if sm.by_level is not None else 1.0
        fit, se = smooth_curve(self._smooth_fit, sm, data)
        out = grid.copy()
        out["estimate"] = fit
        out["se"] = se
        return out

"""The fitted linear mixed model returned by :func:`glamm.lmer`.

All numbers are computed when the fit is made (conditional variances lazily, on first use);
printing lives in :mod:`glamm.results.summary` and never computes anything new.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..formula.design import grouping_factor
from ..lmm import estimates
from ..lmm.model import LinearMixedModel
from ..optim.optsummary import OptSummary


class LmerResult:
    """A fitted LMM.

    Attributes
    ----------
    formula: the model formula as given.
    reml: whether the REML criterion was optimized.
    fixef: fixed effects (``pandas.Series``, lme4 names: ``(Intercept)``, ``Days``, ``fb``).
    stderr: standard errors of the fixed effects.
    vcov: covariance matrix of the fixed effects (``DataFrame``).
    theta: relative covariance parameters, lme4 order (``theta_names`` labels them).
    sigma: residual standard deviation.
    varcorr: one row per variance, covariance and the residual (columns ``group, var1, var2,
        vcov, sdcor``), like R's ``as.data.frame(VarCorr(m))``.
    ranef: ``{grouping factor: DataFrame}`` of conditional modes (index: level labels).
    ranef_condvar: same shape as ``ranef``; conditional variances given ``beta``.
    loglik: log-likelihood (for REML fits the REML log-likelihood, as lme4's ``logLik``).
    deviance: ``-2 loglik`` of an ML fit; for a REML fit the ML deviance at the REML estimates.
    reml_criterion: the REML criterion (REML fits) or ``None``.
    aic, bic, npar: information criteria and number of parameters (beta, theta and sigma).
    nobs, ngroups, df_resid, n_dropped_na, dropped_columns.
    fitted, residuals: ``(n,)`` arrays (response scale, offset included).
    is_singular: a variance or correlation is on the boundary.
    optsum: :class:`~glamm.optim.optsummary.OptSummary` of the run.

    ``model`` (the :class:`~glamm.lmm.model.LinearMixedModel`) and ``frame`` are not public
    API; their layout may change.
    """

    def __init__(self, model: LinearMixedModel, optsum: OptSummary):
        self.model = model
        self.frame = model.frame
        self.optsum = optsum
        self.formula = self.frame.parsed.formula
        self.reml = model.reml
        self.theta = np.asarray(model.theta, dtype=float).copy()
        self.theta_names = model.theta_names()
        f = model.factor
        self._obj = float(model.objective_from_factor())
        self.sigma = model.sigma()
        beta, b = estimates.fixed_and_random(model)
        xn = self.frame.xnames
        self.fixef = pd.Series(beta, index=xn, name="Estimate")
        V = estimates.vcov_beta(model, self.sigma)
        self.vcov = pd.DataFrame(V, index=xn, columns=xn)
        self.stderr = pd.Series(np.sqrt(np.diag(V)), index=xn, name="Std. Error")
        self._b = b
        self.nobs = model.n
        self.npar = model.p + model.n_theta + 1
        self.loglik = -0.5 * self._obj
        self.reml_criterion = self._obj if self.reml else None
        self.deviance = float(model.objective_from_factor(reml=False))
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        self.bic = -2.0 * self.loglik + np.log(self.nobs) * self.npar
        self.df_resid = self.nobs - self.npar
        self.ngroups = {}
        for t in model.reterms:
            self.ngroups.setdefault(t.group, t.nlevels)
        self.n_dropped_na = self.frame.n_dropped_na
        self.dropped_columns = list(self.frame.dropped_columns)
        self.is_singular = any(
            t.covariance.is_singular(self.theta[s]) for t, s in zip(model.reterms, model.theta_slices)
        )
        self.pwrss = f.pwrss()
        eta_fixed = self.frame.X @ beta + self.frame.offset
        self.fitted = eta_fixed + estimates.linear_predictor_re(model.reterms, b)
        self.residuals = self.frame.y - self.fitted
        self.varcorr = self._varcorr_table()
        self.ranef = self._ranef_tables(b)

    # ------------------------------------------------------------------ tables
    def _group_labels(self) -> list[str]:
        """R-style names for the terms' groups: repeated groups get ``.1``, ``.2`` suffixes."""
        seen: dict[str, int] = {}
        out = []
        for t in self.model.reterms:
            k = seen.get(t.group, 0)
            out.append(t.group if k == 0 else f"{t.group}.{k}")
            seen[t.group] = k + 1
        return out

    def term_covariances(self) -> list[np.ndarray]:
        """``sigma^2 lambda lambda'`` of each random-effects term (lme4 order)."""
        lams = self.model.lambdas(self.theta)
        return [self.sigma**2 * lam @ lam.T for lam in lams]

    def _varcorr_table(self) -> pd.DataFrame:
        rows = []
        for label, t, S in zip(self._group_labels(), self.model.reterms, self.term_covariances()):
            sd = np.sqrt(np.diag(S))
            for i, nm in enumerate(t.cnames):
                rows.append((label, nm, None, S[i, i], sd[i]))
            for j in range(t.p):
                for i in range(j + 1, t.p):
                    denom = sd[i] * sd[j]
                    corr = S[i, j] / denom if denom > 0 else np.nan
                    rows.append((label, t.cnames[j], t.cnames[i], S[i, j], corr))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        table = pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])
        for col in ("var1", "var2"):  # missing names are always None (R's NA), never NaN
            table[col] = table[col].astype(object).where(table[col].notna(), None)
        return table

    def _ranef_tables(self, b: list[np.ndarray]) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, bk in zip(self.model.reterms, b):
            df = pd.DataFrame(bk, index=pd.Index(t.levels, name=t.group), columns=list(t.cnames))
            out[t.group] = df if t.group not in out else pd.concat([out[t.group], df], axis=1)
        return out

    @cached_property
    def ranef_condcov(self) -> list[np.ndarray]:
        """Per term (lme4 order), the ``(levels, p, p)`` conditional covariances."""
        return estimates.conditional_covariances(self.model, self.sigma)

    @cached_property
    def ranef_condvar(self) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, C in zip(self.model.reterms, self.ranef_condcov):
            diag = np.einsum("mii->mi", C)
            df = pd.DataFrame(diag, index=pd.Index(t.levels, name=t.group), columns=list(t.cnames))
            out[t.group] = df if t.group not in out else pd.concat([out[t.group], df], axis=1)
        return out

    def coef_table(self) -> pd.DataFrame:
        """Fixed effects with standard errors and t values."""
        return pd.DataFrame(
            {"Estimate": self.fixef, "Std. Error": self.stderr, "t value": self.fixef / self.stderr}
        )

    def block_description(self) -> pd.DataFrame:
        """Storage type of every block of the Cholesky factor ``L`` (lower triangle), rows and
        columns labelled by term (``group: levels x columns``) and ``[X y]``; like
        MixedModels.jl's ``BlockDescription``. Shows how the symbolic phase laid out the
        model (``BlockDiag``, ``BlockSparse`` or ``Dense``)."""
        labels = [f"{g}: {t.nlevels}x{t.p}" for g, t in zip(self._group_labels(), self.model.reterms)]
        labels.append(f"[X y]: {self.frame.X.shape[1] + 1}")
        types = self.model.factor.describe()
        table = [[types[i][j] if j <= i else "" for j in range(len(labels))]
                 for i in range(len(labels))]
        return pd.DataFrame(table, index=labels, columns=labels)

    @property
    def converged(self) -> bool:
        return bool(self.optsum.converged)

    @property
    def method(self) -> str:
        return "REML" if self.reml else "ML"

    # ------------------------------------------------------------------ prediction
    def predict(
        self, newdata: pd.DataFrame | None = None, re: bool = True, allow_new_levels: bool = False
    ) -> np.ndarray:
        """Predictions on the response scale.

        Parameters
        ----------
        newdata: data frame with the columns the model uses; ``None`` predicts the fitted data.
        re: include the random effects (``False``: population level, ``X beta + offset``).
        allow_new_levels: levels not seen in fitting get a random effect of zero instead of
            raising an error.
        """
        if newdata is None:
            if re:
                return self.fitted.copy()
            return self.frame.X @ self.fixef.to_numpy() + self.frame.offset
        X = self.frame.new_X(newdata)
        eta = X @ self.fixef.to_numpy() + self.frame.new_offset(newdata)
        if not re:
            return eta
        refs, zs = [], []
        for t in self.model.reterms:
            missing = [f for f in t.factors if f not in newdata.columns]
            if missing:
                raise DataError(f"newdata lacks grouping column(s) {missing} of term ({t.expr} | {t.group})")
            codes = _codes_for(newdata, t, allow_new_levels)
            refs.append(codes)
            zs.append(np.asarray(t.zspec.get_model_matrix(newdata, na_action="ignore"), dtype=float))
        return eta + estimates.linear_predictor_re(self.model.reterms, self._b, refs, zs)

    def __repr__(self) -> str:
        from .summary import format_lmer

        return format_lmer(self)

    __str__ = __repr__

    def summary(self) -> str:
        """The printed summary as a string."""
        return repr(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the fit (for ``--json`` output)."""
        return {
            "formula": self.formula,
            "method": self.method,
            "nobs": self.nobs,
            "ngroups": dict(self.ngroups),
            "fixef": self.fixef.to_dict(),
            "stderr": self.stderr.to_dict(),
            "vcov": self.vcov.values.tolist(),
            "theta": dict(zip(self.theta_names, self.theta.tolist())),
            "sigma": self.sigma,
            "varcorr": self.varcorr.replace({np.nan: None}).to_dict(orient="records"),
            "loglik": self.loglik,
            "deviance": self.deviance,
            "reml_criterion": self.reml_criterion,
            "aic": self.aic,
            "bic": self.bic,
            "df_resid": self.df_resid,
            "is_singular": self.is_singular,
            "n_dropped_na": self.n_dropped_na,
            "dropped_columns": self.dropped_columns,
            "optsum": self.optsum.as_dict(),
        }


def _codes_for(newdata: pd.DataFrame, term, allow_new_levels: bool) -> np.ndarray:
    """Level codes of ``term``'s grouping factor in ``newdata`` (``-1`` for unseen levels)."""
    parts = []
    for f in term.factors:
        col = newdata[f]
        parts.append(np.array([_label(v) for v in col.to_numpy()], dtype=object))
    labels = parts[0] if len(parts) == 1 else np.array([":".join(x) for x in zip(*parts)], dtype=object)
    index = term.level_index()
    codes = np.array([index.get(lab, -1) for lab in labels], dtype=np.int64)
    if not allow_new_levels and np.any(codes < 0):
        new = sorted(set(labels[codes < 0].tolist()))
        raise DataError(
            f"newdata has level(s) {new[:5]} of grouping factor {term.group!r} not seen in fitting; "
            "pass allow_new_levels=True to predict them with random effects of zero"
        )
    return codes


def _label(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)

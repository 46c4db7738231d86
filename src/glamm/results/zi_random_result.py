"""The result of a zero-inflated or hurdle GLMM with random effects in the zero part
(:func:`glamm.zi_random_api.glmer_zi_random`)."""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import pandas as pd

from .wald import wald_table


class ZiRandomResult:
    """A fitted two-part count model with random effects in both parts (glmmTMB's
    ``glmmTMB(..., ziformula = ~ x + (1 | g))``).

    Attributes
    ----------
    fixef, fixef_zi : Series
        The conditional (count) part's and the zero part's coefficients.
    stderr, stderr_zi : Series
        Their standard errors, from the Hessian of the marginal log-likelihood in all
        parameters (glmmTMB's ``vcov``).
    loglik, deviance, aic, bic, df : float
        The log-likelihood (Laplace or adaptive quadrature), ``-2 loglik`` and the criteria
        (``df`` counts every estimated parameter).
    varcorr : DataFrame
        One row per random effect: part (``"cond"`` or ``"zi"``), group, name, variance,
        standard deviation, and the correlations with the earlier effects of its term.
    family_parameters : dict
        The count family's own parameters on their natural scale (the negative binomial's
        ``shape``; NB1's, genpois's and compois's ``phi``, glmmTMB's ``sigma()``).
    converged : bool
        Whether the optimizer ended at a stationary point not on a bound with the deviance
        decreasing inward; ``messages`` says why not.
    nagq : int
        1: the Laplace approximation; else points per dimension of the quadrature.
    """

    def __init__(self, model, fit: dict, frame, zframe, group_name: str, levels: tuple,
                 formula: str, ziformula: str, nagq: int):
        self.model = model
        self.formula, self.ziformula, self.nagq = formula, ziformula, nagq
        self.group_name, self.levels = group_name, levels
        self.x = np.asarray(fit["x"], dtype=float)
        self.deviance = float(fit["deviance"])
        self.loglik = -0.5 * self.deviance
        self.hessian = np.asarray(fit["hessian"], dtype=float)
        self.gradient = np.asarray(fit["gradient"], dtype=float)
        self.records = fit["records"]
        self.converged = bool(fit["converged"])
        self.messages = list(fit["messages"])
        self.nobs = model.n
        self.ngroups = model.n_groups
        self.family_name = model.family.name
        thetas, beta, gamma, own = model.split(self.x)
        self.theta = np.concatenate(thetas) if thetas else np.zeros(0)
        self.xnames = list(frame.xnames)
        self.zinames = list(model.family.zi_names)
        self.fixef = pd.Series(beta, index=self.xnames, name="Estimate")
        self.fixef_zi = pd.Series(gamma, index=self.zinames, name="Estimate")
        # the count family's own parameters on their natural scale (a negative binomial's
        # shape, NB1's or genpois's phi, compois's phi = 1 / nu)
        self.family_parameters = {
            (name[4:-1] if name.startswith("log(") else name): float(np.exp(value))
            for name, value in zip(model.family.base.extra_names(), own, strict=True)}
        self.df = int(self.x.size)
        self.aic = self.deviance + 2.0 * self.df
        self.bic = self.deviance + math.log(self.nobs) * self.df
        self._frame, self._zframe = frame, zframe
        self.notes: list[str] = []

    # ------------------------------------------------------------------ inference
    @cached_property
    def _free(self) -> np.ndarray:
        lower = self.model.lower()
        return ~(np.isfinite(lower) & (self.x <= lower + 1e-10))

    @cached_property
    def vcov_all(self) -> np.ndarray:
        """Covariance of all parameters (the inverse of half the deviance's Hessian over
        the parameters not on a bound; ``nan`` rows for those on it)."""
        free = self._free
        V = np.full((self.x.size, self.x.size), np.nan)
        H = 0.5 * self.hessian[np.ix_(free, free)]
        try:
            V[np.ix_(free, free)] = np.linalg.inv(H)
        except np.linalg.LinAlgError:
            pass
        return V

    def _block(self, which: str) -> slice:
        k = sum(self.model.n_theta)
        if which == "cond":
            return slice(k, k + self.model.p_cond)
        k += self.model.p_cond
        return slice(k, k + self.model.p_zi)

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the conditional part's coefficients."""
        sl = self._block("cond")
        return pd.DataFrame(self.vcov_all[sl, sl], index=self.xnames, columns=self.xnames)

    @property
    def vcov_zi(self) -> pd.DataFrame:
        """Covariance of the zero part's coefficients."""
        sl = self._block("zi")
        return pd.DataFrame(self.vcov_all[sl, sl], index=self.zinames, columns=self.zinames)

    @property
    def stderr(self) -> pd.Series:
        with np.errstate(invalid="ignore"):
            return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.xnames,
                             name="Std. Error")

    @property
    def stderr_zi(self) -> pd.Series:
        with np.errstate(invalid="ignore"):
            return pd.Series(np.sqrt(np.diag(self.vcov_zi.to_numpy())), index=self.zinames,
                             name="Std. Error")

    def coef_table(self, part: str = "cond") -> pd.DataFrame:
        """Wald table of one part's coefficients (``"cond"`` or ``"zi"``)."""
        if part == "cond":
            return wald_table(self.fixef, self.stderr, self.xnames)
        if part == "zi":
            return wald_table(self.fixef_zi, self.stderr_zi, self.zinames)
        raise ValueError(f"part must be 'cond' or 'zi'; got {part!r}")

    # ------------------------------------------------------------------ random effects
    def _lambdas(self) -> list[np.ndarray]:
        thetas = self.model.split(self.x)[0]
        return [t.covariance.lambda_(th) for t, th in zip(self.model.terms, thetas,
                                                           strict=True)]

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        rows = []
        for term, Lam in zip(self.model.terms, self._lambdas(), strict=True):
            S = Lam @ Lam.T
            sd = np.sqrt(np.diag(S))
            for i, name in enumerate(term.names):
                row = {"part": term.part, "group": self.group_name, "name": name,
                       "variance": S[i, i], "std_dev": sd[i]}
                for j in range(i):
                    row[f"corr_{term.names[j]}"] = (S[i, j] / (sd[i] * sd[j])
                                                    if sd[i] * sd[j] > 0 else np.nan)
                rows.append(row)
        return pd.DataFrame(rows)

    @property
    def is_singular(self) -> bool:
        """A variance or correlation on its boundary."""
        return any(t.covariance.is_singular(th) for t, th in
                   zip(self.model.terms, self.model.split(self.x)[0], strict=True))

    def ranef(self, part: str = "cond") -> pd.DataFrame:
        """The conditional modes ``b = Lambda u`` of one part's random effects, one row per
        level (the Laplace approximation's modes)."""
        u = self.model.u
        cols, names, k = [], [], 0
        for term, Lam in zip(self.model.terms, self._lambdas(), strict=True):
            if term.part == part:
                cols.append(u[:, k:k + term.p] @ Lam.T)
                names += list(term.names)
            k += term.p
        data = np.hstack(cols) if cols else np.zeros((self.ngroups, 0))
        return pd.DataFrame(data, index=list(self.levels), columns=names)

    # ------------------------------------------------------------------ predictions
    def fitted(self, type: str = "response") -> np.ndarray:
        """Per row of the fit, at the conditional modes: ``"conditional"`` the count part's
        mean, ``"zprob"`` the zero part's probability, ``"response"`` the mean of ``y``."""
        thetas, beta, gamma, _ = self.model.split(self.x)
        A, C = self.model._designs(thetas)
        eta, zeta = self.model._at(self.model.u, self.model.X @ beta + self.model.offset,
                                   self.model.Xz @ gamma, A, C)
        return self._by_type(eta, zeta, type)

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "response",
                re: bool = True, allow_new_levels: bool = False) -> np.ndarray:
        """Predictions for ``newdata`` (default: the fitted rows).

        Parameters
        ----------
        newdata : DataFrame, optional
            rows with the columns of both formulas.
        type : str, optional
            ``"response"`` (default; the mean of ``y``), ``"conditional"`` (the count
            part's mean) or ``"zprob"`` (the zero part's probability), as glmmTMB's.
        re : bool, optional
            include both parts' random effects (their conditional modes).
        allow_new_levels : bool, optional
            unseen levels of the grouping factor get random effects of zero instead of an
            error.
        """
        if newdata is None and re:
            return self.fitted(type)
        _, beta, gamma, _ = self.model.split(self.x)
        if newdata is None:
            eta = self.model.X @ beta + self.model.offset
            zeta = self.model.Xz @ gamma
            return self._by_type(eta, zeta, type)
        self._frame.check_new_levels(newdata)
        eta = self._frame.new_X(newdata) @ beta + self._frame.new_offset(newdata)
        zeta = self._zframe.new_X(newdata) @ gamma
        if re:
            from ..terms.design import _codes_for

            u, k = self.model.u, 0
            for term, Lam in zip(self.model.terms, self._lambdas(), strict=True):
                codes = _codes_for(newdata, term.reterm, allow_new_levels)
                b = u[:, k:k + term.p] @ Lam.T                     # (levels, p)
                rows = np.where(codes[:, None] >= 0, b[np.maximum(codes, 0)], 0.0)
                contribution = np.sum(term.reterm.new_z(newdata) * rows, axis=1)
                if term.part == "cond":
                    eta = eta + contribution
                else:
                    zeta = zeta + contribution
                k += term.p
        return self._by_type(eta, zeta, type)

    def _by_type(self, eta: np.ndarray, zeta: np.ndarray, type: str) -> np.ndarray:
        from scipy import special

        if type not in ("response", "conditional", "zprob"):
            raise ValueError(f"type must be 'response', 'conditional' or 'zprob'; got {type!r}")
        mu = self.model.family.link.inverse(eta)
        pi = special.expit(zeta)
        if type == "conditional":
            return mu
        if type == "zprob":
            return pi
        if self.model.family.hurdle:
            own = self.model.split(self.x)[3]
            base = self.model.family.base.with_extra(own) if self.model.n_own \
                else self.model.family.base
            p0 = np.exp(base.loglik(np.zeros_like(mu), mu, None, 1.0))
            return (1.0 - pi) * mu / (1.0 - p0)
        return (1.0 - pi) * mu

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict:
        """The fit as plain data (JSON-ready): formulas, counts, both parts' coefficients
        with SEs, the random effects, the criteria and the optimizers' records."""
        def coefs(est: pd.Series, se: pd.Series) -> dict:
            return {str(k): {"estimate": float(est[k]),
                             "se": float(se[k]) if np.isfinite(se[k]) else None}
                    for k in est.index}

        return {
            "formula": self.formula, "ziformula": self.ziformula,
            "family": self.family_name, "nagq": self.nagq, "nobs": self.nobs,
            "ngroups": {self.group_name: self.ngroups},
            "fixef": coefs(self.fixef, self.stderr),
            "zero_part": coefs(self.fixef_zi, self.stderr_zi),
            "varcorr": self.varcorr.replace({np.nan: None}).to_dict(orient="records"),
            "family_parameters": dict(self.family_parameters),
            "loglik": self.loglik, "deviance": self.deviance, "aic": self.aic,
            "bic": self.bic, "df": self.df, "is_singular": self.is_singular,
            "converged": self.converged, "messages": list(self.messages),
            "optimizers": [{"optimizer": r.optimizer, "feval": r.feval,
                            "fmin": r.fmin} for r in self.records],
        }

    # ------------------------------------------------------------------ printing
    def update(self, formula: str | None = None, **changes):
        """Refit with changes, as R's ``update`` (see
        :meth:`glamm.results.base.MixedResultBase.update`)."""
        from .call import update

        return update(self, formula, **changes)

    def _repr_html_(self) -> str:
        from .html import result_html

        return result_html(self)

    def summary(self) -> str:
        from .zi_random_summary import format_summary

        return format_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<ZiRandomResult {self.family_name}: {self.formula}, zi {self.ziformula}; "
                f"logLik {self.loglik:.4f}>")

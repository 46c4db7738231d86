"""The fitted GLMM returned by :func:`glamm.glmer`."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..glmm.derivatives import QuadratureDerivatives, choose_derivatives
from ..glmm.fit import GlmmFitRecord, full_objective, quadrature_objective
from ..optim.newton import FiniteDifferences
from ..linalg.threads import single_threaded
from ..glmm.model import GeneralizedLinearMixedModel
from ..lmm.estimates import linear_predictor_re
from ..formula.design import row_labels
from .base import MixedResultBase
from .smooth_results import SmoothResultsMixin
from .export import fit_dict, mixed_fields


class GlmerResult(SmoothResultsMixin, MixedResultBase):
    """A GLMM fitted by the Laplace approximation.

    Attributes
    ----------
    formula, family (name), link (name), fast (whether only the fast fit was run).
    fixef: fixed effects (lme4 names). ``stderr``, ``vcov``: from the Hessian of the Laplace
        deviance in all parameters (computed on first use; lme4's default ``use.hessian``).
    theta: random-effects parameters (lme4 order): the standard deviations themselves for
        binomial, Poisson and negative binomial models, relative to ``sqrt(dispersion)`` for
        families with a dispersion (as lme4).
    dispersion: dispersion parameter (1 for binomial and Poisson); ``shape`` the negative
        binomial size (``None`` otherwise).
    varcorr, ranef, ranef_condvar: as for :class:`~glamm.results.lmer_result.LmerResult`
        (``varcorr`` has a Residual row only for families with a dispersion parameter).
    loglik: the full log-likelihood (all normalizing constants) by the Laplace
        approximation; ``deviance = -2 loglik``; ``aic``, ``bic``, ``npar``.
    nobs, ngroups, df_resid, is_singular, optsum (the full fit's record, or the fast one's),
    optsum_fast.
    """

    def __init__(self, model: GeneralizedLinearMixedModel, record: GlmmFitRecord, base_family):
        self.model = model
        self.frame = model.frame
        self.record = record
        self._base_family = base_family
        self.optsum = record.full if record.full is not None else record.fast
        self.optsum_fast = record.fast
        self.fast = record.full is None
        self.formula = self.frame.parsed.formula
        fam = model.family
        self.family = fam.name
        self.link = fam.link.name
        self.theta = model.theta.copy()
        self.theta_names = model.layout.names()
        self.dispersion = float(model.dispersion)
        self.shape = float(fam.theta) if getattr(fam, "has_shape", False) else None
        xn = self.frame.xnames
        self.fixef = pd.Series(model.beta.copy(), index=xn, name="Estimate")
        self.nagq = record.nagq
        if record.quadrature is not None:
            # the optimizer's value at the final point (the state is there), less the penalty
            pen = model.penalty.deviance(model.beta) if model.penalty is not None else 0.0
            self._laplace = record.full.fmin - pen
        else:
            self._laplace = model.laplace()
        self.loglik = -0.5 * self._laplace
        self.deviance = self._laplace
        #: the penalty (penalized fits) and the log-likelihood plus the log prior density
        self.penalty = model.penalty
        self.penalized_loglik = (self.loglik + model.penalty.log_density(model.beta)
                                 if model.penalty is not None else None)
        self.nobs = model.n
        n_extra = len(record.names) - model.n_theta - model.p
        self.npar = model.n_theta + model.p + n_extra
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        self.bic = -2.0 * self.loglik + np.log(self.nobs) * self.npar
        self.df_resid = self.nobs - self.npar
        self.ngroups, self.is_singular = self._groups_and_singularity(model.layout.slices)
        self.n_dropped_na = self.frame.n_dropped_na
        self.dropped_columns = list(self.frame.dropped_columns)
        self._b = model.random_effects(self.theta, model.u)
        self._eta = model.eta.copy()
        self._mu = model.mu.copy()
        resid_sd = np.sqrt(self.dispersion) if fam.has_dispersion else None
        covs = [lam @ lam.T for lam in model.lambdas(self.theta)]
        self.varcorr = self._varcorr_rows(covs, resid_sd)
        self.ranef = self._ranef_tables(self._b)
        #: plain-language notes on the fit (separation, extreme fitted values), set by glmer
        self.notes: list[str] = []

    def _factor(self):
        return self.model.fac_b

    #: the statistic of the parametric table: z with normal p-values
    _coef_stat = "z"

    def _smooth_state(self, theta=None):
        """The joint (random and fixed effects) factor with the Fisher weights at the mode
        (gamm4 uses lme4's working weights there); its system is already divided by the
        dispersion, so the covariance scale is 1 and ``b = sqrt(dispersion) theta u``. With
        ``theta`` only the lambdas change (the weights stay those at the estimates)."""
        m = self.model
        if theta is None:
            m.pirls(self.theta, self.fixef.to_numpy())
            w, mu_eta = m._weights(m.eta, m.mu)
            zwork = m.eta - m.offset + (m.y - m.mu) / mu_eta
            m.cp_b.update(w, zwork)
            m.fac_b.refresh()
        m.fac_b.update(m.lambdas(self.theta if theta is None else theta))
        return m.fac_b, 1.0, bool(m.family.has_dispersion), float(self.dispersion)

    # ------------------------------------------------------------------ inference
    @cached_property
    def _hessian(self) -> np.ndarray:
        """Hessian of the Laplace deviance in ``[theta, beta, extra]`` at the optimum."""
        if self.record.hessian is not None:  # computed by the Newton polish of the fit
            return self.record.hessian
        m = self.model
        x = np.concatenate([self.theta, self.fixef.to_numpy(), self._extra()])
        if self.record.quadrature is not None:
            f = quadrature_objective(m, self._base_family, self.record.quadrature)
            derivs = FiniteDifferences(f)
            if x.size == m.n_theta + m.p:   # no dispersion or shape parameter
                # differences of exact gradients
                derivs = QuadratureDerivatives(f, m, self.record.quadrature)
        else:
            f = full_objective(m, self._base_family)
            derivs = choose_derivatives(f, m)
        with single_threaded(1):
            # forward differences of analytic gradients are accurate to ~1e-5 relative, ample
            # for standard errors; central ones (twice the cost) for finite-difference values
            _, H, _ = derivs.grad_hess(x, central=False)
        f(x)
        return H

    def _extra(self) -> np.ndarray:
        if self.shape is not None:
            return np.array([np.log(self.shape)])
        if self.model.family.has_dispersion:
            return np.array([np.log(self.dispersion)])
        return np.zeros(0)

    def parameter_covariance(self) -> np.ndarray:
        """Covariance of all parameters ``[theta, beta, extra]``: ``2 H^{-1}`` (pseudo-inverse;
        ``theta`` components on their bound get zero variance)."""
        nt = self.model.n_theta
        H = self._hessian
        keep = np.ones(H.shape[0], dtype=bool)
        lower = self.model.layout.lower()
        keep[:nt] = ~(np.isfinite(lower) & (self.theta <= lower + 1e-8))
        cov = np.zeros_like(H)
        cov[np.ix_(keep, keep)] = 2.0 * np.linalg.pinv(H[np.ix_(keep, keep)])
        T = self.record.transform
        return cov if T is None else T @ cov @ T.T   # fitted on rescaled columns

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects: the ``beta`` block of ``2 H^{-1}`` (``H`` the Hessian
        of the deviance); ``theta`` components on their bound are left out (a singular fit)."""
        nt, p = self.model.n_theta, self.model.p
        V = self.parameter_covariance()[nt:nt + p, nt:nt + p]
        xn = self.frame.xnames
        return pd.DataFrame(V, index=xn, columns=xn)

    @cached_property
    def stderr(self) -> pd.Series:
        from ..checks import warn_nonfinite_stderr

        with np.errstate(invalid="ignore"):   # a negative variance: reported by name below
            se = np.sqrt(np.diag(self.vcov.to_numpy()))
        warn_nonfinite_stderr(list(self.frame.xnames), se)
        return pd.Series(se, index=self.frame.xnames, name="Std. Error")

    def coef_table(self) -> pd.DataFrame:
        """Fixed effects with standard errors, z values and two-sided normal p-values."""
        z = self.fixef / self.stderr
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.stderr, "z value": z,
                             "Pr(>|z|)": 2.0 * st.norm.sf(np.abs(z))})

    @cached_property
    def ranef_condcov(self) -> list[np.ndarray]:
        """Conditional covariances of the random effects at the mode (lme4's ``condVar``)."""
        m = self.model
        lams = m.lambdas(self.theta)
        out = []
        for k, lam in enumerate(lams):
            inv = m.fac_u.inverse_diag_blocks(k)
            out.append(np.einsum("ij,mjk,lk->mil", lam, inv, lam))
        return out

    @cached_property
    def ranef_condvar(self) -> dict[str, pd.DataFrame]:
        return self._condvar_tables(self.ranef_condcov)

    # ------------------------------------------------------------------ fitted values
    def fitted(self, type: str = "response") -> np.ndarray:
        """Fitted means (``type="response"``) or linear predictor (``"link"``)."""
        if type == "response":
            return self._mu.copy()
        if type == "link":
            return self._eta.copy()
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")

    def residuals(self, type: str = "deviance") -> np.ndarray:
        """Residuals: ``"response"`` (y - mu), ``"pearson"`` or ``"deviance"`` (default, as R).

        For binomial responses ``y`` is the proportion of successes."""
        fam, y, mu, wt = self.model.family, self.model.y, self._mu, self.model.wt
        if type == "response":
            return y - mu
        if type == "pearson":
            return (y - mu) * np.sqrt(wt / fam.variance(mu))
        if type == "deviance":
            d = fam.deviance_residuals(y, mu, wt)
            return np.sign(y - mu) * np.sqrt(np.maximum(d, 0.0))
        raise ValueError(f"type must be 'response', 'pearson' or 'deviance', got {type!r}")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re: bool = True,
                allow_new_levels: bool = False, new_from_responses: bool = False) -> np.ndarray:
        """Predictions on the link (default, as R) or response scale.

        Parameters
        ----------
        newdata: data frame with the columns the model uses; ``None`` predicts the fitted data.
        type: ``"link"``, ``"response"`` or ``"marginal"`` (population-averaged means: the
            conditional mean averaged over the random effects, see
            :func:`glamm.marginal_coefs`; ``re`` is then ignored).
        re: include the random effects (``False``: population level; smooth terms are part of
            the mean curve and stay in).
        allow_new_levels: unseen levels get random effects of zero instead of an error.
        new_from_responses: unseen levels (new subjects) get their empirical Bayes random
            effects, the conditional modes given their own responses in ``newdata`` (which
            must then contain the response); GLMMadaptive's subject-specific predictions for
            new subjects. One grouping factor only.
        """
        if type == "marginal":
            from ..inference.marginal import marginal_means

            return marginal_means(self, newdata=newdata)
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link', 'response' or 'marginal', got {type!r}")
        beta = self.fixef.to_numpy()
        if newdata is None:
            eta = self._eta.copy() if re else \
                self.frame.X @ beta + self.frame.offset + self._smooth_re(None)
        else:
            eta = self.frame.new_X(newdata) @ beta + self.frame.new_offset(newdata)
            if not re:
                eta = eta + self._smooth_re(newdata)
            if re:
                refs, zs = self._new_re_design(newdata, allow_new_levels or new_from_responses)
                b = self._b
                if new_from_responses and np.any(refs[0] < 0):
                    b, refs = self._with_new_clusters(newdata, refs)
                eta = eta + linear_predictor_re(self.model.reterms, b, refs, zs)
        return self.model.family.link.inverse(eta) if type == "response" else eta

    def _with_new_clusters(self, newdata: pd.DataFrame, refs: list[np.ndarray]):
        """Random effects extended by the empirical Bayes modes of the new clusters."""
        from ..glmm.empirical_bayes import new_cluster_modes

        term = self.model.reterms[0]
        codes = refs[0]
        labels = row_labels(newdata, term.factors)
        new_levels = list(dict.fromkeys(labels[codes < 0]))
        b_new = new_cluster_modes(self, newdata, codes, new_levels)
        index = {lab: term.nlevels + i for i, lab in enumerate(new_levels)}
        new_codes = np.where(codes < 0, [index.get(lab, -1) for lab in labels], codes)
        b, start = [], 0
        for t, bk in zip(self.model.reterms, self._b):
            b.append(np.vstack([bk, b_new[:, start:start + t.p]]))
            start += t.p
        return b, [new_codes for _ in self.model.reterms]

    @property
    def converged(self) -> bool:
        return bool(self.optsum.converged)

    @property
    def method(self) -> str:
        if self.nagq > 1:
            base = f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}"
        else:
            base = "Laplace" + (" (fast: beta inside PIRLS)" if self.fast else "")
        if self.penalty is not None:
            base += "; penalized fixed effects (Student-t prior)"
        return base

    def _format(self) -> str:
        from .summary import format_glmer

        return format_glmer(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the fit (for ``--json`` output)."""
        return fit_dict(self, family=self.family, link=self.link, dispersion=self.dispersion,
                        shape=self.shape, notes=list(self.notes), **mixed_fields(self))

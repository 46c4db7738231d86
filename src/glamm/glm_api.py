"""Generalized linear models without random effects: :func:`glm` and :class:`GlmResult`.

Mostly the null model of a likelihood-ratio test of the random effects of a GLMM::

    g0 = glamm.glm("cbind(incidence, size - incidence) ~ period", cbpp, family="binomial")
    g1 = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    glamm.anova(g0, g1)

The fit is R's ``glm``: iteratively reweighted least squares
(:func:`glamm.glmm.glm.fit_glm`), responses and weights as for :func:`glamm.glmer`, the full
log-likelihood (all normalizing constants) with R's plug-in dispersion, so that ``loglik``,
``aic`` and ``bic`` equal R's ``logLik``, ``AIC`` and ``BIC`` and are comparable with a
:class:`~glamm.results.glmer_result.GlmerResult` of the same data.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .arguments import resolve_keywords
from .checks import check_glm_response, warn_nonfinite_stderr, warn_scaling
from .errors import ConvergenceWarning, DataError
from .families import get_family
from .formula.design import ModelFrame, build_model_frame
from .glmm.glm import GlmFit, fit_glm
from .glmm.separation import extreme_fitted, separation_message
from .results.call import records_call
from .results.export import fit_dict

#: search interval of the negative binomial shape when it is estimated (log scale)
_LOG_SHAPE_BOUNDS = (math.log(1e-4), math.log(1e6))


class GlmResult:
    """A generalized linear model fitted by :func:`glm`.

    Attributes
    ----------
    formula : str
        The formula as given.
    family, link : str
        Names of the family and the link.
    frame : ModelFrame
        The :class:`~glamm.formula.design.ModelFrame` (response, ``X``, weights, trials).
    fixef : pandas.Series
        Coefficients (lme4/R names).
    vcov : pandas.DataFrame
        Their covariance ``(X' W X)^{-1} * dispersion`` (``W`` the IRLS weights at the
        estimate); ``stderr`` the square roots of its diagonal.
    dispersion : float
        The dispersion used for the standard errors: 1 for the binomial, Poisson and negative
        binomial, else R's Pearson estimate ``sum(w (y - mu)^2 / V(mu)) / df_resid``.
    estimated_dispersion : bool
        Whether the family has a free dispersion parameter.
    shape : float or None
        The negative binomial's shape (MASS's ``theta``) (``None`` for other families);
        ``shape_estimated`` whether it was estimated by maximum likelihood.
    loglik : float
        Full log-likelihood (R's ``logLik``; for families with a dispersion at R's plug-in
        value ``deviance / n``). ``deviance = -2 loglik`` (as in lme4's tables);
        ``residual_deviance`` is R's ``deviance(glm)``, the sum of the unit deviances.
    npar : int
        Number of parameters (coefficients, plus the dispersion or an estimated shape);
        ``aic``, ``bic``.
    nobs : int
        Number of rows used; ``df_resid = nobs - p`` (R's ``df.residual``).
    converged, iterations : bool, int
        Outcome of IRLS.
    n_dropped_na, dropped_columns : int, list of str
        Rows dropped for missing values, aliased columns dropped.
    """

    def __init__(self, frame: ModelFrame, family, fit: GlmFit, shape_estimated: bool = False,
                 ml_dispersion: float | None = None):
        self.frame = frame
        self._family = family
        self.formula = frame.parsed.formula
        self.family = family.name
        self.link = family.link.name
        self.shape = float(family.shape) if getattr(family, "has_shape", False) else None
        self.shape_estimated = bool(shape_estimated and self.shape is not None)
        self.estimated_dispersion = bool(family.has_dispersion)
        self.wt = frame.weights * (frame.trials if frame.trials is not None else 1.0)
        xn = frame.xnames
        self.fixef = pd.Series(fit.beta.copy(), index=xn, name="Estimate")
        self._eta = fit.eta.copy()
        self._mu = fit.mu.copy()
        self.converged = bool(fit.converged)
        self.iterations = int(fit.iterations)
        self.nobs = int(frame.n)
        p = frame.X.shape[1]
        self.df_resid = self.nobs - p
        self.residual_deviance = float(fit.deviance)
        self.dispersion = float(fit.dispersion) if family.has_dispersion else 1.0
        #: ``sqrt(dispersion)`` for families with a dispersion, 1 otherwise (as on GLMM fits)
        self.sigma = math.sqrt(self.dispersion) if family.has_dispersion else 1.0
        self.loglik = _full_loglik(family, frame.y, self._mu, self.wt, self.residual_deviance)
        self.deviance = -2.0 * self.loglik
        self.npar = p + int(family.has_dispersion) + int(self.shape_estimated)
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        self.bic = -2.0 * self.loglik + math.log(self.nobs) * self.npar
        self.n_dropped_na = frame.n_dropped_na
        self.dropped_columns = list(frame.dropped_columns)

        w, _ = family.fisher_weights(self._eta, self._mu, self.wt,
                                     mu_eta=family.link.mu_eta(self._eta))
        X = frame.X
        if ml_dispersion is not None:   # a family outside the exponential family, by ML
            self._extra_ml(family, frame, ml_dispersion)
            V = self._full_covariance(family, frame)[:p, :p]
        else:
            xtwx = X.T @ (X * w[:, None])
            V = np.linalg.inv(xtwx) * self.dispersion if p else np.zeros((0, 0))
        self.vcov = pd.DataFrame(V, index=xn, columns=xn)
        with np.errstate(invalid="ignore"):   # not finite: glm() warns, the summary notes
            self.stderr = pd.Series(np.sqrt(np.diag(V)), index=xn, name="Std. Error")

    def _extra_ml(self, family, frame: ModelFrame, dispersion: float) -> None:
        """Likelihood, parameter count and ``sigma`` of a family outside the exponential
        family fitted by maximum likelihood (its own parameters and dispersion estimated;
        the standard errors of the coefficients are then conditional on them)."""
        self.dispersion = float(dispersion) if family.has_dispersion else 1.0
        #: the family is one of glmmTMB's outside the exponential family
        self.extra_family = True
        self.sigma = float(family.tmb_sigma(self.dispersion))
        #: the dispersion and the family's own parameters at the estimates (natural scale)
        self.family_parameters = ({"dispersion": self.dispersion} if family.has_dispersion
                                  else {})
        self.family_parameters.update(zip(family.natural_names, family.values, strict=True))
        self.loglik = float(np.sum(family.loglik(frame.y, self._mu, self.wt, self.dispersion)))
        self.deviance = -2.0 * self.loglik
        self.npar = frame.X.shape[1] + int(family.has_dispersion) + len(family.values)
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        self.bic = -2.0 * self.loglik + math.log(self.nobs) * self.npar

    def _full_covariance(self, family, frame: ModelFrame) -> np.ndarray:
        """The inverse of the observed information in ``[beta, log(dispersion), the family's
        own parameters (log scale)]`` (central differences of the analytic score in ``beta``
        and of the log-likelihood in the others): the coefficients' standard errors account
        for the estimated family parameters, as glmmTMB's; fills
        :attr:`family_parameter_se` (natural scale, delta method)."""
        X, y, wt = frame.X, frame.y, self.wt
        beta0 = self.fixef.to_numpy()
        extra0 = list(family.extra_values())
        if family.has_dispersion:
            extra0 = [math.log(self.dispersion)] + extra0
        x0 = np.concatenate([beta0, extra0])
        p = beta0.size

        def loglik(x: np.ndarray) -> float:
            eta = X @ x[:p] + frame.offset
            disp = math.exp(x[p]) if family.has_dispersion else 1.0
            f = family.with_extra(x[p + int(family.has_dispersion):])
            return float(np.sum(f.loglik(y, f.link.inverse(eta), wt, disp)))

        n = x0.size
        H = np.empty((n, n))
        steps = 1e-4 * np.maximum(np.abs(x0), 0.1)
        for i in range(n):
            for j in range(i, n):
                ei, ej = np.eye(n)[i] * steps[i], np.eye(n)[j] * steps[j]
                H[i, j] = H[j, i] = (loglik(x0 + ei + ej) - loglik(x0 + ei - ej)
                                     - loglik(x0 - ei + ej) + loglik(x0 - ei - ej)) \
                    / (4.0 * steps[i] * steps[j])
        cov = np.linalg.inv(-H)
        se_opt = np.sqrt(np.abs(np.diag(cov)[p:]))
        # d natural / d optimization scale: exp for logs, (p - 1)(2 - p) for the Tweedie power
        slope = [self.dispersion] if family.has_dispersion else []
        slope += [(v - 1.0) * (2.0 - v) if n == "logit(power - 1)" else v
                  for n, v in zip(family.extra_names(), family.values, strict=True)]
        names = (["dispersion"] if family.has_dispersion else []) + list(family.natural_names)
        #: standard errors of the family parameters (natural scale; delta method)
        self.family_parameter_se = dict(zip(names, np.asarray(slope) * se_opt, strict=True))
        return cov

    # ------------------------------------------------------------------ tables
    def update(self, formula: str | None = None, **changes):
        """Refit with changes, as R's ``update`` (see
        :meth:`glamm.results.base.MixedResultBase.update`)."""
        from .results.call import update

        return update(self, formula, **changes)

    def _repr_html_(self) -> str:
        from .results.html import result_html

        return result_html(self)

    def coef_table(self) -> pd.DataFrame:
        """Coefficients with standard errors, test statistics and two-sided p-values, as R's
        ``summary.glm``: ``z value`` / ``Pr(>|z|)`` (normal) for families without a
        dispersion parameter, ``t value`` / ``Pr(>|t|)`` (t on ``df_resid``) otherwise."""
        stat = self.fixef / self.stderr
        if self.estimated_dispersion and not getattr(self, "extra_family", False):
            p = 2.0 * stats.t.sf(np.abs(stat), self.df_resid)
            names = ("t value", "Pr(>|t|)")
        else:
            p = 2.0 * stats.norm.sf(np.abs(stat))
            names = ("z value", "Pr(>|z|)")
        return pd.DataFrame({"Estimate": self.fixef, "Std. Error": self.stderr,
                             names[0]: stat, names[1]: p})

    # ------------------------------------------------------------------ fitted values
    def fitted(self, type: str = "response") -> np.ndarray:
        """Fitted means (``type="response"``, default) or the linear predictor (``"link"``)."""
        if type == "response":
            return self._mu.copy()
        if type == "link":
            return self._eta.copy()
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")

    def residuals(self, type: str = "deviance") -> np.ndarray:
        """Residuals: ``"deviance"`` (default, as R), ``"pearson"`` or ``"response"``
        (``y - mu``; for binomial responses ``y`` is the proportion of successes)."""
        fam, y, mu = self._family, self.frame.y, self._mu
        if type == "response":
            return y - mu
        if type == "pearson":
            return (y - mu) * np.sqrt(self.wt / fam.variance(mu))
        if type == "deviance":
            d = fam.deviance_residuals(y, mu, self.wt)
            return np.sign(y - mu) * np.sqrt(np.maximum(d, 0.0))
        raise ValueError(f"type must be 'response', 'pearson' or 'deviance', got {type!r}")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link") -> np.ndarray:
        """Predictions on the link scale (default, as R) or the response scale.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            A data frame with the columns the model uses; ``None`` predicts the data the
            model was fitted to.
        type : str
            ``"link"`` or ``"response"``.

        Returns
        -------
        ndarray
            One prediction per row.
        """
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}")
        if newdata is None:
            eta = self._eta.copy()
        else:
            eta = self.frame.new_X(newdata) @ self.fixef.to_numpy() + \
                self.frame.new_offset(newdata)
        return self._family.link.inverse(eta) if type == "response" else eta

    # ------------------------------------------------------------------ printing
    def __repr__(self) -> str:
        from .results.summary import format_glm

        return format_glm(self)

    __str__ = __repr__

    def summary(self) -> str:
        """The printed summary as a string."""
        return repr(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form of the fit (numbers as Python floats and lists)."""
        out = fit_dict(self, family=self.family, link=self.link, dispersion=self.dispersion,
                       shape=self.shape, residual_deviance=self.residual_deviance,
                       npar=self.npar, converged=self.converged)
        out["method"] = "ML (IRLS)"
        if getattr(self, "extra_family", False):
            out["sigma"] = float(self.sigma)
            out["family_parameters"] = {k: {"estimate": float(v),
                                            "std_error": float(self.family_parameter_se[k])}
                                        for k, v in self.family_parameters.items()}
        return out


def _full_loglik(family, y: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
    """R's ``logLik`` of a GLM: families with a dispersion use R's plug-in value
    (``gaussian()$aic``: ``dev / n``; ``Gamma()$aic``, ``inverse.gaussian()$aic``:
    ``dev / sum(wt)``)."""
    if family.has_dispersion:
        denom = len(y) if family.name == "gaussian" else float(np.sum(wt))
        disp = dev / denom
    else:
        disp = 1.0
    return float(np.sum(family.loglik(y, mu, wt, disp)))


def _irls(frame: ModelFrame, wt: np.ndarray, family, dispersion: float = 1.0) -> GlmFit:
    """:func:`fit_glm` with its start-of-GLMM wording of non-convergence kept quiet (the caller
    reports non-convergence itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_glm(frame.X, frame.y, wt, frame.offset, family, dispersion=dispersion)


def _ml_family_parameters(frame: ModelFrame, wt: np.ndarray, fam):
    """Maximum likelihood of a family's own parameters (and its dispersion) with the
    coefficients profiled out by IRLS (which, with the family's working residual, solves the
    score equations): returns the family at the estimates and the dispersion (1 without
    one)."""
    start_fit = _irls(frame, wt, fam)
    x0 = list(fam.extra_start(frame.y, start_fit.mu, wt))
    if fam.has_dispersion:
        x0 = [math.log(max(start_fit.dispersion, 1e-12))] + x0

    def split(x: np.ndarray):
        if fam.has_dispersion:
            return fam.with_extra(x[1:]), math.exp(x[0])
        return fam.with_extra(x), 1.0

    def negloglik(x: np.ndarray) -> float:
        if np.any(np.abs(x) > 30):
            return np.inf
        f, disp = split(x)
        fit = _irls(frame, wt, f, disp)
        value = -float(np.sum(f.loglik(frame.y, fit.mu, wt, disp)))
        return value if np.isfinite(value) else np.inf

    best = optimize.minimize(negloglik, np.asarray(x0, dtype=float), method="Nelder-Mead",
                             options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000})
    f, disp = split(best.x)
    return f, disp


@records_call
def glm(
    formula: str,
    data: pd.DataFrame,
    family: Any = "binomial",
    link: Any = None,
    weights: Any = None,
    offset: Any = None,
    verbose: int = 0,
    **kwargs: Any,
) -> GlmResult:
    """Fit a generalized linear model (no random effects) by maximum likelihood, as R's ``glm``.

    Parameters
    ----------
    formula : str
        A formula without random-effects terms, e.g.
        ``"cbind(incidence, size - incidence) ~ period"``. Responses as for
        :func:`glamm.glmer`: 0/1 numbers, booleans, a two-level factor (first level =
        failure), proportions with ``weights`` = numbers of trials, or
        ``cbind(successes, failures)``; ``offset(x)`` terms are allowed.
    data : pandas.DataFrame
        The data.
    family : str or Family
        A family name (``"binomial"`` (default), ``"poisson"``, ``"gaussian"``,
        ``"Gamma"``, ``"inverse_gaussian"``, ``"negative_binomial"``) or a
        :class:`glamm.families.Family`. Given by name, the negative binomial's shape
        (MASS's ``theta``) is estimated by maximum likelihood (as MASS's ``glm.nb``) and
        counted in ``npar``; a ``NegativeBinomial`` object keeps its shape fixed (MASS's
        ``glm(family = negative.binomial(theta))``).
    link : str, optional
        Link name overriding the family's default link.
    weights : str or array_like, optional
        Prior weights (column name or array); for binomial proportions, the trials.
    offset : str or array_like, optional
        Column name or array added to the linear predictor.
    verbose : int
        Print the deviance of each IRLS iteration (``2``: with the coefficients); default 0.
    **kwargs : Any
        Taken only to explain them: any other keyword (an lme4 argument such as ``REML`` or
        ``control``) is an :class:`~glamm.errors.ArgumentError` saying what to use instead
        (:mod:`glamm.arguments`).

    Returns
    -------
    GlmResult
        The fitted model.

    Raises
    ------
    FormulaError, DataError
        Problems with the formula, the data or the family (as for :func:`glamm.glmer`), or
        random-effects terms in the formula.

    Warns
    -----
    ConvergenceWarning
        IRLS did not converge (the summary says so too).
    """
    resolve_keywords(glm, kwargs)
    fam = get_family(family, link)
    frame = build_model_frame(formula, data, weights=weights, offset=offset, glm_response=True)
    if frame.reterms:
        raise DataError(
            f"glm() fits no random effects, but the formula has {len(frame.reterms)} "
            "random-effects term(s) such as (1 | group); use glamm.glmer for those, or drop "
            "them from the formula"
        )
    wt = frame.weights * (frame.trials if frame.trials is not None else 1.0)
    fam.validate(frame.y, wt)
    check_glm_response(frame, fam)
    warn_scaling(frame)

    estimate_shape = isinstance(family, str) and getattr(fam, "has_shape", False)
    if estimate_shape:
        def negloglik(log_shape: float) -> float:
            f = fam.with_shape(math.exp(log_shape))
            fit = _irls(frame, wt, f)
            return -_full_loglik(f, frame.y, fit.mu, wt, fit.deviance)

        best = optimize.minimize_scalar(negloglik, bounds=_LOG_SHAPE_BOUNDS, method="bounded",
                                        options={"xatol": 1e-8})
        fam = fam.with_shape(math.exp(best.x))

    ml_dispersion = None
    if hasattr(fam, "tmb_sigma"):   # outside the exponential family: ML over its parameters
        fam, ml_dispersion = _ml_family_parameters(frame, wt, fam)
    fit = _irls(frame, wt, fam, ml_dispersion or 1.0)
    if not fit.converged:
        warnings.warn(f"IRLS did not converge in {fit.iterations} iterations",
                      ConvergenceWarning, stacklevel=2)
    if fam.name == "binomial":
        _warn_extreme_fitted(frame, fit.mu, wt)
    result = GlmResult(frame, fam, fit, shape_estimated=estimate_shape,
                       ml_dispersion=ml_dispersion)
    warn_nonfinite_stderr(list(frame.xnames), result.stderr.to_numpy())
    return result


def _warn_extreme_fitted(frame: ModelFrame, mu: np.ndarray, wt: np.ndarray) -> None:
    """R's warning "fitted probabilities numerically 0 or 1 occurred", naming the column(s)
    that separate the outcomes when there are any."""
    k = extreme_fitted(mu[wt > 0])
    if not k:
        return
    msg = f"fitted probabilities numerically 0 or 1 occurred ({k} observation(s))"
    why = separation_message(frame.X, frame.xnames, frame.y, wt)
    if why is not None:
        msg += f": {why}, so some coefficients have no finite estimate (the reported values " \
               "are where IRLS stopped)"
    warnings.warn(msg, UserWarning, stacklevel=3)

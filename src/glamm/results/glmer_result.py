"""The fitted GLMM returned by :func:`glamm.glmer`."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..errors import GlammError
from ..formula.evaluate import row_labels
from ..glmm.derivatives import QuadratureDerivatives, choose_derivatives
from ..glmm.fit import GlmmFitRecord, full_objective, quadrature_objective
from ..glmm.model import GeneralizedLinearMixedModel
from ..linalg.threads import single_threaded
from ..optim.newton import FiniteDifferences
from .base import MixedResultBase
from .export import fit_dict, mixed_fields
from .scratch import working_copy
from .smooth_results import SmoothResultsMixin
from .wald import wald_table


class GlmerResult(SmoothResultsMixin, MixedResultBase):
    """A GLMM fitted by the Laplace approximation.

    Attributes
    ----------
    formula : str
        The model formula as given.
    family, link : str
        Names of the family and the link.
    fast : bool
        Whether only the fast fit was run.
    fixef : Series
        Fixed effects (lme4 names).
    stderr : Series
        Standard errors, from the Hessian of the Laplace deviance in all parameters
        (computed on first use; lme4's default ``use.hessian``).
    vcov : DataFrame
        Covariance matrix of the fixed effects, from the same Hessian.
    theta : ndarray
        Random-effects parameters (lme4 order): the standard deviations themselves for
        binomial, Poisson and negative binomial models, relative to ``sqrt(dispersion)`` for
        families with a dispersion (as lme4).
    dispersion : float
        Dispersion parameter (1 for binomial and Poisson).
    shape : float or None
        The negative binomial size (``None`` otherwise).
    sigma : float
        lme4's ``sigma()``: ``sqrt(dispersion)`` for families with a dispersion, 1 otherwise.
    varcorr, ranef, ranef_condvar
        As for :class:`~glamm.results.lmer_result.LmerResult` (``varcorr`` has a Residual
        row only for families with a dispersion parameter).
    loglik : float
        The full log-likelihood (all normalizing constants) by the Laplace
        approximation; ``deviance = -2 loglik``.
    deviance, aic, bic : float
        Deviance and information criteria.
    npar, nobs, df_resid : int
        Number of parameters, observations and residual degrees of freedom.
    ngroups : dict of str to int
        Levels per grouping factor.
    is_singular : bool
        A variance or correlation is on the boundary.
    optsum : OptSummary
        The full fit's record, or the fast one's.
    optsum_fast : OptSummary
        The fast fit's record.
    """

    model: GeneralizedLinearMixedModel

    def __init__(self, model: GeneralizedLinearMixedModel, record: GlmmFitRecord, base_family):
        if model.theta is None or model.eta is None or model.mu is None:
            raise GlammError("GlmerResult needs a fitted model (theta, eta and mu set)")
        self.model = model
        self.frame = model.frame
        self.record = record
        self._base_family = base_family
        self.optsum = record.full if record.full is not None else record.fast
        self.optsum_fast = record.fast
        self.fast = record.full is None
        self.formula = self.frame.parsed.formula
        fam = model.family
        resp = model.response
        self.family = fam.name
        self.link = fam.link.name
        #: per-row families: ``{label: "family(link)"}`` (``None`` for one family)
        self.families = ({lab: f"{f.name}({f.link.name})" for lab, f in
                          zip(resp.labels, resp.current_components(), strict=True)}
                         if resp.mixed else None)
        self.theta = model.theta.copy()
        self.theta_names = model.layout.names()
        #: the dispersion (of the first family with one in a mixed response; of the reference
        #: level with a variance function); 1 for families without one
        self.dispersion = resp.sigma ** 2
        #: per-row families: each family's dispersion (1 without one), by label
        self.family_dispersions = (pd.Series(resp.phi.copy(), index=resp.labels,
                                             name="dispersion") if resp.mixed else None)
        #: glmmTMB's ``sigma()`` for its extra families (NB1's, the beta's and the
        #: beta-binomial's ``phi``, the t's scale); lme4's otherwise
        #: whether the family is one of glmmTMB's outside the exponential family
        # (a zero-inflated or hurdle family reports its count part's, as glmmTMB)
        tmb_family: Any = fam if hasattr(fam, "tmb_sigma") else getattr(fam, "base", None)
        self.extra_family = hasattr(tmb_family, "tmb_sigma") and not resp.mixed
        self.sigma = tmb_family.tmb_sigma(self.dispersion) if self.extra_family \
            else resp.sigma
        self.shape = model.response.shape
        # the response parameters at the estimates (log dispersions or shapes, a variance
        # function's coefficients), in the model's order
        self._response_parameters = model.response.parameters()
        xn = self.frame.xnames
        self.fixef = pd.Series(model.beta.copy(), index=xn, name="Estimate")
        self.nagq = record.nagq
        if record.quadrature is not None:
            # the optimizer's value at the final point (the state is there), less the penalty
            pen = model.penalty.deviance(model.beta) if model.penalty is not None else 0.0
            assert record.full is not None, "a quadrature fit ends with a full fit"
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
        self.npar = model.parameters.size
        self.aic = -2.0 * self.loglik + 2.0 * self.npar
        self.bic = -2.0 * self.loglik + np.log(self.nobs) * self.npar
        self.df_resid = self.nobs - self.npar
        self.ngroups, self.is_singular = self._groups_and_singularity(model.layout.slices)
        self.n_dropped_na = self.frame.n_dropped_na
        self.dropped_columns = list(self.frame.dropped_columns)
        self._b = model.random_effects(self.theta, model.u)
        self._eta = model.eta.copy()
        self._mu = model.mu.copy()
        resid_sd = np.sqrt(self.dispersion) if resp.has_dispersion and not resp.mixed \
            else None
        covs = [lam @ lam.T for lam in model.lambdas(self.theta)]
        self.varcorr = self._varcorr_rows(covs, resid_sd)
        if resp.mixed:   # a residual row per family with a dispersion
            extra = [(f"Residual [{lab}]", None, None, float(phi), float(np.sqrt(phi)))
                     for lab, f, phi in zip(resp.labels, resp.components, resp.phi,
                                            strict=True) if f.has_dispersion and not f.has_shape]
            if extra:
                self.varcorr = pd.concat([self.varcorr, pd.DataFrame(
                    extra, columns=self.varcorr.columns)], ignore_index=True)
        self.ranef = self._ranef_tables(self._b)
        #: plain-language notes on the fit (separation, extreme fitted values), set by glmer
        self.notes: list[str] = []
        self._scratch: tuple | None = None

    @cached_property
    def dispersion_rows(self) -> np.ndarray:
        """Each row's dispersion (the variance function and per-row families applied)."""
        return np.broadcast_to(np.asarray(self.model.dispersion, dtype=float),
                               (self.model.n,)).copy()

    @cached_property
    def sigma_rows(self) -> np.ndarray:
        """The residual SD of each row, ``sqrt(dispersion_rows)`` (1 on rows whose family
        has no dispersion)."""
        return np.sqrt(self.dispersion_rows)

    def _working_model(self) -> tuple:
        """``(model, quadrature)`` copies on which lazy computations evaluate the objective
        away from the estimates; the fitted model is never changed."""
        if self._scratch is None:
            self._scratch = working_copy(self.model, self.record.quadrature)
        return self._scratch

    def _factor(self):
        return self.model.fac_b

    def refit(self, y) -> GlmerResult:
        """The same model fitted to a new response (MixedModels.jl's ``refit!``, lme4's
        ``refit(m, newresp)``): the same rows, weights (binomial trials), offset and terms,
        the fit started from this one's estimates. ``y`` on the model's scale (a binomial
        response as proportions of the same trials). Laplace fits only. Returns a new
        result."""
        from ..inference.bootstrap import _GlmmRefit

        if self.record.quadrature is not None:
            raise GlammError("refit is available for Laplace fits (nagq = 1); fit again "
                             "with glamm.glmer")
        out = _GlmmRefit(self).result_for(self._new_response(y))
        out._call = getattr(self, "_call", None)
        return out

    #: the statistic of the parametric table: z with normal p-values
    _coef_stat = "z"

    def _smooth_state(self, theta=None):
        """The joint (random and fixed effects) factor with the Fisher weights at the mode
        (gamm4 uses lme4's working weights there); its system is already divided by the
        dispersion, so the covariance scale is 1 and ``b = sqrt(dispersion) theta u``. With
        ``theta`` only the lambdas change (the weights stay those at the estimates)."""
        m, _ = self._working_model()
        if theta is None:
            m.pirls(self.theta, self.fixef.to_numpy())
            w, mu_eta = m.response.fisher_weights(m.eta, m.mu)
            zwork = m.eta - m.offset + m.response.working_residual(m.eta, m.mu, w, mu_eta)
            m.cp_b.update(w, zwork)
            m.fac_b.refresh()
        m.fac_b.update(m.lambdas(self.theta if theta is None else theta))
        if m.response.mixed:
            # per-row families: the factor holds each row's dispersion and theta is absolute,
            # so there is no common scale to divide by (chi-squared tests)
            return m.fac_b, 1.0, False, 1.0
        return m.fac_b, 1.0, bool(m.family.has_dispersion), float(self.dispersion)

    # ------------------------------------------------------------------ inference
    @cached_property
    def _hessian(self) -> np.ndarray:
        """Hessian of the Laplace deviance in ``[theta, beta, extra]`` at the optimum."""
        if self.record.hessian is not None:  # computed by the Newton polish of the fit
            return self.record.hessian
        m, quad = self._working_model()
        x = self._parameter_vector()
        if quad is not None:
            f = quadrature_objective(m, quad)
            derivs = FiniteDifferences(f)
            # (exact gradients cover theta and beta: not a dispersion, shape or loadings)
            if m.parameters.size_of("response") == 0 and m.loadings is None:
                # differences of exact gradients
                derivs = QuadratureDerivatives(f, m, quad)
        else:
            f = full_objective(m)
            derivs = choose_derivatives(f, m)
        with single_threaded(1):
            # forward differences of analytic gradients are accurate to ~1e-5 relative, ample
            # for standard errors; central ones (twice the cost) for finite-difference values
            _, H, _ = derivs.grad_hess(x, central=False)
        f(x)
        return H

    def _parameter_vector(self) -> np.ndarray:
        """The estimates as the model's full parameter vector (its ``parameters`` layout)."""
        return self.model.parameters.assemble(
            {"theta": self.theta, "beta": self.fixef.to_numpy(),
             "response": self._response_parameters,
             "lambda": self._loading_vector()})

    def _loading_vector(self) -> np.ndarray:
        """The free factor loadings (none in a GLMM; see GalammResult)."""
        return np.zeros(0)

    def _covariance_from_hessian(self, H: np.ndarray, layout) -> np.ndarray:
        """``2 H^{-1}`` for a deviance Hessian over ``layout`` (which starts with the
        ``theta`` block): a pseudo-inverse without the ``theta`` components on their bound (a
        singular fit: variance zero); parameters in the null space of a rank-deficient (or
        indefinite) Hessian get ``NaN``, and a warning and note name them."""
        keep = np.ones(layout.size, dtype=bool)
        lower = layout.block("theta").lower
        keep[layout.slice("theta")] = ~(np.isfinite(lower) & (self.theta <= lower + 1e-8))
        cov = np.zeros_like(H)
        Hk = H[np.ix_(keep, keep)]
        cov[np.ix_(keep, keep)] = 2.0 * np.linalg.pinv(Hk)
        unidentified = _unidentified(Hk)
        if unidentified.size:
            idx = np.flatnonzero(keep)[unidentified]
            cov[idx, :] = np.nan
            cov[:, idx] = np.nan
            self._warn_rank_deficient([layout.names()[i] for i in idx])
        return cov

    def parameter_covariance(self) -> np.ndarray:
        """Covariance of all parameters (the model's ``parameters`` layout: ``theta``, ``beta``,
        the response parameters): ``2 H^{-1}`` (see :meth:`_covariance_from_hessian`)."""
        cov = self._covariance_from_hessian(self._hessian, self.model.parameters)
        T = self.record.transform
        return cov if T is None else T @ cov @ T.T   # fitted on rescaled columns

    def _warn_rank_deficient(self, names: list[str]) -> None:
        note = ("the Hessian of the deviance is rank deficient or not positive definite at the "
                f"estimates: {', '.join(names)} are not identified by the data, so their "
                "standard errors (and those of parameters correlated with them) are reported as "
                "NaN")
        if note not in self.notes:
            self.notes.append(note)
            import warnings

            warnings.warn(note, UserWarning, stacklevel=4)

    @property
    def dispersion_design(self):
        """The residual variance function's design (``dispformula``), else ``None``."""
        return self.model.response.dispersion_design

    @cached_property
    def variance_function(self) -> pd.DataFrame | None:
        """The estimated residual variance function (``dispformula``;
        :func:`glamm.lmm.dispersion.variance_table`: galamm's variance ratio per level with
        the reference level 1, nlme's SD ratio, the residual SD, or the log-SD coefficients of
        the log-linear form), with standard errors on the log-SD scale; ``None`` without
        one. The residual SD is the first family's with a dispersion."""
        from ..lmm.dispersion import variance_table

        resp = self.model.response
        if resp.dispersion_design is None:
            return None
        block = self.model.parameters.slice("response")
        delta_slice = slice(block.stop - resp.n_delta, block.stop)
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(self.parameter_covariance())[delta_slice])
        delta = self._response_parameters[-resp.n_delta:]
        return variance_table(resp.dispersion_design, delta, float(self.sigma), se)

    @cached_property
    def family_parameters(self) -> pd.DataFrame | None:
        """The family's own parameters and its dispersion (one family, no variance function):
        one row per parameter with its ``estimate`` on the natural scale (NB1's, the beta's
        and the beta-binomial's ``phi``, the t's ``sigma`` and ``df``; a dispersion also as
        ``sigma = sqrt(dispersion)``), its standard error by the delta method from the
        Hessian of the deviance in all parameters, the optimization-scale ``parameter`` and
        whether the row is glmmTMB's ``sigma()``; ``None`` without such parameters."""
        resp = self.model.response
        if resp.mixed or resp.dispersion_design is not None or resp.n_parameters == 0:
            return None
        block = self.model.parameters.slice("response")
        with np.errstate(invalid="ignore"):
            se_log = np.sqrt(np.diag(self.parameter_covariance())[block])
        rows = []
        for name, value, se in zip(resp.parameter_names, self._response_parameters, se_log,
                                   strict=True):
            if name.startswith("zi~"):   # the zero part's coefficients: zero_inflation
                continue
            inner = name[4:-1] if name.startswith("log(") else name
            phi_is_sigma = getattr(self.model.family, "tmb_sigma_is_dispersion", False)
            if inner == "dispersion":   # sigma = exp(p / 2)
                sig = float(np.exp(0.5 * value))
                rows.append(("sigma", sig, 0.5 * sig * se, name, not phi_is_sigma))
                rows.append(("dispersion", sig * sig, sig * sig * se, name, phi_is_sigma))
            elif name == "logit(power - 1)":   # the Tweedie power, 1 + expit(p)
                est = 1.0 + float(special.expit(value))
                rows.append(("power", est, (est - 1.0) * (2.0 - est) * se, name, False))
            else:
                est = float(np.exp(value))
                tmb = self.extra_family and inner == "phi"
                rows.append((inner, est, est * se, name, tmb))
        return pd.DataFrame(rows, columns=["name", "estimate", "std_error", "parameter",
                                           "tmb_sigma"]).set_index("name")

    def _theta_covariance(self) -> np.ndarray:
        """The ``theta`` block of :meth:`parameter_covariance`."""
        sl = self.model.parameters.slice("theta")
        return self.parameter_covariance()[sl, sl]

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects: the ``beta`` block of ``2 H^{-1}`` (``H`` the Hessian
        of the deviance); ``theta`` components on their bound are left out (a singular fit)."""
        beta = self.model.parameters.slice("beta")
        V = self.parameter_covariance()[beta, beta]
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
        return wald_table(self.fixef, self.stderr)

    @cached_property
    def ranef_condcov(self) -> list[np.ndarray]:
        """Conditional covariances of the random effects at the mode (lme4's ``condVar``)."""
        m = self.model
        m.factor_at_mode()
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
        raise GlammError(f"type must be 'response' or 'link', got {type!r}")

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
        raise GlammError(f"type must be 'response', 'pearson' or 'deviance', got {type!r}")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re: bool = True,
                allow_new_levels: bool = False, new_from_responses: bool = False) -> np.ndarray:
        """Predictions on the link (default, as R) or response scale.

        Parameters
        ----------
        newdata : DataFrame, optional
            data frame with the columns the model uses; ``None`` predicts the fitted data.
        type : str, optional
            ``"link"``, ``"response"`` or ``"marginal"`` (population-averaged means: the
            conditional mean averaged over the random effects, see
            :func:`glamm.marginal_coefs`; ``re`` is then ignored).
        re : bool, optional
            include the random effects (``False``: population level; smooth terms are part of
            the mean curve and stay in).
        allow_new_levels : bool, optional
            unseen levels get random effects of zero instead of an error.
        new_from_responses : bool, optional
            unseen levels (new subjects) get their empirical Bayes random
            effects, the conditional modes given their own responses in ``newdata`` (which
            must then contain the response); GLMMadaptive's subject-specific predictions for
            new subjects. One grouping factor only.
        """
        if type == "marginal":
            from ..inference.marginal import marginal_means

            return marginal_means(self, newdata=newdata)
        zero_part = hasattr(self.model.family, "zero_probability")
        allowed = ("link", "response") + (("conditional", "zprob") if zero_part else ())
        if type not in allowed:
            raise GlammError(f"type must be {', '.join(map(repr, allowed))} or 'marginal', "
                             f"got {type!r}")
        if zero_part and type == "zprob":
            return self.model.family.zero_probability(newdata)
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
                eta = eta + self.model.design.eta_re(b, refs, zs)
        if type == "conditional":   # the count part's mean
            return self.model.family.link.inverse(eta)
        return self._response_scale(eta, newdata) if type == "response" else eta

    def _response_scale(self, eta: np.ndarray, newdata: pd.DataFrame | None) -> np.ndarray:
        """``eta`` through the inverse link; with per-row families each row through its own
        family's (in ``newdata``, chosen by the column that chose them in the fit); with a
        zero part the response's mean (``E y``, the zero part included)."""
        family = self.model.family
        if newdata is not None and hasattr(family, "codes_in"):
            family = family.at_rows(family.codes_in(newdata))
        if hasattr(family, "zero_probability"):
            return family.mean(family.link.inverse(eta), newdata)
        return family.link.inverse(eta)

    @cached_property
    def zero_inflation(self) -> pd.DataFrame | None:
        """The zero part's coefficients (logit scale; glmmTMB's ``fixef(m)$zi``) with
        standard errors, ``z`` values and p-values; ``None`` without one."""
        fam = self.model.family
        if not hasattr(fam, "zero_probability") or not fam.zi_names:
            return None
        block = self.model.parameters.slice("response")
        k = len(fam.zi_names)
        sl = slice(block.stop - k, block.stop)
        est = self._response_parameters[-k:]
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(self.parameter_covariance())[sl])
        return wald_table(est, se, pd.Index(fam.zi_names))

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
        out = fit_dict(self, family=self.family, link=self.link, dispersion=self.dispersion,
                       shape=self.shape, notes=list(self.notes), **mixed_fields(self))
        if self.extra_family:
            fp = self.family_parameters
            out["sigma"] = float(self.sigma)
            out["family_parameters"] = {} if fp is None else {
                k: {"estimate": float(r["estimate"]), "std_error": float(r["std_error"])}
                for k, r in fp.iterrows()}
        return out


def _unidentified(H: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Positions of the parameters that load on the (numerical) null space or the negative
    directions of the symmetric Hessian ``H`` (empty when ``H`` is positive definite)."""
    if H.size == 0:
        return np.zeros(0, dtype=int)
    vals, vecs = np.linalg.eigh(0.5 * (H + H.T))
    bad = vals <= rtol * max(float(np.max(np.abs(vals))), 1e-300)
    if not np.any(bad):
        return np.zeros(0, dtype=int)
    weight = np.max(np.abs(vecs[:, bad]), axis=1)
    return np.flatnonzero(weight > 1e-3)

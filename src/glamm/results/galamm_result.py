"""The fitted model returned by :func:`glamm.galamm`: a GLMM whose random effects include
latent variables measured through factor loadings."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..glmm.model import GeneralizedLinearMixedModel
from .glmer_result import GlmerResult


class GalammResult(GlmerResult):
    """A generalized additive latent and mixed model fitted by the Laplace approximation.

    Everything :class:`~glamm.results.glmer_result.GlmerResult` has, and:

    Attributes
    ----------
    loadings : ndarray
        The free loadings (galamm's order: the first factor's items, then the next's).
    loading_names : list of str
        Their labels, ``lambda[level,factor]``.
    """

    def __init__(self, model: GeneralizedLinearMixedModel, record, base_family):
        super().__init__(model, record, base_family)
        assert model.loadings is not None   # galamm() builds the model with loadings
        self.loadings = model.loadings.values.copy()
        self.loading_names = model.loadings.free_names()
        self.load_var = model.loadings.spec.load_var
        self.factors = list(model.loadings.spec.factors)

    def _loading_vector(self) -> np.ndarray:
        return self.loadings

    @property
    def factor_loadings(self) -> pd.DataFrame:
        """The loading matrix with standard errors: one row per level of ``load_var`` (then
        one per interaction loading, ``level:covariate``, as galamm's ``lambda<k>_<term>``
        rows), for each factor a column of loadings and one of standard errors (``NaN`` for
        fixed loadings, as galamm's table)."""
        loadings = self.model.loadings
        assert loadings is not None
        spec = loadings.spec
        m = spec.n_free
        full = spec.full_matrix(self.loadings[:m])
        se = np.full(full.shape, np.nan)
        pos = spec.free
        stderr = self.loading_stderr
        se[pos[:, 0], pos[:, 1]] = stderr[:m]
        labels = list(spec.levels)
        if loadings.covariates:
            extra = np.full((len(loadings.covariates), full.shape[1]), np.nan)
            extra_se = extra.copy()
            extra[:, 0] = self.loadings[m:]
            extra_se[:, 0] = stderr[m:]
            full, se = np.vstack([full, extra]), np.vstack([se, extra_se])
            labels += [f"{spec.levels[level]}:{name}" for level, name, _ in loadings.covariates]
        columns: dict[str, np.ndarray] = {}
        for j, f in enumerate(spec.factors):
            columns[f] = full[:, j]
            # galamm's column is "SE"; with several factors each gets its own
            columns["SE" if len(spec.factors) == 1 else f"SE {f}"] = se[:, j]
        return pd.DataFrame(columns, index=pd.Index(labels, name=spec.load_var))

    @property
    def loading_stderr(self) -> np.ndarray:
        """Standard errors of the free loadings, from the Hessian of the deviance in all
        parameters (for a Gaussian identity-link model, of the deviance profiled over
        ``beta`` and ``sigma``, whose inverse has the same ``theta``/``lambda`` block at the
        maximum and costs far fewer evaluations)."""
        if self._profiled_covariance() is not None:
            return np.sqrt(np.diag(self.vcov_parameters("lambda").to_numpy()))
        cov = self.parameter_covariance()
        idx = self.model.parameters.index("lambda")
        return np.sqrt(np.diag(cov)[idx])

    def _profiled_covariance(self) -> tuple[Any, np.ndarray] | None:
        """``2 H^-1`` of the profiled deviance in ``[theta, lambda]`` (Gaussian identity-link
        models; ``None`` otherwise), as :meth:`_covariance_from_hessian` makes it."""
        from ..glmm.profiled import profiled_gaussian

        if not profiled_gaussian(self.model.family):
            return None
        if "_profiled_cov" not in self.__dict__:
            from ..glmm.profiled import (
                ProfiledDerivatives,
                profiled_loading_deviance,
                profiled_loading_gradient,
            )
            from ..linalg.threads import single_threaded

            lmm, layout, deviance = profiled_loading_deviance(self.model)
            x = layout.assemble({"theta": self.theta, "lambda": self.loadings})
            derivs = ProfiledDerivatives(
                deviance, profiled_loading_gradient(self.model, lmm, layout))
            with single_threaded(1):
                # central differences of the analytic gradient
                _, H, _ = derivs.grad_hess(x, central=True)
            self.__dict__["_profiled_cov"] = (layout, self._covariance_from_hessian(H, layout))
        return self.__dict__["_profiled_cov"]

    def _covariance_from_hessian(self, H: np.ndarray, layout) -> np.ndarray:
        """As :meth:`GlmerResult._covariance_from_hessian`, and parameters on a direction in
        which the diagonally scaled Hessian is flat to finite-difference accuracy (the scaled
        eigenvalue below 1e-5, a correlation beyond 0.99999 between estimates; e.g. a
        ``factor_interactions`` covariate constant on its level) also get ``NaN``: the
        profiled Hessian of the loadings, from differences of deviances, shows such a
        direction as a small positive eigenvalue rather than zero."""
        cov = super()._covariance_from_hessian(H, layout)
        var = np.diag(cov)
        idx = np.flatnonzero(np.isfinite(var) & (var > 0))
        flat = _flat_directions(H[np.ix_(idx, idx)])
        if flat.size:
            bad = idx[flat]
            cov[bad, :] = np.nan
            cov[:, bad] = np.nan
            self._warn_rank_deficient([layout.names()[i] for i in bad])
        return cov

    @cached_property
    def vcov(self) -> BlockCovariance:   # type: ignore[override]
        """Covariance of the fixed effects (as for a GLMM), also callable as galamm's
        ``vcov(parm=...)``: ``m.vcov(parm="lambda")`` is :meth:`vcov_parameters`."""
        out = BlockCovariance(super().vcov)
        out._result = self
        return out

    def _blocks(self, parm: str | Sequence[str]) -> list[str]:
        """``parm`` as a list of distinct parameter blocks (galamm's character vector)."""
        from ..errors import GlammError

        blocks = [parm] if isinstance(parm, str) else list(parm)
        bad = [b for b in blocks if b not in ("beta", "lambda", "theta")]
        if bad or not blocks or len(set(blocks)) != len(blocks):
            extra = (" (galamm's 'weights' belong to heteroscedastic models, which glamm "
                     "does not fit)") if "weights" in bad else ""
            raise GlammError("parm must be 'beta', 'lambda' or 'theta', or a list of distinct "
                             f"ones, got {parm!r}{extra}")
        return blocks

    def vcov_parameters(self, parm: str | Sequence[str] = "beta") -> pd.DataFrame:
        """Covariance of one parameter block or several (galamm's ``vcov(parm = ...)``):
        ``"beta"`` (the fixed effects), ``"lambda"`` (the free loadings), ``"theta"``, or a
        list of them (the joint covariance, blocks in the order given)."""
        blocks = self._blocks(parm)
        names = {"beta": list(self.frame.xnames), "lambda": self.loading_names,
                 "theta": list(self.theta_names)}
        profiled = self._profiled_covariance() if "beta" not in blocks else None
        if profiled is not None:
            layout, cov = profiled
        else:
            layout, cov = self.model.parameters, self.parameter_covariance()
        idx = np.concatenate([layout.index(b) for b in blocks]).astype(np.int64)
        labels = [name for b in blocks for name in names[b]]
        return pd.DataFrame(cov[np.ix_(idx, idx)], index=labels, columns=labels)

    def confint(self, parm: str | Sequence[str] = "beta",  # type: ignore[override]
                level: float = 0.95, method: str = "Wald", **unused) -> pd.DataFrame:
        """Wald confidence intervals ``estimate -/+ z * SE`` (galamm's ``confint``) for one
        parameter block or several: ``"beta"``, ``"lambda"`` (the free loadings),
        ``"theta"``. (Profile and bootstrap intervals are not available for models with
        factor loadings: ``method`` must be ``"Wald"``.)"""
        import scipy.stats as st

        from ..errors import GlammError

        if str(method).lower() != "wald":
            raise GlammError("models with factor loadings have Wald intervals only "
                             "(method='Wald')")
        if not 0.0 < level < 1.0:
            raise GlammError(f"level must be between 0 and 1, got {level!r}")
        v = self.vcov_parameters(parm)
        x = self._parameter_vector()
        est = np.concatenate([self.model.parameters.get(x, b) for b in self._blocks(parm)])
        half = st.norm.ppf(0.5 + level / 2.0) * np.sqrt(np.diag(v.to_numpy()))
        pct = [f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"]
        return pd.DataFrame({pct[0]: est - half, pct[1]: est + half}, index=v.index)

    def residuals(self, type: str = "pearson", scaled: bool = False) -> np.ndarray:
        """Residuals as galamm's: ``"pearson"`` (the default, ``(y - mu) / sqrt(V(mu) / w)``),
        ``"deviance"`` or ``"response"`` (``y - mu``), with ``mu`` including the random
        effects. ``scaled=True`` divides them by each row's residual standard deviation
        (:attr:`sigma_rows`: ``sqrt(dispersion)`` of the row's family and variance-function
        group; 1 for binomial and Poisson rows)."""
        r = super().residuals(type)
        return r / self.sigma_rows if scaled else r

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re: bool = True,
                allow_new_levels: bool = False, new_from_responses: bool = False) -> np.ndarray:
        """Predictions as :meth:`GlmerResult.predict`; every row carries the loadings of its
        load_var level (so ``newdata`` needs the load_var column), in the random-effects
        columns and in the columns of a smooth on the latent scale. ``re=False`` keeps the
        smooths (the population curve) and drops the grouped random effects. Population-
        averaged (``"marginal"``) predictions and new subjects' empirical Bayes effects are not
        available for models with loadings."""
        from ..errors import GlammError

        if type == "marginal" or new_from_responses:
            raise GlammError("marginal predictions and new_from_responses are not available "
                             "for models with factor loadings")
        if type not in ("link", "response"):
            raise GlammError(f"type must be 'link' or 'response', got {type!r}")
        loadings = self.model.loadings
        assert loadings is not None
        design = self.model.design
        beta = self.fixef.to_numpy()
        smooth_terms = [k for k, t in enumerate(self.model.reterms) if t.is_smooth]
        if newdata is None:
            if re:
                eta = self._eta.copy()
            else:
                eta = self.model.X @ beta + self.frame.offset
                if smooth_terms:
                    eta = eta + design.eta_re(self._b, terms=smooth_terms)
        else:
            item, covariates, newdata = self._loading_rows(newdata)
            X = self.frame.new_X(newdata)
            if loadings.x_cols:
                X = loadings.X_values(self.loadings, X, item, covariates)
            eta = X @ beta + self.frame.new_offset(newdata)
            if re:
                refs, zs = self._new_re_design(newdata, allow_new_levels)
                eta = eta + design.eta_re(self._b, refs, zs)
            elif smooth_terms:
                n = len(newdata)
                zs = [t.new_z(newdata) if t.is_smooth else np.ones((n, t.p))
                      for t in self.model.reterms]
                refs = [np.zeros(n, dtype=np.int64) for _ in self.model.reterms]
                zs = loadings.apply(self.loadings, zs, item, covariates)
                eta = eta + design.eta_re(self._b, refs, zs, terms=smooth_terms)
        return self._response_scale(eta, newdata) if type == "response" else eta

    def _loading_rows(self, newdata: pd.DataFrame):
        """The load_var rows and interaction covariates of ``newdata``, and ``newdata`` with
        the factor columns (ones) glamm added when fitting."""
        from ..errors import DataError
        from ..terms.loadings import interaction_covariates

        loadings = self.model.loadings
        assert loadings is not None
        spec = loadings.spec
        if spec.load_var not in newdata.columns:
            raise DataError(f"newdata lacks the load_var column {spec.load_var!r}, which the "
                            "loadings of its rows depend on")
        newdata = newdata.assign(**{f: 1.0 for f in spec.factors})
        item = spec.item_codes(newdata[spec.load_var].to_numpy())
        return item, interaction_covariates(spec, newdata, item), newdata

    # The smooth tables of the mixin (smooth_table, edf, sp, gam_coef, Vp, smooth_estimates)
    # apply unchanged to sl() smooths: the factor at the estimates holds the loaded columns, so
    # edf, Vp and the tests use the penalized information of the loaded design, while the
    # coefficients and curves are the smooth's own, on the latent scale (loading 1).

    def galamm_smooth_table(self) -> pd.DataFrame:
        """The smooth table as galamm 0.4.0 prints it, for comparison with galamm.

        galamm's ``gam`` part (``gamm4.wrapup``) builds ``X'V^-1X`` and the Bayesian
        covariance from the smooths' columns *without* the loadings (every row as if its
        loading were 1; ``V`` does carry the loaded ordinary random effects). For an ``sl()``
        smooth that is not the information of the fitted model, so its edf and test differ
        from :attr:`smooth_table` (the cognition example: edf 8.72 and F 4469 here and in
        galamm, against 6.72 and 337 with the loaded columns). Ordinary smooths agree.
        """
        return self._unloaded_smooth_fit().table.copy()

    def _unloaded_smooth_fit(self):
        """:class:`~glamm.smooths.inference.SmoothFit` with the loaded smooths' columns of
        ``Z`` and ``X`` put back to their unloaded values (galamm's convention), at the
        weights and estimates of the fit."""
        from ..smooths.inference import smooth_fit

        if "_unloaded_sfit" not in self.__dict__:
            if not self.frame.smooths:
                from ..errors import GlammError

                raise GlammError("the model has no smooth terms s(...)")
            m = self.model.working_copy()
            loadings = m.loadings
            assert loadings is not None
            theta = self.theta
            m.pirls(theta, self.fixef.to_numpy())
            w, mu_eta = m.response.fisher_weights(m.eta, m.mu)
            zwork = m.eta - m.offset + m.response.working_residual(m.eta, m.mu, w, mu_eta)
            for k, _ in loadings.terms:
                if m.reterms[k].is_smooth:
                    m.design.set_z(k, loadings.base_z[k], refill=False)
            if loadings.base_X is not None:
                m.X = loadings.base_X.copy()
                m.cp_b.set_X(m.X, refill=False)
            m.cp_b.update(w, zwork)
            m.fac_b.refresh()
            m.fac_b.update(m.lambdas(theta))

            def unit_factor():
                unit = theta.copy()
                for t, s in zip(m.reterms, m.layout.slices):
                    if t.is_smooth:
                        unit[s] = 1.0
                m.fac_b.update(m.lambdas(unit))
                return m.fac_b

            thetas = [float(theta[s][0]) for s in m.layout.slices]
            self.__dict__["_unloaded_sfit"] = smooth_fit(
                self.frame, m.reterms, m.fac_b, thetas, 1.0, self.nobs,
                self.fixef.to_numpy(), self._b,
                bool(m.family.has_dispersion) and not m.response.mixed,
                lambda_scale=float(m.lambda_scale), unit_factor=unit_factor,
                sig2=1.0 if m.response.mixed else float(self.dispersion))
        return self.__dict__["_unloaded_sfit"]

    def _new_re_design(self, newdata: pd.DataFrame, allow_new_levels: bool):
        """Level codes and ``z`` of every term for ``newdata``, the loaded columns times the
        loadings of each row's load_var level (the factor columns are added as glamm added
        them when fitting)."""
        loadings = self.model.loadings
        assert loadings is not None
        item, covariates, newdata = self._loading_rows(newdata)
        refs, zs = super()._new_re_design(newdata, allow_new_levels)
        return refs, loadings.apply(self.loadings, zs, item, covariates)

    def to_dict(self) -> dict:
        """Plain-data form of the fit (for ``--json`` output), with the loading table."""
        out = super().to_dict()
        table = self.factor_loadings
        out["load_var"] = self.load_var
        out["factor_loadings"] = {
            "rows": [str(i) for i in table.index],
            "columns": [str(c) for c in table.columns],
            "values": [[None if not np.isfinite(v) else float(v) for v in row]
                       for row in table.to_numpy()],
        }
        return out

    def _format(self) -> str:
        from .summary import format_galamm

        return format_galamm(self)


def _flat_directions(H: np.ndarray, tol: float = 1e-5) -> np.ndarray:
    """Positions of the parameters on eigenvectors of the diagonally scaled Hessian ``H``
    whose eigenvalue is below ``tol`` (empty when there are none)."""
    if H.size == 0:
        return np.zeros(0, dtype=int)
    d = np.sqrt(np.abs(np.diag(H)))
    if np.any(d == 0):
        return np.flatnonzero(d == 0)
    vals, vecs = np.linalg.eigh(0.5 * (H + H.T) / np.outer(d, d))
    low = vals < tol
    if not np.any(low):
        return np.zeros(0, dtype=int)
    return np.flatnonzero(np.max(np.abs(vecs[:, low]), axis=1) > 1e-3)


class BlockCovariance(pd.DataFrame):
    """The fixed effects' covariance of a galamm fit (a DataFrame, as every result's
    ``vcov``) that can also be called as galamm's ``vcov(parm=...)`` for other parameter
    blocks. Anything derived from it is a plain DataFrame."""

    _metadata = ["_result"]
    _result: GalammResult | None = None

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def __call__(self, parm: str | Sequence[str] = "beta") -> pd.DataFrame:
        """Covariance of the blocks ``parm`` (:meth:`GalammResult.vcov_parameters`)."""
        assert self._result is not None
        return self._result.vcov_parameters(parm)

"""Pieces shared by the fitted-model classes (LMM and GLMM): random-effects tables, the
variance-component table, the block description and random effects for new data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..formula.design import ModelFrame
    from ..glmm.model import GeneralizedLinearMixedModel
    from ..lmm.model import LinearMixedModel


class MixedResultBase:
    """Shared behaviour; subclasses set ``model`` (with ``reterms``), ``frame`` and the
    factor returned by :meth:`_factor` before using these methods. Not public API."""

    model: LinearMixedModel | GeneralizedLinearMixedModel
    frame: ModelFrame
    theta: np.ndarray
    #: the fitting function and its arguments (results.call.records_call), for update()
    _call: tuple | None = None

    def _format(self) -> str:   # the subclass's summary formatter (results.summary)
        raise NotImplementedError

    def __repr__(self) -> str:
        return self._format()

    __str__ = __repr__

    def summary(self) -> str:
        """The printed summary as a string."""
        return repr(self)

    def _factor(self):
        return self.model.factor

    def _new_response(self, y) -> np.ndarray:
        """``y`` checked for a refit: one finite value per fitted row."""
        from ..errors import GlammError

        y = np.asarray(y, dtype=float).reshape(-1)
        n = int(getattr(self, "nobs", self.frame.n))
        if y.shape != (n,):
            raise GlammError(f"the new response needs {n} values (one per fitted row), "
                             f"got {y.size}")
        if not np.all(np.isfinite(y)):
            raise GlammError("the new response has missing or infinite values")
        return y

    def confint(self, parm=None, level: float = 0.95, method: str = "profile", n: int = 500,
                seed=None, boot_type: str = "percentile", n_jobs: int = 1) -> pd.DataFrame:
        """Confidence intervals (lme4's ``confint``).

        Parameters
        ----------
        parm : str, int or list, optional
            Which parameters: names (``.sig01``, ``.sigma``, ``Days``), aliases
            (``sd_(Intercept)|Subject``, ``sigma``), positions, ``"theta_"`` (the variance
            parameters) or ``"beta_"`` (the fixed effects); default all.
        level : float
            Confidence level (default 0.95).
        method : str
            ``"profile"`` (default; likelihood profiles, as lme4's: of the ML deviance for an
            LMM, also a REML fit, and of the Laplace deviance for a GLMM; :meth:`profile`),
            ``"Wald"`` (fixed effects only; the variance parameters' rows are NaN) or
            ``"boot"`` (a parametric bootstrap of ``n`` replicates, :meth:`bootstrap`).
        n, seed, boot_type, n_jobs
            The bootstrap's replicates (default 500, lme4's ``nsim``), seed, interval
            (``"percentile"``, ``"basic"``, ``"norm"`` or ``"bc"``) and processes.

        Returns
        -------
        DataFrame
            Indexed by lme4's names (``.sig01``, ..., ``.sigma``, the fixed effects), with the
            lower and upper bounds as its first two columns (``2.5 %`` and ``97.5 %`` for
            level 0.95) and ``term``, the clearer name of each row. The variance parameters
            are the terms' standard deviations and correlations (and an LMM's residual SD).
        """
        from ..inference.confint import confint

        return confint(self, parm=parm, level=level, method=method, n=n, seed=seed,
                       boot_type=boot_type, n_jobs=n_jobs)

    def profile(self, which=None, level: float = 0.99, progress: bool | None = None):
        """Likelihood profiles of the parameters (lme4's ``profile``): for each, the signed
        square root ``zeta`` of the rise of the deviance (an LMM's ML deviance, a GLMM's
        Laplace deviance) with the parameter held and all others re-optimized. ``which``
        selects parameters as ``confint``'s ``parm``; each profile goes until ``|zeta|``
        passes the normal quantile of ``level`` (default 0.99) or the parameter's bound;
        ``progress`` shows a bar over the parameters (default: in a terminal or notebook).
        Returns a :class:`glamm.inference.profile.Profile` (``traces``,
        ``confint(level)``); :func:`glamm.plot_profile` draws it."""
        from ..inference.profile import profile

        return profile(self, which=which, level=level, progress=progress)

    def simulate(self, n: int = 1, seed=None, newdata: pd.DataFrame | None = None,
                 re: bool | str = True) -> pd.DataFrame:
        """Responses simulated from the fitted model (lme4's ``simulate``).

        Parameters
        ----------
        n : int
            Number of replicates (default 1).
        seed : int or numpy Generator, optional
            Seed of the random numbers (``numpy.random.default_rng(seed)``).
        newdata : DataFrame, optional
            Rows to simulate for (default: the fitted rows); every level of a grouping
            factor found there gets new random effects, seen in fitting or not.
        re : bool or str
            ``True`` (default): new random effects drawn from their estimated distribution;
            ``"fitted"``: the fitted conditional modes (lme4's ``use.u = TRUE``);
            ``False``: none (the population-level mean). Smooth terms keep their fitted
            curves.

        Returns
        -------
        DataFrame
            One column per replicate (``sim_1``, ...), one row per observation, on the
            model's response scale (a binomial response as the proportion of its trials).
        """
        from ..inference.simulate import simulate

        return simulate(self, n=n, seed=seed, newdata=newdata, re=re)

    def tidy(self, effects: str | tuple[str, ...] = ("fixed", "ran_pars"),
             conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "Wald",
             ddf: str | None = None) -> pd.DataFrame:
        """A long table of the estimates, as broom.mixed's ``tidy``.

        Parameters
        ----------
        effects : str or tuple of str
            ``"fixed"`` (coefficients), ``"ran_pars"`` (the random effects' SDs and
            correlations, ``sd__(Intercept)``, ``cor__(Intercept).Days``, and the residual
            ``sd__Observation``), ``"ran_vals"`` (the conditional modes, one row per level
            and column); default fixed and ran_pars.
        conf_int : bool
            Add ``conf.low`` and ``conf.high`` (default ``False``).
        conf_level : float
            Their level (default 0.95).
        conf_method : str
            ``"Wald"`` (default; fixed effects only) or what :meth:`confint` takes
            (``"profile"``, ``"boot"``); the conditional modes' intervals are +- z
            conditional SDs.
        ddf : str, optional
            LMMs: degrees of freedom for the fixed effects' p-values (``"Satterthwaite"``,
            ``"Kenward-Roger"``); the table then has a ``df`` column.

        Returns
        -------
        DataFrame
            Columns ``effect, group, term, estimate, std.error, statistic, p.value`` (and
            ``level`` for ran_vals, ``df``, ``conf.low``, ``conf.high`` when asked).
        """
        from .tidy import tidy

        return tidy(self, effects, conf_int=conf_int, conf_level=conf_level,
                    conf_method=conf_method, ddf=ddf)

    def coef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``coef``: per grouping factor, one row per level with the fixed effects
        plus that level's random effect (for the columns the random-effects term has)."""
        from .tidy import coef

        return coef(self)

    def update(self, formula: str | None = None, **changes):
        """Refit with changes, as R's ``update``: a new ``formula`` (``"."`` stands for the
        old side: ``"~ . - Days"``, ``". ~ . + (1 | g)"``) and any argument of the fitting
        function (``data=``, ``reml=``, ``family=``, ...). Returns the new result."""
        from .call import update

        return update(self, formula, **changes)

    def _repr_html_(self) -> str:
        from .html import result_html

        return result_html(self)

    def bootstrap(self, n: int = 1000, seed=None, stat=None, n_jobs: int = 1,
                  progress: bool | None = None, re: bool = True):
        """Parametric bootstrap (lme4's ``bootMer``, MixedModels.jl's
        ``parametricbootstrap``): ``n`` responses simulated from the fit (:meth:`simulate`),
        each refitted with the model's structure reused (only the response changes).

        Parameters
        ----------
        n : int
            Number of replicates (default 1000).
        seed : int, optional
            Seed; each replicate gets its own stream from it, so results do not depend on
            ``n_jobs``.
        stat : callable, optional
            A function of a refitted result returning a number, a sequence, a dict or a
            Series (each refit then builds a full result: slower); default: the fixed
            effects and the variance parameters (SDs, correlations, ``sigma``), taken from
            the refit directly.
        n_jobs : int
            Processes (default 1; ``-1``: one per core).
        progress : bool, optional
            Show a progress bar (tqdm); default: when attached to a terminal or a notebook.
        re : bool
            Simulate with new random effects (default) or without (``False``).

        Returns
        -------
        BootstrapResult
            ``replicates`` (a tidy DataFrame, one row per replicate), ``estimates``,
            ``confint(level, method="percentile" | "basic" | "norm" | "bc" | "bca")``,
            ``summary()``.
        """
        from ..inference.bootstrap import bootstrap

        return bootstrap(self, n=n, seed=seed, stat=stat, n_jobs=n_jobs, progress=progress,
                         re=re)

    def _groups_and_singularity(self, slices) -> tuple[dict[str, int], bool]:
        """``ngroups`` (levels per grouping factor) and whether a variance or correlation is
        on the boundary; smooth terms are neither groups nor singular (a smooth whose
        penalized part vanishes is a linear fit)."""
        ngroups: dict[str, int] = {}
        singular = False
        for t, s in zip(self.model.reterms, slices):
            if not t.is_grouped:
                continue
            ngroups.setdefault(t.group, t.nlevels)
            singular = singular or t.covariance.is_singular(self.theta[s])
        return ngroups, singular

    def _structure_scale(self) -> float:
        """The factor that turns a term's relative ``lambda`` into the effects' scale
        (``Sigma = scale^2 lambda lambda'``)."""
        scale = getattr(self, "scale", None)
        if scale is not None:          # an LMM: the profiled sigma
            return float(scale)
        return float(getattr(self.model, "lambda_scale", 1.0))

    @property
    def covariance_structures(self) -> dict[str, dict]:
        """Each structured term's natural parameters, by its group label: ``{"structure":
        "ar1", "sd": 46.1, "rho": 0.75}`` and so on (SDs on the data's scale, correlations,
        ranges, loadings), as glmmTMB reports them; unstructured terms are left out (see
        ``varcorr``)."""
        out: dict[str, dict] = {}
        scale = self._structure_scale()
        for label, t, sl in zip(self._group_labels(), self.model.reterms,
                                self.model.layout.slices):
            cov = t.covariance
            if getattr(cov, "structured", False) and hasattr(cov, "natural"):
                out[label] = {"structure": cov.kind, **cov.natural(self.theta[sl], scale)}
        return out

    def covariance_matrices(self) -> dict[str, pd.DataFrame]:
        """Each grouped term's implied covariance of one level's effects (``Sigma``, on the
        data's scale), labelled by the term's columns, by group label (glmmTMB's
        ``VarCorr``)."""
        scale = self._structure_scale()
        out = {}
        for label, t, sl in zip(self._group_labels(), self.model.reterms,
                                self.model.layout.slices):
            if not t.is_grouped:
                continue
            lam = t.covariance.lambda_(self.theta[sl]) * scale
            out[label] = pd.DataFrame(lam @ lam.T, index=list(t.cnames), columns=list(t.cnames))
        return out

    def _theta_covariance(self) -> np.ndarray:
        """Covariance of ``theta``: the results override it (LMM: the profiled deviance's
        Hessian; GLMM: the full one)."""
        raise NotImplementedError

    def structure_table(self) -> pd.DataFrame:
        """The shape parameters of the structured terms (a correlation, lag correlations, a
        range, a Matérn smoothness) with Wald standard errors by the delta method from the
        covariance of ``theta`` (LMMs: twice the inverse Hessian of the profiled deviance,
        whose ``theta`` block is the full one's; GLMMs: that of the Laplace deviance in all
        parameters). Columns ``group``, ``structure``, ``parameter``, ``estimate``, ``se``."""
        rows = []
        cov_theta = None
        for label, t, sl in zip(self._group_labels(), self.model.reterms,
                                self.model.layout.slices):
            cov = t.covariance
            if not (getattr(cov, "structured", False) and hasattr(cov, "shape_natural")):
                continue
            th = self.theta[sl]
            values = cov.shape_natural(th)
            if not values:
                continue
            if cov_theta is None:
                cov_theta = self._theta_covariance()
            J = np.zeros((len(values), th.size))
            for r in range(th.size):
                h = 1e-6 * max(1.0, abs(th[r]))
                up, down = th.copy(), th.copy()
                up[r] += h
                down[r] -= h
                J[:, r] = (np.array(list(cov.shape_natural(up).values()))
                           - np.array(list(cov.shape_natural(down).values()))) / (2 * h)
            C = cov_theta[sl, sl]
            with np.errstate(invalid="ignore"):
                se = np.sqrt(np.diag(J @ C @ J.T))
            # a parameter held at a limit (a Matérn smoothness at its cap) has no SE
            se = np.where(np.all(J == 0, axis=1), np.nan, se)
            rows += [(label, cov.kind, k, v, float(e))
                     for (k, v), e in zip(values.items(), se)]
        return pd.DataFrame(rows, columns=["group", "structure", "parameter", "estimate", "se"])

    def structure_lines(self) -> list[str]:
        """One line per structured term for the summary."""
        scale = self._structure_scale()
        lines = []
        for label, t, sl in zip(self._group_labels(), self.model.reterms,
                                self.model.layout.slices):
            cov = t.covariance
            if getattr(cov, "structured", False) and hasattr(cov, "describe"):
                lines.append(f" {label}: {cov.describe(self.theta[sl], scale)}")
        return lines

    def _group_labels(self) -> list[str]:
        """R-style names for the terms' groups: repeated groups get ``.1``, ``.2`` suffixes."""
        from ..terms.reterm import group_labels

        return group_labels(self.model.reterms)

    def _varcorr_rows(
        self, covariances: list[np.ndarray], residual_sd: float | None
    ) -> pd.DataFrame:
        """One row per variance and covariance of each term (and the residual, if given)."""
        rows: list[tuple] = []
        for label, t, S in zip(self._group_labels(), self.model.reterms, covariances):
            rows.extend((label, *row) for row in t.covariance.summary_rows(S, t.summary_names))
        if residual_sd is not None:
            rows.append(("Residual", None, None, residual_sd**2, residual_sd))
        # missing names are always None (R's NA), never NaN: object columns built as such
        names = {c: np.array([r[i] for r in rows], dtype=object)
                 for i, c in enumerate(("group", "var1", "var2"))}
        return pd.DataFrame({**names,
                             "vcov": np.array([r[3] for r in rows], dtype=float),
                             "sdcor": np.array([r[4] for r in rows], dtype=float)})

    def _ranef_tables(self, b: list[np.ndarray]) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, bk in zip(self.model.reterms, b):
            if not t.is_grouped:   # a smooth's are reported through its coefficients
                continue
            df = pd.DataFrame(bk, index=pd.Index(t.levels, name=t.group), columns=list(t.cnames))
            out[t.group] = df if t.group not in out else pd.concat([out[t.group], df], axis=1)
        return out

    def _condvar_tables(self, condcov: list[np.ndarray]) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, C in zip(self.model.reterms, condcov):
            if not t.is_grouped:
                continue
            diag = np.einsum("mii->mi", C)
            df = pd.DataFrame(diag, index=pd.Index(t.levels, name=t.group), columns=list(t.cnames))
            out[t.group] = df if t.group not in out else pd.concat([out[t.group], df], axis=1)
        return out

    def block_description(self) -> pd.DataFrame:
        """Storage type of every block of the Cholesky factor ``L`` (lower triangle), rows and
        columns labelled by term (``group: levels x columns``) and ``[X y]``; like
        MixedModels.jl's ``BlockDescription``. Shows how the symbolic phase laid out the
        model (``BlockDiag``, ``BlockSparse`` or ``Dense``)."""
        groups = self._group_labels()
        labels = [f"{g}: {t.nlevels}x{t.p}" for g, t in zip(groups, self.model.reterms)]
        labels.append(f"[X y]: {self.frame.X.shape[1] + 1}")
        types = self._factor().describe()
        table = [[types[i][j] if j <= i else "" for j in range(len(labels))]
                 for i in range(len(labels))]
        return pd.DataFrame(table, index=labels, columns=labels)

    def _new_re_design(self, newdata: pd.DataFrame, allow_new_levels: bool):
        """Level codes and ``z`` matrices of every term for ``newdata``."""
        self.frame.check_new_levels(newdata)
        return self.model.design.new_data(newdata, allow_new_levels)

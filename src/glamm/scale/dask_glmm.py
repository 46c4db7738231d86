"""``glamm.glmer`` on a ``dask.dataframe.DataFrame``: a GLMM fitted with each PIRLS
iteration a map-reduce over the partitions, on whatever Dask scheduler is active.

The passes are those of :func:`glamm.scale.dask_frame.lmer_dask` (the level dictionaries;
one pass of cross-products for the model's layout, aliased columns and the checks), then each
partition's numeric rows (:class:`~glamm.scale.glmm_rows.PartitionRows`) are built once and,
with ``persist=True``, kept where they were computed (the workers' memory on a cluster).
The fit is the in-memory one (:func:`glamm.glmm.fit.fit_glmm`) on a
:class:`~glamm.scale.glmm_model.PartitionedGLMM`, whose PIRLS sends every iteration to the
partitions and adds their sums. Dask is imported only when such a frame is fitted.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlammError, SingularFitWarning
from ..formula.data_input import is_dask_frame
from ..glmm.fit import GlmmFitRecord, fit_glmm
from ..linalg.threads import single_threaded
from ..results.glmer_result import GlmerResult
from . import metadata, partials
from .dask_frame import _string_only, _tree, summary_quantiles
from .glmm_model import PartitionedGLMM, supported_family
from .glmm_rows import PartitionRows
from .model import NEEDS_ROWS
from .rows import GlmmRowValues, NewDataPredictor


def _call(rows: PartitionRows | None, method: str, *args: Any) -> Any:
    return None if rows is None else getattr(rows, method)(*args)


class DaskPartitions:
    """The rows of a partitioned GLMM as Dask objects (delayed, persisted or not): each
    :meth:`map_reduce` is one ``dask.compute`` of a reduction tree over them."""

    def __init__(self, rows: list) -> None:
        self.rows = rows

    def map_reduce(self, method: str, merge: Any, *args: Any) -> Any:
        import dask

        shipped = [dask.delayed(a) for a in args]   # (sent once, not once per task)
        tasks = [dask.delayed(_call)(r, method, *shipped) for r in self.rows]
        (out,) = dask.compute(_tree(tasks, merge))
        return out


def _mean_of(eta: pd.Series, family: Any) -> pd.Series:
    return pd.Series(family.link.inverse(eta.to_numpy()), index=eta.index, name=eta.name)


def _inverse_link(eta: Any, family: Any) -> Any:
    """The means of a lazy series of linear predictors."""
    return eta.map_partitions(_mean_of, family, meta=eta._meta)


def _family(family: Any, link: Any) -> Any:
    from ..family_spec import family_spec

    if isinstance(family, (list, tuple, dict)):
        raise GlammError("per-row families (a list or dict of families) are not available on "
                         "a Dask DataFrame")
    fam = family_spec(family, link, pd.DataFrame()).families[0]
    why = supported_family(fam)
    if why is not None:
        raise GlammError(f"{why} cannot be fitted on a Dask DataFrame yet")
    return fam


def _check_response_dtype(formula: str, dtypes: pd.Series) -> None:
    """A factor response is coded per partition by its levels there; refuse it."""
    from ..formula.bars import parse_formula

    response = parse_formula(formula).response.strip()
    if response in dtypes.index and not (pd.api.types.is_numeric_dtype(dtypes[response])
                                         or pd.api.types.is_bool_dtype(dtypes[response])):
        raise GlammError(f"the response {response!r} is a {dtypes[response]} column; on a Dask "
                         "DataFrame give a GLMM's response as numbers (0/1, counts, "
                         "proportions with weights, or cbind(successes, failures))")


def glmer_dask(formula: str, data: Any, family: Any = "binomial", link: Any = None,
               fast: bool = False, weights: Any = None, offset: Any = None,
               start: np.ndarray | None = None, optimizer: str = "bobyqa",
               control: dict | None = None, laplace: str = "observed",
               persist: bool = True) -> DaskGlmerResult:
    """:func:`glamm.glmer` on a Dask DataFrame (the Laplace approximation).

    Parameters
    ----------
    formula : str
        lme4-style formula (no smooths, ``coords()`` or transforms whose state comes from all
        rows). The response must be numeric or boolean.
    data : dask.dataframe.DataFrame
        The data, in any number of partitions.
    family, link
        One exponential family (``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"Gamma"``,
        ``"inverse_gaussian"``) and its link.
    fast, start, optimizer, control, laplace
        As for :func:`glamm.glmer`.
    weights, offset : str, optional
        Column names.
    persist : bool
        Keep each partition's numeric rows (the model frame, about ``8 (p + 2 k + 4)`` bytes a
        row for ``p`` fixed effects and ``k`` random-effects columns) in the memory of the
        workers that built them, so each PIRLS iteration reads no data (default). ``False``
        rebuilds them from the source in every pass: memory for one partition at a time per
        worker, at the cost of reading the data (e.g. the parquet files) once per pass.

    Returns
    -------
    DaskGlmerResult
    """
    import dask

    weights = _string_only(weights, "weights")
    offset = _string_only(offset, "offset")
    fam = _family(family, link)
    _check_response_dtype(formula, data.dtypes)
    cols = metadata.model_columns(formula, data.dtypes, weights, offset)
    # (a GLMM keeps rows of weight 0: they are dropped only for a missing value)
    cols = dataclasses.replace(cols, weights=None)
    parts = data.to_delayed()
    cols_d = dask.delayed(cols, pure=True)
    (meta,) = dask.compute(_tree([dask.delayed(metadata.collect)(p, cols_d) for p in parts],
                                 metadata.merge))
    levels = metadata.fixed_levels(meta, cols)
    args = partials.FrameArgs(formula, weights, offset, None, levels, glm_response=True)
    args_d = dask.delayed(args, pure=True)
    kept = [p for p, k in zip(parts, meta.kept) if k > 0]
    (total,) = dask.compute(_tree([dask.delayed(partials.partial)(p, args_d) for p in kept],
                                  partials.merge))
    frame, _, _ = partials.finish(total, meta.n_na, 0, tuple(cols.used), family=fam)
    keep_d = dask.delayed(frame.x_keep, pure=True)
    fam_d = dask.delayed(fam, pure=True)
    rows = [dask.delayed(PartitionRows.build)(p, args_d, cols_d, keep_d, fam_d) for p in kept]
    if persist:
        rows = list(dask.persist(*rows))
    model = PartitionedGLMM(frame, fam, DaskPartitions(rows), laplace=laplace)
    from ..arguments import check_start_theta

    start = check_start_theta(start, model.layout.initial().size, model.layout.names())
    record = fit_glmm(model, fast=fast, start=start, optimizer=optimizer, **(control or {}))
    with single_threaded(1):
        result = DaskGlmerResult(model, record, fam, data, args, cols)
        # the standard errors now, while the partitions' rows are where the fit left them
        # (persisted on a cluster that may be gone when they are first asked for)
        _ = result.stderr
    if result.is_singular:
        warnings.warn("boundary (singular) fit: see result.is_singular", SingularFitWarning,
                      stacklevel=3)
    return result


class DaskGlmerResult(GlmerResult):
    """A GLMM fitted on a Dask DataFrame (:func:`glmer_dask`).

    Everything read off the estimates and the factor is as on an in-memory fit (``fixef``,
    ``stderr`` and ``vcov`` from the Hessian of the Laplace deviance by finite differences,
    computed at the end of the fit; ``theta``, ``varcorr``, ``ranef``,
    ``ranef_condvar``, ``loglik``, ``aic``, ``bic``, the summary). ``fitted()``,
    ``residuals()`` and ``predict()`` return lazy Dask series (one task per partition,
    indexed by the data's labels); ``predict`` takes a pandas or a Dask frame. What needs the
    rows in memory (``refit``, ``simulate``, the bootstrap, marginal predictions) raises a
    :class:`~glamm.errors.GlammError`.
    """

    model: PartitionedGLMM

    def __init__(self, model: PartitionedGLMM, record: GlmmFitRecord, base_family: Any,
                 data: Any, args: partials.FrameArgs, columns: metadata.ModelColumns):
        super().__init__(model, record, base_family)
        self._data = data
        self._args = args
        self._columns = columns
        self._quantiles: tuple[str, np.ndarray] | None = None

    def _rows(self, kind: str) -> Any:
        values = GlmmRowValues(self._args, self._columns, self.model.frame,
                               self.fixef.to_numpy(), self._b, kind, family=self.model.family)
        return self._data.map_partitions(values, meta=pd.Series([], dtype=float, name=kind))

    def fitted(self, type: str = "response") -> Any:
        """Fitted means (``"response"``) or linear predictor (``"link"``), a lazy Dask
        series."""
        if type not in ("response", "link"):
            raise GlammError(f"type must be 'response' or 'link', got {type!r}")
        return self._rows("mean" if type == "response" else "link")

    def residuals(self, type: str = "deviance") -> Any:
        """Residuals (``"response"``, ``"pearson"`` or ``"deviance"``, the default) as a lazy
        Dask series."""
        if type not in ("response", "pearson", "deviance"):
            raise GlammError("type must be 'response', 'pearson' or 'deviance', got "
                             f"{type!r}")
        return self._rows(type)

    def predict(self, newdata: Any = None, type: str = "link", re: bool = True,
                allow_new_levels: bool = False, new_from_responses: bool = False) -> Any:
        """Predictions on the link (default) or response scale: for the fitted rows
        (``newdata=None``) or a Dask ``newdata`` a lazy Dask series, for a pandas ``newdata``
        an array."""
        if type not in ("link", "response"):
            raise self._needs_rows(f"type={type!r}") if type == "marginal" else GlammError(
                f"type must be 'link' or 'response', got {type!r}")
        if new_from_responses:
            raise self._needs_rows("new_from_responses")
        if newdata is None:
            kind = ("link" if re else "population") if type == "link" else \
                ("mean" if re else None)
            if kind is None:
                return _inverse_link(self._rows("population"), self.model.family)
            return self._rows(kind)
        predictor = NewDataPredictor(self.model.frame, self.fixef.to_numpy(), self._b, re,
                                     allow_new_levels)
        if is_dask_frame(newdata):
            eta = newdata.map_partitions(predictor,
                                         meta=pd.Series([], dtype=float, name="predicted"))
            return _inverse_link(eta, self.model.family) if type == "response" else eta
        out = predictor(newdata).to_numpy()
        return self.model.family.link.inverse(out) if type == "response" else out

    def scaled_residual_quantiles(self) -> tuple[str, np.ndarray]:
        """The summary's title and quantiles of the Pearson residuals over
        ``sqrt(dispersion)``, exact, from passes over the data (on first use)."""
        if self._quantiles is None:
            scaled = self.residuals("pearson") / float(np.sqrt(self.dispersion))
            self._quantiles = ("Scaled residuals:", summary_quantiles(scaled))
        return self._quantiles

    @property
    def dispersion_rows(self) -> np.ndarray:   # type: ignore[override]
        raise self._needs_rows("per-row dispersions")

    @property
    def sigma_rows(self) -> np.ndarray:   # type: ignore[override]
        raise self._needs_rows("per-row residual SDs")

    def _needs_rows(self, what: str) -> GlammError:
        return GlammError(f"{what} is not available: {NEEDS_ROWS}; fit the model on a pandas "
                          "DataFrame for it")

    def refit(self, y: Any) -> GlmerResult:
        raise self._needs_rows("refit")

    def simulate(self, *args: Any, **kwargs: Any) -> Any:
        raise self._needs_rows("simulate")

    def bootstrap(self, *args: Any, **kwargs: Any) -> Any:
        raise self._needs_rows("the parametric bootstrap")

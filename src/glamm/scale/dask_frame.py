"""``glamm.lmer`` on a ``dask.dataframe.DataFrame``: an LMM fitted in two passes over the
partitions, on whatever Dask scheduler is active (threads, processes, a ``distributed``
cluster), holding only the cross-products in memory.

Pass 1 (:mod:`.metadata`) finds the rows kept and the level dictionaries; pass 2
(:mod:`.partials`) builds each partition's cross-products with the in-memory code and sums
them in a tree (:data:`FAN_IN` partials per task). The fit is then the in-memory one
(:class:`~glamm.scale.model.PartitionedLinearMixedModel`); per-row results are lazy Dask
series (:mod:`.rows`). Dask is imported only when such a frame is fitted.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlammError, SingularFitWarning
from ..formula.data_input import is_dask_frame
from ..linalg.threads import single_threaded
from ..lmm.fit import optimize_theta
from ..results.lmer_result import LmerResult
from . import metadata, partials, quantiles
from .model import NEEDS_ROWS, PartitionedLinearMixedModel
from .rows import NewDataPredictor, RowValues

#: partials summed per task of the reduction tree
FAN_IN = 8


def _fold(merge: Any, *items: Any) -> Any:
    return functools.reduce(merge, items)


def _on_values(fn: Any, part: pd.Series, *args: Any) -> Any:
    return fn(part.to_numpy(dtype=float), *args)


def _stack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.vstack([a, b])


def _map_reduce(series: Any, fn: Any, merge: Any, *args: Any) -> Any:
    """``merge`` over ``fn(values of a partition, *args)``, one pass over ``series``."""
    import dask

    parts = series.to_delayed()
    (out,) = dask.compute(_tree([dask.delayed(_on_values)(fn, p, *args) for p in parts],
                                merge))
    return out


def _tree(items: list, merge: Any) -> Any:
    """One delayed object: ``merge`` over ``items`` in order, :data:`FAN_IN` at a time."""
    import dask

    if not items:
        return dask.delayed(None)
    while len(items) > 1:
        items = [dask.delayed(_fold)(merge, *items[i:i + FAN_IN])
                 for i in range(0, len(items), FAN_IN)]
    return items[0]


def summary_quantiles(series: Any, n_bins: int = quantiles.N_BINS) -> np.ndarray:
    """Min, 1Q, Median, 3Q, Max of a lazy Dask series, exact as ``numpy.quantile``'s, from
    three passes that hold only ``n_bins`` counts and the values of a few bins
    (:mod:`.quantiles`)."""
    probs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    lo, hi, n = _map_reduce(series, quantiles.value_range, quantiles.merge_ranges)
    if not hi > lo:
        return np.full(probs.size, lo)
    edges = np.linspace(lo, hi, n_bins + 1)
    counts = _map_reduce(series, quantiles.bin_counts, np.add, edges)
    bins, inside = quantiles.wanted_bins(counts, quantiles.wanted_ranks(probs, n))
    pairs = _map_reduce(series, quantiles.values_in_bins, _stack, edges, np.unique(bins))
    return quantiles.quantiles_from_bins(pairs, bins, inside, probs, n)


def _string_only(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise GlammError(f"{what} must name a column when the data is a Dask DataFrame (an array "
                     "cannot be matched with partitioned rows)")


def lmer_dask(formula: str, data: Any, reml: bool = True, weights: Any = None,
              offset: Any = None, start: np.ndarray | str | None = "auto",
              optimizer: str = "bobyqa", control: dict | None = None,
              covariances: dict | None = None) -> DaskLmerResult:
    """:func:`glamm.lmer` on a Dask DataFrame (its arguments, those that apply).

    Parameters
    ----------
    formula : str
        lme4-style formula; smooth terms, ``coords()`` and transforms whose state comes from
        all rows (``center``, ``scale``, ``poly``, splines) are refused.
    data : dask.dataframe.DataFrame
        The data, in any number of partitions.
    reml : bool
        REML (default) or maximum likelihood.
    weights, offset : str, optional
        Column names.
    start, optimizer, control, covariances
        As for :func:`glamm.lmer`.

    Returns
    -------
    DaskLmerResult
    """
    import dask

    weights = _string_only(weights, "weights")
    offset = _string_only(offset, "offset")
    cols = metadata.model_columns(formula, data.dtypes, weights, offset)
    parts = data.to_delayed()
    cols_d = dask.delayed(cols, pure=True)
    (meta,) = dask.compute(_tree([dask.delayed(metadata.collect)(p, cols_d) for p in parts],
                                 metadata.merge))
    levels = metadata.fixed_levels(meta, cols)
    args = partials.FrameArgs(formula, weights, offset, covariances, levels)
    args_d = dask.delayed(args, pure=True)
    todo = [dask.delayed(partials.partial)(p, args_d)
            for p, kept in zip(parts, meta.kept) if kept > 0]
    (total,) = dask.compute(_tree(todo, partials.merge))
    frame, A, sum_log_w = partials.finish(total, meta.n_na, meta.n_zero_weight,
                                          tuple(cols.used))
    model = PartitionedLinearMixedModel(frame, A, sum_log_w, reml=reml)
    optsum = optimize_theta(model, start=start, optimizer=optimizer, **(control or {}))
    with single_threaded(1):
        result = DaskLmerResult(model, optsum, data, args, cols)
    if result.is_singular:
        warnings.warn("boundary (singular) fit: see result.is_singular", SingularFitWarning,
                      stacklevel=3)
    return result


class DaskLmerResult(LmerResult):
    """A linear mixed model fitted on a Dask DataFrame (:func:`lmer_dask`).

    Everything read off the cross-products is as on an in-memory fit (``fixef``, ``stderr``,
    ``vcov``, ``theta``, ``varcorr``, ``ranef``, ``loglik``, ``aic``, ``bic``, the summary,
    profiles of variance parameters). ``fitted()``, ``residuals()`` and ``predict()`` return
    lazy Dask series (one task per partition, indexed by the data's labels); ``predict`` takes
    a pandas or a Dask frame. What needs the rows in memory (``refit``, ``simulate``,
    ``bootstrap``, Kenward-Roger degrees of freedom, profiles of fixed effects) raises a
    :class:`~glamm.errors.GlammError`.
    """

    model: PartitionedLinearMixedModel

    def __init__(self, model: PartitionedLinearMixedModel, optsum: Any, data: Any,
                 args: partials.FrameArgs, columns: metadata.ModelColumns):
        super().__init__(model, optsum)
        self._data = data
        self._args = args
        self._columns = columns
        self._quantiles: tuple[str, np.ndarray] | None = None

    def _rows(self, kind: str) -> Any:
        values = RowValues(self._args, self._columns, self.model.frame,
                           self.fixef.to_numpy(), self._b, kind)
        return self._data.map_partitions(values, meta=pd.Series([], dtype=float, name=kind))

    def fitted(self, type: str = "response") -> Any:
        """Fitted values ``X beta + Z b + offset`` as a lazy Dask series."""
        if type not in ("response", "link"):
            raise GlammError(f"type must be 'response' or 'link', got {type!r}")
        return self._rows("fitted")

    def residuals(self, type: str = "response") -> Any:
        """Residuals as a lazy Dask series (``"response"``/``"working"``: ``y - fitted``;
        ``"pearson"``/``"deviance"``: times the square roots of the prior weights)."""
        if type in ("response", "working"):
            return self._rows("response")
        if type in ("pearson", "deviance"):
            return self._rows("pearson")
        raise GlammError("type must be 'response', 'working', 'pearson' or 'deviance', "
                         f"got {type!r}")

    def predict(self, newdata: Any = None, re: bool = True,
                allow_new_levels: bool = False) -> Any:
        """Predictions: for the fitted rows (``newdata=None``) or a Dask ``newdata`` a lazy
        Dask series, for a pandas ``newdata`` an array (as :meth:`LmerResult.predict`)."""
        if newdata is None:
            return self._rows("fitted" if re else "population")
        predictor = NewDataPredictor(self.model.frame, self.fixef.to_numpy(), self._b, re,
                                     allow_new_levels)
        if is_dask_frame(newdata):
            return newdata.map_partitions(predictor,
                                          meta=pd.Series([], dtype=float, name="predicted"))
        return predictor(newdata).to_numpy()

    def scaled_residual_quantiles(self, n_bins: int = quantiles.N_BINS
                                  ) -> tuple[str, np.ndarray]:
        """The summary's title and Min, 1Q, Median, 3Q, Max of the Pearson residuals over
        ``sigma``, exact as ``numpy.quantile``'s, from three passes over the data that hold
        only ``n_bins`` counts and the residuals of a few bins (:mod:`.quantiles`; on first
        use)."""
        if self._quantiles is None:
            scaled = self.residuals("pearson") / self.scale
            self._quantiles = ("Scaled residuals:", summary_quantiles(scaled, n_bins))
        return self._quantiles

    def _needs_rows(self, what: str) -> GlammError:
        return GlammError(f"{what} is not available: {NEEDS_ROWS}; fit the model on a pandas "
                          "DataFrame for it")

    def refit(self, y: Any) -> LmerResult:
        raise self._needs_rows("refit")

    def simulate(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        raise self._needs_rows("simulate")

    def bootstrap(self, *args: Any, **kwargs: Any) -> Any:
        raise self._needs_rows("the parametric bootstrap")

    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        if ddf is not None and ddf.lower().replace("-", "").replace("_", "") in (
                "kenwardroger", "kr"):
            raise self._needs_rows("Kenward-Roger")
        return super().coef_table(ddf)

    def contrast(self, L: Any, ddf: str = "Satterthwaite", rhs: Any = None) -> pd.DataFrame:
        if ddf.lower().replace("-", "").replace("_", "") in ("kenwardroger", "kr"):
            raise self._needs_rows("Kenward-Roger")
        return super().contrast(L, ddf, rhs)

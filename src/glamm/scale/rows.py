"""Per-row quantities of a partitioned fit, computed one partition at a time.

:class:`RowValues` is shipped to the workers with the estimates (``beta`` and the random
effects ``b``, a few numbers per level) and turns one partition into its fitted values,
residuals or predictions, rebuilt from the rows as the fit coded them
(:class:`~glamm.scale.partials.FrameArgs`). No Dask here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..formula.design import ModelFrame
from ..terms.design import RandomDesign
from .metadata import ModelColumns, kept_rows
from .partials import FrameArgs, PartitionedFrame


@dataclass(frozen=True)
class RowValues:
    """One kind of per-row value of a fitted partitioned LMM.

    Attributes
    ----------
    args : FrameArgs
        How each partition's frame is built.
    columns : ModelColumns
        The columns the model uses (to find the rows it keeps).
    layout : PartitionedFrame
        The fitted frame without rows (``x_keep``, the specs for new data).
    beta : ndarray
        Fixed effects.
    b : list of ndarray
        Random effects per term, ``(levels, p)``.
    kind : str
        ``"fitted"`` (``X beta + Z b + offset``), ``"population"`` (``X beta + offset``),
        ``"response"`` (``y`` minus fitted) or ``"pearson"`` (times ``sqrt(w)``).
    """

    args: FrameArgs
    columns: ModelColumns
    layout: PartitionedFrame
    beta: np.ndarray
    b: list[np.ndarray]
    kind: str

    def __call__(self, part: pd.DataFrame) -> pd.Series:
        """The values of the kept rows of ``part``, indexed by their labels."""
        got = _linear_predictor(self, part)
        if got is None:
            return pd.Series([], index=part.index[:0], dtype=float, name=self.kind)
        frame, eta = got
        if self.kind in ("response", "pearson"):
            eta = frame.y - eta
            if self.kind == "pearson":
                eta = eta * np.sqrt(frame.weights)
        return pd.Series(np.asarray(eta, dtype=float), index=frame.row_index, name=self.kind)


def _linear_predictor(values: RowValues, part: pd.DataFrame
                      ) -> tuple[ModelFrame, np.ndarray] | None:
    """The frame of the rows of ``part`` that ``values``' model keeps and their linear
    predictor (without the random effects for the kind ``"population"``); ``None`` when no
    row is kept."""
    mask, _, _ = kept_rows(part, values.columns)
    if not mask.any():
        return None
    frame = values.args.frame(part)
    keep = values.layout.x_keep
    X = frame.X if keep is None else frame.X[:, keep]
    eta = X @ values.beta + frame.offset
    if values.kind != "population":
        eta = eta + RandomDesign(frame.reterms).eta_re(values.b)
    return frame, np.asarray(eta, dtype=float)


@dataclass(frozen=True)
class NewDataPredictor:
    """Predictions for the rows of new data (a partition of it), as
    :meth:`glamm.results.lmer_result.LmerResult.predict` makes them.

    Attributes
    ----------
    layout : PartitionedFrame
        The fitted frame without rows.
    beta, b : ndarray, list of ndarray
        Estimates.
    re : bool
        Include the random effects.
    allow_new_levels : bool
        Unseen levels get a random effect of zero instead of an error.
    """

    layout: PartitionedFrame
    beta: np.ndarray
    b: list[np.ndarray]
    re: bool
    allow_new_levels: bool

    def __call__(self, part: pd.DataFrame) -> pd.Series:
        frame = self.layout
        # (Dask reads text columns as pyarrow strings, which the fixed part's spec, made on
        # categoricals, does not take as a factor; plain objects it does)
        strings = {c: object for c in frame.factor_levels if c in part.columns
                   and pd.api.types.is_string_dtype(part[c].dtype)
                   and not pd.api.types.is_object_dtype(part[c].dtype)}
        part = part.astype(strings) if strings else part
        eta = frame.new_X(part) @ self.beta + frame.new_offset(part)
        if self.re and len(part):
            design = RandomDesign(frame.reterms)
            refs, zs = design.new_data(part, self.allow_new_levels)
            eta = eta + design.eta_re(self.b, refs, zs)
        return pd.Series(np.asarray(eta, dtype=float), index=part.index, name="predicted")


@dataclass(frozen=True)
class GlmmRowValues(RowValues):
    """One kind of per-row value of a fitted partitioned GLMM: :class:`RowValues`' fields
    (``args`` with ``glm_response``) and the fitted ``family`` with its link; ``kind`` is
    ``"link"`` (``eta = X beta + Z b + offset``), ``"mean"`` (``mu``), ``"population"``
    (``X beta + offset``), or the residuals ``"response"`` (``y - mu``; for binomial data
    ``y`` is the proportion), ``"pearson"`` or ``"deviance"``."""

    family: object = None

    def __call__(self, part: pd.DataFrame) -> pd.Series:
        got = _linear_predictor(self, part)
        if got is None:
            return pd.Series([], index=part.index[:0], dtype=float, name=self.kind)
        frame, out = got
        if self.kind not in ("link", "population"):
            fam = self.family
            mu = fam.link.inverse(out)   # type: ignore[attr-defined]
            y = frame.y
            wt = frame.weights * (frame.trials if frame.trials is not None else 1.0)
            out = mu
            if self.kind == "response":
                out = y - mu
            elif self.kind == "pearson":
                out = (y - mu) * np.sqrt(wt / fam.variance(mu))   # type: ignore[attr-defined]
            elif self.kind == "deviance":
                d = fam.deviance_residuals(y, mu, wt)   # type: ignore[attr-defined]
                out = np.sign(y - mu) * np.sqrt(np.maximum(d, 0.0))
        return pd.Series(out, index=frame.row_index, name=self.kind)

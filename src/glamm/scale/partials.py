"""Pass 2 over a partitioned data set: the cross-products of an LMM as sums over partitions.

:func:`partial` builds one partition's model frame against the whole data's level
dictionaries (:func:`glamm.formula.design.build_model_frame` with ``levels``) and its
cross-products (:class:`~glamm.linalg.crossprod.CrossProducts`, the in-memory code), plus what
the in-memory frame learns from all rows: the triangular factors of ``X`` and of
``sqrt(w) [X z]`` (for aliased columns and an exact fit; the R of stacked R's is the R of the
stacked rows), the range of the response and the columns' moments (for the scale warning).
:func:`merge` adds two partials (sparse blocks by their level pairs); :func:`finish` drops
aliased columns, runs the frame's checks and returns the model frame without rows and the
blocks of ``A``. No Dask here: the in-memory tests split a pandas frame by hand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import (
    EXACT_FIT_TOL,
    LMM_CONSTANT_WHY,
    check_lmm_frame,
    constant_response_error,
    exact_fit_error,
    glm_constant_response_error,
    grouped_terms,
    offset_constant_error,
    outlying_scales,
    warn_outlying,
)
from ..errors import DataError, FormulaError
from ..formula.design import ModelFrame, build_model_frame, drop_aliased_from_r
from ..formula.levels import FixedLevels
from ..linalg.blocks import BlockDiag, BlockSparse
from ..linalg.crossprod import CrossProducts


@dataclass
class PartitionedFrame(ModelFrame):
    """A :class:`~glamm.formula.design.ModelFrame` without rows: the model's layout (names,
    terms with their levels, the specs that rebuild ``X`` and ``Z`` for new data) for a fit
    whose rows stay in their partitions; ``n_rows`` is the number of rows used."""

    n_rows: int = 0

    @property
    def n(self) -> int:
        return self.n_rows


@dataclass(frozen=True)
class FrameArgs:
    """What every partition's frame is built from (shipped to the workers)."""

    formula: str
    weights: str | None
    offset: str | None
    covariances: dict | None
    levels: FixedLevels
    #: a GLMM's frame (binomial proportions with their trials, rows of weight 0 kept)
    glm_response: bool = False

    def frame(self, part: Any) -> ModelFrame:
        """The model frame of one partition (rows coded against the whole data's levels)."""
        frame = build_model_frame(self.formula, part, weights=self.weights, offset=self.offset,
                                  covariances=self.covariances, levels=self.levels,
                                  glm_response=self.glm_response)
        specs = [("the fixed-effects part", frame.xspec)] + [
            (f"random-effects term ({t.expr} | {t.group})", t.zspec) for t in frame.reterms]
        for where, spec in specs:
            if getattr(spec, "transform_state", None):
                raise FormulaError(
                    f"{where} uses a transform whose state is computed from all rows ("
                    + ", ".join(spec.transform_state) + "); it is not available on "
                    "partitioned data: compute the column before fitting")
        return frame


@dataclass
class Partial:
    """Sums over some partitions' rows.

    Attributes
    ----------
    A : list of list
        Lower blocks of ``[Z X y]' W [Z X y]`` with every fixed-effects column.
    n : int
        Rows.
    sum_log_w : float
        Sum of the log prior weights.
    r_x, r_xz : ndarray
        Triangular factors of ``X`` and of ``sqrt(w) [X z]`` (``z = y - offset``).
    x_sq : ndarray
        Column sums of squares of ``X``.
    n_active : int
        Rows of positive weight (and, for a binomial GLMM, trials).
    y_range, z_range : tuple
        Smallest and largest response among the rows of positive weight, and response minus
        offset.
    x_mean, x_m2 : ndarray
        Column means and sums of squared deviations of ``X`` (Chan's pairwise update).
    x_binary : ndarray
        Whether each column holds only 0 and 1.
    template : ModelFrame
        A partition's frame with its rows taken out (names, terms, specs).
    """

    A: list[list]
    n: int
    sum_log_w: float
    n_active: int
    r_x: np.ndarray
    r_xz: np.ndarray
    x_sq: np.ndarray
    y_range: tuple[float, float]
    z_range: tuple[float, float]
    x_mean: np.ndarray
    x_m2: np.ndarray
    x_binary: np.ndarray
    template: ModelFrame = field(repr=False)


def _r_factor(M: np.ndarray) -> np.ndarray:
    """The ``(k, k)`` triangular factor of the ``(m, k)`` matrix ``M`` (rows of zeros added
    when ``m < k``)."""
    k = M.shape[1]
    r: np.ndarray = np.linalg.qr(M, mode="r")  # type: ignore[assignment]
    if r.shape[0] < k:
        r = np.vstack([r, np.zeros((k - r.shape[0], k))])
    return r


def _without_rows(frame: ModelFrame) -> ModelFrame:
    terms = [dataclasses.replace(t, refs=np.zeros(0, dtype=np.int64), z=np.zeros((0, t.p)))
             for t in frame.reterms]
    p = frame.X.shape[1]
    return dataclasses.replace(frame, y=np.zeros(0), X=np.zeros((0, p)), reterms=terms,
                               weights=np.zeros(0), offset=np.zeros(0),
                               row_index=frame.row_index[:0])


def partial(part: Any, args: FrameArgs) -> Partial:
    """Pass 2 on one partition (whose kept rows are not empty)."""
    frame = args.frame(part)
    X, w = frame.X, frame.weights
    z = frame.y - frame.offset
    A = CrossProducts(frame.reterms, X, z, w).A
    sw = np.sqrt(w)[:, None]
    mean = X.mean(axis=0)
    # (a GLMM keeps rows of weight 0; an LMM has dropped them)
    active = w * (frame.trials if frame.trials is not None else 1.0) > 0
    y = frame.y[active]
    return Partial(
        A=A, n=frame.n, sum_log_w=float(np.log(w[w > 0]).sum()), n_active=int(active.sum()),
        r_x=_r_factor(X), r_xz=_r_factor(np.hstack([X, z[:, None]]) * sw),
        x_sq=(X * X).sum(axis=0),
        y_range=(float(y.min()), float(y.max())) if y.size else (np.inf, -np.inf),
        z_range=(float(z.min()), float(z.max())), x_mean=mean,
        x_m2=((X - mean) ** 2).sum(axis=0), x_binary=np.all((X == 0) | (X == 1), axis=0),
        template=_without_rows(frame))


def _merge_sparse(a: BlockSparse, b: BlockSparse) -> BlockSparse:
    """The sum of two sparse blocks of the same shape: the union of their level pairs, in
    :class:`~glamm.linalg.crossprod.CrossProducts`'s (column-major) order. Each block's keys
    are sorted, so a stable sort of both is a linear merge of two runs (timsort), and each
    shared pair is ``a``'s value plus ``b``'s."""
    if a.nb == b.nb and np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols):
        return BlockSparse(rows=a.rows, cols=a.cols, data=a.data + b.data, m_row=a.m_row,
                           m_col=a.m_col)
    keys = np.concatenate([a.cols * a.m_row + a.rows, b.cols * b.m_row + b.rows])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    data = np.add.reduceat(np.concatenate([a.data, b.data])[order], first, axis=0)
    uniq = keys[first]
    return BlockSparse(rows=uniq % a.m_row, cols=uniq // a.m_row, data=data,
                       m_row=a.m_row, m_col=a.m_col)


def _add_block(a: Any, b: Any) -> Any:
    if isinstance(a, BlockSparse):
        return _merge_sparse(a, b)
    if isinstance(a, BlockDiag):
        return BlockDiag(a.data + b.data)
    return a + b


def merge(a: Partial | None, b: Partial | None) -> Partial | None:
    """The :class:`Partial` of the rows of ``a`` and ``b`` together (``None``: no rows)."""
    if a is None or b is None:
        return a if b is None else b
    ta, tb = a.template, b.template
    if ta.xnames != tb.xnames or [t.cnames for t in ta.reterms] != \
            [t.cnames for t in tb.reterms]:
        diff = sorted(set(ta.xnames) ^ set(tb.xnames)) or sorted(
            {c for t in ta.reterms for c in t.cnames} ^ {c for t in tb.reterms for c in t.cnames})
        raise DataError(
            "the partitions give different model columns (" + ", ".join(diff[:5]) + "): a "
            "numeric column used as a factor (C(x)) whose values differ between partitions; "
            "make it a string or categorical column")
    n = a.n + b.n
    delta = b.x_mean - a.x_mean
    return Partial(
        A=[[_add_block(x, y) for x, y in zip(ra, rb)] for ra, rb in zip(a.A, b.A)],
        n=n, sum_log_w=a.sum_log_w + b.sum_log_w, n_active=a.n_active + b.n_active,
        r_x=_r_factor(np.vstack([a.r_x, b.r_x])), r_xz=_r_factor(np.vstack([a.r_xz, b.r_xz])),
        x_sq=a.x_sq + b.x_sq,
        y_range=(min(a.y_range[0], b.y_range[0]), max(a.y_range[1], b.y_range[1])),
        z_range=(min(a.z_range[0], b.z_range[0]), max(a.z_range[1], b.z_range[1])),
        x_mean=a.x_mean + delta * (b.n / n),
        x_m2=a.x_m2 + b.x_m2 + delta ** 2 * (a.n * b.n / n),
        x_binary=a.x_binary & b.x_binary, template=ta)


def _check_response(total: Partial, frame: ModelFrame, keep: np.ndarray) -> None:
    """:func:`glamm.checks.check_lmm_response` from the sums (the same errors)."""
    response, n = frame.parsed.response, total.n
    y_const = total.y_range[0] == total.y_range[1]
    z_const = total.z_range[0] == total.z_range[1]
    if y_const and z_const:
        raise constant_response_error(response, n, n, total.y_range[0], LMM_CONSTANT_WHY)
    if z_const:
        raise offset_constant_error(response, n)
    if not keep.any():
        return
    r = _r_factor(total.r_xz[:, np.append(keep, True)])
    if abs(r[-1, -1]) <= EXACT_FIT_TOL * np.linalg.norm(total.r_xz[:, -1]):
        raise exact_fit_error(response, list(frame.xnames))


def _check_glm_response(total: Partial, frame: ModelFrame, family: Any) -> None:
    """:func:`glamm.checks.check_glmm_frame` from the sums (the same errors)."""
    grouped_terms(frame, "generalized linear model")
    if total.n_active == 0:
        raise DataError("every row has weight 0; there are no data to fit")
    if total.y_range[0] == total.y_range[1]:
        error = glm_constant_response_error(frame.parsed.response, total.n_active, total.n,
                                            total.y_range[0], family)
        if error is not None:
            raise error


def finish(total: Partial | None, n_na: int, n_zero_weight: int,
           columns: tuple[str, ...] = (), family: Any = None
           ) -> tuple[PartitionedFrame, list[list], float]:
    """The model frame without rows, the blocks of ``A`` (aliased columns dropped, as the
    in-memory frame drops them) and the sum of the log weights, after the in-memory frame's
    checks.

    Parameters
    ----------
    total : Partial or None
        The sums over every partition (``None``: no rows were kept).
    n_na, n_zero_weight : int
        Rows dropped for missing values and for a weight of 0 (pass 1).
    columns : tuple of str
        The columns the model uses (named when no row is left).
    family : Family, optional
        A GLMM's family: the GLMM's checks (:func:`~glamm.checks.check_glmm_frame`'s) instead
        of the LMM's.
    """
    if total is None:
        raise DataError(f"no rows left after dropping {n_na} rows with missing values in the "
                        "columns the model uses" + (f" ({', '.join(columns)})" if columns
                                                    else "")
                        + (f" and {n_zero_weight} rows with zero weight" if n_zero_weight
                           else ""))
    t = total.template
    keep = drop_aliased_from_r(total.r_x, np.sqrt(total.x_sq))
    names = list(t.xnames)
    frame = PartitionedFrame(**{f.name: getattr(t, f.name)
                                for f in dataclasses.fields(ModelFrame)}, n_rows=total.n)
    frame = dataclasses.replace(
        frame, X=np.zeros((0, int(keep.sum()))), xnames=[c for c, k in zip(names, keep) if k],
        dropped_columns=[c for c, k in zip(names, keep) if not k], x_keep=keep,
        n_dropped_na=n_na, n_zero_weight=n_zero_weight)
    if family is None:
        check_lmm_frame(frame, response=False)
        _check_response(total, frame, keep)
    else:
        _check_glm_response(total, frame, family)
    k = frame.n_parametric
    if total.n >= 2 and k >= 2:
        scales = np.where(total.x_binary, 1.0, np.sqrt(total.x_m2 / total.n))
        scales = np.where(total.x_binary | (scales > 0), scales, np.nan)[keep][:k]
        warn_outlying(outlying_scales(scales, frame.xnames[:k]), stacklevel=4)
    rows = np.append(keep, True)
    A = [list(r) for r in total.A]
    K = len(A) - 1
    A[K] = [blk[rows] for blk in A[K][:-1]] + [A[K][K][np.ix_(rows, rows)]]
    return frame, A, total.sum_log_w

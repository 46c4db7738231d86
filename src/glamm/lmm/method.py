"""Choosing how to fit an LMM: the exact blocked factor or the approximate Krylov method.

:func:`estimate_lmm_cost` predicts, from the level codes only, what the exact factor will
need (:mod:`glamm.linalg.cost`); :func:`make_lmm_model` builds the model ``lmer`` fits:

- ``method="exact"``: the blocked Cholesky factor; a :class:`~glamm.errors.MemoryEstimateError`
  before anything large is allocated when its predicted memory exceeds ``max_memory``;
- ``method="approximate"``: :class:`~glamm.lmm.approximate.ApproximateLinearMixedModel`;
- ``method="auto"`` (``lmer``'s default): exact when the prediction fits in ``max_memory``
  and a fit of :data:`AUTO_EVALUATIONS` evaluations in ``max_time``, approximate otherwise
  (with an :class:`~glamm.errors.ApproximateFitWarning` that says why), and the memory error
  when neither applies.

A small model (a cheap upper bound on the factor below :data:`SMALL_BYTES`) skips the
prediction, which would otherwise cost a noticeable part of a millisecond fit.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import ApproximateFitWarning, GlammError, MemoryEstimateError
from ..formula.design import ModelFrame
from ..linalg.cost import PAIR_RATE, FactorCost, available_memory, factor_cost
from .model import LinearMixedModel

METHODS = ("auto", "exact", "approximate")
#: the default memory limit: this fraction of the memory available when the fit starts
MEMORY_FRACTION = 0.8
#: objective evaluations a fit is assumed to take when ``auto`` weighs the time
AUTO_EVALUATIONS = 60
#: default time limit (seconds) of an exact fit under ``method="auto"``
MAX_TIME = 4 * 3600.0


def frame_cost(frame: ModelFrame, flop_rate: float | None = None) -> FactorCost:
    """:func:`glamm.linalg.cost.factor_cost` for a model frame's terms."""
    terms = frame.reterms
    return factor_cost([t.refs for t in terms], [t.nlevels for t in terms],
                       [t.p for t in terms], frame.X.shape[1], [t.group for t in terms],
                       flop_rate=flop_rate)


def estimate_lmm_cost(formula: str, data: Any, weights: Any = None, offset: Any = None,
                      covariances: dict | None = None, flop_rate: float | None = None
                      ) -> FactorCost:
    """Predict the memory and time per evaluation of the exact fit of an LMM, before
    fitting: the storage of every block of the blocked Cholesky factor (a term whose levels
    are crossed with an earlier term's gets a dense ``q x q`` block), the constants its
    operations keep, and the floating-point work.

    Parameters
    ----------
    formula, data, weights, offset, covariances
        As for :func:`glamm.lmer`.
    flop_rate : float, optional
        Dense floating-point operations per second (default: measured once per process by a
        single-threaded factorization, :func:`glamm.linalg.cost.measured_flop_rate`).

    Returns
    -------
    FactorCost
        ``memory_bytes``, ``seconds_per_evaluation``, ``blocks`` (one
        :class:`~glamm.linalg.cost.BlockCost` per block and per operation's constants),
        ``largest_dense()``; ``table()`` lists the blocks.
    """
    from ..formula.design import build_model_frame

    frame = build_model_frame(formula, data, weights=weights, offset=offset,
                              covariances=covariances)
    return frame_cost(frame, flop_rate=flop_rate)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def memory_message(cost: FactorCost, limit: float) -> str:
    """Why the exact factor does not fit: its largest dense block, the total and the limit."""
    big = cost.largest_dense()
    where = ""
    if big is not None:
        where = (f"; its largest dense block is {big.shape[0]:,} x {big.shape[1]:,} "
                 f"({_gib(big.nbytes)}) for the term {big.label!r}")
    pairs = [b for b in cost.blocks if b.kind == "pair list"]
    if pairs:
        top = max(pairs, key=lambda b: b.nbytes)
        if big is None or top.nbytes > big.nbytes:
            where += (f"; its largest pair list ({top.label}) has {top.shape[0]:,} entries "
                      f"({_gib(top.nbytes)})")
    return (f"the exact fit needs about {_gib(cost.memory_bytes)} for its Cholesky factor"
            f"{where}, more than the {_gib(limit)} allowed (max_memory); use "
            f"method='approximate' (Krylov solves and a stochastic log-determinant) or raise "
            f"max_memory")


#: below this bound on the exact factor's memory (and with at most SMALL_LEVELS random
#: effects) the prediction is skipped: it would cost a noticeable part of a small fit
SMALL_BYTES = 256 * 2**20
SMALL_LEVELS = 3000


def _surely_small(frame: ModelFrame, limit: float, tmax: float) -> bool:
    """A cheap upper bound says the exact factor is small: every block dense
    (``8 K q^2`` bytes, ``K q^3 / 3`` flops at 1 GFLOP/s) and every pair list as long as the
    rows times the largest level's rows (120 bytes an entry, for each pair of terms)."""
    terms = frame.reterms
    if not terms:
        return True
    q = sum(t.nlevels * t.p for t in terms)
    if q > SMALL_LEVELS:
        return False
    K = len(terms)
    p2 = max(t.p for t in terms) ** 2
    most = int(np.bincount(terms[0].refs).max()) if frame.n else 0
    entries = K * K * p2 * frame.n * most
    bound = 8.0 * K * q * q + 120.0 * entries
    seconds = AUTO_EVALUATIONS * (K * q**3 / 3.0 / 1e9 + entries / PAIR_RATE)
    return bound <= min(limit, SMALL_BYTES) and seconds <= tmax


def make_lmm_model(frame: ModelFrame, reml: bool, method: str = "auto",
                   max_memory: float | None = None, max_time: float | None = None,
                   approximation: dict | None = None
                   ) -> tuple[LinearMixedModel, FactorCost | None]:
    """The model :func:`glamm.lmer` fits, by ``method`` (see the module docstring).

    Parameters
    ----------
    frame : ModelFrame
        The numeric model.
    reml : bool
        REML criterion if true.
    method : str
        ``"auto"`` (default), ``"exact"`` or ``"approximate"``.
    max_memory : float, optional
        Bytes the exact factor may use (default :data:`MEMORY_FRACTION` of the memory
        available now).
    max_time : float, optional
        Seconds an exact fit may take under ``"auto"`` (default :data:`MAX_TIME`),
        predicted as :data:`AUTO_EVALUATIONS` evaluations.
    approximation : dict, optional
        Settings of the approximate method
        (:class:`~glamm.lmm.approximate.ApproximationSettings`).

    Returns
    -------
    (LinearMixedModel, FactorCost or None)
        The model and the prediction it was chosen by (``None`` for ``"approximate"``).
    """
    from .approximate import ApproximateLinearMixedModel, check_approximate_applies

    if method not in METHODS:
        raise GlammError(f"method must be one of {METHODS}, got {method!r}")
    if approximation is not None and method == "exact":
        raise GlammError("approximation= settings apply to method='approximate' or 'auto'")
    if max_memory is not None and not float(max_memory) > 0:
        raise GlammError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
    if method == "approximate":
        return ApproximateLinearMixedModel(frame, reml=reml, settings=approximation), None
    limit = float(max_memory) if max_memory is not None \
        else MEMORY_FRACTION * available_memory()
    tmax = MAX_TIME if max_time is None else float(max_time)
    if _surely_small(frame, limit, tmax if method == "auto" else np.inf):
        return LinearMixedModel(frame, reml=reml), None
    cost = frame_cost(frame)
    fits = cost.memory_bytes <= limit
    if method == "exact":
        if not fits:
            raise MemoryEstimateError(memory_message(cost, limit))
        return LinearMixedModel(frame, reml=reml), cost
    seconds = AUTO_EVALUATIONS * cost.seconds_per_evaluation
    if fits and seconds <= tmax:
        return LinearMixedModel(frame, reml=reml), cost
    try:
        check_approximate_applies(frame)
    except GlammError as err:
        if not fits:
            raise MemoryEstimateError(f"{memory_message(cost, limit)}; but {err}") from None
        return LinearMixedModel(frame, reml=reml), cost
    why = (memory_message(cost, limit).split("; use")[0] if not fits else
           f"the exact fit would take about {seconds / 3600:.1f} h ({AUTO_EVALUATIONS} "
           f"evaluations of {cost.seconds_per_evaluation:.0f} s), more than max_time = "
           f"{tmax / 3600:.1f} h")
    warnings.warn(f"method='auto' chose the approximate method: {why}", ApproximateFitWarning,
                  stacklevel=3)
    return ApproximateLinearMixedModel(frame, reml=reml, settings=approximation), cost

"""An LMM built from cross-products summed over partitions, without the rows.

The profiled deviance needs only ``A``, ``n``, ``p`` and ``sum(log w)``
(:mod:`glamm.lmm.model`), so :class:`PartitionedLinearMixedModel` is the in-memory
:class:`~glamm.lmm.model.LinearMixedModel` set up on a given ``A``: the same factor, optimizer
and estimates. What needs the rows (a new response, new values of ``Z``) raises.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import GlammError
from ..linalg.blocks import copy_blocks
from ..lmm.model import LinearMixedModel
from ..terms.design import RandomDesign
from .partials import PartitionedFrame

#: what the error says when an operation needs the rows of a partitioned fit
NEEDS_ROWS = ("a fit on partitioned (Dask) data keeps only the cross-products of the rows, "
              "not the rows")


class PartitionedLinearMixedModel(LinearMixedModel):
    """The profiled-deviance objective of an LMM on cross-products summed over partitions.

    Parameters
    ----------
    frame : PartitionedFrame
        The model's layout without rows (:class:`~glamm.scale.partials.PartitionedFrame`).
    A : list of list
        The lower blocks of ``[Z X y]' W [Z X y]`` (``y`` minus the offset), kept by the model.
    sum_log_w : float
        Sum of the log prior weights.
    reml : bool
        REML criterion if true (default), ML otherwise.
    """

    frame: PartitionedFrame

    def __init__(self, frame: PartitionedFrame, A: list[list], sum_log_w: float,
                 reml: bool = True):
        self.cp = None   # type: ignore[assignment]
        self._setup(frame, RandomDesign(frame.reterms), A, reml, sum_log_w, frame.n)

    def single_term_model(self, k: int) -> PartitionedLinearMixedModel:
        """Term ``k`` alone: its blocks of ``A`` are that model's cross-products."""
        K = len(self.A) - 1
        sub = copy_blocks([[self.A[k][k]], [self.A[K][k], self.A[K][K]]])
        frame = dataclasses.replace(self.frame, reterms=[self.reterms[k]])
        return PartitionedLinearMixedModel(frame, sub, self.sum_log_w, self.reml)

    def copy_with(self, reml: bool | None = None) -> PartitionedLinearMixedModel:
        return PartitionedLinearMixedModel(self.frame, copy_blocks(self.A), self.sum_log_w,
                                           self.reml if reml is None else reml)

    def set_response(self, y: Any) -> None:
        raise GlammError(f"a new response cannot be set: {NEEDS_ROWS}")

    def set_z(self, k: int, z: Any) -> None:
        raise GlammError(f"new values of Z cannot be set: {NEEDS_ROWS}")

"""The record of one optimization run, kept on every fit (MixedModels.jl's ``OptSummary``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OptSummary:
    """Settings, trace and outcome of the optimization of ``theta``.

    Attributes
    ----------
    optimizer : str
        Backend and algorithm, e.g. ``"nlopt:LN_BOBYQA"``.
    initial, lower : ndarray
        Starting value and lower bounds of the parameters.
    ftol_rel, ftol_abs, xtol_abs, initial_step : float
        Stopping and step settings.
    maxfeval : int
        Maximum number of objective evaluations.
    final : ndarray or None
        Parameters at the optimum (``None`` before the optimizer has run).
    fmin : float
        The objective at ``final``.
    feval : int
        Number of objective evaluations.
    returnvalue : str
        The backend's return code as text.
    converged : bool
        Whether the backend reported success.
    elapsed : float
        Wall-clock seconds spent in the optimizer.
    trace : list of tuple
        ``(theta, objective)`` pairs of every evaluation when ``keep_trace`` was set.
    messages : list of str
        Anything worth telling the user (boundary, maxfeval reached, refinements).
    """

    optimizer: str
    initial: np.ndarray
    lower: np.ndarray
    ftol_rel: float = 1e-15
    ftol_abs: float = 0.0
    xtol_abs: float = 1e-10
    initial_step: float = 0.75
    maxfeval: int = 100_000
    final: np.ndarray | None = None
    fmin: float = float("nan")
    feval: int = 0
    returnvalue: str = ""
    converged: bool = False
    elapsed: float = 0.0
    trace: list[tuple[np.ndarray, float]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "optimizer": self.optimizer,
            "initial": np.asarray(self.initial).tolist(),
            "lower": [None if not np.isfinite(v) else float(v) for v in self.lower],
            "ftol_rel": self.ftol_rel,
            "ftol_abs": self.ftol_abs,
            "xtol_abs": self.xtol_abs,
            "initial_step": self.initial_step,
            "maxfeval": self.maxfeval,
            "final": None if self.final is None else np.asarray(self.final).tolist(),
            "fmin": self.fmin,
            "feval": self.feval,
            "returnvalue": self.returnvalue,
            "converged": self.converged,
            "elapsed": self.elapsed,
            "messages": list(self.messages),
        }

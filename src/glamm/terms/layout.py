"""How the parameter vector ``theta`` is split over the random-effects terms (lme4's order)."""

from __future__ import annotations

import numpy as np


class ThetaLayout:
    """Slices of ``theta`` per term, bounds, starting values, names and per-term ``lambda``."""

    def __init__(self, reterms):
        self.reterms = list(reterms)
        sizes = [t.n_theta for t in self.reterms]
        bounds = np.cumsum([0] + sizes)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.n_theta = int(bounds[-1])

    def lower(self) -> np.ndarray:
        parts = [t.covariance.lower() for t in self.reterms]
        return np.concatenate(parts) if parts else np.zeros(0)

    def initial(self) -> np.ndarray:
        parts = [t.covariance.initial() for t in self.reterms]
        return np.concatenate(parts) if parts else np.zeros(0)

    def names(self) -> list[str]:
        return [f"{t.group}.{nm}" for t in self.reterms
                for nm in t.covariance.theta_names(t.cnames)]

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        return [t.lambda_(theta[s]) for t, s in zip(self.reterms, self.slices)]

    def is_singular(self, theta: np.ndarray) -> bool:
        return any(t.covariance.is_singular(theta[s]) for t, s in zip(self.reterms, self.slices))

    def log_scale_index(self) -> np.ndarray:
        """Positions of the parameters the optimizers move on the log scale (those of
        covariances with ``log_scale``: the smooths' scales, whose smoothing parameters
        ``1/theta^2`` span orders of magnitude, from 1e-3 to 1e3 in one model is common,
        which BOBYQA on ``theta`` itself crosses slowly)."""
        return np.array([i for t, s in zip(self.reterms, self.slices) if t.covariance.log_scale
                         for i in range(s.start, s.stop)], dtype=int)

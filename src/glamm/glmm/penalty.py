"""Penalized fixed effects, as GLMMadaptive's ``penalized = TRUE``: an independent Student-t
prior on every non-intercept coefficient (location 0, scale 1, 3 degrees of freedom by
default; a large ``df`` approaches a ridge penalty). The fit maximizes the log-likelihood plus
the log prior density; the penalty keeps coefficients finite under separation and shrinks
weakly identified ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from ..errors import GlammError


@dataclass(frozen=True)
class StudentTPenalty:
    """Student-t log-density penalty on the coefficients at ``index``.

    Attributes
    ----------
    mean, scale, df : ndarray
        Location, scale and degrees of freedom (scalars or one per penalized coefficient).
    index : ndarray
        Positions in ``beta`` of the penalized coefficients.
    """

    mean: np.ndarray
    scale: np.ndarray
    df: np.ndarray
    index: np.ndarray

    @classmethod
    def from_spec(cls, spec, xnames: list[str]) -> "StudentTPenalty":
        """``spec`` is ``True`` (defaults) or a dict with ``mean``, ``scale``, ``df``."""
        opts = {"mean": 0.0, "scale": 1.0, "df": 3.0}
        if isinstance(spec, dict):
            unknown = set(spec) - set(opts)
            if unknown:
                raise GlammError(f"unknown penalty setting(s) {sorted(unknown)}; "
                                 "use mean, scale and df")
            opts.update(spec)
        index = np.array([j for j, nm in enumerate(xnames) if nm != "(Intercept)"], dtype=int)
        k = index.size

        def vec(v):
            arr = np.broadcast_to(np.asarray(v, dtype=float), (k,)).copy()
            return arr

        pen = cls(mean=vec(opts["mean"]), scale=vec(opts["scale"]), df=vec(opts["df"]),
                  index=index)
        if np.any(pen.scale <= 0) or np.any(pen.df <= 0):
            raise GlammError("the penalty's scale and df must be positive")
        return pen

    def log_density(self, beta: np.ndarray) -> float:
        """Sum of the Student-t log-densities of the penalized coefficients."""
        z = (beta[self.index] - self.mean) / self.scale
        nu = self.df
        return float(np.sum(gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
                            - np.log(self.scale) - (nu + 1) / 2 * np.log1p(z * z / nu)))

    def deviance(self, beta: np.ndarray) -> float:
        """``-2`` times :meth:`log_density` (added to the deviance that is minimized)."""
        return -2.0 * self.log_density(beta)

    def deviance_gradient(self, beta: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`deviance` in ``beta`` (zero for unpenalized coefficients)."""
        g = np.zeros(beta.size)
        d = beta[self.index] - self.mean
        g[self.index] = 2.0 * (self.df + 1) * d / (self.df * self.scale**2 + d * d)
        return g

    def deviance_hessian_diag(self, beta: np.ndarray) -> np.ndarray:
        """Diagonal of the Hessian of :meth:`deviance` in ``beta`` (the penalty is separable;
        zero for unpenalized coefficients)."""
        out = np.zeros(beta.size)
        d = beta[self.index] - self.mean
        c = self.df * self.scale**2
        out[self.index] = 2.0 * (self.df + 1) * (c - d * d) / (c + d * d) ** 2
        return out

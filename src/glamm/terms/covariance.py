"""Covariance structures for one random-effects term.

A structure maps the parameter vector ``theta`` of a term to the ``p x p`` lower-triangular
relative covariance factor ``lambda`` that is repeated once per level of the grouping factor
(so the term's block of Lambda_theta is ``I_levels kron lambda``). The random effects of a level
then have covariance ``sigma^2 * lambda @ lambda.T``.

Every structure answers the same few questions (``n_theta``, ``lower``, ``initial``,
``lambda_``, ``theta_names``), so the blocked Cholesky, the optimizer and the printed tables never
need to know which structure a term uses. New structures (for smooths, factor loadings,
autoregressive terms) are added here as further classes with the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def _eye(p: int) -> np.ndarray:
    """A read-only identity (shared, so building a scaled identity costs one multiply)."""
    out = np.eye(p)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Unstructured:
    """General positive semi-definite covariance, lme4's default for ``(x | g)``.

    ``theta`` holds the lower triangle of ``lambda`` by columns (lme4's order); the diagonal
    elements are bounded below by 0, the others are free.
    """

    p: int

    @property
    def n_theta(self) -> int:
        return self.p * (self.p + 1) // 2

    def _tril(self) -> tuple[np.ndarray, np.ndarray]:
        # column-major lower triangle: (0,0), (1,0), ..., (p-1,0), (1,1), ...
        rows, cols = [], []
        for j in range(self.p):
            for i in range(j, self.p):
                rows.append(i)
                cols.append(j)
        return np.array(rows), np.array(cols)

    def lower(self) -> np.ndarray:
        rows, cols = self._tril()
        return np.where(rows == cols, 0.0, -np.inf)

    def initial(self) -> np.ndarray:
        rows, cols = self._tril()
        return np.where(rows == cols, 1.0, 0.0)

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.p, self.p))
        rows, cols = self._tril()
        lam[rows, cols] = theta
        return lam

    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        rows, cols = self._tril()
        return [
            cnames[i] if i == j else f"{cnames[i]}.{cnames[j]}" for i, j in zip(rows, cols)
        ]

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        rows, cols = self._tril()
        return bool(np.any(np.asarray(theta)[rows == cols] < tol))


@dataclass(frozen=True)
class Diagonal:
    """Independent random effects with separate variances (``lambda`` diagonal)."""

    p: int

    @property
    def n_theta(self) -> int:
        return self.p

    def lower(self) -> np.ndarray:
        return np.zeros(self.p)

    def initial(self) -> np.ndarray:
        return np.ones(self.p)

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return np.diag(np.asarray(theta, dtype=float))

    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        return list(cnames)

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        return bool(np.any(np.asarray(theta) < tol))


@dataclass(frozen=True)
class ScaledIdentity:
    """One variance shared by all ``p`` effects (``lambda = theta * I``), e.g. a smooth's
    penalized coefficients in the mixed-model representation."""

    p: int

    @property
    def n_theta(self) -> int:
        return 1

    def lower(self) -> np.ndarray:
        return np.zeros(1)

    def initial(self) -> np.ndarray:
        return np.ones(1)

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return float(np.asarray(theta).ravel()[0]) * _eye(self.p)

    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        return ["sd"]

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        return bool(np.asarray(theta).ravel()[0] < tol)

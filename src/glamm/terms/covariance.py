"""Covariance structures for one random-effects term.

A structure maps the parameter vector ``theta`` of a term to the ``p x p`` relative covariance
factor ``lambda`` that is repeated once per level of the grouping factor (so the term's block
of Lambda_theta is ``I_levels kron lambda``). The random effects of a level then have
covariance ``sigma^2 * lambda @ lambda.T``.

Every structure implements :class:`Covariance`, so the blocked Cholesky, the optimizers, the
gradients and the printed tables never need to know which structure a term uses:

- ``n_theta``, ``lower()``, ``upper()``, ``initial()``: the parameters, their bounds and start;
- ``lambda_(theta)`` and ``jacobian(theta)`` (``d lambda / d theta_r`` for each ``r``, used
  by the analytic Laplace and quadrature gradients);
- ``theta_names(cnames)``, ``is_singular(theta)`` and ``summary_rows(S, names)`` (the rows of
  the variance-component table);
- ``is_scaled_identity`` (``lambda = c I`` whatever ``theta``: the factor's kernels then
  scale instead of multiplying) and ``log_scale`` (the optimizers move the parameters on the
  log scale).

A new structure (compound symmetry, AR(1), a reduced-rank factor) is a further subclass;
nothing else needs to change. ``lambda`` may be any square matrix (the factor does not assume
it triangular) and nonlinear in ``theta`` (the gradients use :meth:`Covariance.jacobian`).

lme4's ``(x || g)`` is not a structure here: the formula expands it into separate scalar terms
``(1 | g) + (0 + x | g)`` as lme4 does, each :class:`Unstructured` with ``p = 1``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: one row of the variance-component table: (var1, var2 or None, variance or covariance,
#: standard deviation or correlation)
SummaryRow = tuple[str, "str | None", float, float]


@lru_cache(maxsize=64)
def _eye(p: int) -> np.ndarray:
    """A read-only identity (shared, so building a scaled identity costs one multiply)."""
    out = np.eye(p)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _tril(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle of a ``p x p`` matrix by columns (lme4's
    order: (0,0), (1,0), ..., (p-1,0), (1,1), ...); read-only, shared."""
    rows = np.array([i for j in range(p) for i in range(j, p)], dtype=np.intp)
    cols = np.array([j for j in range(p) for _ in range(j, p)], dtype=np.intp)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


class Covariance(ABC):
    """The protocol of a term's covariance structure (module docstring).

    Subclasses are frozen dataclasses with at least the field ``p`` (the number of random
    effects per level).
    """

    p: int
    #: ``lambda`` is a multiple of the identity for every ``theta`` (the factor's kernels scale
    #: instead of multiplying); a property of the class, not of the current ``theta``
    is_scaled_identity: bool = False
    #: the optimizers move these parameters on the log scale (e.g. a smooth's scale, whose
    #: smoothing parameter ``1 / theta^2`` spans orders of magnitude)
    log_scale: bool = False
    #: ``lambda`` is linear in ``theta``, so :meth:`jacobian` does not depend on ``theta``
    #: (callers may cache it)
    jacobian_is_constant: bool = False
    #: a structure with fewer parameters than an unstructured covariance (ar1, spatial, ...):
    #: identified even with as many effects as observations, or within one level
    structured: bool = False

    @property
    @abstractmethod
    def n_theta(self) -> int:
        """Number of parameters."""

    @abstractmethod
    def lower(self) -> np.ndarray:
        """Lower bounds of ``theta`` (``-inf`` where free)."""

    def upper(self) -> np.ndarray:
        """Upper bounds of ``theta`` (``+inf`` where free)."""
        return np.full(self.n_theta, np.inf)

    @abstractmethod
    def initial(self) -> np.ndarray:
        """Starting values of ``theta``."""

    @abstractmethod
    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        """The ``p x p`` relative covariance factor at ``theta``."""

    @abstractmethod
    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """``d lambda / d theta`` as an ``(n_theta, p, p)`` array (slice ``r`` is the
        derivative in ``theta[r]``)."""

    @abstractmethod
    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        """Names of the parameters, given the names of the term's ``p`` columns."""

    @abstractmethod
    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        """Whether ``theta`` is on the boundary (a variance zero, a correlation +-1)."""

    def summary_rows(self, S: np.ndarray, names: tuple[str, ...]) -> list[SummaryRow]:
        """Rows of the variance-component table for the ``p x p`` covariance ``S`` of a level's
        random effects: each variance with its standard deviation, then each covariance with
        its correlation (lme4's ``as.data.frame(VarCorr(m))`` order; ``NaN`` correlation where
        a variance is zero)."""
        sd = np.sqrt(np.diag(S))
        rows: list[SummaryRow] = [(nm, None, S[i, i], sd[i]) for i, nm in enumerate(names)]
        p = S.shape[0]
        for j in range(p):
            for i in range(j + 1, p):
                denom = sd[i] * sd[j]
                corr = S[i, j] / denom if denom > 0 else np.nan
                rows.append((names[j], names[i], S[i, j], corr))
        return rows


@dataclass(frozen=True)
class Unstructured(Covariance):
    """General positive semi-definite covariance, lme4's default for ``(x | g)``.

    ``theta`` holds the lower triangle of ``lambda`` by columns (lme4's order); the diagonal
    elements are bounded below by 0, the others are free. ``lambda`` is linear in ``theta``.
    """

    p: int
    jacobian_is_constant = True

    @property
    def n_theta(self) -> int:
        return self.p * (self.p + 1) // 2

    def lower(self) -> np.ndarray:
        rows, cols = _tril(self.p)
        return np.where(rows == cols, 0.0, -np.inf)

    def initial(self) -> np.ndarray:
        rows, cols = _tril(self.p)
        return np.where(rows == cols, 1.0, 0.0)

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.p, self.p))
        rows, cols = _tril(self.p)
        lam[rows, cols] = theta
        return lam

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        rows, cols = _tril(self.p)
        out = np.zeros((self.n_theta, self.p, self.p))
        out[np.arange(self.n_theta), rows, cols] = 1.0
        return out

    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        rows, cols = _tril(self.p)
        return [
            cnames[i] if i == j else f"{cnames[i]}.{cnames[j]}" for i, j in zip(rows, cols)
        ]

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        rows, cols = _tril(self.p)
        return bool(np.any(np.asarray(theta)[rows == cols] < tol))


@dataclass(frozen=True)
class ScaledIdentity(Covariance):
    """One variance shared by all ``p`` effects (``lambda = theta * I``), e.g. a smooth's
    penalized coefficients in the mixed-model representation.

    Parameters
    ----------
    p : int
        Number of effects per level.
    log_scale : bool
        Optimize ``theta`` on the log scale (set for smooths, whose smoothing parameter
        ``1 / theta^2`` spans orders of magnitude; mgcv likewise optimizes log smoothing
        parameters).
    """

    p: int
    log_scale: bool = False
    is_scaled_identity = True
    jacobian_is_constant = True

    @property
    def n_theta(self) -> int:
        return 1

    def lower(self) -> np.ndarray:
        return np.zeros(1)

    def initial(self) -> np.ndarray:
        return np.ones(1)

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return float(np.asarray(theta).ravel()[0]) * _eye(self.p)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        return np.eye(self.p)[None, :, :].copy()

    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        return ["sd"]

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        return bool(np.asarray(theta).ravel()[0] < tol)

    def summary_rows(self, S: np.ndarray, names: tuple[str, ...]) -> list[SummaryRow]:
        """One row: the shared variance, named by ``names[0]``."""
        return [(names[0], None, S[0, 0], np.sqrt(S[0, 0]))]

"""The interface every smooth basis implements: what mgcv's ``smooth.construct`` returns for a
basis type (before identifiability constraints, penalty rescaling or ``by`` variables, which
glamm.smooths.construct applies the same way for all of them).

Not public API.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class SmoothBasis(ABC):
    """An unconstrained smooth basis of ``k`` functions of ``d`` covariates.

    Attributes
    ----------
    X : ndarray
        ``(n, k)`` basis evaluated at the data it was built from.
    S : list[ndarray]
        penalty matrices, each ``(k, k)`` symmetric positive semi-definite, on mgcv's scale
        (as ``smooth.construct`` returns them, before ``smoothCon``'s rescaling).
    null_space_dim : int
        dimension of the space of unpenalized functions (0 for shrinkage bases).
    rank : int
        rank of the (summed) penalty.
    """

    X: np.ndarray
    S: list[np.ndarray]
    null_space_dim: int
    rank: int

    @abstractmethod
    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """The basis at new covariate values ``x`` (``(m,)`` or ``(m, d)``): ``(m, k)``;
        at the data it was built from this reproduces :attr:`X`."""

    @property
    def k(self) -> int:
        """Number of basis functions."""
        return self.X.shape[1]

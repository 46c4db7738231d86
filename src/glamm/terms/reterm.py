"""A random-effects term: integer level codes, a small dense model matrix and a covariance.

The term's columns of Z are never formed: observation ``i`` contributes ``z[i]`` to the ``p``
columns of level ``refs[i]``. This is MixedModels.jl's ``ReMat`` idea.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ReTerm:
    """One random-effects term ``(expr | group)``.

    Attributes
    ----------
    group:
        Name of the grouping factor as lme4 prints it (``"Subject"``, ``"cask:batch"``).
    levels:
        Level labels (strings) in the order of the random-effects vector.
    refs:
        ``(n,)`` integer code of each observation's level.
    z:
        ``(n, p)`` model matrix of the term's left-hand side.
    cnames:
        Names of the ``p`` columns (lme4 style: ``"(Intercept)"``, ``"Days"``).
    covariance:
        The structure mapping this term's ``theta`` to ``lambda``, a
        :class:`~glamm.terms.covariance.Covariance`.
    smooth:
        The smooth whose penalized part this term is (``None`` for ordinary terms).
    expr, factors:
        The left-hand side as parsed and the data columns forming the grouping factor; with
        ``zspec`` (formulaic's model spec; ``None`` for an intercept-only term, whose ``z``
        is a column of ones) they rebuild ``z`` and ``refs`` for new data (:meth:`new_z`).
    """

    group: str
    levels: tuple[str, ...]
    refs: np.ndarray
    z: np.ndarray
    cnames: tuple[str, ...]
    covariance: Any
    expr: str = "1"
    factors: tuple[str, ...] = ()
    zspec: Any = field(default=None, repr=False)
    #: for the random-effect part of a smooth (glamm.smooths.construct.Smooth): one "level",
    #: ``z`` the penalized columns, identity covariance; ``None`` for ordinary terms
    smooth: Any = field(default=None, repr=False)

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def p(self) -> int:
        return self.z.shape[1]

    @property
    def q(self) -> int:
        return self.nlevels * self.p

    @property
    def n_theta(self) -> int:
        return self.covariance.n_theta

    @property
    def summary_names(self) -> tuple[str, ...]:
        """Names of the term's rows in the variance-component table: the column names, or
        ``("s",)`` for a smooth's one shared variance."""
        return ("s",) if self.smooth is not None else self.cnames

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return self.covariance.lambda_(theta)

    def new_z(self, newdata) -> np.ndarray:
        """The term's ``z`` columns for the rows of ``newdata``: a smooth's penalized columns,
        a column of ones for an intercept-only term, else formulaic's model spec."""
        if self.smooth is not None:
            return self.smooth.split(self.smooth.design(newdata))[0]
        if self.zspec is None:
            return np.ones((len(newdata), 1))
        return np.asarray(self.zspec.get_model_matrix(newdata, na_action="ignore"), dtype=float)

    def level_index(self) -> dict[str, int]:
        return {lev: i for i, lev in enumerate(self.levels)}

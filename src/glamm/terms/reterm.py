"""A random-effects term: integer level codes, a small dense model matrix and a covariance.

The term's columns of Z are never formed: observation ``i`` contributes ``z[i]`` to the ``p``
columns of level ``refs[i]``. This is MixedModels.jl's ``ReMat`` idea.

A term also says what it is (:class:`TermRole`) and, through properties chosen by what the
rest of the code asks (``is_grouped``, ``supports_quadrature``, ``population_level``, ...),
what it takes part in; code elsewhere asks these instead of testing for a smooth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from ..formula.safety import formula_context


class TermRole(Enum):
    """What a random-effects term is.

    GROUPED
        Random effects per level of a grouping factor, lme4's ``(x | g)``: the levels are
        clusters (counted in ``ngroups``, listed by ``ranef``, integrated over by the
        quadrature, given level codes in new data).
    SMOOTH
        The penalized part of a smooth ``s(...)`` in its mixed-model form (gamm4): one
        "level" holding all the penalized coefficients, part of the population-level curve;
        the smooth itself is the term's ``smooth``. Smooth terms come after the grouped ones
        (formula.design orders them so; the smooths' inference relies on it).
    """

    GROUPED = "grouped"
    SMOOTH = "smooth"


@dataclass
class ReTerm:
    """One random-effects term ``(expr | group)``.

    Attributes
    ----------
    group : str
        Name of the grouping factor as lme4 prints it (``"Subject"``, ``"cask:batch"``).
    levels : tuple of str
        Level labels (strings) in the order of the random-effects vector.
    refs : ndarray
        ``(n,)`` integer code of each observation's level.
    z : ndarray
        ``(n, p)`` model matrix of the term's left-hand side.
    cnames : tuple of str
        Names of the ``p`` columns (lme4 style: ``"(Intercept)"``, ``"Days"``).
    covariance : Covariance
        The structure mapping this term's ``theta`` to ``lambda``, a
        :class:`~glamm.terms.covariance.Covariance`.
    smooth : Smooth or None
        The smooth whose penalized part this term is (``None`` for grouped terms).
    expr, factors : str, tuple of str
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
    #: ``z`` the penalized columns, identity covariance; ``None`` for grouped terms
    smooth: Any = field(default=None, repr=False)
    #: what the term is; by default SMOOTH when ``smooth`` is given, else GROUPED
    role: TermRole | None = None

    def __post_init__(self) -> None:
        if self.role is None:
            self.role = TermRole.GROUPED if self.smooth is None else TermRole.SMOOTH
        if (self.role is TermRole.SMOOTH) != (self.smooth is not None):
            raise ValueError(f"term {self.group!r}: a {self.role.value} term "
                             + ("needs" if self.role is TermRole.SMOOTH else "has no")
                             + " smooth")

    # ------------------------------------------------------------------ role and capabilities
    @property
    def is_grouped(self) -> bool:
        """Random effects per level of a grouping factor: the levels are counted in
        ``ngroups`` (at least 2 needed), listed in ``ranef`` and ``condVar``, get level codes
        in new data, and a zero variance is a singular fit."""
        return self.role is TermRole.GROUPED

    @property
    def is_smooth(self) -> bool:
        """The penalized part of the smooth ``self.smooth``."""
        return self.role is TermRole.SMOOTH

    @property
    def supports_quadrature(self) -> bool:
        """Adaptive quadrature can integrate over it (cluster by cluster)."""
        return self.role is TermRole.GROUPED

    @property
    def population_level(self) -> bool:
        """Part of population-level predictions (``re=False``): a smooth belongs to the
        mean curve, not to a grouping effect."""
        return self.role is TermRole.SMOOTH

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
        return ("s",) if self.is_smooth else self.cnames

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return self.covariance.lambda_(theta)

    def new_z(self, newdata) -> np.ndarray:
        """The term's ``z`` columns for the rows of ``newdata``: a smooth's penalized columns,
        a column of ones for an intercept-only term, else formulaic's model spec."""
        if self.is_smooth:
            return self.smooth.split(self.smooth.design(newdata))[0]
        if self.zspec is None:
            return np.ones((len(newdata), 1))
        return np.asarray(self.zspec.get_model_matrix(newdata, na_action="ignore",
                                                      context=formula_context()), dtype=float)

    def level_index(self) -> dict[str, int]:
        return {lev: i for i, lev in enumerate(self.levels)}


def group_labels(reterms) -> list[str]:
    """R-style names for the terms' groups, as lme4 prints them: a group that appears again
    (``(1 | g) + (0 + x | g)``) gets ``.1``, ``.2`` suffixes."""
    seen: dict[str, int] = {}
    out = []
    for t in reterms:
        k = seen.get(t.group, 0)
        out.append(t.group if k == 0 else f"{t.group}.{k}")
        seen[t.group] = k + 1
    return out

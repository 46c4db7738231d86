"""nlme's residual correlation structures as maps from unconstrained parameters ``z`` to the
correlation blocks of the groups.

Each structure is set up on a :class:`~glamm.corstruct.groups.GroupLayout` and the
structure's covariate (times, positions or coordinates) and then gives, for each batch of
equally sized groups, the ``(k, m, m)`` correlation blocks at ``z``
(:meth:`CorrelationStructure.block`).
Definitions and natural parameters are nlme's (Pinheiro and Bates 2000, sec. 5.3):

==========  ==============  ======================================  =================
key         nlme            correlation of rows ``i != j``          parameters
==========  ==============  ======================================  =================
``ar1``     ``corAR1``      ``phi^|t_i - t_j|`` (integer lags)      ``Phi`` in (-1, 1)
``car1``    ``corCAR1``     ``phi^|t_i - t_j|`` (any times)         ``Phi`` in (0, 1)
``cs``      ``corCompSymm`` ``rho``                                 ``Rho``
``symm``    ``corSymm``     ``r[pos_i, pos_j]``, any correlation    ``cor(a,b)``
``exp``     ``corExp``      ``(1 - nugget) exp(-d / range)``        ``range``, ``nugget``
``gau``     ``corGaus``     ``(1 - nugget) exp(-(d / range)^2)``
``lin``     ``corLin``      ``(1 - nugget) (1 - d / range)_+``
``ratio``   ``corRatio``    ``(1 - nugget) / (1 + (d / range)^2)``
``spher``   ``corSpher``    ``(1 - nugget) (1 - 1.5 u + 0.5 u^3)_+``, ``u = d / range``
==========  ==============  ======================================  =================

``d`` is the distance of the rows' coordinates (euclidean, maximum or manhattan); without a
covariate (``1``) the position of the row within its group is the time or coordinate, as
nlme's ``~ 1``. The unconstrained scales: ``atanh`` (``ar1``), logit (``car1``, ``nugget``),
nlme's ``log((rho - a) / (1 - rho))`` with ``a = -1 / (max group size - 1)`` (``cs``), log
(``range``; ``log(range - min d)`` for ``lin`` and ``spher``, as nlme) and angles of the
Cholesky factor's columns (``symm``, Pinheiro and Bates 1996), so every ``z`` is a valid
correlation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy.special import expit

from ..errors import DataError
from .groups import GroupLayout
from .spec import CorrelationSpec


class CorrelationStructure(ABC):
    """One residual correlation structure set up on the model's groups.

    Attributes
    ----------
    spec : CorrelationSpec
        The parsed ``correlation=`` string.
    layout : GroupLayout
        The groups and their batches.
    """

    #: nlme's printed name ("Correlation Structure: ...")
    title: str = ""

    def __init__(self, spec: CorrelationSpec, layout: GroupLayout, covariate: np.ndarray | None):
        self.spec = spec
        self.layout = layout
        if layout.max_size < 2:
            where = f"every group of {'/'.join(spec.groups)}" if spec.groups else "the data"
            raise DataError(f"correlation {spec.text!r}: {where} has a single observation, so "
                            "there is no correlation to estimate; a group needs at least two "
                            "rows")
        self._pairs: list[np.ndarray] | None = None
        self.setup(covariate)
        self.shared = self._share()

    @abstractmethod
    def setup(self, covariate: np.ndarray | None) -> None:
        """Check the covariate and store what :meth:`block` needs per batch."""

    @property
    @abstractmethod
    def names(self) -> list[str]:
        """nlme's names of the natural parameters."""

    @property
    def n_par(self) -> int:
        return len(self.names)

    @abstractmethod
    def natural(self, z: np.ndarray) -> np.ndarray:
        """The parameters on nlme's (natural) scale at ``z``."""

    @abstractmethod
    def starts(self) -> list[np.ndarray]:
        """Candidate starting values of ``z`` (the fit starts from the best)."""

    @abstractmethod
    def block(self, z: np.ndarray, b: int) -> np.ndarray:
        """The ``(k, m, m)`` correlation blocks of batch ``b`` at ``z``, or ``(1, m, m)`` when
        every group of the batch has the same block (``shared[b]``)."""

    def _share(self) -> list[bool]:
        """Keep one copy of the per-group arrays (``_pairs``: lags, distances, positions) of
        a batch whose groups all have the same ones (balanced designs: every group observed
        at the same times), so its block is computed and factored once."""
        if self._pairs is None:
            return [True] * len(self.layout.batches)
        shared = []
        for b, P in enumerate(self._pairs):
            same = bool(np.all(P == P[:1]))
            if same:
                self._pairs[b] = np.ascontiguousarray(P[:1])
            shared.append(same)
        return shared

    def limits(self, z: np.ndarray) -> list[np.ndarray]:
        """Limits of ``z`` worth trying after the optimizer moved far towards them (none by
        default): where the correlation tends to independence or another valid structure
        that no finite ``z`` reaches, such as ``car1``'s ``Phi = 0`` (with lags near 0 the
        correlation stays large for any positive ``Phi``)."""
        return []

    def formula(self) -> str:
        """nlme's ``Formula: ~ ...`` of the structure."""
        cov = " + ".join(self.spec.covariates) or "1"
        return "~" + cov + (" | " + "/".join(self.spec.groups) if self.spec.groups else "")

    # helpers ---------------------------------------------------------------------------
    def _times(self, covariate: np.ndarray | None) -> list[np.ndarray]:
        """Per batch ``(k, m)`` times: the covariate, or positions 1..m without one."""
        out = []
        for rows in self.layout.batches:
            if covariate is None:
                out.append(np.broadcast_to(np.arange(1.0, rows.shape[1] + 1), rows.shape))
            else:
                out.append(covariate[rows, 0])
        return out

    def _group_of(self, rows: np.ndarray, bad: np.ndarray) -> str:
        """The label of the first group (row of ``rows``) flagged in ``bad``."""
        k = int(np.flatnonzero(bad)[0])
        return self.layout.labels[int(self.layout.codes[rows[k, 0]])]

    def _check_distinct(self, times: list[np.ndarray], hint: str) -> None:
        for rows, t in zip(self.layout.batches, times):
            if t.shape[1] < 2:
                continue
            s = np.sort(t, axis=1)
            dup = np.any(np.diff(s, axis=1) == 0, axis=1)
            if dup.any():
                raise DataError(f"correlation {self.spec.text!r}: {self.spec.covariates[0]!r} "
                                f"repeats a value within group {self._group_of(rows, dup)!r}; "
                                f"{hint}")


#: ``|z|`` beyond which a structure's limit is tried (``expit(-10)`` is 4.5e-5)
_FAR = 10.0


def _lags(t: np.ndarray) -> np.ndarray:
    return np.abs(t[:, :, None] - t[:, None, :])


class AR1(CorrelationStructure):
    """nlme's ``corAR1``: ``phi^|t_i - t_j|`` for times a whole number apart (consecutive
    times within a group make it the AR(1) of positions; gaps count as lags, as nlme's
    ``corARMA`` that ``corAR1`` turns into for them)."""

    title = "AR(1)"

    def setup(self, covariate: np.ndarray | None) -> None:
        times = self._times(covariate)
        self._check_distinct(times, "ar1 needs distinct times within a group")
        for rows, t in zip(self.layout.batches, times):
            gap = t - t[:, :1]   # the lags must be whole numbers (times need not be)
            frac = np.abs(gap - np.round(gap)) > 1e-8 * np.maximum(1.0, np.abs(gap))
            if frac.any():
                bad = frac.any(axis=1)
                raise DataError(
                    f"correlation {self.spec.text!r}: ar1 needs times a whole number apart, but "
                    f"{self.spec.covariates[0]!r} has non-integer lags in group "
                    f"{self._group_of(rows, bad)!r}; for unequally spaced or continuous times "
                    f"use car1({self.spec.covariates[0]} | ...) (nlme's corCAR1)")
        self._pairs = [_lags(t) for t in times]

    @property
    def names(self) -> list[str]:
        return ["Phi"]

    def natural(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z)

    def starts(self) -> list[np.ndarray]:
        return [np.zeros(1), np.array([np.arctanh(0.5)])]

    def block(self, z: np.ndarray, b: int) -> np.ndarray:
        assert self._pairs is not None
        return np.power(np.tanh(z[0]), self._pairs[b])


class CAR1(CorrelationStructure):
    """nlme's ``corCAR1``: ``phi^|t_i - t_j|`` with ``0 < phi < 1``, any real times."""

    title = "Continuous AR(1)"

    def setup(self, covariate: np.ndarray | None) -> None:
        times = self._times(covariate)
        self._check_distinct(times, "car1 needs distinct times within a group (a correlation "
                                    "of 1 between two rows)")
        self._pairs = [_lags(t) for t in times]

    @property
    def names(self) -> list[str]:
        return ["Phi"]

    def natural(self, z: np.ndarray) -> np.ndarray:
        return expit(z)

    def starts(self) -> list[np.ndarray]:
        return [np.array([np.log(0.2 / 0.8)]), np.zeros(1), np.array([np.log(0.8 / 0.2)])]

    def limits(self, z: np.ndarray) -> list[np.ndarray]:
        return [np.array([-np.inf])] if z[0] < -_FAR else []

    def block(self, z: np.ndarray, b: int) -> np.ndarray:
        assert self._pairs is not None
        return np.power(expit(z[0]), self._pairs[b])


class CompoundSymmetry(CorrelationStructure):
    """nlme's ``corCompSymm``: one correlation ``rho > -1 / (max group size - 1)``."""

    title = "Compound symmetry"

    def setup(self, covariate: np.ndarray | None) -> None:
        self._inf = -1.0 / (self.layout.max_size - 1)
        self._eye = [np.eye(rows.shape[1]) for rows in self.layout.batches]

    @property
    def names(self) -> list[str]:
        return ["Rho"]

    def natural(self, z: np.ndarray) -> np.ndarray:
        e = np.exp(np.minimum(z, 700.0))
        return (self._inf + e) / (1.0 + e)

    def starts(self) -> list[np.ndarray]:
        base = -np.log(self.layout.max_size - 1.0)    # rho = 0
        return [np.array([base]), np.array([np.log((0.5 - self._inf) / 0.5)])]

    def block(self, z: np.ndarray, b: int) -> np.ndarray:
        rho = self.natural(z)[0]
        return (rho + (1.0 - rho) * self._eye[b])[None]


class General(CorrelationStructure):
    """nlme's ``corSymm``: a free correlation between every pair of positions. Positions are
    the rows' order within the group (``1``) or the distinct values of the covariate, sorted
    (nlme needs them to be ``1, ..., K``; any distinct values index the same way here)."""

    title = "General"

    def setup(self, covariate: np.ndarray | None) -> None:
        if covariate is None:
            pos = [np.broadcast_to(np.arange(rows.shape[1]), rows.shape)
                   for rows in self.layout.batches]
        else:
            values, codes = np.unique(covariate[:, 0], return_inverse=True)
            codes = codes.ravel()
            pos = [codes[rows] for rows in self.layout.batches]
            self._check_distinct([covariate[rows, 0] for rows in self.layout.batches],
                                 "symm needs distinct positions within a group")
        self._pairs = list(pos)
        self.K = int(max(int(p.max()) for p in pos)) + 1
        if self.K < 2:
            raise DataError(f"correlation {self.spec.text!r}: symm needs at least two positions")
        self._tril = np.tril_indices(self.K, -1)

    @property
    def names(self) -> list[str]:
        # nlme's order: the lower triangle by columns, i.e. (1,2), (1,3), ..., (2,3), ...
        pairs = sorted(zip(self._tril[1].tolist(), self._tril[0].tolist()))
        return [f"cor({a + 1},{b + 1})" for a, b in pairs]

    def matrix(self, z: np.ndarray) -> np.ndarray:
        """The ``K x K`` correlation matrix ``U'U``: column ``i`` of the upper-triangular
        ``U`` is a unit vector given by ``i`` angles in ``(0, pi)`` (``pi * expit(z)``)."""
        K = self.K
        U = np.zeros((K, K))
        U[0, 0] = 1.0
        ang = np.pi * expit(z)
        at = 0
        for i in range(1, K):
            a = ang[at:at + i]
            at += i
            sines = np.concatenate([[1.0], np.cumprod(np.sin(a))])
            U[:i, i] = np.cos(a) * sines[:i]
            U[i, i] = sines[i]
        return U.T @ U

    def natural(self, z: np.ndarray) -> np.ndarray:
        R = self.matrix(z)
        pairs = sorted(zip(self._tril[1].tolist(), self._tril[0].tolist()))
        return np.array([R[a, b] for a, b in pairs])

    def starts(self) -> list[np.ndarray]:
        return [np.zeros(self.K * (self.K - 1) // 2)]

    def block(self, z: np.ndarray, b: int) -> np.ndarray:
        assert self._pairs is not None
        R = self.matrix(z)
        p = self._pairs[b]
        return R[p[:, :, None], p[:, None, :]]


_CDIST = {"euclidean": "euclidean", "maximum": "chebyshev", "manhattan": "cityblock"}


def _distances(coords: np.ndarray, metric: str) -> np.ndarray:
    """``(k, m, m)`` distances of ``(k, m, d)`` coordinates (large groups one at a time by
    SciPy, without the ``(k, m, m, d)`` differences)."""
    k, m, d = coords.shape
    if k * m * m * d > 4_000_000:
        from scipy.spatial.distance import cdist

        return np.stack([cdist(c, c, metric=_CDIST[metric]) for c in coords])
    diff = np.abs(coords[:, :, None, :] - coords[:, None, :, :])
    if metric == "maximum":
        return diff.max(axis=-1)
    if metric == "manhattan":
        return diff.sum(axis=-1)
    return np.sqrt(np.einsum("kijd,kijd->kij", diff, diff))


def _exp(u: np.ndarray) -> np.ndarray:
    return np.exp(-u)


def _gau(u: np.ndarray) -> np.ndarray:
    return np.exp(-u * u)


def _lin(u: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - u, 0.0)


def _ratio(u: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + u * u)


def _spher(u: np.ndarray) -> np.ndarray:
    return np.where(u < 1.0, 1.0 - 1.5 * u + 0.5 * u ** 3, 0.0)


class Spatial(CorrelationStructure):
    """nlme's ``corSpatial`` family (``corExp``, ``corGaus``, ``corLin``, ``corRatio``,
    ``corSpher``) on the distances of the rows' coordinates, optionally with a nugget."""

    _KINDS = {"exp": (_exp, "Exponential"), "gau": (_gau, "Gaussian"),
              "lin": (_lin, "Linear"), "ratio": (_ratio, "Rational quadratic"),
              "spher": (_spher, "Spherical")}

    def setup(self, covariate: np.ndarray | None) -> None:
        fn, label = self._KINDS[self.spec.name]
        self._fn = fn
        self.title = f"{label} spatial correlation"
        dist = []
        for rows in self.layout.batches:
            if covariate is None:
                coords = np.broadcast_to(np.arange(1.0, rows.shape[1] + 1),
                                         rows.shape)[:, :, None]
            else:
                coords = covariate[rows]
            dist.append(_distances(coords, self.spec.metric))
        self._pairs = dist
        off = np.concatenate([d[:, ~np.eye(d.shape[1], dtype=bool)].ravel() for d in dist])
        if np.any(off == 0) and not self.spec.nugget:
            raise DataError(f"correlation {self.spec.text!r}: two rows of a group have the same "
                            "coordinates (distance 0, correlation 1); add nugget=True or "
                            "remove the duplicates")
        positive = off[off > 0]
        if positive.size == 0:
            raise DataError(f"correlation {self.spec.text!r}: all distances are 0")
        self.min_d = float(positive.min())
        self._offset = self.min_d if self.spec.name in ("lin", "spher") else 0.0
        # starting ranges: a geometric grid from short distances to twice the largest (the
        # profiled likelihood of a range can have several maxima, and lin is not positive
        # definite in two dimensions for every range)
        lo = max(float(np.quantile(positive, 0.05)), 1.05 * self._offset)
        hi = max(2.0 * float(positive.max()), 1.1 * lo)
        self._grid = np.geomspace(lo, hi, 8)
        self._eye = [np.eye(d.shape[1], dtype=bool) for d in dist]

    @property
    def names(self) -> list[str]:
        return ["range", "nugget"] if self.spec.nugget else ["range"]

    def natural(self, z: np.ndarray) -> np.ndarray:
        out = [self._offset + np.exp(z[0])]
        if self.spec.nugget:
            out.append(expit(z[1]))
        return np.array(out)

    def limits(self, z: np.ndarray) -> list[np.ndarray]:
        out = []
        if z[0] < -_FAR:   # range 0: independence
            out.append(np.concatenate([[-np.inf], z[1:]]))
        if self.spec.nugget:
            if z[0] > _FAR:   # infinite range: compound symmetry
                out.append(np.array([np.inf, z[1]]))
            if abs(z[1]) > _FAR:   # nugget 0 or 1
                out.append(np.array([z[0], np.copysign(np.inf, z[1])]))
        return out

    def starts(self) -> list[np.ndarray]:
        out = []
        for r in self._grid:
            z = [np.log(r - self._offset)]
            out.append(np.array(z + ([np.log(0.1 / 0.9)] if self.spec.nugget else [])))
        return out

    def block(self, z: np.ndarray, b: int) -> np.ndarray:
        assert self._pairs is not None
        par = self.natural(z)
        R = self._fn(self._pairs[b] / par[0])
        if self.spec.nugget:
            R = R * (1.0 - par[1])
        return np.where(self._eye[b], 1.0, R)


_CLASSES: dict[str, type[CorrelationStructure]] = {
    "ar1": AR1, "car1": CAR1, "cs": CompoundSymmetry, "symm": General,
    "exp": Spatial, "gau": Spatial, "lin": Spatial, "ratio": Spatial, "spher": Spatial}


def make_structure(spec: CorrelationSpec, layout: GroupLayout,
                   covariate: np.ndarray | None) -> CorrelationStructure:
    """The structure ``spec`` set up on ``layout`` and its covariate (``(n, d)`` or ``None``).

    Parameters
    ----------
    spec : CorrelationSpec
        The parsed ``correlation=`` string.
    layout : GroupLayout
        The model's groups.
    covariate : ndarray or None
        The covariate columns on the model's rows.

    Returns
    -------
    CorrelationStructure
        The structure, ready for :meth:`CorrelationStructure.block`.

    Raises
    ------
    DataError
        Groups too small, repeated times or (ar1) non-integer lags, coincident locations.
    """
    return _CLASSES[spec.name](spec, layout, covariate)

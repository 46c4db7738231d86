"""Tensor-product smooths ``t2(x, z, ...)`` in the mixed-model form (mgcv's
``smooth.construct.t2.smooth.spec`` with ``full = FALSE``, as gamm4 fits them):

1. each margin is a one-covariate basis (default ``bs = "cr"``, ``k = 5``) reparametrized
   into its penalty's range and null space (mgcv's ``nat.param`` of type 3): the range
   columns scaled so that the margin's penalty is the identity there, the null-space columns
   scaled to the range columns' average size, rotated to centred-orthogonal order, and both
   parts scaled to a unit mean square;
2. the row-wise tensor products of the margins' pieces form ``2^d`` groups of columns (for
   two margins ``rr``, ``nr``, ``rn``, ``nn``; ``r`` a margin's range, ``n`` its null space);
   every group but the one of null spaces only has its own identity penalty, hence its own
   random-effect term with covariance ``theta^2 I``;
3. the null-space group is unpenalized: the sum-to-zero constraint (on those columns only) is
   absorbed by the orthogonal complement of their column sums, and the rest are fixed
   effects; the penalized columns are divided by ``sqrt(maXX)``, ``maXX`` the squared largest
   absolute row sum of the tensor-product matrix (mgcv's ``scale.penalty`` followed by
   ``smooth2random``).

One ``t2`` term gives one :class:`T2Part` per penalized group (a
:class:`~glamm.smooths.construct.Smooth` whose coefficients are its own columns); the first
part also carries the unpenalized columns, so the mixed-model assembly treats the parts as
ordinary smooths.

Not public API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg

from ..errors import DataError
from .basis import SmoothBasis
from .construct import Smooth, covariates, make_basis
from .spec import SmoothSpec


def nat_param(X: np.ndarray, S: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """A margin's natural parametrization (mgcv's ``nat.param(type = 3, unit.fnorm = TRUE)``):
    ``(X P, P)`` with the first ``rank`` columns spanning the penalty's range (penalty the
    identity there) and the rest its null space.

    Parameters
    ----------
    X : ndarray
        ``(n, k)`` margin basis at the data.
    S : ndarray
        ``(k, k)`` its penalty.
    rank : int
        the penalty's rank.

    Returns
    -------
    tuple of ndarray
        the reparametrized basis ``(n, k)`` and the ``(k, k)`` map ``P`` from the new
        coefficients to the basis's own.
    """
    # LAPACK's dsyevr, as R's eigen(): the penalty's null space is a repeated (zero)
    # eigenvalue whose basis the construction depends on (its column scalings and the rotation
    # below are not invariant to it), so the same routine gives the same smooth as mgcv
    evals, evecs = scipy.linalg.eigh(0.5 * (S + S.T), driver="evr")
    evals, evecs = evals[::-1], evecs[:, ::-1]
    k = X.shape[1]
    E = np.ones(k)
    E[:rank] = np.sqrt(evals[:rank])
    XV = X @ evecs
    col_norm = np.sum(XV ** 2, axis=0) / E ** 2
    if rank < k:
        E[rank:] = np.sqrt(col_norm[rank:] / np.mean(col_norm[:rank]))
    P = evecs / E[None, :]
    Xp = XV / E[None, :]
    if k - rank > 1:
        Xn = Xp[:, rank:] - Xp[:, rank:].mean(axis=0)[None, :]
        _, um = scipy.linalg.eigh(Xn.T @ Xn, driver="evr")
        um = um[:, ::-1]   # descending, as R's eigen; the largest goes last
        Xp[:, rank:] = (Xp[:, rank:] @ um)[:, ::-1]
        P[:, rank:] = (P[:, rank:] @ um)[:, ::-1]
    # unit mean square per part; P's columns are scaled with X's (mgcv 1.8-41 scales P's rows,
    # so its PredictMat at the data differs from the matrix it fits; predictions here
    # reproduce the fit)
    for sl in (slice(0, rank), slice(rank, k)):
        if sl.stop > sl.start:
            scale = 1.0 / np.sqrt(np.mean(Xp[:, sl] ** 2))
            Xp[:, sl] *= scale
            P[:, sl] *= scale
    return Xp, P


def t2_model_matrix(Xm: list[np.ndarray], ranks: list[int]) -> tuple[list[np.ndarray], list[str]]:
    """The groups of row-wise tensor products of the margins' range (``r``) and null-space
    (``n``) pieces, in mgcv's order (``t2.model.matrix`` with ``full = FALSE``): for each new
    margin, every existing group times its range, then every existing group times its null
    space. Within a group, column ``j * p + l`` is column ``j`` of the existing group times
    column ``l`` of the new piece.

    Returns
    -------
    tuple
        the groups' matrices and labels (``"rr"``, ``"nr"``, ...); a group of null spaces
        only, if any, is last.
    """
    def pieces(X: np.ndarray, r: int) -> list[tuple[np.ndarray, str]]:
        out = [(X[:, :r], "r")]
        if r < X.shape[1]:
            out.append((X[:, r:], "n"))
        return out

    groups = pieces(Xm[0], ranks[0])
    for X, r in zip(Xm[1:], ranks[1:]):
        new = []
        for piece, tag in pieces(X, r):
            for G, lab in groups:
                prod = (G[:, :, None] * piece[:, None, :]).reshape(G.shape[0], -1)
                new.append((prod, lab + tag))
        groups = new
    return [g for g, _ in groups], [lab for _, lab in groups]


@dataclass
class T2Basis:
    """The shared construction of one ``t2`` term: the margins, their reparametrizations,
    the constraint on the null-space group and the penalty scaling.

    Attributes
    ----------
    spec : SmoothSpec
        The term as written.
    margins : list of SmoothBasis
        the margins' unconstrained bases.
    P : list of ndarray
        their reparametrizations (:func:`nat_param`).
    labels : list of str
        the penalized groups' labels (mgcv's ``rr``, ``nr``, ...).
    null_dim : int
        columns of the null-space group before the constraint.
    Zc : ndarray
        ``(null_dim, n_fixed)`` the constraint's absorption on the null-space group.
    ma_xx : float
        mgcv's penalty scaling (the penalized columns are divided by ``sqrt(ma_xx)``).
    """

    spec: SmoothSpec
    margins: list[SmoothBasis]
    P: list[np.ndarray] = field(repr=False)
    labels: list[str]
    null_dim: int
    Zc: np.ndarray = field(repr=False)
    ma_xx: float

    def groups(self, data: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
        """(the penalized groups' random-effect columns, the fixed-effect columns) at
        ``data``'s rows; rows with a missing covariate are NaN."""
        x = covariates(self.spec, data, allow_missing=True)
        ok = np.all(np.isfinite(x), axis=1)
        Xm = []
        for j, (basis, P) in enumerate(zip(self.margins, self.P)):
            B = np.full((len(data), basis.k), np.nan)
            if ok.any():
                B[ok] = basis.predict_matrix(x[ok, j])
            Xm.append(B @ P)
        return self._split(Xm)

    def _split(self, Xm: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        ranks = [b.rank for b in self.margins]
        mats, labs = t2_model_matrix(Xm, ranks)
        n_pen = len(self.labels)
        Xf = mats[n_pen] @ self.Zc if self.null_dim else np.zeros((mats[0].shape[0], 0))
        return [m / np.sqrt(self.ma_xx) for m in mats[:n_pen]], Xf


@dataclass
class T2Part(Smooth):
    """One penalized group of a ``t2`` term as a smooth of its own: its coefficients are its
    (already reparametrized) columns, so ``U``, ``D`` and ``Z`` are identities; the first
    part (``group == 0``) also holds the term's unpenalized columns."""

    t2: T2Basis | None = field(repr=False, default=None)
    group: int = 0

    def _groups(self, data: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
        if self.t2 is None:   # pragma: no cover - construct_t2 always sets it
            raise AssertionError("a t2 part needs its T2Basis")
        return self.t2.groups(data)

    @property
    def fixed_names(self) -> list[str]:
        """The term's unpenalized columns, named after the term (``t2(x,z)Fx1``)."""
        return [f"{self.spec.label}Fx{i + 1}" for i in range(self.n_fixed)]

    @property
    def term_label(self) -> str:
        """The term's label (``t2(x,z)``, ``t2(x,z):f`` on the latent scale of ``f``)."""
        return self.spec.label

    def term_design(self, data: pd.DataFrame) -> np.ndarray:
        """All parts' columns (each part's random-effect columns, the fixed columns after the
        first part's), the order of the term's coefficients in smooth tables."""
        Xr, Xf = self._groups(data)
        return np.hstack([Xr[0], Xf] + Xr[1:])

    def design(self, data: pd.DataFrame) -> np.ndarray:
        """The part's columns at ``data``'s rows: its random-effect columns, then (first
        part) the term's fixed-effect columns."""
        Xr, Xf = self._groups(data)
        return np.hstack([Xr[self.group], Xf]) if self.group == 0 else Xr[self.group]


def construct_t2(spec: SmoothSpec, data: pd.DataFrame) -> list[Smooth]:
    """The parts of a ``t2(...)`` term on the model's rows (module docstring)."""
    x = covariates(spec, data)
    margins = []
    for j, (name, (k, bs, m)) in enumerate(zip(spec.terms, spec.margins)):
        mspec = SmoothSpec(terms=(name,), k=k, bs=bs, m=m, text=spec.text)
        n_unique = len(np.unique(x[:, j]))
        if k > n_unique and bs != "ps":
            raise DataError(f"smooth term {spec.text!r} needs k = {k} basis functions "
                            f"for {name} but it has only {n_unique} distinct values; use a "
                            "smaller k")
        try:
            basis = make_basis(mspec, x[:, j])
        except ValueError as exc:
            raise DataError(f"smooth term {spec.text!r}, margin {name}: {exc}") from None
        if len(basis.S) != 1:
            raise DataError(f"smooth term {spec.text!r}: the margin bs={bs!r} has "
                            f"{len(basis.S)} penalties; t2() needs one per margin")
        margins.append(basis)
    Xm, P = [], []
    for basis in margins:
        Xp, Pj = nat_param(basis.X, basis.S[0], basis.rank)
        Xm.append(Xp)
        P.append(Pj)
    mats, labs = t2_model_matrix(Xm, [b.rank for b in margins])
    X = np.hstack(mats)
    ma_xx = float(np.max(np.sum(np.abs(X), axis=1))) ** 2
    has_null = all(b.rank < b.k for b in margins)
    n_pen = len(mats) - 1 if has_null else len(mats)
    null_dim = mats[-1].shape[1] if has_null else 0
    if null_dim > 1:   # sum to zero over the null-space columns only (mgcv's C for t2)
        Q, _ = np.linalg.qr(mats[-1].sum(axis=0)[:, None], mode="complete")
        Zc = Q[:, 1:]
    else:              # one null column is dropped (mgcv: C = ncol(X)); none: no constraint
        Zc = np.zeros((null_dim, 0))
    t2 = T2Basis(spec=spec, margins=margins, P=P, labels=labs[:n_pen], null_dim=null_dim,
                 Zc=Zc, ma_xx=ma_xx)
    Xr, Xf = t2._split(Xm)
    factor = spec.factor if isinstance(spec.factor, str) else None
    parts: list[Smooth] = []
    for g, (Z_g, lab) in enumerate(zip(Xr, t2.labels)):
        r = Z_g.shape[1]
        nf = Xf.shape[1] if g == 0 else 0
        part = T2Part(spec=spec, label=spec.with_factor(f"{spec.base_label}.{lab}"),
                      basis=margins[0], by_level=None, Z=np.eye(r + nf),
                      S=np.diag(np.r_[np.ones(r), np.zeros(nf)]), S_scale=1.0 / ma_xx,
                      U=np.eye(r + nf), D=np.ones(r + nf), rank=r, factor=factor,
                      t2=t2, group=g)
        part.X = np.hstack([Z_g, Xf]) if g == 0 else Z_g
        parts.append(part)
    return parts

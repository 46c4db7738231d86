"""From an ``s(...)`` term and the data to the mixed-model pieces of a smooth (what mgcv's
``smoothCon`` and ``smooth2random`` do for gamm4):

1. the basis ``X`` (``n x k``) and penalty ``S`` of the basis type (glamm.smooths.tprs,
   glamm.smooths.splines);
2. the penalty rescaled as mgcv's ``scale.penalty`` (``S / (|S|_1 / |X|_inf^2)``), so the
   smoothing parameters are on mgcv's scale;
3. a ``by`` variable: a factor gives one copy of the smooth per level (``X`` times the level's
   indicator); a numeric one multiplies ``X`` (varying coefficient);
4. the sum-to-zero identifiability constraint ``1'X beta = 0`` absorbed by the orthogonal
   complement ``Z`` of ``colMeans(X)`` (a QR decomposition, as mgcv; not applied for a
   non-constant numeric ``by``), so the constrained basis is ``X Z`` with penalty ``Z'SZ``;
5. the mixed-model split: with ``Z'SZ = U diag(d) U'``, the penalized directions become a
   random effect with identity covariance, columns ``X Z U_+ diag(d_+)^{-1/2}``, and the
   penalty's null space becomes fixed-effect columns ``X Z U_0``. A coefficient vector
   ``[b; beta_0]`` of the mixed model maps back to the constrained basis as
   ``U diag(D) [b; beta_0]`` (``D = d_+^{-1/2}`` and ones).

Not public API.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from .basis import SmoothBasis
from .spec import SmoothSpec


@dataclass
class Smooth:
    """One smooth (one level of a factor ``by``) ready for the mixed model.

    Attributes
    ----------
    spec : SmoothSpec
        The term as written.
    label : str
        mgcv's label (``s(x)``, ``s(x):fA`` for a by level).
    basis : SmoothBasis
        the unconstrained basis (built once, shared by the levels of a factor ``by``).
    by_level : str or None
        the level of a factor ``by`` (``None`` otherwise).
    Z : ndarray
        ``(k, k')`` constraint absorption (identity without a constraint).
    S : ndarray
        the constrained, rescaled penalty ``(k', k')``.
    S_scale : float
        the rescaling divisor of ``S``.
    U, D : ndarray
        eigenvectors of ``S`` (penalized first) and the column scalings.
    rank : int
        number of penalized (random-effect) directions; 0 for ``fx=True``.
    """

    spec: SmoothSpec
    label: str
    basis: SmoothBasis
    by_level: str | None
    Z: np.ndarray
    S: np.ndarray
    S_scale: float
    U: np.ndarray
    D: np.ndarray
    rank: int
    #: the constrained model matrix at the data's rows (set by :func:`construct_smooth`)
    X: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    #: (min, max) of a one-covariate smooth's covariate in the data (for default grids)
    data_range: tuple | None = None
    #: the covariate at the model's rows (one-covariate smooths; for plots)
    x_data: np.ndarray | None = field(repr=False, default=None)
    #: the latent variable this smooth is on (galamm's ``sl()``), else ``None``
    factor: str | None = None

    @property
    def n_coef(self) -> int:
        """Number of coefficients of the constrained basis."""
        return self.Z.shape[1]

    @property
    def n_fixed(self) -> int:
        """Number of unpenalized (fixed-effect) columns."""
        return self.n_coef - self.rank

    @property
    def fixed_names(self) -> list[str]:
        """Names of the fixed-effect columns (galamm's ``s(x)Fx1``)."""
        return [f"{self.label}Fx{i + 1}" for i in range(self.n_fixed)]

    @property
    def term_label(self) -> str:
        """The label of the whole term in smooth tables (a ``t2`` term's parts share it)."""
        return self.label

    def term_design(self, data: pd.DataFrame) -> np.ndarray:
        """The whole term's columns at ``data``'s rows, in the order of its coefficients."""
        return self.design(data)

    @property
    def coef_names(self) -> list[str]:
        """mgcv's names of the constrained basis coefficients (``s(x).1``, ...)."""
        return [f"{self.label}.{i + 1}" for i in range(self.n_coef)]

    # --------------------------------------------------------------------- design
    def design(self, data: pd.DataFrame) -> np.ndarray:
        """The constrained basis ``X Z`` (times the ``by`` variable) at ``data``'s rows; rows
        with a missing covariate are NaN (their predictions are missing, as R's NA)."""
        x = covariates(self.spec, data, allow_missing=True)
        ok = np.isfinite(x) if x.ndim == 1 else np.all(np.isfinite(x), axis=1)
        if ok.all():
            B = self.basis.predict_matrix(x)
        else:
            B = np.full((len(data), self.basis.k), np.nan)
            if ok.any():
                B[ok] = self.basis.predict_matrix(x[ok])
        return self._by_multiply(B, data) @ self.Z

    def _by_multiply(self, B: np.ndarray, data: pd.DataFrame) -> np.ndarray:
        by = self.spec.by
        if by is None:
            return B
        col = data[by]
        if self.by_level is not None:
            return B * (col.astype(str).to_numpy() == self.by_level)[:, None]
        return B * col.to_numpy(dtype=float)[:, None]

    def split(self, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(random-effect columns, fixed-effect columns) of a constrained design ``Xc``."""
        XU = (Xc @ self.U) * self.D[None, :]
        return XU[:, :self.rank], XU[:, self.rank:]

    def to_basis_coef(self, b: np.ndarray, beta0: np.ndarray) -> np.ndarray:
        """Coefficients of the constrained basis from the random (``b``) and fixed
        (``beta0``) parts of the mixed model."""
        return self.U @ (self.D * np.concatenate([b, beta0]))

    @property
    def transform(self) -> np.ndarray:
        """``T`` with ``coef = T [b; beta0]`` (``U diag(D)``)."""
        return self.U * self.D[None, :]


def covariates(spec: SmoothSpec, data: pd.DataFrame, allow_missing: bool = False) -> np.ndarray:
    """The smooth's covariates as an ``(n,)`` or ``(n, d)`` float array; errors name the
    column (``allow_missing``: NaN passes through, for prediction)."""
    cols = []
    for name in spec.terms:
        if name not in data.columns:
            raise FormulaError(f"smooth term {spec.text!r}: unknown column {name!r}; the data "
                               f"has columns {', '.join(map(str, data.columns))}")
        col = data[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise DataError(f"smooth term {spec.text!r}: column {name!r} must be numeric "
                            f"(it is {col.dtype}); for a factor use a random effect (1 | {name})")
        cols.append(col.to_numpy(dtype=float))
    x = np.column_stack(cols)
    if not allow_missing and not np.all(np.isfinite(x)):
        raise DataError(f"smooth term {spec.text!r}: the covariates have NaN or infinite values")
    return x[:, 0] if x.shape[1] == 1 else x


def make_basis(spec: SmoothSpec, x: np.ndarray) -> SmoothBasis:
    """The unconstrained basis of ``spec``'s type at ``x``."""
    if spec.bs in ("tp", "ts"):
        from .tprs import ThinPlateBasis

        return ThinPlateBasis(x, k=spec.k, m=spec.m, shrink=0.1 if spec.bs == "ts" else None)
    from . import splines

    k = spec.k   # negative: the basis type's own default (mgcv's)
    if spec.bs == "cr":
        return splines.CubicRegressionBasis(x, k=k)
    if spec.bs == "cs":
        return splines.ShrinkageCubicBasis(x, k=k)
    if spec.bs == "ps":
        return splines.PSplineBasis(x, k=k) if spec.m is None else \
            splines.PSplineBasis(x, k=k, m=(spec.m, spec.m))
    raise FormulaError(f"unknown basis {spec.bs!r}")   # pragma: no cover (spec checks)


def construct(spec: SmoothSpec, data: pd.DataFrame) -> list[Smooth]:
    """The smooth(s) of one ``s(...)`` term on the model's rows (one per level of a factor
    ``by``, as mgcv)."""
    latent = (spec.factor,) if isinstance(spec.factor, str) else (spec.factor or ())
    for f in latent:
        if f not in data.columns:
            raise FormulaError(
                f"smooth term {spec.text!r} is on the latent scale of factor {f!r} "
                "(galamm's sl(..., factor=)), which only glamm.galamm(..., factor=...) defines")
    if spec.kind == "t2":
        from .t2 import construct_t2

        return construct_t2(spec, data)
    x = covariates(spec, data)
    n_unique = len(np.unique(x, axis=0))
    # mgcv's default sizes: 10 for cr/cs/ps and a 1-D tp; M + 27 / M + 100 for 2-D / 3-D tp
    d = 1 if x.ndim == 1 else x.shape[1]
    k_eff = spec.k if spec.k > 0 else (10 if d == 1 else (30 if d == 2 else 104))
    if k_eff > n_unique and spec.bs != "ps":
        what = spec.terms[0] if d == 1 else ", ".join(spec.terms)
        raise DataError(f"smooth term {spec.text!r} needs k = {k_eff} basis functions but "
                        f"{what} has only {n_unique} distinct values; use a smaller k, e.g. "
                        f"s(..., k={n_unique})")
    try:
        basis = make_basis(spec, x)
    except ValueError as exc:   # the basis's own checks (e.g. k against distinct values)
        raise DataError(f"smooth term {spec.text!r}: {exc}") from None
    X = basis.X
    S = basis.S[0] if basis.S else np.zeros((basis.k, basis.k))
    S_scale = 1.0
    if not spec.fx:
        ma_xx = float(np.max(np.sum(np.abs(X), axis=1))) ** 2
        S_scale = float(np.max(np.sum(np.abs(S), axis=0))) / ma_xx
        S = S / S_scale
    # the constraint, from the basis before any by variable (as mgcv)
    constrain = True
    levels: list[str | None] = [None]
    if spec.by is not None:
        if spec.by not in data.columns:
            raise FormulaError(f"smooth term {spec.text!r}: unknown by column {spec.by!r}")
        col = data[spec.by]
        if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(col) \
                or pd.api.types.is_string_dtype(col) or pd.api.types.is_bool_dtype(col):
            if isinstance(col.dtype, pd.CategoricalDtype):
                levels = [str(v) for v in col.cat.categories]
                if col.cat.ordered and len(levels) > 1:
                    levels = levels[1:]   # mgcv: no smooth for an ordered factor's first level
            else:
                levels = list(sorted(str(v) for v in col.unique()))
            if len(levels) > 50:
                warnings.warn(
                    f"smooth term {spec.text!r} builds one smooth per level of {spec.by!r}: "
                    f"{len(levels)} smooths; a factor-smooth interaction with many levels is "
                    f"large and slow (is {spec.by!r} meant to be a factor?)", stacklevel=4)
        else:
            v = col.to_numpy(dtype=float)
            constrain = not (np.std(v) > abs(np.mean(v)) * np.finfo(float).eps * 1000)
    k = basis.k
    if constrain:
        C = X.mean(axis=0)[:, None]
        Q, _ = np.linalg.qr(C, mode="complete")
        Zc = Q[:, 1:]
    else:
        Zc = np.eye(k)
    Sc = Zc.T @ S @ Zc
    Sc = 0.5 * (Sc + Sc.T)
    if spec.fx:
        rank = 0
        U = np.eye(Zc.shape[1])
        D = np.ones(Zc.shape[1])
    else:
        null_dim = max(0, basis.null_space_dim - (1 if constrain else 0))
        rank = Zc.shape[1] - null_dim
        evals, evecs = np.linalg.eigh(Sc)
        order = np.argsort(evals)[::-1]
        evals, U = evals[order], evecs[:, order]
        D = np.concatenate([1.0 / np.sqrt(evals[:rank]), np.ones(Zc.shape[1] - rank)])
    factors = _level_factors(spec, levels)
    out = []
    for lev, fac in zip(levels, factors):
        label = spec.label if lev is None else \
            spec.with_factor(f"s({','.join(spec.terms)}):{spec.by}{lev}", fac)
        sm = Smooth(spec=spec, label=label, basis=basis, by_level=lev, Z=Zc, S=Sc,
                    S_scale=S_scale, U=U, D=D, rank=rank,
                    data_range=(float(x.min()), float(x.max())) if x.ndim == 1 else None,
                    x_data=x if x.ndim == 1 else None, factor=fac)
        sm.X = sm._by_multiply(X, data) @ Zc
        out.append(sm)
    return out


def _level_factors(spec: SmoothSpec, levels: list) -> list[str | None]:
    """The latent variable of each level's smooth: the spec's one for all, or (a tuple) one
    per level of the factor ``by``, in the order of its levels."""
    if not isinstance(spec.factor, tuple):
        return [spec.factor] * len(levels)
    if levels == [None] or len(spec.factor) != len(levels):
        what = (f"by={spec.by!r} has {len(levels)} levels ({', '.join(map(str, levels))})"
                if levels != [None] else "there is no factor by=")
        raise FormulaError(f"smooth term {spec.text!r} names {len(spec.factor)} latent "
                           f"factors, one per level of a factor by=, but {what}")
    return list(spec.factor)

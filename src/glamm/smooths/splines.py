"""mgcv's one-dimensional spline bases: cubic regression splines (``bs = "cr"``), their
shrinkage version (``bs = "cs"``) and P-splines (``bs = "ps"``).

Each class reproduces what mgcv's ``smooth.construct`` returns for the basis (before
``smoothCon``'s identifiability constraints and penalty rescaling) and what its
``Predict.matrix`` method returns at new covariate values.

Constructions (mgcv 1.8-41; Wood 2017, *Generalized Additive Models*, 2nd ed., 5.3.1 and 5.3.3)
------------------------------------------------------------------------------------------
cr  ``k`` knots ``x_1 < ... < x_k``: unless supplied, the type-7 quantiles of the sorted unique
    covariate values at probabilities ``0, 1/(k-1), ..., 1`` (mgcv's ``quantile(unique(x),
    seq(0, 1, length = k))``, which is the rule of ``place.knots``). The coefficients are
    the values of a natural cubic spline at the knots. With spacings ``h_j = x_{j+1} - x_j``,
    the second derivatives at the knots are ``delta = F beta`` with ``F = [0; B^{-1} D; 0]``,
    where ``D`` is ``(k-2) x k`` with rows ``(1/h_j, -1/h_j - 1/h_{j+1}, 1/h_{j+1})`` and ``B``
    is the symmetric tridiagonal ``(k-2) x (k-2)`` matrix with diagonal ``(h_j + h_{j+1})/3``
    and off-diagonal ``h_{j+1}/6`` (zero second derivatives at the end knots make the spline
    natural). On ``[x_j, x_{j+1}]`` with ``a- = x_{j+1} - x``, ``a+ = x - x_j``:
    ``f(x) = a-/h beta_j + a+/h beta_{j+1} + c- delta_j + c+ delta_{j+1}``,
    ``c-+ = (a-+^3/h - h a-+)/6``. Outside ``[x_1, x_k]`` the spline continues linearly with
    the value and slope it has at the end knot (what mgcv's C routine ``crspl`` does). The
    penalty, the integrated squared second derivative, is ``S = D' B^{-1} D``; its null space
    is the linear functions (``null_space_dim`` 2, rank ``k - 2``).
cs  As cr, then the penalty's two zero eigenvalues are replaced: with the eigenvalues sorted
    decreasingly, ``lambda_{k-1} = 0.1 lambda_{k-2}`` and ``lambda_k = 0.1 lambda_{k-1}``
    (mgcv's shrink factor 0.1), so every function is penalized (``null_space_dim`` 0,
    rank ``k``). The null space of the cr penalty is two-dimensional, so the two eigenvectors
    that receive these eigenvalues are not determined by the cr penalty: mgcv takes whatever
    LAPACK returns, i.e. a rotation set by rounding error (perturbing the cr penalty by
    1e-15 relative moves mgcv's cs penalty by ~5e-5 relative). glamm fixes the rotation: the
    orthonormal basis of the null space obtained from (constant, linear function of the
    knots) by Gram-Schmidt, the larger of the two new eigenvalues going to the constant
    direction. The spectrum and the penalty on the range space equal mgcv's to rounding;
    the split of the small null-space penalty between directions is glamm's choice.
ps  Eilers and Marx P-splines, ``m = (m1, m2)``, default ``(2, 2)``: a B-spline basis of degree
    ``m1 + 1`` (order ``m1 + 2``; cubic by default) on ``k + m1 + 2`` evenly spaced knots, with
    penalty ``S = D' D`` for the ``m2``-th order difference matrix ``D`` of the coefficients
    (rank ``k - m2``). Knots: the covariate range (or a supplied range of two values) is widened
    by 0.1% of its width at each end to ``[xl, xu]``, which is divided into ``k - m1 - 1``
    intervals of width ``dx``; ``m1 + 1`` further knots are added beyond each end. Outside
    ``[xl, xu]`` prediction extrapolates linearly with the basis' value and first derivative at
    the end of that interval (``Predict.matrix.pspline.smooth``), with two quirks kept from
    R's ``splineDesign``: for degree 1 (``m1 = 0``) the slope at the upper end is taken as 0
    (constant continuation above), and for degree 0 (``m1 = -1``) prediction outside fails.
    The data themselves must lie inside the interval (mgcv stops otherwise, as glamm does for
    a supplied full knot sequence).

The classes are used by glamm.smooths.construct; like glamm.smooths.basis, this module is not
public API.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import BSpline
from scipy.linalg import solveh_banded

from glamm.errors import DataError, GlammError
from glamm.smooths.basis import SmoothBasis

__all__ = ["CubicRegressionBasis", "ShrinkageCubicBasis", "PSplineBasis"]

#: mgcv's shrink factor for "cs" (``attr(object, "shrink") <- 0.1``).
CS_SHRINK = 0.1


# ------------------------------------------------------------------------------- helpers
def _as_covariate(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as a finite 1-D float array (``(n,)`` or ``(n, 1)`` accepted)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{what} must be a 1-D array of covariate values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what} contains missing or non-finite values")
    return arr


def _as_basis_dim(k: int) -> int:
    """``k`` as an integer; non-integer values are rounded with a warning, as ``s()`` does."""
    try:
        return operator.index(k)
    except TypeError:
        kf = float(k)
        kr = int(round(kf))
        if kr != kf:
            warnings.warn("argument k should be integer and has been rounded", UserWarning,
                          stacklevel=3)
        return kr


def _quantile7(sorted_values: np.ndarray, nq: int) -> np.ndarray:
    """R's ``quantile(v, seq(0, 1, length = nq))`` (type 7) of the sorted vector ``v``."""
    n = sorted_values.size
    probs = np.linspace(0.0, 1.0, nq)
    index = 1.0 + (n - 1) * probs  # 1-based position, as R computes it
    lo = np.floor(index).astype(np.intp)
    hi = np.minimum(np.ceil(index).astype(np.intp), n)
    q_lo = sorted_values[lo - 1]
    q_hi = sorted_values[hi - 1]
    h = index - lo
    interp = (index > lo) & (q_hi != q_lo)
    return np.where(interp, (1.0 - h) * q_lo + h * q_hi, q_lo)


# ----------------------------------------------------------------------- cubic regression
def _cr_second_derivative_map(knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(F, S)`` for the natural cubic spline with coefficients the values at ``knots``.

    ``F`` (``k x k``) maps the values at the knots to the second derivatives there (first and
    last rows zero); ``S = D' B^{-1} D`` is the integrated squared second derivative penalty,
    symmetrized as mgcv does.
    """
    nk = knots.size
    h = np.diff(knots)
    inner = nk - 2
    rows = np.arange(inner)
    D = np.zeros((inner, nk))
    D[rows, rows] = 1.0 / h[:-1]
    D[rows, rows + 2] = 1.0 / h[1:]
    D[rows, rows + 1] = -D[rows, rows] - D[rows, rows + 2]
    # B in upper banded storage: row 0 the super-diagonal (first entry unused), row 1 diagonal
    banded = np.zeros((2, inner))
    banded[1] = (h[:-1] + h[1:]) / 3.0
    banded[0, 1:] = h[1:-1] / 6.0
    if inner == 1:  # B is 1 x 1 (k = 3)
        BinvD = D / banded[1, 0]
    else:  # symmetric positive definite tridiagonal solve (LAPACK dptsv, as mgcv)
        BinvD = solveh_banded(banded, D)
    F = np.zeros((nk, nk))
    F[1:-1] = BinvD
    S = D.T @ BinvD
    return F, 0.5 * (S + S.T)


def _cr_design(x: np.ndarray, knots: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Natural cubic spline basis (values at ``knots`` as coefficients) at ``x``, continued
    linearly beyond the end knots."""
    nk = knots.size
    n = x.size
    kmin, kmax = knots[0], knots[-1]
    below = x < kmin
    above = x > kmax

    # Interior: interval j with knots[j] < x <= knots[j+1] (x == knots[0] in interval 0).
    j = np.clip(np.searchsorted(knots, x, side="left") - 1, 0, nk - 2)
    h = knots[j + 1] - knots[j]
    a_minus = knots[j + 1] - x
    a_plus = x - knots[j]
    c_minus = a_minus * (a_minus * a_minus / h - h) / 6.0
    c_plus = a_plus * (a_plus * a_plus / h - h) / 6.0
    d_minus = a_minus / h
    d_plus = a_plus / h

    # Below the first knot: value and slope at knots[0] (delta_0 = 0 since F[0] = 0).
    h0 = knots[1] - kmin
    t0 = x - kmin
    # Above the last knot: value and slope at knots[-1].
    h1 = kmax - knots[-2]
    t1 = x - kmax

    j = np.where(below, 0, np.where(above, nk - 2, j))
    c_minus = np.where(below, -t0 * h0 / 3.0, np.where(above, t1 * h1 / 6.0, c_minus))
    c_plus = np.where(below, -t0 * h0 / 6.0, np.where(above, t1 * h1 / 3.0, c_plus))
    d_minus = np.where(below, 1.0 - t0 / h0, np.where(above, -t1 / h1, d_minus))
    d_plus = np.where(below, t0 / h0, np.where(above, 1.0 + t1 / h1, d_plus))

    X = c_minus[:, None] * F[j] + c_plus[:, None] * F[j + 1]
    rows = np.arange(n)
    X[rows, j] += d_minus
    X[rows, j + 1] += d_plus
    return X


class CubicRegressionBasis(SmoothBasis):
    """mgcv's cubic regression spline basis (``s(x, bs = "cr")``).

    Parameters
    ----------
    x : ndarray
        covariate values, ``(n,)`` (or ``(n, 1)``), finite.
    k : int, optional
        basis dimension (number of knots). Default 10; any negative value means the default,
        as in mgcv (``k = -1``). Values below 3 are raised to 3 with a warning.
    knots : ndarray, optional
        optional strictly increasing knot locations, exactly ``k`` of them (after the
        default/minimum adjustment of ``k``). Default ``None``: mgcv's placement at quantiles of
        the unique covariate values. Supplied knots need not span the data; the basis is linear
        beyond them.

    Raises
    ------
    DataError
        ``x`` has fewer than ``k`` unique values (also when knots are supplied, as in mgcv).

    Attributes
    ----------
    X, S, null_space_dim, rank
        see :class:`SmoothBasis`; ``null_space_dim`` 2, ``rank`` k - 2.
    knots : ndarray
        the knots (mgcv's ``sm$xp``).
    F : ndarray
        ``(k, k)`` map from the coefficients (values at the knots) to the second derivatives
        at the knots. mgcv's ``sm$F`` holds the transpose (its column-major storage of ``F'``).
        ``knots`` and ``F`` are not public API.
    """

    #: mgcv class the object corresponds to (not public API).
    _mgcv_class = "cr.smooth"

    def __init__(self, x: np.ndarray, k: int = 10, knots: np.ndarray | None = None) -> None:
        xv = _as_covariate(x, "x")
        nk = _as_basis_dim(k)
        if nk < 0:
            nk = 10
        if nk < 3:
            nk = 3
            warnings.warn("basis dimension, k, increased to minimum possible (3)", UserWarning,
                          stacklevel=2)
        xu = np.unique(xv)
        if xu.size < nk:
            raise DataError(f"x has insufficient unique values ({xu.size}) to support {nk} "
                            "knots: reduce k")
        if knots is None:
            kn = _quantile7(xu, nk)
        else:
            kn = _as_covariate(knots, "knots")
            if kn.size != nk:
                raise GlammError(f"number of supplied knots ({kn.size}) != k ({nk}) for a cr "
                                 "smooth")
            if np.any(np.diff(kn) <= 0):
                raise GlammError("supplied knots for a cr smooth must be strictly increasing")
        self.knots: np.ndarray = kn
        self.F, S = _cr_second_derivative_map(kn)
        self.X = _cr_design(xv, kn, self.F)
        self.S = [self._penalty(S)]
        self.null_space_dim, self.rank = self._null_space_and_rank(nk)

    def _penalty(self, S: np.ndarray) -> np.ndarray:
        return S

    @staticmethod
    def _null_space_and_rank(nk: int) -> tuple[int, int]:
        return 2, nk - 2

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """The basis at new values ``x`` (``(m,)`` or ``(m, 1)``): ``(m, k)``. Beyond the end
        knots the spline continues linearly, as mgcv's ``Predict.matrix.cr.smooth``."""
        return _cr_design(_as_covariate(x, "x"), self.knots, self.F)


class ShrinkageCubicBasis(CubicRegressionBasis):
    """mgcv's shrinkage cubic regression spline basis (``s(x, bs = "cs")``).

    The cr basis (same arguments, defaults and ``X``) with the penalty's null space given a
    small penalty: its two zero eigenvalues become ``0.1`` and ``0.01`` times the smallest
    positive one (mgcv's shrink factor 0.1), so ``null_space_dim`` is 0 and ``rank`` is k.
    Which directions of the (two-dimensional) null space receive which of the two values is not
    determined by mgcv (it is set by rounding error there); glamm gives ``0.1 lambda`` to the
    constant and ``0.01 lambda`` to the (orthogonalized) linear function of the knots. See
    the module notes.

    Parameters
    ----------
    x, k, knots
        as :class:`CubicRegressionBasis` (defaults ``k = 10``, ``knots = None``).
    """

    _mgcv_class = "cs.smooth"

    def _penalty(self, S: np.ndarray) -> np.ndarray:
        nk = S.shape[0]
        # Increasing eigenvalues: the first two are the (numerically) zero null-space ones.
        smallest_positive = np.linalg.eigvalsh(S)[2]
        # Orthonormal basis (constant, then linear in the knots) of the cr null space.
        null_basis, _ = np.linalg.qr(np.column_stack([np.ones(nk), self.knots]))
        new_values = np.array([CS_SHRINK, CS_SHRINK * CS_SHRINK]) * smallest_positive
        S_cs = S + (null_basis * new_values) @ null_basis.T
        return 0.5 * (S_cs + S_cs.T)

    @staticmethod
    def _null_space_and_rank(nk: int) -> tuple[int, int]:
        return 0, nk


# ------------------------------------------------------------------------------- P-splines
class PSplineBasis(SmoothBasis):
    """mgcv's P-spline basis (``s(x, bs = "ps", m = m)``).

    Parameters
    ----------
    x : ndarray
        covariate values, ``(n,)`` (or ``(n, 1)``), finite.
    k : int, optional
        basis dimension. Default 10; any negative value means mgcv's default
        ``max(10, m1 + 1)``. Must exceed ``m1 + 1`` (mgcv fails for smaller ``k``; there is no
        automatic increase for this basis).
    m : int or Sequence[int or None], optional
        ``(m1, m2)``: B-splines of degree ``m1 + 1`` and an ``m2``-th order difference penalty;
        a single integer is used for both, ``None`` entries mean 2. Default ``(2, 2)``: cubic
        B-splines, second-order differences.
    knots : ndarray, optional
        optional. ``None`` (default): evenly spaced knots over the covariate range widened
        by 0.1% at each end. Two values: use their range instead of the covariate range (it
        must contain the data). ``k + m1 + 2`` values: the full non-decreasing knot sequence,
        used as given; the data must lie within its ``[knots[m1+1], knots[-m1-2]]``.

    Warns
    -----
    UserWarning
        As mgcv, when some basis function is zero at every data point, and when ``x`` has
        fewer unique values than ``k``.

    Attributes
    ----------
    X, S, null_space_dim, rank
        see :class:`SmoothBasis`; ``null_space_dim`` m2, ``rank`` k - m2.
    knots : ndarray
        the full knot sequence (mgcv's ``sm$knots``); not public API.
    m : tuple of int
        ``(m1, m2)``; not public API.
    D : ndarray
        the ``(k - m2, k)`` difference matrix with ``S = D' D``; not public API.
    """

    _mgcv_class = "pspline.smooth"

    def __init__(self, x: np.ndarray, k: int = 10, m: int | Sequence[int | None] = (2, 2),
                 knots: np.ndarray | None = None) -> None:
        xv = _as_covariate(x, "x")
        if xv.size == 0:
            raise DataError("x has no values")
        m1, m2 = self._orders(m)
        if m1 < -1:
            raise GlammError(f"m[0] = {m1}: the B-spline degree m[0] + 1 must be >= 0")
        if m2 < 0:
            raise GlammError(f"m[1] = {m2}: the difference penalty order must be >= 0")
        kb = _as_basis_dim(k)
        if kb < 0:
            kb = max(10, m1 + 1)
        n_int = kb - m1  # number of knots in [xl, xu]
        if n_int < 2:  # mgcv stops for n_int <= 0 and fails building the knots for n_int = 1
            raise GlammError(f"basis dimension k = {kb} too small for b-spline order {m1 + 2}: "
                             f"a ps basis needs k >= {m1 + 2}")
        if m2 >= kb:
            raise GlammError(f"difference penalty order m[1] = {m2} must be less than k = {kb}")
        degree = m1 + 1
        n_knots = n_int + 2 * m1 + 2
        if knots is not None:
            kv = _as_covariate(knots, "knots")
        if knots is None or kv.size == 2:
            if knots is None:
                xl, xu = float(xv.min()), float(xv.max())
            else:
                xl, xu = float(kv.min()), float(kv.max())
                if xl > xv.min() or xu < xv.max():
                    raise DataError("knot range does not include data")
            xr = xu - xl
            if xr <= 0:
                raise DataError("x has a single value: a ps basis needs a covariate range")
            xl -= xr * 0.001
            xu += xr * 0.001
            dx = (xu - xl) / (n_int - 1)
            kv = np.linspace(xl - dx * (m1 + 1), xu + dx * (m1 + 1), n_knots)
        else:
            if kv.size != n_knots:
                raise GlammError(f"there should be {n_knots} supplied knots (k + m[0] + 2)")
            if np.any(np.diff(kv) < 0):
                raise GlammError("supplied knots for a ps smooth must be non-decreasing")
            lo, hi = kv[degree], kv[-degree - 1]
            if xv.min() < lo or xv.max() > hi:
                raise DataError(f"x outside the supplied knots' basis range [{lo}, {hi}]")
        self.knots: np.ndarray = kv
        self.m: tuple[int, int] = (m1, m2)
        self._degree = degree
        self.X = self._inside_design(xv)
        if np.any(self.X.sum(axis=0) == 0):
            warnings.warn("there is *no* information about some basis coefficients",
                          UserWarning, stacklevel=2)
        if np.unique(xv).size < kb:
            warnings.warn("basis dimension is larger than number of unique covariates",
                          UserWarning, stacklevel=2)
        self.D: np.ndarray = np.diff(np.eye(kb), n=m2, axis=0)
        self.S = [self.D.T @ self.D]
        self.rank = kb - m2
        self.null_space_dim = m2

    @staticmethod
    def _orders(m: int | Sequence[int | None] | None) -> tuple[int, int]:
        if m is None:
            return 2, 2
        # a scalar or one or two entries (None: the default 2)
        mm: list = list(np.atleast_1d(np.asarray(m, dtype=object)))
        if len(mm) == 1:
            mm = mm * 2
        if len(mm) != 2:
            raise GlammError(f"m must have one or two entries for a ps smooth, got {m!r}")
        m1, m2 = (2 if v is None else operator.index(v) for v in mm)
        return m1, m2

    def _inside_design(self, x: np.ndarray) -> np.ndarray:
        """B-spline basis at ``x`` inside ``[knots[degree], knots[-degree-1]]``."""
        if x.size == 0:
            return np.zeros((0, self.knots.size - self._degree - 1))
        return BSpline.design_matrix(x, self.knots, self._degree).toarray()

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """The basis at new values ``x`` (``(m,)`` or ``(m, 1)``): ``(m, k)``. Outside the
        basis interval ``[knots[m1+1], knots[-m1-2]]`` (the covariate range widened by 0.1% at
        each end, for mgcv's knots) the basis is continued linearly with its value and first
        derivative at the nearer end, as mgcv's ``Predict.matrix.pspline.smooth``."""
        xv = _as_covariate(x, "x")
        deg = self._degree
        lo, hi = self.knots[deg], self.knots[-deg - 1]
        inside = (xv >= lo) & (xv <= hi)
        if np.all(inside):
            return self._inside_design(xv)
        if deg == 0:
            raise DataError("a ps basis of degree 0 (m[0] = -1) cannot be evaluated outside "
                            f"[{lo}, {hi}] (mgcv fails there too)")
        X = np.zeros((xv.size, self.k))
        X[inside] = self._inside_design(xv[inside])
        ends = np.array([lo, hi])
        value = self._inside_design(ends)
        slope = BSpline(self.knots, np.eye(self.k), deg, extrapolate=False)(ends, nu=1)
        if deg == 1:
            # R's splineDesign returns 0 for a derivative of order ord - 1 at the right end of
            # the basis interval ("value is arbitrary"), so mgcv continues a degree-1 basis as
            # a constant above the interval.
            slope[1] = 0.0
        below = xv < lo
        above = xv > hi
        X[below] = value[0] + (xv[below] - lo)[:, None] * slope[0]
        X[above] = value[1] + (xv[above] - hi)[:, None] * slope[1]
        return X

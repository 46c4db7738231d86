"""Thin plate regression splines: mgcv's ``bs = "tp"`` (and ``"ts"``) smooth basis.

Construction (Wood 2003, "Thin plate regression splines", JRSS B 65:95-114; mgcv's
``smooth.construct.tp.smooth.spec`` and the C routines ``construct_tprs`` / ``predict_tprs``)
-----------------------------------------------------------------------------------------
Covariates ``x`` (n x d) are centred by their column means (mgcv's ``shift``). The knots are
the unique centred covariate rows ``x_1..x_K`` (mgcv's ``Xu``), sorted lexicographically.

A thin plate spline of order ``m`` (penalty on m-th derivatives, needs 2m > d) is

    f(x) = sum_i delta_i eta(||x - x_i||) + sum_j alpha_j phi_j(x),   T' delta = 0,

with the radial function (Wood 2017, eq. 5.14)

    eta(r) = (-1)^(m+1+d/2) / (2^(2m-1) pi^(d/2) (m-1)! (m-d/2)!) * r^(2m-d) log r   (d even)
    eta(r) = Gamma(d/2 - m) / (2^(2m) pi^(d/2) (m-1)!) * r^(2m-d)                     (d odd)

(eta(0) = 0), ``phi_j`` the M = choose(m+d-1, d) monomials of total degree < m, and
``T[i, j] = phi_j(x_i)``. Its penalty is ``delta' E delta`` with ``E[i, j] = eta(||x_i - x_j||)``.

The rank-k approximation keeps the k eigenvectors ``U_k`` (K x k) of E with the largest
absolute eigenvalues ``D_k`` (mgcv orders them by decreasing signed value) and writes
``delta = U_k delta_k``. The constraint becomes ``T' U_k delta_k = 0``; it is absorbed
with a product of M Householder reflections ``Q`` (k x k) such that ``(T' U_k) Q = [0, B]``
(row i of the constraint matrix is reflected onto its last still-free position, the sign of
the reflection following the sign of that element, as mgcv's ``QT``), so that
``delta_k = Z beta`` with ``Z`` the first k - M columns of ``Q``. Then

    X = [U_k D_k Z (rows mapped from knots to data),  T(data)]        (n x k)
    S = blockdiag(Z' D_k Z, 0_M)                                        (k x k)
    UZ = [[U_k Z, 0], [0, I_M]]                                        ((K + M) x k)

i.e. the k - M penalized columns first, then the M unpenalized polynomial columns in mgcv's
order (1, x1, x1^2, ..., x2, x1 x2, ...: first covariate's power varying fastest, total degree
< m). Finally every column of X is scaled to unit root mean square over the n data, with UZ's
columns and S's rows and columns scaled to match, and S is symmetrized. New data are
evaluated as ``[eta(||x - x_i||)_i, phi_j(x)_j] @ UZ`` (``x`` centred by ``shift``).

If the number of unique covariate rows equals k, no eigen step is done (mgcv's "pure knot"
case): ``U_k = I``, ``D_k`` is replaced by E, and X is evaluated as for new data.

mgcv behaviours reproduced
--------------------------
- the default basis dimension (k = M + 8, M + 27, M + 100 for d = 1, 2, >= 3) and raising
  k < M + 1 to M + 1 with a warning; the default penalty order (smallest m with 2m > d + 1),
  also substituted silently for a given m with 2m <= d; the error when there are fewer unique
  covariate rows than k;
- the knot subsample when there are more than ``max_knots`` (default 2000) unique covariate
  rows: the same rows as mgcv's ``sample()`` under ``set.seed(1)`` (R's Mersenne-Twister
  seeding and rejection sampling are reproduced; for d >= 2 the unique rows are ordered the
  way mgcv's ``uniquecombs`` orders them, by their R character representation). X is then
  evaluated through UZ at every datum, as mgcv does;
- the ``"ts"`` shrinkage variant (``shrink``): the M zero eigenvalues of S are replaced by
  ``shrink`` times the smallest of the k - M others (mgcv uses shrink = 0.1), rank k and
  null space dimension 0.

Not reproduced: the signs of the penalized columns. Eigenvectors are defined up to sign, and
mgcv's Lanczos iteration picks signs we cannot know; here each eigenvector is signed to have
a positive inner product with a fixed irregular vector. Because the Householder reflections
follow the signs of the constraint matrix, a sign change of an eigenvector changes only the
sign of the corresponding penalized column of X (and of the row/column of S, column of UZ),
so the basis equals mgcv's up to ``X -> X D, S -> D S D`` with D a diagonal of +-1. (This
holds also when an element the reflections pivot on is zero in exact arithmetic, as happens
for covariate values symmetric about their mean, where the sign mgcv takes comes from
rounding noise: the two choices differ by the sign of the one eigenvector concerned.)
Also not supported: user-supplied knots, mgcv's ``drop.null`` (m = c(m, 0)), ``by``
variables (handled elsewhere), and penalty orders given as vectors.

Eigen-decomposition: mgcv uses its own Lanczos routine; here a dense LAPACK decomposition
(``numpy.linalg.eigh``) when the number of knots is small relative to k and ARPACK
(``scipy.sparse.linalg.eigsh``, machine-precision tolerance) otherwise; both agree with
mgcv's to about 1e-11 relative on well-separated eigenvalues.

Not public API (use :class:`ThinPlateBasis` through glamm.smooths).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from itertools import product

import numpy as np
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

from ..errors import DataError
from .basis import SmoothBasis

__all__ = ["ThinPlateBasis"]

# extra basis dimension beyond the null space for d = 1, 2 and >= 3 (mgcv's def.k)
_DEFAULT_EXTRA_K = (8, 27, 100)
# elements of one block of the (rows x knots) radial matrix built at a time in predictions
_PREDICT_BLOCK_ELEMENTS = 1 << 22


# ----------------------------------------------------------------------------- the TPS pieces
def default_penalty_order(d: int) -> int:
    """Smallest m with 2m > d + 1 (mgcv's default; it also makes the spline visually smooth)."""
    return (d + 1) // 2 + 1


def null_space_dimension(d: int, m: int) -> int:
    """M = choose(m + d - 1, d): number of monomials in d variables of total degree < m."""
    return math.comb(m + d - 1, d)


def polynomial_powers(d: int, m: int) -> np.ndarray:
    """Exponents of the null-space monomials, ``(M, d)``, row j giving phi_j = prod x_l^p[j, l].

    mgcv's order: all exponent tuples of total degree < m, sorted with the *last* covariate's
    exponent most significant and the first covariate's exponent varying fastest; for d = 2,
    m = 2 that is 1, x1, x2, and for d = 2, m = 3: 1, x1, x1^2, x2, x1 x2, x2^2.
    """
    tuples = [p for p in product(range(m), repeat=d) if sum(p) < m]
    tuples.sort(key=lambda p: p[::-1])
    return np.array(tuples, dtype=int).reshape(len(tuples), d)


def radial_constant(d: int, m: int) -> float:
    """The constant multiplying r^(2m-d) (times log r for even d) in the TPS radial function."""
    if 2 * m <= d:
        raise DataError(f"a thin plate spline needs 2m > d (got m={m}, d={d})")
    if d % 2 == 0:
        sign = -1.0 if (m + 1 + d // 2) % 2 else 1.0
        return sign / (
            2.0 ** (2 * m - 1)
            * math.pi ** (d / 2)
            * math.factorial(m - 1)
            * math.factorial(m - d // 2)
        )
    return math.gamma(d / 2 - m) / (2.0 ** (2 * m) * math.pi ** (d / 2) * math.factorial(m - 1))


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` squared Euclidean distances, summed coordinate by coordinate (no
    ``|a|^2 + |b|^2 - 2ab`` cancellation)."""
    r2 = np.subtract.outer(a[:, 0], b[:, 0])
    np.multiply(r2, r2, out=r2)
    if a.shape[1] > 1:
        diff = np.empty_like(r2)
        for j in range(1, a.shape[1]):
            np.subtract.outer(a[:, j], b[:, j], out=diff)
            np.multiply(diff, diff, out=diff)
            r2 += diff
    return r2


def _radial_between(a: np.ndarray, b: np.ndarray, d: int, m: int, const: float) -> np.ndarray:
    """eta(||a_i - b_j||) for the rows of ``a`` and ``b``; in one dimension directly from
    ``|a_i - b_j|`` (odd power ``2m - 1``, no square root)."""
    if d == 1:
        r = np.subtract.outer(a[:, 0], b[:, 0])
        np.abs(r, out=r)
        out = r * const
        for _ in range(2 * m - 2):
            out *= r
        return out
    return _radial(_squared_distances(a, b), d, m, const)


def _radial(r2: np.ndarray, d: int, m: int, const: float) -> np.ndarray:
    """eta(r) from squared distances ``r2`` (any shape); eta(0) = 0."""
    if d % 2 == 0:
        # const * r^(2m-d) log r = const * (r2)^(m - d/2) * log(r2) / 2
        positive = r2 > 0.0
        out = np.log(np.where(positive, r2, 1.0))
        out *= 0.5 * const
        for _ in range(m - d // 2):
            out *= r2
        return out
    # const * r^(2m-d) = const * (r2)^(m - (d+1)/2) * sqrt(r2)
    out = np.sqrt(r2)
    out *= const
    for _ in range(m - (d + 1) // 2):
        out *= r2
    return out


def _polynomials(x: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """Null-space monomials at the rows of ``x``: ``(len(x), M)``."""
    out = np.ones((x.shape[0], powers.shape[0]))
    for j, p in enumerate(powers):
        for dim, e in enumerate(p):
            for _ in range(e):
                out[:, j] *= x[:, dim]
    return out


# ----------------------------------------------------------------------------- eigen step
def _leading_eigenpairs(E: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k eigenpairs of symmetric ``E`` with the largest absolute eigenvalues, ordered by
    decreasing (signed) eigenvalue as mgcv's Lanczos routine returns them; each eigenvector is
    signed to have a positive inner product with :func:`_sign_reference`."""
    n = E.shape[0]
    pair: tuple[np.ndarray, np.ndarray] | None = None
    if n > max(4 * k, 60):
        # deterministic start vector, not orthogonal to (anti)symmetric eigenvectors
        try:
            pair = eigsh(E, k=k, which="LM", v0=_sign_reference(n), tol=0.0)
        except (ArpackNoConvergence, ArpackError):
            pair = None
    if pair is None:
        w, V = np.linalg.eigh(E)
        keep = np.argsort(-np.abs(w), kind="stable")[:k]
        pair = w[keep], V[:, keep]
    values, vectors = pair
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], vectors[:, order]
    flip = (_sign_reference(n) @ vectors) < 0.0
    vectors[:, flip] *= -1.0
    return values, vectors


def _sign_reference(n: int) -> np.ndarray:
    """A fixed, irregular vector (no symmetry a design could share) used for the ARPACK start
    vector and to choose eigenvector signs deterministically."""
    return np.cos(np.arange(1, n + 1) * 0.7548776662466927) + 0.5


def _absorb_constraints(C: np.ndarray) -> np.ndarray:
    """Orthogonal ``Q`` (c x c) with ``C Q = [0, B]`` for a (M x c) constraint matrix ``C``.

    Row i (after the reflections for rows < i) is reflected onto its element c-1-i by a
    Householder reflection ``I - g u u'``, ``u = a + s e`` with ``s = +-||a||`` carrying the sign
    of that element (mgcv's QT convention); ``Q`` is the product of the M reflections, so its
    first c - M columns span the null space of ``C``.
    """
    n_con, c = C.shape
    A = np.array(C, dtype=float, copy=True)
    Q = np.eye(c)
    for i in range(n_con):
        L = c - i
        a = A[i, :L]
        scale = np.max(np.abs(a))
        if scale == 0.0:
            continue
        u = a / scale
        s = math.sqrt(float(u @ u))
        if u[-1] < 0.0:
            s = -s
        u[-1] += s
        g = 1.0 / (s * u[-1])
        if i + 1 < n_con:
            A[i + 1 :, :L] -= np.outer((A[i + 1 :, :L] @ u) * g, u)
        Q[:, :L] -= np.outer((Q[:, :L] @ u) * g, u)
    return Q


# ----------------------------------------------------------------------------- R's sample()
def _r_mt_unif(seed: int, batch: int = 256) -> Iterator[float]:
    """R's ``unif_rand()`` stream after ``set.seed(seed)`` (Mersenne-Twister, R's seeding),
    drawn from numpy's MT19937 ``batch`` numbers at a time."""
    s = seed % (1 << 32)
    for _ in range(50):  # R's initial scrambling
        s = (69069 * s + 1) % (1 << 32)
    key = np.empty(625, dtype=np.uint64)
    for j in range(625):
        s = (69069 * s + 1) % (1 << 32)
        key[j] = s
    bitgen = np.random.MT19937()
    # R's seed vector element 0 is the position (reset to 624 by set.seed), 1..624 the state
    bitgen.state = {
        "bit_generator": "MT19937",
        "state": {"key": key[1:].astype(np.uint32), "pos": 624},
    }
    two_m32 = 2.3283064365386963e-10
    half_eps = 0.5 * 2.328306437080797e-10
    while True:
        for raw in bitgen.random_raw(batch):
            u = float(raw) * two_m32
            if u <= 0.0:
                u = half_eps
            elif 1.0 - u <= 0.0:
                u = 1.0 - half_eps
            yield u


def _r_sample(n: int, size: int, seed: int) -> np.ndarray:
    """0-based indices of R's ``sample(n, size)`` (without replacement, default
    ``sample.kind = "Rejection"``) after ``set.seed(seed)``."""
    unif = _r_mt_unif(seed, max(256, 2 * size))
    pool = list(range(n))
    out = np.empty(size, dtype=int)
    remaining = n
    for i in range(size):
        bits = math.ceil(math.log2(remaining))
        mask = (1 << bits) - 1
        while True:
            v = 0
            for _ in range(0, bits + 1, 16):
                v = 65536 * v + int(math.floor(next(unif) * 65536))
            v &= mask
            if v < remaining:
                break
        out[i] = pool[v]
        remaining -= 1
        pool[v] = pool[remaining]
    return out


def _r_as_character(values: np.ndarray) -> np.ndarray:
    """R's ``as.character()`` of doubles, element-wise: 15 significant digits, fixed or
    scientific notation whichever is narrower (R's ``formatReal`` rule with ``scipen = 0``),
    trailing zeros dropped. Returns a numpy string array of the shape of ``values``."""
    v = np.asarray(values, dtype=float)
    shape = v.shape
    v = np.where(v == 0.0, 0.0, v).ravel()  # -0 prints as "0"
    r = np.abs(v)
    neg = (v < 0.0).astype(int)
    # 15 correctly rounded significant digits and the decimal exponent after rounding
    parts = np.char.partition(np.char.mod("%.14e", r), "e")
    kpower = parts[:, 2].astype(int)
    digits = np.char.rstrip(np.char.replace(parts[:, 0], ".", ""), "0")
    nsig = np.maximum(np.char.str_len(digits), 1)
    # does rounding to 15 digits carry into a new leading digit (e.g. 99999.99999999999)?
    rgt_cap = np.clip(15 - kpower, 0, 22)
    with np.errstate(over="ignore"):
        widens = (kpower > 0) & (kpower <= 22) & (r < 10.0**kpower - 0.5 / 10.0**rgt_cap)
    left = kpower + 1 - widens
    rgt = np.maximum(nsig - left, 0)
    width_fixed = neg + np.where(left > 0, left, 1) + rgt + (rgt > 0)
    exp_digits = np.where((kpower >= 100) | (kpower <= -99), 2, 1)
    width_sci = neg + (nsig > 1) + (nsig - 1) + 4 + exp_digits
    fixed = width_fixed <= width_sci
    precision = np.where(fixed, rgt, nsig - 1).astype(str)
    fmt = np.char.add(np.char.add("%.", precision), np.where(fixed, "f", "e"))
    text = np.char.mod(fmt, v)
    # drop trailing zeros of the decimals (of the mantissa in scientific notation)
    head = np.char.partition(text, "e")
    mant = head[:, 0]
    has_point = np.char.find(mant, ".") >= 0
    mant = np.where(has_point, np.char.rstrip(np.char.rstrip(mant, "0"), "."), mant)
    text = np.char.add(np.char.add(mant, head[:, 1]), head[:, 2])
    return text.reshape(shape)


def mgcv_knot_subsample(x: np.ndarray, max_knots: int, seed: int = 1) -> np.ndarray | None:
    """The knots mgcv's tp constructor draws when ``x`` (n x d, centred) has more than
    ``max_knots`` unique rows (``None`` otherwise): the unique rows ordered as
    ``uniquecombs(x, ordered = TRUE)`` orders them, then ``sample(n_unique, max_knots)`` under
    ``set.seed(seed)``."""
    n, d = x.shape
    if n <= max_knots:
        return None
    if d == 1:
        unique = np.unique(x[:, 0])[:, None]
    else:
        # uniquecombs: rows are equal when their pasted strings "x1*x2*..." are, and sorted
        # by those strings in the C locale. As '*' sorts before every character of a number,
        # that is the lexicographic order of the per-column strings, so each column's values
        # are replaced by the rank of their string among the column's distinct strings.
        ranks = np.empty((n, d), dtype=np.int64)
        for j in range(d):
            values, inverse = np.unique(x[:, j], return_inverse=True)
            _, string_rank = np.unique(_r_as_character(values), return_inverse=True)
            ranks[:, j] = np.asarray(string_rank).reshape(-1)[np.asarray(inverse).reshape(-1)]
        # first occurrence of each distinct row, in the order of the rank tuples
        _, first = np.unique(ranks, axis=0, return_index=True)
        unique = x[first]
    if unique.shape[0] <= max_knots:
        return None
    return unique[_r_sample(unique.shape[0], max_knots, seed)]


# ----------------------------------------------------------------------------- the basis
def _as_covariates(x: np.ndarray, d: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"covariates must be a vector or a 2-d array, got shape {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise DataError(f"expected {d} covariate column(s), got {arr.shape[1]}")
    if arr.shape[0] == 0:
        raise DataError("no covariate values")
    if not np.all(np.isfinite(arr)):
        raise DataError("covariate values must be finite")
    return arr


def _r_mean(x: np.ndarray) -> np.ndarray:
    """Column means as R's ``mean()`` computes them (extended-precision sum, divided by n,
    plus one refinement pass), so that the centred covariates equal mgcv's to the last bit."""
    xl = x.astype(np.longdouble)
    n = x.shape[0]
    s = xl.sum(axis=0) / n
    s = s + (xl - s).sum(axis=0) / n
    return s.astype(float)


class ThinPlateBasis(SmoothBasis):
    """mgcv's thin plate regression spline basis (``s(..., bs = "tp")``, or ``"ts"`` with
    ``shrink``), as ``smooth.construct`` returns it.

    Parameters
    ----------
    x : ndarray
        ``(n,)`` or ``(n, d)`` covariate values, d >= 1.
    k : int, optional
        basis dimension; default -1 means mgcv's default M + 8 (d = 1), M + 27 (d = 2),
        M + 100 (d >= 3), M the null space dimension. k < M + 1 is raised to M + 1 with a
        warning. There must be at least k unique covariate rows.
    m : int, optional
        penalty order (order of the derivatives penalized); default ``None``: the smallest m
        with 2m > d + 1 (2 for d = 1, 2; 3 for d = 3), which also replaces any m with 2m <= d.
    max_knots : int, optional
        at most this many unique covariate rows are used as knots (default 2000); above
        it mgcv's random subsample (seed 1) is drawn.
    shrink : float, optional
        ``None`` (default) for ``"tp"``; a positive number for ``"ts"``, the null-space
        eigenvalues of S being set to ``shrink`` times its smallest positive one (mgcv: 0.1).

    Attributes
    ----------
    X, S, null_space_dim, rank
        see :class:`SmoothBasis`; X's first ``k - M`` columns are the penalized ones, the last
        M the polynomial null space (1, x1, ..., in mgcv's order).

    The following mirror mgcv's object and are not public API: ``m`` (penalty order used),
    ``d``, ``shift`` (covariate means, mgcv's ``shift``), ``knots`` (centred unique knot rows,
    sorted, mgcv's ``Xu``), ``UZ`` (``(n_knots + M) x k`` map from basis coefficients to the
    radial and polynomial coefficients, mgcv's ``UZ``), ``powers`` (null-space exponents),
    ``eigenvalues`` (the eigenvalues of E kept, ``None`` in the pure-knot case).
    """

    def __init__(
        self,
        x: np.ndarray,
        k: int = -1,
        m: int | None = None,
        max_knots: int = 2000,
        shrink: float | None = None,
    ) -> None:
        xx = _as_covariates(x)
        n, d = xx.shape
        if m is None or 2 * int(m) <= d:
            m = default_penalty_order(d)
        m = int(m)
        M = null_space_dimension(d, m)
        k = int(k)
        if k < 0:
            k = M + _DEFAULT_EXTRA_K[min(d, 3) - 1]
        if k < M + 1:
            warnings.warn(
                f"basis dimension, k, increased to minimum possible ({M + 1})", stacklevel=2
            )
            k = M + 1
        if shrink is not None and not shrink > 0:
            raise DataError("shrink must be positive")

        self.d = d
        self.m = m
        self.powers = polynomial_powers(d, m)
        self.shift = _r_mean(xx)
        xc = xx - self.shift
        self._const = radial_constant(d, m)

        supplied = mgcv_knot_subsample(xc, int(max_knots)) if n > max_knots else None
        if supplied is not None and supplied.shape[0] < k:
            supplied = None  # mgcv: fewer knots than k means the data are the knots
        source = xc if supplied is None else supplied
        if d == 1:
            knots, inverse = np.unique(source[:, 0], return_inverse=True)
            knots = knots[:, None]
        else:
            knots, inverse = np.unique(source, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        n_knots = knots.shape[0]
        if n_knots < k:
            raise DataError(
                f"a term has fewer unique covariate combinations ({n_knots}) than the "
                f"specified basis dimension k = {k}"
            )
        self.knots = knots

        E = _radial_between(knots, knots, d, m, self._const)
        T = _polynomials(knots, self.powers)
        p = k - M
        pure_knot = n_knots == k
        if pure_knot:
            Q = _absorb_constraints(T.T)
            UQ = Q
            penalty = Q.T @ E @ Q
            self.eigenvalues = None
        else:
            values, U = _leading_eigenpairs(E, k)
            Q = _absorb_constraints(T.T @ U)
            UQ = U @ Q
            penalty = (Q.T * values) @ Q
            self.eigenvalues = values

        UZ = np.zeros((n_knots + M, k))
        UZ[:n_knots, :p] = UQ[:, :p]
        UZ[n_knots:, p:] = np.eye(M)
        if supplied is None and not pure_knot:
            at_knots = (U * values) @ Q[:, :p]
            X = np.empty((n, k))
            X[:, :p] = at_knots[inverse]
            X[:, p:] = _polynomials(xc, self.powers)
        else:
            X = self._evaluate(xc, UZ)
        S = np.zeros((k, k))
        S[:p, :p] = penalty[:p, :p]

        # scale every column of X to unit root mean square (mgcv's numerical conditioning)
        w = np.sqrt(np.einsum("ij,ij->j", X, X) / n)
        X /= w
        UZ /= w
        S /= np.outer(w, w)
        S = 0.5 * (S + S.T)

        if shrink is not None:
            ev, V = np.linalg.eigh(S)
            ev, V = ev[::-1].copy(), V[:, ::-1]
            ev[p:] = ev[p - 1] * float(shrink)
            S = (V * ev) @ V.T
            null_dim = 0
        else:
            null_dim = M

        self.X = X
        self.S = [S]
        self.UZ = UZ
        self.null_space_dim = null_dim
        self.rank = k - null_dim
        self.shrink = shrink

    def _evaluate(self, xc: np.ndarray, UZ: np.ndarray) -> np.ndarray:
        """``[eta(||x - knot||), phi(x)] @ UZ`` for centred rows ``xc``, in row blocks."""
        n_knots = self.knots.shape[0]
        out = np.empty((xc.shape[0], UZ.shape[1]))
        block = max(1, _PREDICT_BLOCK_ELEMENTS // max(n_knots, 1))
        radial_part, poly_part = UZ[:n_knots], UZ[n_knots:]
        for start in range(0, xc.shape[0], block):
            rows = xc[start : start + block]
            eta = _radial_between(rows, self.knots, self.d, self.m, self._const)
            poly = _polynomials(rows, self.powers)
            out[start : start + block] = eta @ radial_part + poly @ poly_part
        return out

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """The basis at new covariate values ``x`` (``(m,)`` for d = 1, or ``(m, d)``):
        ``(m, k)``, mgcv's ``Predict.matrix``. At the data it reproduces :attr:`X` (to
        rounding, and up to the truncation of the eigen-decomposition)."""
        xc = _as_covariates(x, self.d) - self.shift
        return self._evaluate(xc, self.UZ)

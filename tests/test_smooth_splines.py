"""mgcv's 1-D spline bases "cr", "cs" and "ps" (glamm.smooths.splines) against mgcv 1.8-41.

The fixtures in tests/reference/smooths/splines/ were written by make_splines.R in that
directory: ``smooth.construct(s(x, bs = ..., k = ...), data.frame(x = x), knots)`` (the raw
basis, before smoothCon's constraints and penalty rescaling) and ``Predict.matrix`` at new
values, some outside the data range. R is not needed to run these tests.

Matrices are compared with a tolerance of 1e-10 relative to their largest absolute entry. The
"cs" penalty is compared through what mgcv determines (its spectrum, and everything except the
rotation within the two-dimensional null space of the "cr" penalty, which mgcv leaves to
rounding error; see the module notes of glamm.smooths.splines).
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from glamm.errors import DataError, GlammError
from glamm.smooths.basis import SmoothBasis
from glamm.smooths.splines import (
    CS_SHRINK,
    CubicRegressionBasis,
    PSplineBasis,
    ShrinkageCubicBasis,
)

FIXTURE_DIR = Path(__file__).parent / "reference" / "smooths" / "splines"
RTOL = 1e-10


@lru_cache(maxsize=None)
def _fixture_text(case: str) -> str:
    return (FIXTURE_DIR / f"{case}.json").read_text(encoding="utf-8")


def load(case: str) -> dict:
    """Fixture ``case`` with numeric lists as arrays."""
    ref = json.loads(_fixture_text(case))
    for key in ("x", "xnew", "knots", "knots_supplied", "F", "X", "S", "S_eigenvalues",
                "Xnew"):
        if ref.get(key) is not None:
            ref[key] = np.asarray(ref[key], dtype=float)
    return ref


def cases(prefix: str) -> list[str]:
    return sorted(p.stem for p in FIXTURE_DIR.glob(f"{prefix}_*.json"))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL,
                 scale: float | None = None) -> None:
    """``|actual - expected| <= rtol * scale`` elementwise; ``scale`` defaults to the largest
    absolute entry of ``expected``."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    if scale is None:
        scale = max(float(np.max(np.abs(expected))), 1e-300) if expected.size else 1.0
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert err <= rtol * scale, f"max abs difference {err:.3g} > {rtol:g} * {scale:.6g}"


def build(ref: dict) -> tuple[SmoothBasis, list[warnings.WarningMessage]]:
    """The glamm basis for fixture ``ref``, and the warnings construction gave."""
    kwargs = {"k": ref["k_requested"], "knots": ref["knots_supplied"]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if ref["basis"] == "cr":
            basis = CubicRegressionBasis(ref["x"], **kwargs)
        elif ref["basis"] == "cs":
            basis = ShrinkageCubicBasis(ref["x"], **kwargs)
        else:
            m = ref["m_requested"]
            if m is not None:
                kwargs["m"] = tuple(int(v) for v in m)
            basis = PSplineBasis(ref["x"], **kwargs)
    return basis, list(caught)


CR_CASES = cases("cr")
CS_CASES = cases("cs")
PS_CASES = cases("ps")


def test_fixtures_present():
    assert len(CR_CASES) >= 6 and len(CS_CASES) >= 5 and len(PS_CASES) >= 10


# ------------------------------------------------------------------------------ against R
@pytest.mark.parametrize("case", CR_CASES + PS_CASES)
def test_basis_matches_mgcv(case):
    ref = load(case)
    basis, caught = build(ref)
    assert basis.k == ref["bs_dim"]
    assert basis.rank == ref["rank"]
    assert basis.null_space_dim == ref["null_space_dim"]
    assert len(caught) == len(ref["warnings"])
    assert all(issubclass(w.category, UserWarning) for w in caught)
    assert_close(basis.knots, ref["knots"])
    assert_close(basis.X, ref["X"])
    assert len(basis.S) == 1
    assert_close(basis.S[0], ref["S"])
    assert_close(basis.predict_matrix(ref["xnew"]), ref["Xnew"])
    if ref["basis"] == "cr":
        # mgcv's sm$F is stored column-major as F' (values at knots -> second derivatives)
        assert_close(basis.F, ref["F"].T)
    else:
        assert basis.m == tuple(int(v) for v in ref["m"])


@pytest.mark.parametrize("case", CS_CASES)
def test_shrinkage_basis_matches_mgcv(case):
    ref = load(case)
    twin = load("cr" + case[2:])  # the same call with bs = "cr": mgcv builds X identically
    basis, caught = build(ref)
    assert basis.k == ref["bs_dim"]
    assert (basis.rank, basis.null_space_dim) == (ref["rank"], ref["null_space_dim"]) == \
        (basis.k, 0)
    assert len(caught) == len(ref["warnings"])
    assert_close(basis.knots, ref["knots"])
    assert_close(basis.F, ref["F"].T)
    assert_close(basis.X, twin["X"])
    assert_close(basis.predict_matrix(twin["xnew"]), twin["Xnew"])

    S, S_r = basis.S[0], ref["S"]
    assert_close(S, S.T, rtol=0)
    assert_close(np.linalg.eigvalsh(S)[::-1], ref["S_eigenvalues"])
    # Everything but the rotation within the cr null space {constant, linear}: the part of S
    # outside null x null, and the spectrum of the null x null block.
    Z, _ = np.linalg.qr(np.column_stack([np.ones(basis.k), basis.knots]))
    P = Z @ Z.T

    def outside_null_block(A):
        return A - P @ A @ P

    # (relative to the penalty's largest entry: the rounding of the large entries reaches
    # the small null block)
    scale = float(np.max(np.abs(S_r)))
    assert_close(outside_null_block(S), outside_null_block(S_r), scale=scale)
    assert_close(np.linalg.eigvalsh(Z.T @ S @ Z), np.linalg.eigvalsh(Z.T @ S_r @ Z), scale=scale)
    assert_close(np.linalg.eigvalsh(Z.T @ S_r @ Z),
                 np.array([CS_SHRINK ** 2, CS_SHRINK]) * ref["S_eigenvalues"][-3], scale=scale)


def test_shrinkage_null_space_assignment():
    """glamm's fixed choice: the cr penalty plus 0.1 lambda on the constant and 0.01 lambda on
    the (orthogonalized) linear function of the knots."""
    ref = load("cs_unif400_k10")
    cs = ShrinkageCubicBasis(ref["x"], k=10)
    cr = CubicRegressionBasis(ref["x"], k=10)
    lam = np.linalg.eigvalsh(cr.S[0])[2]
    one = np.ones(10) / np.sqrt(10)
    lin = cs.knots - cs.knots.mean()
    lin /= np.linalg.norm(lin)
    expected = cr.S[0] + CS_SHRINK * lam * np.outer(one, one) + \
        CS_SHRINK ** 2 * lam * np.outer(lin, lin)
    assert_close(cs.S[0], expected, rtol=1e-12)
    assert_close(cs.X, cr.X, rtol=0)


# ------------------------------------------------------------------- defaults and minimum k
def test_default_k():
    x = load("cr_unif400_k10")["x"]
    assert CubicRegressionBasis(x).k == 10
    assert_close(CubicRegressionBasis(x, k=-1).X, CubicRegressionBasis(x, k=10).X, rtol=0)
    assert ShrinkageCubicBasis(x, k=-3).k == 10
    assert PSplineBasis(x).k == 10
    assert PSplineBasis(x, k=-1, m=(3, 2)).k == 10
    # mgcv's ps default is max(10, m1 + 1); for m1 >= 9 that leaves a single knot interval,
    # which mgcv cannot build either
    with pytest.raises(GlammError, match="too small"):
        PSplineBasis(x, k=-1, m=(12, 2))


def test_cr_minimum_k_warns():
    x = np.tile(np.arange(10.0), 3)
    with pytest.warns(UserWarning, match="increased to minimum"):
        basis = CubicRegressionBasis(x, k=2)
    assert basis.k == 3 and basis.rank == 1 and basis.null_space_dim == 2
    with pytest.warns(UserWarning, match="increased to minimum"):
        assert ShrinkageCubicBasis(x, k=0).k == 3


def test_non_integer_k_rounded_with_warning():
    x = load("cr_unif400_k5")["x"]
    with pytest.warns(UserWarning, match="rounded"):
        assert CubicRegressionBasis(x, k=5.4).k == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CubicRegressionBasis(x, k=np.int64(5)).k == 5
        assert CubicRegressionBasis(x, k=5.0).k == 5


def test_ps_warnings_like_mgcv():
    x = np.tile(np.arange(10.0), 18)
    with pytest.warns(UserWarning, match="larger than number of unique"):
        PSplineBasis(x, k=12)
    # a basis function with no data under it
    x_gap = np.concatenate([np.linspace(0, 1, 50), np.linspace(9, 10, 50)])
    with pytest.warns(UserWarning, match="no\\* information"):
        PSplineBasis(x_gap, k=20)


# ---------------------------------------------------------------------------------- errors
def test_cr_errors():
    x = np.tile(np.arange(4.0), 5)
    with pytest.raises(DataError, match="insufficient unique values"):
        CubicRegressionBasis(x, k=5)
    with pytest.raises(DataError, match="insufficient unique values"):  # as mgcv, even with knots
        CubicRegressionBasis(x, k=5, knots=np.linspace(0, 3, 5))
    with pytest.raises(GlammError, match="number of supplied knots"):
        CubicRegressionBasis(x, k=3, knots=np.array([0.0, 3.0]))
    with pytest.raises(GlammError, match="strictly increasing"):
        CubicRegressionBasis(x, k=3, knots=np.array([0.0, 2.0, 1.0]))
    with pytest.raises(DataError, match="non-finite"):
        CubicRegressionBasis(np.array([0.0, 1.0, np.nan, 2.0]), k=3)
    with pytest.raises(DataError, match="1-D"):
        CubicRegressionBasis(np.ones((4, 2)), k=3)
    basis = CubicRegressionBasis(np.arange(5.0), k=3)
    with pytest.raises(DataError, match="non-finite"):
        basis.predict_matrix(np.array([np.inf]))


def test_ps_errors():
    x = np.linspace(0, 1, 30)
    with pytest.raises(GlammError, match="too small"):
        PSplineBasis(x, k=2)
    with pytest.raises(GlammError, match="too small"):
        PSplineBasis(x, k=3)  # one knot interval: mgcv fails as well
    with pytest.raises(GlammError, match="less than k"):
        PSplineBasis(x, k=5, m=(1, 5))
    with pytest.raises(DataError, match="does not include data"):
        PSplineBasis(x, k=6, knots=np.array([0.1, 1.0]))
    with pytest.raises(GlammError, match="supplied knots"):
        PSplineBasis(x, k=5, knots=np.linspace(-1, 2, 8))
    with pytest.raises(DataError, match="outside the supplied knots"):
        PSplineBasis(x, k=5, knots=np.linspace(-0.1, 1.5, 9))
    with pytest.raises(DataError, match="single value"):
        PSplineBasis(np.ones(10), k=5)
    step = PSplineBasis(x, k=5, m=(-1, 1))
    step.predict_matrix(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(DataError, match="degree 0"):
        step.predict_matrix(np.array([1.5]))


# ------------------------------------------------------------------------------ properties
def test_cr_interpolates_at_knots_and_extrapolates_linearly():
    x = load("cr_skew_k8")["x"]
    basis = CubicRegressionBasis(x, k=8)
    assert_close(basis.predict_matrix(basis.knots), np.eye(8), rtol=1e-13)
    assert_close(basis.predict_matrix(x), basis.X, rtol=0)
    lo, hi = basis.knots[0], basis.knots[-1]
    for end, sign in ((lo, -1.0), (hi, 1.0)):
        t = end + sign * np.array([0.0, 1.0, 2.0, 3.5])
        P = basis.predict_matrix(t)
        slope = (P[1] - P[0])
        assert_close(P[2] - P[1], slope)
        assert_close(P[3] - P[0], 3.5 * slope)
        # the slope is the spline's slope at the end knot
        eps = 1e-6
        inner = basis.predict_matrix(np.array([end, end - sign * eps]))
        assert_close(sign * (inner[0] - inner[1]) / eps, sign * slope, rtol=1e-5)


def test_ps_partition_of_unity_and_linear_extrapolation():
    x = load("ps_skew_k8")["x"]
    basis = PSplineBasis(x, k=8)
    inside = np.linspace(x.min(), x.max(), 57)
    assert_close(basis.predict_matrix(inside).sum(axis=1), np.ones(57), rtol=1e-13)
    assert_close(basis.predict_matrix(x), basis.X, rtol=0)
    lo, hi = basis.knots[3], basis.knots[-4]
    for end, sign in ((lo, -1.0), (hi, 1.0)):
        P = basis.predict_matrix(end + sign * np.array([0.0, 1.0, 2.0]))
        assert_close(P[2] - P[1], P[1] - P[0])
        assert_close(P.sum(axis=1), np.ones(3), rtol=1e-13)
    D = basis.D
    assert D.shape == (6, 8)
    assert_close(basis.S[0], D.T @ D, rtol=0)


def test_column_input_and_int_m():
    x = load("ps_unif400_k5")["x"]
    a = PSplineBasis(x[:, None], k=5, m=2)
    b = PSplineBasis(x, k=5, m=(2, 2))
    c = PSplineBasis(x, k=5, m=(None, None))
    assert_close(a.X, b.X, rtol=0)
    assert_close(c.X, b.X, rtol=0)
    assert a.predict_matrix(x[:7, None]).shape == (7, 5)
    cr = CubicRegressionBasis(x[:, None], k=5)
    assert cr.predict_matrix(np.array([])).shape == (0, 5)

"""Thin plate regression spline basis (glamm.smooths.tprs) against mgcv 1.8-41.

The references in tests/reference/smooths/tprs/ were written by make_tprs.R there (mgcv's
``smooth.construct`` and ``Predict.matrix``); they hold the covariates too, so R is not needed.

Eigenvectors are defined only up to sign, and mgcv's Lanczos routine chooses signs glamm
cannot know, so the penalized columns of X are compared up to sign: a sign matrix D is read
off X, and then X D, D S D, UZ D and the predictions times D must match. The polynomial
null-space columns do not depend on any eigenvector and are compared without sign changes.

Tolerance: 1e-8 relative to the largest element of each matrix. The null-space columns,
shift and knots agree to rounding (1e-12 or exactly). The penalized columns agree to ~1e-11
on most cases but only to ~1e-9 on some (xz_default_k, unif_m3_k12): mgcv stops its Lanczos
iteration at a tolerance of eps^0.7 ~ 1e-11, and eigenvectors are perturbed by that divided
by the gaps between neighbouring eigenvalues. glamm's eigenvectors are the more accurate
ones: mgcv's own X and its Predict.matrix at the same data differ by up to 7e-11 (relative)
on those cases, glamm's by ~1e-14 (checked in test_predict_at_data_matches_mgcv_self_consistency).
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from glamm.smooths.basis import SmoothBasis
from glamm.smooths.tprs import (
    ThinPlateBasis,
    _absorb_constraints,
    _leading_eigenpairs,
    _r_as_character,
    _r_sample,
    mgcv_knot_subsample,
    null_space_dimension,
    polynomial_powers,
    radial_constant,
)

REF_DIR = Path(__file__).parent / "reference" / "smooths" / "tprs"
CASES = sorted(p.stem for p in REF_DIR.glob("*.json") if p.stem != "r_internals")
TOL = 1e-8


@lru_cache(maxsize=None)
def _load(case: str) -> dict:
    raw = json.loads((REF_DIR / f"{case}.json").read_text(encoding="utf-8"))
    out = dict(raw)
    for key in ("x", "x_new", "knots", "X", "S", "UZ", "P", "shift"):
        out[key] = np.atleast_1d(np.array(raw[key], dtype=float))
    return out


@lru_cache(maxsize=None)
def _basis(case: str) -> ThinPlateBasis:
    ref = _load(case)
    return ThinPlateBasis(
        ref["x"], k=ref["k"], m=ref["m"], max_knots=ref["max_knots"], shrink=ref.get("shrink")
    )


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _signs(ours: np.ndarray, ref: np.ndarray, n_pen: int) -> np.ndarray:
    """+-1 per column making ``ours`` line up with ``ref`` (null-space columns: +1)."""
    k = ref.shape[1]
    d = np.ones(k)
    dots = np.sum(ours * ref, axis=0)
    cos = dots / (np.linalg.norm(ours, axis=0) * np.linalg.norm(ref, axis=0))
    # each penalized column must be the reference column or its negative, not a mixture
    assert np.all(np.abs(cos[:n_pen]) > 1 - 1e-6), cos
    d[:n_pen] = np.sign(dots[:n_pen])
    return d


@pytest.mark.parametrize("case", CASES)
def test_dimensions_match_mgcv(case):
    ref, b = _load(case), _basis(case)
    assert isinstance(b, SmoothBasis)
    assert b.k == ref["k"]
    assert b.X.shape == ref["X"].shape
    assert len(b.S) == 1 and b.S[0].shape == ref["S"].shape
    assert b.null_space_dim == ref["null_space_dim"]
    assert b.rank == ref["rank"]
    assert b.UZ.shape == ref["UZ"].shape


@pytest.mark.parametrize("case", CASES)
def test_shift_and_knots_match_mgcv(case):
    ref, b = _load(case), _basis(case)
    # R's mean() is reproduced, so the centring and the knots agree to the last bit
    np.testing.assert_array_equal(b.shift, ref["shift"])
    np.testing.assert_array_equal(b.knots, ref["knots"].reshape(b.knots.shape))


@pytest.mark.parametrize("case", CASES)
def test_basis_and_penalty_match_mgcv(case):
    ref, b = _load(case), _basis(case)
    n_pen = b.k - _null_dim(b)
    D = _signs(b.X, ref["X"], n_pen)
    # polynomial null space: no sign freedom, agrees to rounding
    assert _rel(b.X[:, n_pen:], ref["X"][:, n_pen:]) < 1e-12
    assert _rel(b.X * D, ref["X"]) < TOL
    assert _rel(b.S[0] * np.outer(D, D), ref["S"]) < TOL
    assert _rel(b.UZ * D, ref["UZ"]) < TOL


def _null_dim(b: ThinPlateBasis) -> int:
    """Null space dimension of the unshrunk basis (number of polynomial columns)."""
    return b.powers.shape[0]


@pytest.mark.parametrize("case", CASES)
def test_predict_matrix_matches_mgcv(case):
    ref, b = _load(case), _basis(case)
    n_pen = b.k - _null_dim(b)
    D = _signs(b.X, ref["X"], n_pen)
    x_new = ref["x_new"]
    if ref["d"] == 1:
        x_new = x_new.reshape(-1)  # also exercises the (m,) form
    P = b.predict_matrix(x_new)
    assert P.shape == ref["P"].shape
    assert _rel(P * D, ref["P"]) < TOL


@pytest.mark.parametrize("case", CASES)
def test_predict_at_data_reproduces_X(case):
    ref, b = _load(case), _basis(case)
    assert _rel(b.predict_matrix(ref["x"]), b.X) < 1e-12


def test_predict_at_data_matches_mgcv_self_consistency():
    """Why the tolerance is 1e-8 and not 1e-11: mgcv's X (from its eigenvectors at the knots)
    and its Predict.matrix at the same points disagree more than glamm's do."""
    ref, b = _load("xz_default_k"), _basis("xz_default_k")
    rows = ref["x_new"][-3:]  # make_tprs.R appends the first three data rows
    np.testing.assert_array_equal(rows, ref["x"][:3])
    mgcv_gap = _rel(ref["P"][-3:], ref["X"][:3])
    ours_gap = _rel(b.predict_matrix(rows), b.X[:3])
    assert ours_gap < 1e-12
    assert mgcv_gap > 100 * ours_gap


# ----------------------------------------------------------------------------- pieces
def test_radial_constants():
    assert radial_constant(1, 2) == pytest.approx(1 / 12, rel=1e-15)  # r^3 / 12
    assert radial_constant(1, 1) == pytest.approx(-1 / 2, rel=1e-15)  # -r / 2
    assert radial_constant(2, 2) == pytest.approx(1 / (8 * np.pi), rel=1e-15)  # r^2 log r / 8pi
    assert radial_constant(2, 3) == pytest.approx(-1 / (128 * np.pi), rel=1e-15)
    assert radial_constant(3, 2) == pytest.approx(-1 / (8 * np.pi), rel=1e-15)  # -r / 8pi
    with pytest.raises(ValueError):
        radial_constant(2, 1)


def test_polynomial_powers_in_mgcv_order():
    assert polynomial_powers(1, 2).tolist() == [[0], [1]]
    assert polynomial_powers(2, 2).tolist() == [[0, 0], [1, 0], [0, 1]]
    assert polynomial_powers(2, 3).tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [0, 2]]
    p = polynomial_powers(3, 3)
    assert p.shape == (null_space_dimension(3, 3), 3) == (10, 3)
    assert p[:4].tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]]


def test_defaults_match_mgcv_rules():
    rng = np.random.default_rng(1)
    b1 = ThinPlateBasis(rng.uniform(size=60))
    assert (b1.m, b1.k, b1.null_space_dim) == (2, 10, 2)
    b2 = ThinPlateBasis(rng.uniform(size=(80, 2)))
    assert (b2.m, b2.k, b2.null_space_dim) == (2, 30, 3)
    b3 = ThinPlateBasis(rng.uniform(size=(60, 3)), k=20)
    assert (b3.m, b3.null_space_dim) == (3, 10)
    # 2m <= d: mgcv silently uses the default order
    assert ThinPlateBasis(rng.uniform(size=(60, 2)), k=10, m=1).m == 2
    with pytest.warns(UserWarning, match="increased"):
        b = ThinPlateBasis(rng.uniform(size=30), k=2)
    assert b.k == 3


def test_too_few_unique_values_is_an_error():
    with pytest.raises(ValueError, match="fewer unique"):
        ThinPlateBasis(np.repeat(np.arange(5.0), 4), k=6)
    with pytest.raises(ValueError, match="finite"):
        ThinPlateBasis(np.array([0.0, 1.0, np.nan, 2.0, 3.0]), k=3)


def test_null_space_columns_are_scaled_polynomials():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(50, 2))
    b = ThinPlateBasis(x, k=12)
    xc = x - x.mean(axis=0)
    T = np.column_stack([np.ones(50), xc[:, 0], xc[:, 1]])
    T /= np.sqrt(np.mean(T**2, axis=0))
    np.testing.assert_allclose(b.X[:, -3:], T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.sqrt(np.mean(b.X**2, axis=0)), 1.0, rtol=1e-12)
    assert np.all(b.S[0][:, -3:] == 0) and np.all(b.S[0][-3:, :] == 0)
    # the penalized block is positive definite, and the spline's constraint T'delta = 0 holds
    assert np.all(np.linalg.eigvalsh(b.S[0][:-3, :-3]) > 0)
    Tk = np.column_stack([np.ones(len(b.knots)), b.knots])
    assert np.max(np.abs(Tk.T @ b.UZ[: len(b.knots), :-3])) < 1e-12


def test_shrinkage_penalty():
    rng = np.random.default_rng(3)
    x = rng.uniform(size=80)
    tp = ThinPlateBasis(x, k=8)
    ts = ThinPlateBasis(x, k=8, shrink=0.1)
    np.testing.assert_allclose(ts.X, tp.X, rtol=0, atol=1e-14)
    ev_tp = np.sort(np.linalg.eigvalsh(tp.S[0]))[::-1]
    ev_ts = np.sort(np.linalg.eigvalsh(ts.S[0]))[::-1]
    np.testing.assert_allclose(ev_ts[:6], ev_tp[:6], rtol=1e-10)
    np.testing.assert_allclose(ev_ts[6:], 0.1 * ev_tp[5], rtol=1e-10)
    assert (ts.rank, ts.null_space_dim) == (8, 0)


def test_ties_and_row_order_do_not_change_the_basis():
    rng = np.random.default_rng(4)
    x = np.round(rng.uniform(size=(120, 2)), 1)
    b = ThinPlateBasis(x, k=15)
    perm = rng.permutation(120)
    bp = ThinPlateBasis(x[perm], k=15)
    assert len(b.knots) == len(np.unique(x, axis=0))
    np.testing.assert_allclose(bp.X, b.X[perm], rtol=0, atol=1e-10)
    np.testing.assert_allclose(bp.S[0], b.S[0], rtol=0, atol=1e-10 * np.abs(b.S[0]).max())


def test_pure_knot_case_is_the_full_spline():
    # k = number of unique values: the basis spans the full thin plate spline (no truncation)
    x = np.repeat(np.arange(8.0), 3)
    b = ThinPlateBasis(x, k=8)
    assert b.eigenvalues is None
    # any function of the 8 distinct values is representable: X has rank 8
    assert np.linalg.matrix_rank(b.X) == 8


def test_eigsh_and_dense_eigenpairs_agree():
    rng = np.random.default_rng(5)
    x = np.sort(rng.uniform(size=300))
    E = np.abs(x[:, None] - x[None, :]) ** 3 / 12
    v_sparse, U_sparse = _leading_eigenpairs(E, 12)  # ARPACK path (300 > 4 * 12)
    w, V = np.linalg.eigh(E)
    keep = np.argsort(-np.abs(w))[:12]
    keep = keep[np.argsort(-w[keep])]
    np.testing.assert_allclose(v_sparse, w[keep], rtol=1e-12, atol=1e-14 * np.abs(w).max())
    cos = np.abs(np.sum(U_sparse * V[:, keep], axis=0))
    np.testing.assert_allclose(cos, 1.0, atol=1e-10)
    assert np.all(np.diff(v_sparse) < 0)


def test_absorb_constraints():
    rng = np.random.default_rng(6)
    C = rng.normal(size=(3, 9))
    Q = _absorb_constraints(C)
    np.testing.assert_allclose(Q.T @ Q, np.eye(9), atol=1e-14)
    CQ = C @ Q
    assert np.max(np.abs(CQ[:, :6])) < 1e-14
    # reverse lower triangular: row i has zeros left of column 9 - 1 - i
    assert abs(CQ[0, 7]) < 1e-14 and abs(CQ[0, 6]) < 1e-14 and abs(CQ[1, 6]) < 1e-14
    # sign covariance (why mgcv's basis is matched up to column signs): flipping columns of C
    # by D gives D Q D, so U D diag(v) (D Q D) = U diag(v) Q D
    D = np.ones(9)
    D[[1, 4, 8]] = -1
    Q2 = _absorb_constraints(C * D)
    np.testing.assert_allclose(Q2, D[:, None] * Q * D[None, :], atol=1e-14)


def test_predict_matrix_input_checks():
    rng = np.random.default_rng(7)
    b2 = ThinPlateBasis(rng.uniform(size=(40, 2)), k=10)
    with pytest.raises(ValueError):
        b2.predict_matrix(np.array([0.1, 0.2, 0.3]))
    assert b2.predict_matrix(np.array([[0.1, 0.2]])).shape == (1, 10)
    b1 = ThinPlateBasis(rng.uniform(size=40), k=6)
    np.testing.assert_array_equal(b1.predict_matrix([0.3, 0.5]), b1.predict_matrix([[0.3], [0.5]]))


def test_large_prediction_is_blocked_consistently(monkeypatch):
    import glamm.smooths.tprs as tprs

    rng = np.random.default_rng(8)
    b = ThinPlateBasis(rng.uniform(size=100), k=10)
    xn = rng.uniform(-0.1, 1.1, size=250)
    whole = b.predict_matrix(xn)
    monkeypatch.setattr(tprs, "_PREDICT_BLOCK_ELEMENTS", 100 * 7)
    np.testing.assert_allclose(b.predict_matrix(xn), whole, rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------- knot subsample
@lru_cache(maxsize=None)
def _internals() -> dict:
    return json.loads((REF_DIR / "r_internals.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("i", range(5))
def test_r_sample_reproduced(i):
    s = _internals()["sample"][i]
    ours = _r_sample(int(s["n"]), int(s["size"]), int(s["seed"])) + 1
    assert ours.tolist() == np.atleast_1d(s["result"]).tolist()


def test_r_as_character_reproduced():
    ref = _internals()["as_character"]
    ours = _r_as_character(np.array(ref["values"]))
    assert ours.tolist() == ref["strings"]
    assert _r_as_character(np.array([-0.0, 2.0])).tolist() == ["0", "2"]


def test_knot_subsample_only_above_max_knots():
    rng = np.random.default_rng(9)
    x = rng.uniform(size=(50, 1))
    assert mgcv_knot_subsample(x, 60) is None
    # 50 rows but only 10 unique values: no subsample either
    assert mgcv_knot_subsample(np.repeat(x[:10], 5, axis=0), 20) is None
    sub = mgcv_knot_subsample(x, 20)
    assert sub.shape == (20, 1) and len(np.unique(sub)) == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = ThinPlateBasis(x[:, 0], k=10, max_knots=20)
    assert b.knots.shape == (20, 1)

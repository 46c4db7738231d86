"""Selected entries of ``G^{-1}`` (glamm.linalg.selinv) against the dense inverse of
``Lambda'Z'WZ Lambda + I``, for every model of the catalogue (nested, crossed, vector-valued
first terms, smooths): every entry on the pattern the Laplace gradient reads (pairs of columns
one row of ``Z`` touches) and solves with one and several right-hand sides."""

from __future__ import annotations

import numpy as np
import pytest

from glamm.linalg import selinv
from glamm.linalg.selinv import DenseInverse, SelectedInverse, re_inverse

from .helpers import MODELS, dense_M, make_factor, random_lambdas

NAMES = sorted(MODELS)


@pytest.fixture(params=["dense", "recursive"])
def rest(request, monkeypatch):
    """Both ways of forming Sigma_RR: densely, and recursively wherever the next diagonal
    block is block diagonal (forced by a zero threshold)."""
    if request.param == "recursive":
        monkeypatch.setattr(selinv, "DENSE_REST", 0)
    return request.param


def _setup(name: str, seed: int = 0):
    model = MODELS[name]()
    _, fac = make_factor(model)
    lams = random_lambdas(np.random.default_rng(seed), model)
    fac.update(lams)
    q = sum(t.q for t in model.terms)
    return model, fac, np.linalg.inv(dense_M(model, lams)[:q, :q])


def _row_columns(model) -> np.ndarray:
    """``n x P``: the columns of ``Z`` each row touches (all terms, all columns per level)."""
    cols, start = [], 0
    for t in model.terms:
        for a in range(t.p):
            cols.append(start + t.refs * t.p + a)
        start += t.q
    return np.column_stack(cols)


@pytest.mark.parametrize("name", NAMES)
def test_entries_on_the_gradient_pattern(name, rest):
    model, fac, inv = _setup(name)
    sel = re_inverse(fac)
    assert isinstance(sel, SelectedInverse)
    C = _row_columns(model)
    for a in range(C.shape[1]):
        for b in range(C.shape[1]):
            np.testing.assert_allclose(sel.entries(C[:, a], C[:, b]), inv[C[:, a], C[:, b]],
                                       rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_solve(name, rest):
    model, fac, inv = _setup(name, seed=3)
    sel = re_inverse(fac)
    rng = np.random.default_rng(1)
    q = inv.shape[0]
    r = rng.normal(size=q)
    np.testing.assert_allclose(sel.solve(r), inv @ r, rtol=1e-9, atol=1e-11)
    R = rng.normal(size=(q, 3))
    np.testing.assert_allclose(sel.solve(R), inv @ R, rtol=1e-9, atol=1e-11)


def test_recursion_is_used_for_nested_terms(monkeypatch):
    monkeypatch.setattr(selinv, "DENSE_REST", 0)
    _, fac, _ = _setup("nested")
    sel = re_inverse(fac)
    assert isinstance(sel, SelectedInverse) and isinstance(sel.S_RR, SelectedInverse)


def test_dense_inverse_interface():
    inv = np.array([[2.0, 0.5], [0.5, 1.0]])
    d = DenseInverse(inv)
    np.testing.assert_array_equal(d.entries(np.array([0, 1]), np.array([1, 1])), [0.5, 1.0])
    np.testing.assert_array_equal(d.solve(np.array([1.0, 0.0])), [2.0, 0.5])

"""Block preconditioned conjugate gradients and the SLQ log-determinant
(glamm.linalg.krylov) against dense linear algebra."""

from __future__ import annotations

import numpy as np
import pytest

from glamm.linalg.krylov import block_pcg, rademacher_probes, slq_quadratic_forms


def _spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n // 4))
    return G @ G.T + np.diag(rng.uniform(0.5, 3.0, n))


def test_block_pcg_solves_every_column():
    S = _spd(300, 1)
    B = np.random.default_rng(2).standard_normal((300, 3))
    d = np.diag(S)
    res = block_pcg(lambda V: S @ V, lambda V: V / d[:, None], B, tol=1e-12)
    np.testing.assert_allclose(res.x, np.linalg.solve(S, B), rtol=1e-9, atol=1e-10)
    assert np.all(res.residual <= 1e-12)
    # a warm start at the solution needs no iteration; a zero column stays zero
    again = block_pcg(lambda V: S @ V, lambda V: V / d[:, None], B, x0=res.x, tol=1e-10)
    assert again.iterations == 0
    B[:, 1] = 0.0
    zero = block_pcg(lambda V: S @ V, lambda V: V / d[:, None], B, tol=1e-12)
    assert np.all(zero.x[:, 1] == 0.0)


def test_probes_are_seeded_rademacher():
    Z = rademacher_probes(50, 4, seed=9)
    assert set(np.unique(Z)) == {-1.0, 1.0}
    np.testing.assert_array_equal(Z, rademacher_probes(50, 4, seed=9))
    assert not np.array_equal(Z, rademacher_probes(50, 4, seed=10))


def test_slq_is_exact_when_the_krylov_space_is_exhausted():
    S = _spd(12, 3)
    Z = rademacher_probes(12, 5, seed=1)
    quad = slq_quadratic_forms(lambda V: S @ V, Z, steps=30)
    w, U = np.linalg.eigh(S)
    logS = (U * np.log(w)) @ U.T
    np.testing.assert_allclose(quad, np.einsum("ik,ij,jk->k", Z, logS, Z), rtol=1e-8)


def test_slq_log_determinant_within_its_standard_error():
    S = _spd(1000, 4)
    d = np.sqrt(np.diag(S))
    M = S / d[:, None] / d[None, :]
    exact = np.linalg.slogdet(M)[1]
    Z = rademacher_probes(1000, 40, seed=5)
    quad = slq_quadratic_forms(lambda V: M @ V, Z, steps=30)
    est, se = quad.mean(), quad.std(ddof=1) / np.sqrt(quad.shape[0])
    assert abs(est - exact) < 4 * se
    assert se < 0.05 * abs(exact)


def test_slq_refuses_an_indefinite_operator():
    A = np.diag(np.r_[np.ones(5), -1.0])
    with pytest.raises(np.linalg.LinAlgError):
        slq_quadratic_forms(lambda V: A @ V, rademacher_probes(6, 2, seed=0), steps=10)


@pytest.mark.parametrize("parallel_work", [0, 10**12])
def test_row_sparse_product_compiled_and_numpy(monkeypatch, parallel_work):
    import scipy.sparse as sp

    from glamm import jit
    from glamm.lmm import approximate
    from glamm.lmm.approximate import RowSparse

    monkeypatch.setattr(approximate, "PARALLEL_WORK", parallel_work)

    M = sp.random(300, 200, density=0.05, random_state=1, format="csc")
    X = np.random.default_rng(1).standard_normal((200, 7))
    want = M.toarray() @ X
    try:
        for flag in (True, False):
            jit.use_kernels(flag)
            np.testing.assert_allclose(RowSparse(M) @ X, want, rtol=1e-12, atol=1e-12)
            Y = M.toarray() @ X
            np.testing.assert_allclose(RowSparse(M.T) @ Y, M.toarray().T @ Y, rtol=1e-12,
                                       atol=1e-12)
    finally:
        jit.use_kernels(None)

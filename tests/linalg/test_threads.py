"""BLAS threading (glamm.linalg.threads): the limits are applied inside the context managers
and lifted afterwards."""

from __future__ import annotations

import contextlib

import pytest
from threadpoolctl import threadpool_info

from glamm.linalg import threads


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_single_threaded_limits_blas():
    if not _blas_threads():
        pytest.skip("no BLAS library seen by threadpoolctl")
    before = _blas_threads()
    with threads.single_threaded():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_single_threaded_none_leaves_blas_alone():
    assert isinstance(threads.single_threaded(None), contextlib.nullcontext)


def test_large_block_threads():
    if not _blas_threads():
        pytest.skip("no BLAS library seen by threadpoolctl")
    with threads.single_threaded():
        with threads.large_block_threads():
            assert all(n <= threads.LARGE_THREADS for n in _blas_threads())
        assert set(_blas_threads()) == {1}
    assert 1 <= threads.LARGE_THREADS <= 2


def test_dense_factor_threads_by_size(monkeypatch):
    """Small blocks keep the caller's threads, large ones get up to LARGE_THREADS, and blocks
    above MAX_THREADED_BLOCK one thread whatever the caller set (OpenBLAS's threaded dpotrf
    crashes there)."""
    if not _blas_threads():
        pytest.skip("no BLAS library seen by threadpoolctl")
    monkeypatch.setattr(threads, "LARGE_THREADS", 2)
    before = _blas_threads()
    with threads.dense_factor_threads(10):
        assert _blas_threads() == before
    with threads.single_threaded(2):
        with threads.dense_factor_threads(threads.MAX_THREADED_BLOCK + 1):
            assert set(_blas_threads()) == {1}
        with threads.dense_factor_threads(threads.LARGE_BLOCK):
            assert all(n <= 2 for n in _blas_threads())
    assert _blas_threads() == before


def test_large_dense_block_does_not_crash():
    """Factor a 16,000-row dense block through the blocked factor's kernel in a subprocess
    with two BLAS threads set by the caller: OpenBLAS's threaded dpotrf segfaults there on
    the reference machine (checked: exit code 139), glamm factors it with one thread (about
    20 s, 2 GB; in the default run because the crash kills the user's process)."""
    import subprocess
    import sys

    code = """
import numpy as np
from threadpoolctl import threadpool_limits
from glamm.linalg.kernels import _Chol
n = 16000
rng = np.random.default_rng(0)
A = rng.standard_normal((n, 64))
D = A @ A.T
D[np.diag_indices(n)] += np.sqrt(n) + 1.0
with threadpool_limits(2, user_api="blas"):
    _Chol(D).run([])
print("ok", float(D[n - 1, n - 1]) > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "ok True"

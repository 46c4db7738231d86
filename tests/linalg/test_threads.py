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

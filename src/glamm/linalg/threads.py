"""BLAS threading for the fit.

The numeric phase is a chain of many small operations and a few large dense factorizations.
On the 2-core reference machine OpenBLAS threads cost more than they save on the small ones
(two threads throughout made InstEval three times slower than one), while the Cholesky
factorization of a large dense block still gains from a second thread. So a fit runs with one
BLAS thread (:func:`single_threaded`) and only dense factorizations of at least
:data:`LARGE_BLOCK` rows use :data:`LARGE_THREADS` threads, up to
:data:`MAX_THREADED_BLOCK` rows, beyond which OpenBLAS's threaded Cholesky crashes
(:func:`dense_factor_threads`, used by every dense factorization of the blocked factor).
"""

from __future__ import annotations

import contextlib
import os

from threadpoolctl import ThreadpoolController

#: dense blocks with at least this many rows are factored with several BLAS threads
LARGE_BLOCK = 512
#: ... and above this many rows with one thread again: OpenBLAS's threaded ``dpotrf``
#: (0.3.30 in SciPy, 0.3.31 in NumPy) segfaults on the reference machine with two threads
#: from about 16,000 rows (it ran at 14,000; ../shared/design/scale.md, section 2.2), and
#: one thread loses little there (10,000 rows: 7.0 s against 6.2 s)
MAX_THREADED_BLOCK = 12_000
#: number of BLAS threads for large dense factorizations
LARGE_THREADS = max(1, min(2, os.cpu_count() or 1))

_controller: ThreadpoolController | None = None


def _ctl() -> ThreadpoolController:
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def single_threaded(threads: int | None = 1):
    """Context manager limiting BLAS to ``threads`` threads (``None``: leave unchanged)."""
    if threads is None:
        return contextlib.nullcontext()
    return _ctl().limit(limits=threads, user_api="blas")


def large_block_threads():
    """Context manager for the factorization of a large dense block."""
    return _ctl().limit(limits=LARGE_THREADS, user_api="blas")


def dense_factor_threads(n: int):
    """Context manager for a dense factorization (or inversion) of an ``n x n`` block: the
    threads as they are below :data:`LARGE_BLOCK` rows (one inside a fit), up to
    :data:`LARGE_THREADS` up to :data:`MAX_THREADED_BLOCK` rows, and one thread above it,
    whatever the caller set (the threaded factorization crashes there)."""
    if n < LARGE_BLOCK:
        return contextlib.nullcontext()
    if n > MAX_THREADED_BLOCK:
        return _ctl().limit(limits=1, user_api="blas")
    return _ctl().limit(limits=LARGE_THREADS, user_api="blas")

"""BLAS threading for the fit.

The numeric phase is a chain of many small operations and a few large dense factorizations.
On the 2-core reference machine OpenBLAS threads cost more than they save on the small ones
(two threads throughout made InstEval three times slower than one), while the Cholesky
factorization of a large dense block still gains from a second thread. So a fit runs with one
BLAS thread (:func:`single_threaded`) and only dense factorizations of at least
:data:`LARGE_BLOCK` rows use :data:`LARGE_THREADS` threads (:func:`large_block_threads`).
"""

from __future__ import annotations

import contextlib
import os

from threadpoolctl import ThreadpoolController

#: dense blocks with at least this many rows are factored with several BLAS threads
LARGE_BLOCK = 512
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

"""Optimizer trace lines for ``verbose=`` fits (lme4's ``verbose``): while a fit runs inside
:func:`verbose_output`, every objective evaluation of the derivative-free optimizers and every
Newton step prints one line to standard output. Printing is kept here, apart from the
numerics, which only call :func:`report`. Not public API."""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator

import numpy as np

#: the verbosity of the fit running in this context (0: silent)
_LEVEL: contextvars.ContextVar[int] = contextvars.ContextVar("glamm_verbose", default=0)


@contextlib.contextmanager
def verbose_output(level: int | bool) -> Iterator[None]:
    """Print trace lines while the block runs: ``1`` (or ``True``) every evaluation's value,
    ``2`` also its parameters."""
    token = _LEVEL.set(int(level))
    try:
        yield
    finally:
        _LEVEL.reset(token)


def active() -> bool:
    return _LEVEL.get() > 0


def report(stage: str, count: int, value: float, x: np.ndarray | None = None) -> None:
    """One trace line (a no-op unless inside :func:`verbose_output`)."""
    level = _LEVEL.get()
    if level <= 0:
        return
    line = f"{stage} {count:5d}: {value:.10g}"
    if level > 1 and x is not None:
        line += "  " + np.array2string(np.asarray(x), precision=6, max_line_width=200)
    print(line, file=sys.stdout, flush=True)

"""What a running fit shows of itself, kept apart from the numerics (which only call
:func:`report`):

- trace lines for ``verbose=`` fits (lme4's ``verbose``): while a fit runs inside
  :func:`verbose_output`, every objective evaluation of the derivative-free optimizers and
  every Newton step prints one line to standard output;
- a progress indicator for long fits (:func:`fit_progress`): when a terminal or a notebook is
  attached and a fit has run for :data:`PROGRESS_DELAY` seconds, a tqdm counter of the
  evaluations with the current objective; never in scripts or tests.

Not public API."""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from collections.abc import Iterator
from typing import Any

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
    """Whether :func:`report` has anything to do (trace lines or a progress indicator)."""
    return _LEVEL.get() > 0 or _PROGRESS.get() is not None


#: seconds a fit runs before its progress indicator appears
PROGRESS_DELAY = 3.0


def is_interactive() -> bool:
    """A terminal on standard error, or a notebook kernel."""
    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return bool(tty or "ipykernel" in sys.modules)


class _Progress:
    """The evaluations of one fit; a tqdm counter once it has run for a while."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.count = 0
        self.bar: Any = None

    def tick(self, value: float) -> None:
        self.count += 1
        if self.bar is None:
            # (the clock is read every 16 evaluations only: they can take microseconds)
            if self.count % 16 or time.perf_counter() - self.t0 < PROGRESS_DELAY:
                return
            try:
                from tqdm.auto import tqdm
            except ImportError:   # (a dependency; a broken install shows nothing)
                self.count = -(1 << 60)
                return
            self.bar = tqdm(desc="fitting", unit=" evaluations", total=None, leave=False)
            self.bar.update(self.count)
        else:
            self.bar.update(1)
        if self.count % 8 == 0:
            self.bar.set_postfix_str(f"objective {value:.8g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_PROGRESS: contextvars.ContextVar[_Progress | None] = contextvars.ContextVar(
    "glamm_progress", default=None)


@contextlib.contextmanager
def fit_progress(enabled: bool | None = None) -> Iterator[None]:
    """Show a progress indicator if the fit inside takes long (``enabled``: default when a
    terminal or notebook is attached; a fit inside another one adds none)."""
    if _PROGRESS.get() is not None or not (is_interactive() if enabled is None else enabled):
        yield
        return
    prog = _Progress()
    token = _PROGRESS.set(prog)
    try:
        yield
    finally:
        _PROGRESS.reset(token)
        prog.close()


def report(stage: str, count: int, value: float, x: np.ndarray | None = None) -> None:
    """One trace line (a no-op unless inside :func:`verbose_output`), and a tick of the
    progress indicator (a no-op unless inside an interactive :func:`fit_progress`)."""
    prog = _PROGRESS.get()
    if prog is not None:
        prog.tick(value)
    level = _LEVEL.get()
    if level <= 0:
        return
    line = f"{stage} {count:5d}: {value:.10g}"
    if level > 1 and x is not None:
        line += "  " + np.array2string(np.asarray(x), precision=6, max_line_width=200)
    print(line, file=sys.stdout, flush=True)

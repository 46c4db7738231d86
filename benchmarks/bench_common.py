"""What the reference benchmarks share: the command line (``--repeat``, ``--only``), the
machine line, and the table header. Not part of glamm."""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def parse_args(doc: str | None, with_r: str | None = None) -> argparse.Namespace:
    """``--repeat N`` (default 5) and ``--only NAME ...`` (default: every model); with
    ``with_r`` (its help text) also the flag ``--with-r``."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="models to run (default: all)")
    if with_r:
        ap.add_argument("--with-r", action="store_true", help=with_r)
    return ap.parse_args()


def r_seconds(script: str, what: str) -> float | None:
    """Run an R script that prints a time in seconds last; ``None`` (and a note naming
    ``what``) without ``Rscript`` or when the script fails."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.R"
        path.write_text(script)
        out = subprocess.run(["Rscript", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  ({what} run failed: {out.stderr.strip()[-200:]})")
        return None
    return float(out.stdout.split()[-1])


def print_header(columns: list[tuple[str, int]]) -> None:
    """The machine, then a header of ``(title, width)`` columns (the first left-aligned) and
    a rule."""
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    (first, w0), *rest = columns
    header = f"{first:{w0}s}" + "".join(f" {t:>{w}s}" for t, w in rest)
    print(header)
    print("-" * len(header))


def timed(call: Callable[..., Any], repeat: int, *args: Any, **kwargs: Any
          ) -> tuple[float, Any]:
    """``call(*args, **kwargs)`` once untimed (warm-up), then ``repeat`` times, warnings
    silenced: the median wall time in seconds and the last result."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = call(*args, **kwargs)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = call(*args, **kwargs)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), result

"""What the reference benchmarks share: the command line (``--repeat``, ``--only``), the
machine line, and the table header. Not part of glamm."""

from __future__ import annotations

import argparse
import platform

import numpy as np


def parse_args(doc: str | None) -> argparse.Namespace:
    """``--repeat N`` (default 5) and ``--only NAME ...`` (default: every model)."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="models to run (default: all)")
    return ap.parse_args()


def print_header(columns: list[tuple[str, int]]) -> None:
    """The machine, then a header of ``(title, width)`` columns (the first left-aligned) and
    a rule."""
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    (first, w0), *rest = columns
    header = f"{first:{w0}s}" + "".join(f" {t:>{w}s}" for t, w in rest)
    print(header)
    print("-" * len(header))

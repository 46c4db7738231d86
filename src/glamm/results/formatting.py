"""R-style number formatting for the printed summaries (:mod:`glamm.results.summary`).

Numbers are formatted the way R's ``format()`` does for a column: one common number of
decimals, chosen so that each value keeps about ``digits`` significant digits; p-values,
significance stars and abbreviated names as R prints them; and plain text tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _decimals_needed(x: float, digits: int) -> int:
    """Decimals needed to show ``x`` to ``digits`` significant digits, trailing zeros dropped."""
    if x == 0.0 or not math.isfinite(x):
        return 0
    text = f"{abs(x):.{digits - 1}e}"  # d.ddde+XX
    mantissa, exponent = text.split("e")
    sig = mantissa.replace(".", "").rstrip("0")
    nsig = max(len(sig), 1)
    return max(0, nsig - 1 - int(exponent))


def format_column(values: Sequence[float] | np.ndarray, digits: int = 4) -> list[str]:
    """Format numbers with one common number of decimals, like R's ``format()`` on a column.

    Parameters
    ----------
    values : Sequence[float] or ndarray
        the numbers (``NaN`` prints as ``NaN``, infinities as ``Inf`` / ``-Inf``).
    digits : int, optional
        significant digits each value should keep (default 4). The common number of
        decimals is the largest any value needs, capped so that it does not exceed
        ``max(digits, decimals needed by the largest value)``; this keeps a column such as
        ``-3.9416 ... 0.0289`` from growing extra decimals for its smallest entry.

    Returns
    -------
    list of str
        Not padded. Columns whose values are huge (``>= 1e15``) or would need more
        than 12 decimals are written in scientific notation.
    """
    arr = np.asarray(list(values), dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return [_special(v) for v in arr]
    need = [_decimals_needed(float(v), digits) for v in finite]
    largest = float(finite[np.argmax(np.abs(finite))])
    dec = min(max(need), max(digits, _decimals_needed(largest, digits)))
    if np.max(np.abs(finite)) >= 1e15 or dec > 12:
        return [f"{v:.{digits - 1}e}" if math.isfinite(v) else _special(v) for v in arr]
    out = []
    for v in arr:
        if not math.isfinite(v):
            out.append(_special(v))
            continue
        s = f"{v:.{dec}f}"
        if float(s) == 0.0 and s.startswith("-"):
            s = s[1:]  # no "-0.00"
        out.append(s)
    return out


def _special(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    return "Inf" if v > 0 else "-Inf"


def format_number(x: float, digits: int = 5) -> str:
    """One number with about ``digits`` significant digits (see :func:`format_column`).

    Parameters
    ----------
    x : float
        the number.
    digits : int, optional
        significant digits (default 5).
    """
    return format_column([x], digits)[0]


def _pvalue(p: float) -> str:
    """R's ``format.pval`` style: ``< 2.2e-16`` for tiny values, 4 significant digits."""
    if not math.isfinite(p):
        return ""
    if p < 2.2e-16:
        return "< 2.2e-16"
    if p < 1e-4:
        return f"{p:.3e}"
    return f"{p:.4g}"


def _stars(p: float) -> str:
    if not math.isfinite(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def abbreviate(name: str, minlength: int = 6) -> str:
    """Shorten a coefficient name for column headers, in the spirit of R's ``abbreviate``.

    Characters are removed from the right: first lower-case vowels (never the first
    character), then other lower-case letters, until the name has ``minlength`` characters;
    a name still too long is truncated. ``"(Intercept)"`` becomes ``"(Intr)"``.

    Parameters
    ----------
    name : str
        the text to shorten.
    minlength : int, optional
        target length (default 6).
    """
    chars = list(name)
    for wanted in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in wanted:
                del chars[i]
            i -= 1
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


def _table(
    header: list[str], rows: list[list[str]], align: list[str], indent: str = ""
) -> list[str]:
    """Lay out a text table; ``align`` holds ``"l"`` or ``"r"`` per column."""
    widths = [max([len(header[j])] + [len(r[j]) for r in rows]) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)]
        return (indent + " ".join(parts)).rstrip()

    return [line(header)] + [line(r) for r in rows]


def _numeric_cells(values: Sequence[float] | np.ndarray, digits: int) -> list[str]:
    """A numeric column as strings of equal width (right-justified)."""
    cells = format_column(values, digits)
    w = max((len(c) for c in cells), default=0)
    return [c.rjust(w) for c in cells]


def format_factor_cost(cost) -> str:
    """The predicted cost of the exact LMM fit (:class:`glamm.linalg.cost.FactorCost`): one
    line per block of the factor and per operation's constants, then the totals."""
    rows = [[b.label, b.kind, f"{b.shape[0]:,} x {b.shape[1]:,}", f"{b.nbytes / 2**20:,.1f}"]
            for b in cost.blocks]
    lines = ["Exact fit (blocked Cholesky factor), predicted:"]
    lines += _table(["block", "kind", "size", "MiB"], rows, ["l", "l", "r", "r"], indent="  ")
    lines.append(f"memory: {cost.memory_bytes / 2**30:.3g} GiB (peak, with "
                 f"{cost.build_bytes / 2**30:.3g} GiB while it is built)")
    lines.append(f"time per evaluation: {cost.seconds_per_evaluation:.3g} s "
                 f"({cost.dense_flops:.3g} dense flops at {cost.flop_rate / 1e9:.3g} GFLOP/s, "
                 f"{cost.pair_entries:.3g} pair-list entries)")
    return "\n".join(lines)

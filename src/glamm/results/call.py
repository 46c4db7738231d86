"""What a fitting function was called with, so that a result can be refitted with changes
(``result.update(...)``, R's ``update``), and its ``verbose=`` trace switched on around the
fit (:mod:`glamm.optim.trace`). Not public API."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from ..errors import GlammError


def records_call(fn: Callable) -> Callable:
    """Decorate a fitting function: its result remembers the function and the arguments
    (``result._call``; the data by reference, as R's call refers to its data), and a
    ``verbose`` argument turns the optimizer trace on while it runs."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        bound = sig.bind(*args, **kwargs)
        arguments = dict(bound.arguments)
        from ..optim.trace import fit_progress, verbose_output

        level = arguments.get("verbose", 0)
        # (verbose output replaces the progress indicator)
        with fit_progress(False if level else None), verbose_output(level):
            result = fn(*args, **kwargs)
        for name, p in sig.parameters.items():
            if p.kind is inspect.Parameter.VAR_KEYWORD and name in arguments:
                arguments.update(arguments.pop(name))
        try:
            result._call = (wrapper, arguments)
        except AttributeError:   # (a result type that cannot hold it)
            pass
        return result

    return wrapper


def _sides(formula: str) -> tuple[str, str]:
    if "~" not in formula:
        raise GlammError(f"a formula needs '~', got {formula!r}")
    lhs, rhs = formula.split("~", 1)
    return lhs.strip(), rhs.strip()


def updated_formula(old: str, new: str) -> str:
    """R's ``update.formula`` for the common cases: a ``.`` on either side of ``new`` stands
    for that side of ``old`` (``". ~ . + x"``, ``"~ . - Days"``); an empty left side keeps
    the old response."""
    old_lhs, old_rhs = _sides(old)
    lhs, rhs = _sides(new)
    if lhs in ("", "."):
        lhs = old_lhs
    rhs = re.sub(r"(?<![\w.])\.(?![\w.])", lambda _: old_rhs, rhs)
    return f"{lhs} ~ {_drop_removed(rhs)}"


def _top_level_terms(rhs: str) -> list[tuple[str, str]]:
    """``(sign, term)`` pairs of a right-hand side split at the ``+`` and ``-`` outside
    brackets."""
    out: list[tuple[str, str]] = []
    depth, start, sign = 0, 0, "+"
    for i, ch in enumerate(rhs):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in "+-" and depth == 0:
            # (a sign inside a number's exponent, 1e-3, is not a separator)
            if ch == "-" and i > 0 and re.search(r"\d[eE]$", rhs[:i]):
                continue
            out.append((sign, rhs[start:i].strip()))
            sign, start = ch, i + 1
    out.append((sign, rhs[start:].strip()))
    return [(sg, t) for sg, t in out if t]


def _drop_removed(rhs: str) -> str:
    """Apply ``- term`` removals textually (the terms compared without spaces): glamm's
    formula parser takes random-effects terms as ``+`` terms only."""
    terms = _top_level_terms(rhs)
    if not any(sg == "-" for sg, _ in terms):
        return rhs
    removed = {t.replace(" ", "") for sg, t in terms if sg == "-" and t not in ("1", "0")}
    kept: list[str] = []
    for sg, t in terms:
        key = t.replace(" ", "")
        if sg == "-":
            if t in ("1", "0"):
                kept.insert(0, "0")   # no intercept
            continue
        if key not in removed and t not in kept:
            kept.append(t)
    return " + ".join(kept) if kept else "1"


def update(result, formula: str | None = None, **changes: Any):
    """Refit ``result``'s model with a new formula (``.`` for the old sides) and other
    arguments changed (``data=``, ``reml=``, ``family=``, ...)."""
    call = getattr(result, "_call", None)
    if call is None:
        raise GlammError("this result does not record how it was fitted, so it cannot be "
                         "updated; call the fitting function again")
    fn, arguments = call
    args = dict(arguments)
    if formula is not None:
        args["formula"] = updated_formula(args["formula"], formula)
    args.update(changes)
    return fn(**args)

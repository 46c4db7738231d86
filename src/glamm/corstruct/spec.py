"""The ``correlation=`` argument of :func:`glamm.gls`, parsed as data (never evaluated).

Grammar: ``name(form[, nugget=True][, metric="euclidean"])`` with ``form`` one of ``1``,
``x``, ``x + y + ...`` optionally followed by ``| g`` (``g``, ``g1/g2`` or ``g1:g2``: the
groups are the combinations), and an optional leading ``~`` (nlme's ``form = ~ x | g``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

#: structure names and the nlme constructors they correspond to
STRUCTURES = {
    "ar1": "corAR1",
    "car1": "corCAR1",
    "cs": "corCompSymm",
    "symm": "corSymm",
    "exp": "corExp",
    "gau": "corGaus",
    "lin": "corLin",
    "ratio": "corRatio",
    "spher": "corSpher",
}
SPATIAL = ("exp", "gau", "lin", "ratio", "spher")
METRICS = ("euclidean", "maximum", "manhattan")

_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*$", re.S)
_NAME = re.compile(r"^(?:`([^`]+)`|([A-Za-z_.][A-Za-z0-9_.]*))$")
_OPTION = re.compile(r"^\s*([A-Za-z_]+)\s*=\s*(.+?)\s*$", re.S)
_TRUE = {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}


@dataclass(frozen=True)
class CorrelationSpec:
    """A parsed ``correlation=`` string.

    Attributes
    ----------
    name : str
        The structure (a key of :data:`STRUCTURES`).
    covariates : tuple of str
        Position, time or coordinate columns; empty for ``1`` (the order of the rows within
        each group, as nlme's ``~ 1``).
    groups : tuple of str
        Grouping columns (their combinations are the groups); empty for one group.
    nugget : bool
        Spatial structures: a nugget effect.
    metric : str
        Spatial structures: ``"euclidean"`` (default), ``"maximum"`` or ``"manhattan"``.
    text : str
        The string as given.
    """

    name: str
    covariates: tuple[str, ...]
    groups: tuple[str, ...]
    nugget: bool
    metric: str
    text: str

    @property
    def nlme_class(self) -> str:
        return STRUCTURES[self.name]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every data column the structure reads."""
        return self.covariates + self.groups


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and quotes."""
    parts, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _names(part: str, sep: str, what: str, text: str) -> tuple[str, ...]:
    out = []
    for piece in re.split(sep, part):
        m = _NAME.match(piece.strip())
        if not m:
            raise FormulaError(f"correlation {text!r}: {what} must be column names, got "
                               f"{piece.strip()!r}")
        out.append(m.group(1) or m.group(2))
    return tuple(out)


def _option(key: str, value: str, text: str) -> tuple[str, object]:
    value = value.strip().strip("\"'")
    if key == "nugget":
        if value.lower() not in _TRUE:
            raise FormulaError(f"correlation {text!r}: nugget must be True or False, got "
                               f"{value!r}")
        return key, _TRUE[value.lower()]
    if key == "metric":
        full = [m for m in METRICS if len(value) >= 3 and m.startswith(value.lower())]
        if not full:
            raise FormulaError(f"correlation {text!r}: metric must be one of "
                               f"{', '.join(METRICS)}, got {value!r}")
        return key, full[0]
    raise FormulaError(f"correlation {text!r}: unknown option {key!r} (options: nugget, "
                       "metric)")


def parse_correlation(text: str) -> CorrelationSpec:
    """Parse ``text``, e.g. ``"ar1(Days | Subject)"`` or ``"exp(x + y, nugget=True)"``.

    Parameters
    ----------
    text : str
        The structure as written.

    Returns
    -------
    CorrelationSpec
        Its name, columns and options.

    Raises
    ------
    FormulaError
        Not a call of a known structure, a covariate or group that is not a column name, or
        an unknown or misspelled option.
    """
    if not isinstance(text, str):
        raise FormulaError(f"correlation must be a string such as 'ar1(Days | Subject)', got "
                           f"{type(text).__name__}")
    m = _CALL.match(text)
    if not m:
        raise FormulaError(f"correlation {text!r}: write a structure call such as "
                           "'ar1(Days | Subject)' or 'exp(x + y, nugget=True)'")
    name = m.group(1).lower()
    if name not in STRUCTURES:
        raise FormulaError(f"correlation {text!r}: unknown structure {m.group(1)!r}; choose "
                           f"one of {', '.join(STRUCTURES)}")
    parts = _split_top(m.group(2))
    form = parts[0].lstrip("~").strip()
    options: dict[str, object] = {"nugget": False, "metric": "euclidean"}
    for opt in parts[1:]:
        o = _OPTION.match(opt)
        if not o:
            raise FormulaError(f"correlation {text!r}: options are written key=value, got "
                               f"{opt!r}")
        key, value = _option(o.group(1), o.group(2), text)
        options[key] = value
    if options["nugget"] and name not in SPATIAL:
        raise FormulaError(f"correlation {text!r}: only the spatial structures "
                           f"({', '.join(SPATIAL)}) have a nugget")
    if "|" in form:
        cov_part, grp_part = (s.strip() for s in form.split("|", 1))
        groups = _names(grp_part, r"[/:]", "groups", text)
    else:
        cov_part, groups = form, ()
    if cov_part in ("", "1"):
        covariates: tuple[str, ...] = ()
    else:
        covariates = _names(cov_part, r"\+", "covariates", text)
    if name in ("ar1", "car1", "symm") and len(covariates) > 1:
        raise FormulaError(f"correlation {text!r}: {name} takes one time or position "
                           f"covariate, got {len(covariates)}")
    return CorrelationSpec(name, covariates, groups, bool(options["nugget"]),
                           str(options["metric"]), text)

"""Split an lme4-style formula into its fixed part and its random-effects terms.

``y ~ x + (1 + x | g) + (1 | a/b) + (x || h)`` becomes the fixed formula ``y ~ x`` and a list of
:class:`RandomTermSpec`, one per random-effects term *after* lme4's expansions:

- ``(e || g)`` (uncorrelated) becomes ``(1 | g)`` (if ``e`` has an intercept) plus one
  ``(0 + t | g)`` per other term ``t`` of ``e`` (lme4's ``expandDoubleVerts``);
- ``(e | a/b)`` becomes ``(e | a)`` and ``(e | b:a)`` (lme4's names); ``a/b/c`` gives ``a``,
  ``b:a``, ``c:(b:a)``;
- ``(e | a:b)`` groups by the interaction of ``a`` and ``b`` (levels that occur in the data).

The fixed part is handed to formulaic unchanged, so everything formulaic understands works there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from formulaic import Formula

from ..errors import FormulaError


@dataclass(frozen=True)
class RandomTermSpec:
    """One random-effects term ``(expr | group)`` after expansion.

    Attributes
    ----------
    expr : str
        The left-hand side as a formulaic right-hand side, e.g. ``"1 + Days"`` or ``"0 + Days"``.
    group : str
        The grouping factor as written, with ``:`` for interactions, e.g. ``"batch:cask"``.
    factors : tuple[str, ...]
        The data columns whose interaction forms the grouping factor, e.g. ``("batch", "cask")``.
    """

    expr: str
    group: str
    factors: tuple[str, ...]
    #: a covariance structure written around the term, glmmTMB's ``ar1(0 + f | g)``
    #: (``""``: lme4's unstructured default), and its further arguments as written
    #: (``("d=2",)``, ``("K",)``, ``("kappa=1.5",)``)
    structure: str = ""
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.structure:
            extra = "".join(f", {a}" for a in self.args)
            return f"{self.structure}({self.expr} | {self.group}{extra})"
        return f"({self.expr} | {self.group})"


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed right-hand side and random-effects terms."""

    formula: str
    response: str
    fixed_rhs: str
    random: tuple[RandomTermSpec, ...]

    @property
    def fixed_formula(self) -> str:
        return f"{self.response} ~ {self.fixed_rhs}"


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` at occurrences of the one-character ``sep`` outside brackets and backticks."""
    parts, depth, start, in_tick = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == "`":
            in_tick = not in_tick
        elif in_tick:
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' in formula part {text!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in formula part {text!r}")
    if in_tick:
        raise FormulaError(f"unclosed backtick in formula part {text!r}")
    parts.append(text[start:])
    return parts


def _strip_outer_parens(text: str) -> str | None:
    """Return the inside of ``(...)`` if the whole of ``text`` is one parenthesized group."""
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return None
    return text[1:-1]


def _find_bar(inner: str) -> tuple[str, str, bool] | None:
    """Locate a top-level ``|`` or ``||`` inside a parenthesized term."""
    depth, in_tick = 0, False
    for i, ch in enumerate(inner):
        if ch == "`":
            in_tick = not in_tick
        elif in_tick:
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            if inner[i + 1 : i + 2] == "|":
                return inner[:i], inner[i + 2 :], False
            return inner[:i], inner[i + 1 :], True
    return None


def _group_factors(group: str) -> list[tuple[str, tuple[str, ...]]]:
    """Expand a grouping expression into ``(name, factors)`` pairs (``a/b`` -> ``a``, ``a:b``)."""
    group = group.strip()
    if not group:
        raise FormulaError("empty grouping factor after '|'")
    if "+" in group or "*" in group:
        raise FormulaError(
            f"grouping factor {group!r} is not supported: use '/' for nesting or ':' for "
            "interactions, and separate terms such as (1 | a) + (1 | b) for crossed factors"
        )
    nested = [p.strip() for p in group.split("/")]
    out: list[tuple[str, tuple[str, ...]]] = []
    acc: list[str] = []
    name = ""
    for k, part in enumerate(nested):
        if not part:
            raise FormulaError(f"malformed nesting in grouping factor {group!r}")
        cols = [_clean_name(f) for f in part.split(":")]
        acc.extend(cols)
        if k == 0:
            name = ":".join(cols)
        else:
            # lme4's names: a/b -> "b:a", a/b/c -> "c:(b:a)" (innermost first)
            inner = ":".join(cols)
            name = f"{inner}:({name})" if ":" in name else f"{inner}:{name}"
        factors = tuple(reversed(acc)) if k > 0 else tuple(acc)
        out.append((name, factors))
    return out


def _clean_name(name: str) -> str:
    name = name.strip()
    if name.startswith("`") and name.endswith("`") and len(name) >= 2:
        name = name[1:-1]
    if not name:
        raise FormulaError("empty name in grouping factor")
    return name


def _expand_uncorrelated(expr: str) -> list[str]:
    """Terms of ``expr`` as separate left-hand sides for ``||``."""
    try:
        terms = [str(t) for t in Formula(expr)]
    except Exception as exc:  # formulaic raises several types
        raise FormulaError(f"cannot parse random-effects expression {expr!r}: {exc}") from exc
    out = []
    for t in terms:
        out.append("1" if t == "1" else f"0 + {t}")
    return out


#: covariance structures that may be written around a random-effects term (glmmTMB's names)
STRUCTURE_NAMES = ("us", "diag", "cs", "homcs", "ar1", "toep", "ou", "exp", "gau", "mat", "rr",
                   "propto")
_CALL = re.compile(r"^\s*\(?\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\((.*)\)\s*\)?\s*$", re.S)


def _structured_term(term: str) -> list[RandomTermSpec] | None:
    """``name(expr | group[, args])`` as glmmTMB writes a structured term (also inside one
    pair of parentheses), or ``None`` if ``term`` is not one (a call without a top-level bar,
    such as ``exp(x)`` in the fixed effects, is not)."""
    inner_term = _strip_outer_parens(term) or term
    m = _CALL.match(inner_term)
    if m is None:
        return None
    name, body = m.group(1), m.group(2)
    if _strip_outer_parens(inner_term) is not None and not inner_term.startswith(name):
        return None
    try:
        pieces = _split_top_level(body, ",")
    except FormulaError:
        return None
    bar = _find_bar(pieces[0])
    if bar is None:
        return None
    if name not in STRUCTURE_NAMES:
        raise FormulaError(
            f"unknown covariance structure {name!r} in {term!r}; the structures are "
            + ", ".join(STRUCTURE_NAMES))
    lhs, group, correlated = bar
    if not correlated:
        raise FormulaError(f"{term!r}: a structure describes correlated effects; write "
                           f"{name}(e | g) with one '|' (or diag(e | g) for independent ones)")
    lhs = lhs.strip()
    if not lhs:
        raise FormulaError(f"random-effects term {term!r} has nothing on the left of '|'")
    args = tuple(a.strip() for a in pieces[1:] if a.strip())
    return [RandomTermSpec(expr=lhs, group=gname, factors=factors, structure=name, args=args)
            for gname, factors in _group_factors(group)]


def parse_formula(formula: str) -> ParsedFormula:
    """Split ``formula`` into response, fixed right-hand side and random-effects terms.

    Parameters
    ----------
    formula : str
        The lme4-style formula.

    Returns
    -------
    ParsedFormula
        Response, fixed right-hand side and random-effects terms.

    Raises
    ------
    FormulaError
        A missing ``~``, unbalanced brackets, an empty side, or a malformed bar term.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    sides = _split_top_level(formula, "~")
    if len(sides) != 2:
        raise FormulaError(f"formula {formula!r} must have exactly one '~' (response ~ terms)")
    response, rhs = sides[0].strip(), sides[1].strip()
    if not response:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if not rhs:
        raise FormulaError(f"formula {formula!r} has nothing on the right of '~'")

    fixed: list[str] = []
    random: list[RandomTermSpec] = []
    for raw in _split_top_level(rhs, "+"):
        term = raw.strip()
        if not term:
            raise FormulaError(f"empty term (a stray '+') in formula {formula!r}")
        structured = _structured_term(term)
        if structured is not None:
            random.extend(structured)
            continue
        inner = _strip_outer_parens(term)
        bar = _find_bar(inner) if inner is not None else None
        if bar is None:
            if "|" in term and not term.startswith("`"):
                raise FormulaError(
                    f"random-effects term {term!r} must be wrapped in parentheses, e.g. (1 | g)"
                )
            fixed.append(term)
            continue
        lhs, group, correlated = bar
        lhs = lhs.strip()
        if not lhs:
            raise FormulaError(f"random-effects term {term!r} has nothing on the left of '|'")
        exprs = [lhs] if correlated else _expand_uncorrelated(lhs)
        for gname, factors in _group_factors(group):
            for e in exprs:
                random.append(RandomTermSpec(expr=e, group=gname, factors=factors))

    fixed_rhs = " + ".join(fixed) if fixed else "1"
    if fixed and all(t.strip() in {"0", "-1"} for t in fixed):
        fixed_rhs = "0"
    return ParsedFormula(
        formula=formula, response=response, fixed_rhs=fixed_rhs, random=tuple(random)
    )

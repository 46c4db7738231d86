"""Smooth terms in a formula: ``s(x)``, ``s(x, k=10, bs="cr")``, ``s(x, by=f)``, ``s(x, z)``,
and tensor products ``t2(x, z, k=c(4, 6), bs="cr")`` (glamm.smooths.t2).

The terms are taken out of the fixed part before formulaic sees it; the arguments follow
mgcv's ``s()`` (``k``, ``bs``, ``by``, ``fx``, ``m``) and are read with Python's own parser
(``ast``), never evaluated.

Not public API.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from ..errors import FormulaError

#: basis types glamm builds (mgcv's names); "re" is mgcv's random-effect smooth, which glamm
#: turns into the equivalent bar term (``s(g, bs="re")`` is ``(1 | g)``)
BASES = ("tp", "ts", "cr", "cs", "ps", "re")


@dataclass(frozen=True)
class SmoothSpec:
    """One ``s(...)`` term as written.

    Attributes
    ----------
    terms : tuple[str, ...]
        covariate column names (one for a 1-D smooth).
    k : int or tuple of int
        basis dimension (-1: mgcv's default for the basis); for ``t2`` one per margin.
    bs : str or tuple of str
        basis type (``"tp"`` default, ``"ts"``, ``"cr"``, ``"cs"``, ``"ps"``); for ``t2`` one
        per margin (default ``"cr"``).
    by : str or None
        name of a factor column (one smooth per level) or a numeric column (varying
        coefficient), or ``None``.
    fx : bool
        unpenalized (a fixed regression spline of ``k`` columns).
    m : int, tuple of int or None
        penalty order (``None``: the basis default); for ``t2`` one per margin.
    text : str
        the term as written.
    factor : str, tuple of str or None
        the latent variable a smooth on the latent scale is on (galamm's ``sl(x, factor=f)``,
        which :func:`glamm.formula.latent.rewrite_latent_smooths` writes as
        ``s(x, factor=f)``; only :func:`glamm.galamm` has latent variables), else ``None``;
        with a factor ``by``, a tuple gives each level's smooth its own latent variable, in
        the order of the levels (galamm's ``sl(x, by = g, factor = c("f1", "f2"))``).
    kind : str
        ``"s"``, or ``"t2"`` for a tensor-product smooth (mgcv's ``t2()``).
    margins : tuple of (int, str, int or None)
        a ``t2`` term's margins: basis dimension, basis type and penalty order per
        covariate (empty for ``s``, whose ``k``, ``bs`` and ``m`` a ``t2`` term does not use).
    """

    terms: tuple[str, ...]
    k: int = -1
    bs: str = "tp"
    by: str | None = None
    fx: bool = False
    m: int | None = None
    text: str = ""
    factor: str | tuple[str, ...] | None = None
    kind: str = "s"
    margins: tuple[tuple[int, str, int | None], ...] = ()

    @property
    def base_label(self) -> str:
        """``s(x,z)`` or ``t2(x,z)``."""
        return f"{self.kind}({','.join(self.terms)})"

    @property
    def label(self) -> str:
        """mgcv's label: ``s(x0)``, ``s(x,z)``, ``t2(x,z)``; a ``by`` variable adds ``:by``,
        the factor of a smooth on the latent scale ``:factor`` (galamm's ``s(x):z:loading``)."""
        base = self.base_label
        return self.with_factor(base if self.by is None else f"{base}:{self.by}")

    def with_factor(self, label: str, factor: str | None = None) -> str:
        """``label`` with galamm's ``:factor`` suffix of a smooth on the latent scale
        (``factor``, default the spec's own when it names one latent variable)."""
        if factor is None and isinstance(self.factor, str):
            factor = self.factor
        return label if factor is None else f"{label}:{factor}"


def is_smooth_term(term: str) -> bool:
    """True if ``term`` (one ``+``-separated term of the fixed part) is ``s(...)`` or
    ``t2(...)``."""
    t = term.strip()
    return (t.startswith("s(") or t.startswith("t2(")) and t.endswith(")")


_BACKTICK = re.compile(r"`([^`]+)`")


def _column_name(node, quoted: dict[str, str]) -> str | None:
    """A column name written in the term: a plain or dotted name (R's ``x.a``) or a
    backtick-quoted one (replaced by a placeholder before parsing)."""
    if isinstance(node, ast.Name):
        return quoted.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        head = _column_name(node.value, quoted)
        return None if head is None else f"{head}.{node.attr}"
    return None


def parse_smooth(term: str) -> SmoothSpec:
    """Parse one ``s(...)`` term; errors name the term and the problem."""
    text = term.strip()
    quoted: dict[str, str] = {}

    def placeholder(mt: re.Match) -> str:
        key = f"__glamm_q{len(quoted)}__"
        quoted[key] = mt.group(1)
        return key

    try:
        node = ast.parse(_BACKTICK.sub(placeholder, text), mode="eval").body
    except SyntaxError as exc:
        raise FormulaError(f"cannot parse smooth term {text!r}: {exc.msg}") from None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("s", "t2")):
        raise FormulaError(f"{text!r} is not a smooth term s(...) or t2(...)")
    terms = []
    for a in node.args:
        name = _column_name(a, quoted)
        if name is None:
            raise FormulaError(f"smooth term {text!r}: the covariates must be column names "
                               f"(got {ast.unparse(a)!r}); create transformed columns first")
        terms.append(name)
    if not terms:
        raise FormulaError(f"smooth term {text!r} names no covariate")
    opts: dict = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise FormulaError(f"smooth term {text!r}: **arguments are not supported")
        opts[kw.arg] = kw.value
    if node.func.id == "t2":
        return _parse_t2(text, tuple(terms), opts)
    unknown = set(opts) - {"k", "bs", "by", "fx", "m", "factor"}
    if unknown:
        raise FormulaError(f"smooth term {text!r}: unknown argument(s) {sorted(unknown)}; "
                           "s() takes k, bs, by, fx and m")
    k = _literal(opts, "k", text, int, -1)
    bs = _literal(opts, "bs", text, str, "tp")
    fx = _literal(opts, "fx", text, bool, False)
    m = _literal(opts, "m", text, int, None)
    by = None
    if "by" in opts:
        v = opts["by"]
        by = _column_name(v, quoted)
        if by is None and isinstance(v, ast.Constant) and isinstance(v.value, str):
            by = v.value
        if by is None:
            raise FormulaError(f"smooth term {text!r}: by= must name a column")
    factor = _factor_literal(opts, text)
    if bs not in BASES:
        raise FormulaError(f"smooth term {text!r}: basis bs={bs!r} is not available; use one "
                           f"of {', '.join(BASES)}")
    if len(terms) > 1 and bs not in ("tp", "ts", "re"):
        raise FormulaError(f"smooth term {text!r}: bs={bs!r} is one-dimensional; use bs='tp' "
                           "for a smooth of several covariates")
    if len(set(terms)) != len(terms):
        raise FormulaError(f"smooth term {text!r} repeats a covariate")
    if factor is not None and bs == "re":
        raise FormulaError(f"smooth term {text!r}: a random-effect smooth (bs='re') cannot be "
                           "on the latent scale of a factor")
    return SmoothSpec(terms=tuple(terms), k=k, bs=bs, by=by, fx=fx, m=m, text=text,
                      factor=factor)


#: mgcv's t2() defaults: cubic regression margins of 5 basis functions
T2_DEFAULT_BS, T2_DEFAULT_K = "cr", 5


def _parse_t2(text: str, terms: tuple[str, ...], opts: dict) -> SmoothSpec:
    """A ``t2(x, z, ...)`` term: ``k``, ``bs`` and ``m`` each a scalar (every margin) or one
    per margin (a list, tuple or R's ``c(...)``); ``full = TRUE``, ``by`` and ``fx`` are not
    available."""
    unknown = set(opts) - {"k", "bs", "m", "factor", "full"}
    if unknown:
        raise FormulaError(f"smooth term {text!r}: argument(s) {sorted(unknown)} are not "
                           "available for t2(); it takes k, bs, m (and factor= in galamm)")
    if len(terms) < 2:
        raise FormulaError(f"smooth term {text!r}: t2() needs at least two covariates")
    if len(set(terms)) != len(terms):
        raise FormulaError(f"smooth term {text!r} repeats a covariate")
    if "full" in opts and _literal(opts, "full", text, bool, False):
        raise FormulaError(f"smooth term {text!r}: t2(..., full=TRUE) is not available")
    d = len(terms)
    k = _per_margin(opts, "k", text, int, T2_DEFAULT_K, d)
    bs = _per_margin(opts, "bs", text, str, T2_DEFAULT_BS, d)
    m = _per_margin(opts, "m", text, int, None, d)
    bad = [b for b in bs if b not in BASES or b == "re"]
    if bad:
        raise FormulaError(f"smooth term {text!r}: margin basis bs={bad[0]!r} is not "
                           f"available; use one of {', '.join(b for b in BASES if b != 're')}")
    k = tuple(T2_DEFAULT_K if kj == -1 else kj for kj in k)
    if any(kj < 3 for kj in k):
        raise FormulaError(f"smooth term {text!r}: each margin needs k >= 3 (got {list(k)})")
    factor = _factor_literal(opts, text)
    if isinstance(factor, tuple):
        raise FormulaError(f"smooth term {text!r}: a t2 smooth is on one latent factor")
    return SmoothSpec(terms=terms, bs=T2_DEFAULT_BS, text=text, factor=factor, kind="t2",
                      margins=tuple(zip(k, bs, m)))


def sequence_items(node) -> list | None:
    """The elements of a list, a tuple or R's ``c(...)`` in a formula, else ``None``."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return list(node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "c" \
            and not node.keywords:
        return list(node.args)
    return None


def _per_margin(opts: dict, name: str, text: str, kind: type, default, d: int) -> tuple:
    """A t2() argument given once for all margins or once per margin (a list, a tuple or
    R's ``c(...)``), as a tuple of ``d`` values."""
    items = sequence_items(opts.get(name))
    if items is None:
        return (_literal(opts, name, text, kind, default),) * d
    values = tuple(_literal({name: a}, name, text, kind, default) for a in items)
    if len(values) != d:
        raise FormulaError(f"smooth term {text!r}: {name}= has {len(values)} values for {d} "
                           "margins")
    return values


def _factor_literal(opts: dict, text: str) -> str | tuple[str, ...] | None:
    """``factor=``: a string, or several (a list, a tuple or R's ``c(...)``) for the levels of
    a factor ``by``."""
    if "factor" not in opts:
        return None
    node = opts["factor"]
    items = sequence_items(node)
    if items is None:
        return _literal(opts, "factor", text, str, None)
    if not items or not all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                            for a in items):
        raise FormulaError(f"smooth term {text!r}: factor= must be a string or a list of "
                           f"strings, got {ast.unparse(node)!r}")
    names = tuple(a.value for a in items)   # type: ignore[attr-defined]
    return names[0] if len(names) == 1 else names


def _literal(opts: dict, name: str, text: str, kind: type, default):
    if name not in opts:
        return default
    node = opts[name]
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
            and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) \
            and not isinstance(node.operand.value, bool):
        value = -node.operand.value   # k=-1: mgcv's "default"
    if kind is bool and isinstance(node, ast.Name) and node.id in ("TRUE", "FALSE", "T", "F"):
        value = node.id.startswith("T")
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormulaError(f"smooth term {text!r}: {name}= must be a {kind.__name__} literal, "
                           f"got {ast.unparse(node)!r}")
    return value


def split_smooths(rhs: str) -> tuple[str, list[SmoothSpec]]:
    """Take the ``s(...)`` terms out of a fixed right-hand side; returns the remaining
    right-hand side (``"1"`` if nothing is left) and the smooth specifications in order."""
    from ..formula.bars import _split_top_level

    rest: list[str] = []
    minus: list[str] = []
    smooths: list[SmoothSpec] = []
    for t in _split_top_level(rhs, "+"):
        t = t.strip()
        if not _mentions_smooth(t):
            if t:
                rest.append(t)
            continue
        if is_smooth_term(t):
            smooths.append(parse_smooth(t))
            continue
        # "s(x) - 1": a smooth followed by removed terms
        pieces = [q.strip() for q in _split_top_level(t, "-")]
        if len(pieces) > 1 and is_smooth_term(pieces[0]) and \
                not any(_mentions_smooth(q) for q in pieces[1:]):
            smooths.append(parse_smooth(pieces[0]))
            minus.extend(q for q in pieces[1:] if q)
            continue
        if re.search(r"(?<![\w.])te\(", t):
            raise FormulaError(f"te() tensor-product smooths ({t!r}) are not available; t2(x, z) "
                               "fits a tensor-product smooth in the mixed-model form, s(x, z) a "
                               "thin plate smooth of several covariates")
        raise FormulaError(
            f"the smooth in {t!r} must be a term of its own, added with '+' (not inside an "
            "interaction, product or parentheses); for one smooth per level of a factor f use "
            "s(x, by=f)")
    labels = [s.label for s in smooths]
    dup = {lab for lab in labels if labels.count(lab) > 1}
    if dup:
        raise FormulaError(f"smooth term(s) {sorted(dup)} appear more than once")
    out = " + ".join(rest) if rest else "1"
    return out + "".join(f" - {q}" for q in minus), smooths


def _mentions_smooth(text: str) -> bool:
    """True if ``text`` calls ``s(...)``, ``te(...)`` or ``t2(...)`` somewhere."""
    return re.search(r"(?<![\w.])(s|te|t2)\(", text) is not None


def as_random_term(spec: SmoothSpec):
    """mgcv's random-effect smooth as a bar term: ``s(g, bs="re")`` is ``(1 | g)`` and
    ``s(x, g, bs="re")`` is ``(0 + x | g)`` (random slopes without an intercept; the last
    covariate is the grouping factor, as mgcv reads it)."""
    from ..formula.bars import RandomTermSpec

    if spec.by is not None or spec.fx or spec.k != -1:
        raise FormulaError(f"smooth term {spec.text!r}: bs='re' takes no k, by or fx")
    group = spec.terms[-1]
    expr = "1" if len(spec.terms) == 1 else "0 + " + " + ".join(spec.terms[:-1])
    return RandomTermSpec(expr=expr, group=group, factors=(group,))

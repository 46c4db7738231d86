"""Formulas are data, not code: the whitelist every formula expression passes before it is
evaluated.

The parts of a formula that are evaluated are Python expressions: the response, the argument of
``offset(...)``, the two arguments of a ``cbind(...)`` response, and the factors formulaic
evaluates in the fixed part and on the left of a bar (``I(x**2)``, ``np.log(x)``,
``C(f, contr.sum)``). Each is parsed with :mod:`ast` and walked against a whitelist before
anything is evaluated:

- names of data columns, bare or in backticks (`` `my col` ``);
- int, float and bool constants (no strings, no other constants);
- arithmetic (``+ - * / // % **``), comparisons (``== != < <= > >=``), ``and``, ``or``,
  ``not`` and the element-wise ``& | ~``;
- calls of :data:`FUNCTIONS` by name, or of :data:`NUMPY_FUNCTIONS` as ``np.f`` /
  ``numpy.f``, with positional arguments and the keyword arguments listed in
  :data:`KEYWORDS`; the contrasts of ``C(f, ...)`` are ``contr.treatment``, ``contr.sum``,
  ``contr.poly`` or ``Treatment``, ``Sum``, ``Poly``;
- ``offset(...)`` only as a term of the fixed part and ``cbind(...)`` only as the response of
  a GLMM (glamm takes both apart itself).

Nothing else: no attribute access beyond ``np.f`` and ``contr.c``, no subscripts, no names
starting with ``__``, no lambdas, comprehensions, conditional expressions, assignments,
starred or ``**`` arguments, strings or f-strings. A rejected expression raises
:class:`~glamm.errors.FormulaError` naming the offending part.

Smooth terms ``s(...)`` are never evaluated: :mod:`glamm.smooths.spec` reads their arguments
from the syntax tree. Grouping factors are column names, looked up in the data, never
evaluated.

Defence in depth: :func:`formula_context` is the evaluation context glamm hands formulaic. It
holds the allowed functions and shadows every Python builtin (formulaic evaluates with empty
globals, to which Python adds the builtins) and every formulaic transform outside the whitelist
with a stub that raises, so even an expression that slipped past the check could not reach
``__import__``, ``open`` or ``eval`` by name.

Not public API.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
import types
from collections.abc import Collection, Mapping
from typing import Any, NoReturn

import numpy as np
from formulaic import Formula
from formulaic.formula import SimpleFormula
from formulaic.transforms import TRANSFORMS

from ..errors import FormulaError

#: functions a formula may call by name (numpy's for the numeric ones, formulaic's for the rest)
FUNCTIONS: tuple[str, ...] = ("I", "C", "factor", "log", "log1p", "log2", "log10", "exp",
                              "sqrt", "abs", "scale", "center", "poly")
#: functions a formula may call as ``np.<name>`` or ``numpy.<name>``
NUMPY_FUNCTIONS: tuple[str, ...] = ("log", "log1p", "log2", "log10", "exp", "sqrt", "abs")
#: names under which numpy's functions are reached
NUMPY_MODULES: tuple[str, ...] = ("np", "numpy")
#: contrasts of ``C(f, ...)``: R's names (``contr.sum``) and patsy's (``Sum``)
CONTRASTS: dict[str, str] = {"treatment": "Treatment", "sum": "Sum", "poly": "Poly"}
#: keyword arguments each function accepts (none if not listed)
KEYWORDS: dict[str, tuple[str, ...]] = {
    "C": ("contrasts",),
    "poly": ("degree", "raw"),
    "scale": ("center", "scale", "ddof"),
}

_ALLOWED_TEXT = (
    ", ".join(f"{f}()" for f in FUNCTIONS)
    + f" (numpy's also as np.{NUMPY_FUNCTIONS[0]}() etc.), offset() as a term of the fixed "
    "part, cbind() as the response of a binomial GLMM and s() as a smooth term"
)
_BINARY_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
               ast.BitAnd, ast.BitOr)
_UNARY_OPS = (ast.UAdd, ast.USub, ast.Not, ast.Invert)
_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_BACKTICK = re.compile(r"`([^`]*)`")
#: what a rejected construct is called in the message
_CONSTRUCTS: dict[type, str] = {
    ast.Lambda: "lambda expressions", ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.IfExp: "conditional expressions (a if c else b)",
    ast.NamedExpr: "assignments (:=)", ast.Subscript: "subscripts (x[...])",
    ast.Starred: "starred arguments (*x)", ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings", ast.List: "lists", ast.Tuple: "tuples",
    ast.Set: "sets", ast.Dict: "dictionaries", ast.Slice: "slices", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield",
}


# --------------------------------------------------------------------------- the check
class _ExpressionCheck:
    """Walk one parsed expression; every node type not handled here is rejected.

    Parameters
    ----------
    shown : str
        The expression as written (named in error messages).
    where : str
        The formula part it comes from, e.g. ``"response"`` or ``"fixed-effects part"``.
    columns : Collection[str]
        Column names of the data.
    quoted : dict[str, str]
        Placeholder identifier -> column name, for names written in backticks.
    """

    def __init__(self, shown: str, where: str, columns: Collection[str],
                 quoted: dict[str, str]) -> None:
        self.shown = shown
        self.where = where
        self.columns = columns
        self.quoted = quoted

    # --- errors ---------------------------------------------------------------------------
    def text(self, node: ast.AST) -> str:
        """The source of ``node``, with backticked names as written."""
        out = ast.unparse(node)
        for key, name in self.quoted.items():
            out = out.replace(key, f"`{name}`")
        return out

    def reject(self, problem: str) -> NoReturn:
        raise FormulaError(f"formula: {problem} (in the {self.where} {self.shown!r})")

    def unknown_column(self, name: str) -> NoReturn:
        raise FormulaError(
            f"unknown column {name!r} in the {self.where} ({self.shown!r}); the data has "
            f"columns {', '.join(map(str, self.columns))}"
        )

    # --- nodes ----------------------------------------------------------------------------
    def visit(self, node: ast.AST) -> None:
        """Check one value-producing node and, recursively, its children."""
        if isinstance(node, ast.Name):
            self.visit_name(node)
        elif isinstance(node, ast.Constant):
            self.visit_constant(node)
        elif isinstance(node, ast.BinOp):
            self.visit_binop(node)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, _UNARY_OPS):
                self.reject(f"the operator in `{self.text(node)}` is not allowed")
            self.visit(node.operand)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.visit(value)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if not isinstance(op, _COMPARE_OPS):
                    self.reject(f"the comparison in `{self.text(node)}` is not allowed; use "
                                "==, !=, <, <=, > or >=")
            self.visit(node.left)
            for value in node.comparators:
                self.visit(value)
        elif isinstance(node, ast.Call):
            self.visit_call(node)
        elif isinstance(node, ast.Attribute):
            self.visit_attribute(node)
        else:
            what = _CONSTRUCTS.get(type(node), f"{type(node).__name__} expressions")
            self.reject(f"{what} are not allowed in formulas: `{self.text(node)}`")

    def visit_name(self, node: ast.Name) -> None:
        if node.id in self.quoted:
            name = self.quoted[node.id]
            if name not in self.columns:
                self.unknown_column(name)
            return
        if node.id.startswith("__"):
            self.reject(f"the name `{node.id}` is not allowed (names starting with '__' are "
                        "Python internals, not columns)")
        if node.id in self.columns:
            return
        if node.id in FUNCTIONS or node.id in ("offset", "cbind", "s", "te"):
            self.reject(f"the function `{node.id}` must be called, e.g. {node.id}(x)")
        self.unknown_column(node.id)

    def visit_constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, (bool, int, float)):
            return
        if isinstance(node.value, (str, bytes)):
            self.reject(f"strings such as {node.value!r} are not allowed here (quote a column "
                        "name in backticks, e.g. `my col`)")
        self.reject(f"the constant `{self.text(node)}` is not allowed (numbers only)")

    def visit_binop(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.BitXor):
            self.reject(f"`^` in `{self.text(node)}` is not allowed: formulas use Python syntax "
                        "inside I(): write x**2, not x^2")
        if not isinstance(node.op, _BINARY_OPS):
            self.reject(f"the operator in `{self.text(node)}` is not allowed; use + - * / // "
                        "% ** & |")
        self.visit(node.left)
        self.visit(node.right)

    def visit_attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, (ast.Attribute, ast.Call, ast.Subscript)):
            self.visit(node.value)      # name the innermost offender (`np.lib` in np.lib.x)
        text = self.text(node)
        if isinstance(node.value, ast.Name) and node.value.id in NUMPY_MODULES \
                and node.attr in NUMPY_FUNCTIONS:
            self.reject(f"the function `{text}` must be called, e.g. {text}(x)")
        hint = ""
        if isinstance(node.value, ast.Name) and text in self.columns:
            hint = f"; quote the column name in backticks: `{text}`"
        self.reject(f"attribute access `{text}` is not allowed (only calls "
                    f"np.<function>(...) of {', '.join(NUMPY_FUNCTIONS)}){hint}")

    def function_name(self, func: ast.AST) -> str:
        """The whitelisted name of a called function (``log``, ``np.log``), or an error."""
        if isinstance(func, ast.Name) and func.id in FUNCTIONS:
            return func.id
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id in NUMPY_MODULES and func.attr in NUMPY_FUNCTIONS:
            return func.attr
        if isinstance(func, ast.Name) and func.id == "offset":
            self.reject("offset() must be a term of its own in the fixed part, added with '+', "
                        "e.g. y ~ x + offset(np.log(n))")
        if isinstance(func, ast.Name) and func.id == "cbind":
            self.reject("cbind() is only allowed as the whole response of a binomial GLMM, "
                        "e.g. cbind(successes, failures) ~ x")
        if isinstance(func, ast.Name) and func.id in ("s", "te"):
            self.reject(f"the smooth {func.id}() must be a term of its own in the fixed part")
        if isinstance(func, ast.Attribute) and \
                isinstance(func.value, (ast.Call, ast.Attribute, ast.Subscript)):
            self.visit(func.value)      # name the innermost offender: `__import__` in
                                        # __import__('os').system(...), `np.os` in np.os.f()
        self.reject(f"`{self.text(func)}` is not an allowed function; allowed are "
                    f"{_ALLOWED_TEXT}")

    def visit_call(self, node: ast.Call) -> None:
        name = self.function_name(node.func)
        for i, arg in enumerate(node.args):
            if name == "C" and i == 1:
                self.visit_contrasts(arg)
            else:
                self.visit(arg)
        for kw in node.keywords:
            if kw.arg is None:
                self.reject(f"**arguments are not allowed: `{self.text(node)}`")
            if kw.arg not in KEYWORDS.get(name, ()):
                accepted = ", ".join(KEYWORDS.get(name, ())) or "none"
                self.reject(f"{name}() has no keyword argument {kw.arg!r} here (accepted: "
                            f"{accepted})")
            if name == "C" and kw.arg == "contrasts":
                self.visit_contrasts(kw.value)
            else:
                self.visit(kw.value)

    def visit_contrasts(self, node: ast.AST) -> None:
        """The contrasts argument of ``C(f, ...)``: ``contr.sum`` or ``Sum`` (and the
        treatment and polynomial ones)."""
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "contr" and node.attr in CONTRASTS:
            return
        if isinstance(node, ast.Name) and node.id in CONTRASTS.values():
            return
        names = ", ".join([f"contr.{c}" for c in CONTRASTS] + list(CONTRASTS.values()))
        self.reject(f"the contrasts `{self.text(node)}` of C() are not available; use one of "
                    f"{names}")


def _parse(expr: str, where: str) -> tuple[ast.expr, dict[str, str]]:
    """Parse ``expr`` as one Python expression, backticked names replaced by placeholder
    identifiers; returns the tree and placeholder -> column name."""
    quoted: dict[str, str] = {}
    salt = ""
    while f"_glamm_q{salt}" in expr:
        salt += "_"

    def placeholder(match: re.Match) -> str:
        key = f"_glamm_q{salt}{len(quoted)}"
        quoted[key] = match.group(1)
        return key

    try:
        tree = ast.parse(_BACKTICK.sub(placeholder, expr).strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(
            f"formula: cannot parse the {where} {expr!r} ({exc.msg}); formula expressions use "
            "Python syntax, with names that are not Python identifiers in backticks"
        ) from None
    return tree.body, quoted


def check_expression(expr: str, where: str, columns: Collection[str], *,
                     cbind: bool = False) -> None:
    """Check one formula expression (a response, an ``offset(...)`` argument, a factor) against
    the whitelist, without evaluating it.

    Parameters
    ----------
    expr : str
        The expression as written.
    where : str
        The formula part, for messages (``"response"``, ``"offset"``, ...).
    columns : Collection[str]
        Column names of the data; other names are unknown columns.
    cbind : bool
        Accept ``cbind(a, b)`` as the whole expression (the response of a binomial GLMM).

    Raises
    ------
    FormulaError
        The expression cannot be parsed, uses something outside the whitelist (naming it), or
        names a column the data does not have.
    """
    if not isinstance(expr, str):
        raise FormulaError(f"formula: the {where} must be a string, got {type(expr).__name__}")
    columns = _column_set(columns)
    if expr.strip() in columns:     # a column, whatever its name: looked up, not evaluated
        return
    node, quoted = _parse(expr, where)
    check = _ExpressionCheck(expr.strip(), where, columns, quoted)
    if cbind and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "cbind" and not node.keywords:
        for arg in node.args:
            check.visit(arg)
        return
    check.visit(node)


def _column_set(columns: Collection[Any]) -> dict[str, None]:
    """The column names as strings, in data order, with constant-time membership."""
    return columns if isinstance(columns, dict) else dict.fromkeys(map(str, columns))


def checked_terms(rhs: str, where: str, columns: Collection[str]) -> Formula:
    """Parse a right-hand side with formulaic's parser (which evaluates nothing) and check every
    factor formulaic would evaluate; return the parsed formula, to be materialized as it is.

    Parameters
    ----------
    rhs : str
        A formulaic right-hand side, e.g. ``"1 + x + I(x**2)"``.
    where : str
        The formula part, for messages.
    columns : Collection[str]
        Column names of the data.

    Returns
    -------
    formulaic.Formula
        The parsed right-hand side (checked).

    Raises
    ------
    FormulaError
        ``rhs`` cannot be parsed, a factor fails :func:`check_expression`, or a name is not a
        column of the data.
    """
    return _checked_terms(rhs, where, tuple(_column_set(columns)))


@functools.lru_cache(maxsize=256)
def _checked_terms(rhs: str, where: str, column_names: tuple[str, ...]) -> Formula:
    """:func:`checked_terms` for hashable arguments, cached: a fit parses each part twice
    (checked before anything is evaluated, then materialized) and refits repeat it; the
    parsed formula is not changed by formulaic's materialization."""
    columns = _column_set(column_names)
    try:
        formula = Formula(rhs, _context={"__formulaic_variables_available__": sorted(columns)})
    except Exception as exc:  # formulaic raises several types
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))   # strip terminal colour codes
        raise FormulaError(f"cannot parse the {where} {rhs!r}: {msg}") from None
    if not isinstance(formula, SimpleFormula):     # a structured formula: a '|' or '~' in the part
        raise FormulaError(f"formula: '|' and '~' are not allowed in the {where} {rhs!r} (a "
                           "random-effects term goes in parentheses, e.g. (1 | g))")
    for term in formula:
        for factor in term.factors:
            method = factor.eval_method.value
            if method == "literal":
                continue
            if method == "lookup":
                if factor.expr not in columns:
                    _ExpressionCheck(rhs, where, columns, {}).unknown_column(factor.expr)
                continue
            check_expression(factor.expr, where, columns)
    return formula


# --------------------------------------------------------------------------- the context
class _Unavailable:
    """Stands in for a Python builtin or formulaic transform in formulaic's evaluation context:
    calling it, or reading an attribute from it, raises :class:`FormulaError`."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise FormulaError(f"formula: `{self._name}` is not available in formulas")

    def __getattr__(self, attr: str) -> NoReturn:
        raise FormulaError(f"formula: `{self._name}` is not available in formulas")

    def __repr__(self) -> str:
        return f"<{self._name}: not available in formulas>"


def _factor(data: Any) -> Any:
    """R's ``factor(x)``: ``x`` as a categorical variable (formulaic's ``C(x)``, treatment
    contrasts, levels kept for new data)."""
    return TRANSFORMS["C"](data)


def _build_context() -> Mapping[str, Any]:
    numeric = {name: getattr(np, name) for name in NUMPY_FUNCTIONS}
    numpy_ns = types.SimpleNamespace(**numeric)
    contrasts = {name: getattr(TRANSFORMS["contr"], name) for name in CONTRASTS}
    blocked = set(dir(builtins)) | {"__builtins__"} | set(TRANSFORMS)
    context: dict[str, Any] = {name: _Unavailable(name) for name in blocked}
    context.update(numeric)
    context.update({name: TRANSFORMS[name] for name in ("I", "C", "scale", "center", "poly")})
    context["factor"] = _factor
    context.update({name: numpy_ns for name in NUMPY_MODULES})
    context["contr"] = types.SimpleNamespace(**contrasts)
    context.update({patsy: TRANSFORMS[patsy] for patsy in CONTRASTS.values()})
    return types.MappingProxyType(context)


_CONTEXT = _build_context()


def formula_context() -> Mapping[str, Any]:
    """The evaluation context glamm passes to formulaic (read-only): the whitelisted functions,
    and a raising stub for every Python builtin and every other formulaic transform."""
    return _CONTEXT


"""Smooths on the latent scale in a formula: galamm's ``sl(x, factor = "f")`` and its
tensor product ``t2l(x, z, factor = "f")`` (fitted as ``t2(x, z, factor = "f")``).

glamm fits such a smooth as the smooth ``s(x, factor = "f")`` (any ``by`` kept: a numeric
``by`` multiplies it, a factor ``by`` gives one smooth per level), whose columns the factor
loadings then rescale row by row (:class:`glamm.terms.loadings.LoadingMap`). This module only
rewrites the formula text.
"""

from __future__ import annotations

import ast
import re

from ..errors import FormulaError
from ..smooths.spec import sequence_items


def rewrite_latent_smooths(formula: str, factors: tuple[str, ...]) -> str:
    """galamm's ``sl(x, factor = "f")``, a smooth on the latent scale of factor ``f``, as the
    smooth ``s(x, factor = "f")`` (whose columns the loadings rescale row by row, unpenalized
    and penalized parts alike), and its tensor product ``t2l(x, z, factor = "f")`` as
    ``t2(x, z, factor = "f")``; other arguments, ``by`` among them, are kept.

    Raises
    ------
    FormulaError
        ``sl()`` or ``t2l()`` without ``factor``, with an unknown factor or a ``by`` naming a
        factor.
    """
    out, pos = [], 0
    for mt in re.finditer(r"(?<![\w.])(sl|t2l)\(", formula):
        if mt.start() < pos:
            continue
        depth, end = 0, None
        for i in range(mt.end() - 1, len(formula)):
            depth += {"(": 1, ")": -1}.get(formula[i], 0)
            if depth == 0:
                end = i
                break
        if end is None:
            raise FormulaError(f"unbalanced parentheses in {formula[mt.start():]!r}")
        text = formula[mt.start():end + 1]
        try:
            call = ast.parse(text, mode="eval").body
        except SyntaxError:
            raise FormulaError(f"cannot parse the latent smooth {text!r}") from None
        if not isinstance(call, ast.Call):
            raise FormulaError(f"cannot parse the latent smooth {text!r}")
        kwargs = {kw.arg: kw.value for kw in call.keywords}
        names = _factor_names(kwargs.pop("factor", None))
        if names is None:
            raise FormulaError(f"{text!r} needs factor='name' (the latent variable it is on; "
                               "with a factor by=, a list of names, one per level)")
        unknown = [f for f in names if f not in factors]
        if unknown:
            raise FormulaError(f"{text!r}: factor {unknown[0]!r} is not among the factors "
                               f"({', '.join(factors)})")
        by = kwargs.get("by")
        by_name = by.value if isinstance(by, ast.Constant) else \
            (by.id if isinstance(by, ast.Name) else None)
        if by_name in factors:
            raise FormulaError(f"{text!r}: by={by_name!r} names a latent factor; by= takes a "
                               "data column (numeric: it multiplies the smooth; a factor: one "
                               "smooth per level), the factor goes in factor=")
        args = [ast.unparse(a) for a in call.args]
        args += [f"{k}={ast.unparse(v)}" for k, v in kwargs.items()]
        value = repr(names[0]) if len(names) == 1 else repr(tuple(names))
        head = "s" if mt.group(1) == "sl" else "t2"
        out.append(formula[pos:mt.start()] + f"{head}({', '.join(args + [f'factor={value}'])})")
        pos = end + 1
    out.append(formula[pos:])
    return "".join(out)


def _factor_names(node: ast.expr | None) -> tuple[str, ...] | None:
    """The latent variable(s) of ``factor=``: a string, or a list, tuple or R ``c(...)`` of
    strings (one per level of a factor ``by``); ``None`` if it is none of these."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    items = sequence_items(node)
    if not items or not all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                            for a in items):
        return None
    return tuple(a.value for a in items)

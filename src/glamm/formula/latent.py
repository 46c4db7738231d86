"""Smooths on the latent scale in a formula: galamm's ``sl(x, factor = "f")``.

glamm fits such a smooth as the smooth ``s(x, factor = "f")`` (any ``by`` kept: a numeric
``by`` multiplies it, a factor ``by`` gives one smooth per level), whose columns the factor
loadings then rescale row by row (:class:`glamm.terms.loadings.LoadingMap`). This module only
rewrites the formula text.
"""

from __future__ import annotations

import ast
import re

from ..errors import FormulaError


def rewrite_latent_smooths(formula: str, factors: tuple[str, ...]) -> str:
    """galamm's ``sl(x, factor = "f")``, a smooth on the latent scale of factor ``f``, as the
    smooth ``s(x, factor = "f")`` (whose columns the loadings rescale row by row, unpenalized
    and penalized parts alike); other arguments, ``by`` among them, are kept.

    Raises
    ------
    FormulaError
        ``sl()`` without ``factor``, with an unknown factor or a ``by`` naming a factor;
        galamm's tensor-product ``t2l()``, which glamm does not have.
    """
    tensor = re.search(r"(?<![\w.])t2l?\(", formula)
    if tensor:
        raise FormulaError(
            f"tensor-product smooths ({tensor.group(0)}...) are not available yet; s(x, z) or "
            "sl(x, z, factor=...) fits a thin plate smooth of several covariates")
    out, pos = [], 0
    for mt in re.finditer(r"(?<![\w.])sl\(", formula):
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
        f = kwargs.pop("factor", None)
        if not (isinstance(f, ast.Constant) and isinstance(f.value, str)):
            raise FormulaError(f"{text!r} needs factor='name' (the latent variable it is on)")
        if f.value not in factors:
            raise FormulaError(f"{text!r}: factor {f.value!r} is not among the factors "
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
        out.append(formula[pos:mt.start()] + f"s({', '.join(args + [f'factor={f.value!r}'])})")
        pos = end + 1
    out.append(formula[pos:])
    return "".join(out)

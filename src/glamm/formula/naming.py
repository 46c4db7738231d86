"""Turn formulaic column names into lme4's (R's) coefficient names.

glamm names coefficients as lme4 does, so results line up with R output:

====================================  ==========================
formulaic                             glamm / lme4
====================================  ==========================
``Intercept``                         ``(Intercept)``
``f[T.b]`` (treatment contrast)       ``fb``
``f[b]`` (full dummy coding)          ``fb``
``C(f, contr.poly)[.L]``              ``C(f, contr.poly).L``
``C(f, contr.sum)[S.a]``              ``C(f, contr.sum)1`` (position)
``x:f[T.b]``                          ``x:fb``
====================================  ==========================
"""

from __future__ import annotations

import re

_BRACKET = re.compile(r"^(?P<base>.*)\[(?P<label>[^\[\]]*)\]$", re.S)


def _split_interaction(name: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(name):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


def lme4_names(columns: list[str], renames: dict[str, str] | None = None) -> list[str]:
    """Map formulaic model-matrix column names to lme4-style names (see module docstring).

    ``renames`` maps a factor expression to the name R shows for it (``C(f, contr.poly)`` ->
    ``f`` for an ordered factor given polynomial contrasts automatically)."""
    renames = renames or {}
    sum_counter: dict[str, int] = {}
    out = []
    for col in columns:
        pieces = []
        for piece in _split_interaction(str(col)):
            if piece == "Intercept":
                pieces.append("(Intercept)")
                continue
            m = _BRACKET.match(piece)
            if m is None:
                pieces.append(piece)
                continue
            base, label = m.group("base"), m.group("label")
            base = renames.get(base, base)
            if label.startswith("T."):
                pieces.append(base + label[2:])
            elif label.startswith("S."):
                key = base
                sum_counter[key] = sum_counter.get(key, 0) + 1
                pieces.append(f"{base}{sum_counter[key]}")
            elif label.startswith("."):
                pieces.append(base + label)
            else:
                pieces.append(base + label)
        out.append(":".join(pieces))
    return out

"""Keyword arguments of the fitting functions: lme4's spellings and type checks of flags.

:func:`glamm.lmer`, :func:`glamm.glmer` and :func:`glamm.glm` take ``**kwargs`` last and hand
them to :func:`resolve_keywords`, which

- maps lme4's spellings (``REML=``, ``nAGQ=``) onto glamm's (``reml=``, ``nagq=``);
- raises :class:`~glamm.errors.ArgumentError` for any other keyword, naming it and saying
  what to use instead (a table of lme4 arguments glamm spells differently or does not have,
  else the closest parameter name);
- checks that flags (``reml``, ``fast``, ...) are booleans (NumPy booleans are accepted), so
  that ``reml="yes"`` is an error rather than a silent ``True``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import ArgumentError, GlammError

#: lme4's spelling -> glamm's parameter name
LME4_ALIASES: dict[str, str] = {"REML": "reml", "nAGQ": "nagq"}

#: arguments glamm does not take (lme4's, R's or common slips) -> what to do instead
HINTS: dict[str, str] = {
    "subset": "select the rows of the data frame before fitting, e.g. data[data['x'] > 0]",
    "na_action": "rows with missing values in the columns the model uses are always dropped "
                 "(R's na.omit)",
    "na.action": "rows with missing values in the columns the model uses are always dropped "
                 "(R's na.omit)",
    "contrasts": "choose contrasts in the formula, e.g. C(f, Sum) or C(f, Treatment)",
    "devFunOnly": "build glamm.lmm.model.LinearMixedModel from a model frame for the "
                  "objective",
    "method": "glamm.lmer takes reml=True/False and method='exact'/'approximate'/'auto'; "
              "GLMMs are fitted by maximum likelihood",
    "family": "glamm.lmer fits Gaussian models; use glamm.glmer(formula, data, family=...) "
              "for other families",
    "link": "glamm.lmer fits Gaussian models with the identity link; use "
            "glamm.glmer(formula, data, family=..., link=...)",
    "nagq": "quadrature applies to GLMMs only; use glamm.glmer(..., nagq=...)",
    "fast": "fast=True applies to GLMMs only; use glamm.glmer(..., fast=True)",
    "reml": "GLMMs and GLMs are fitted by maximum likelihood; REML applies to glamm.lmer only",
    "control": "glamm.glm has no optimizer settings (IRLS runs to convergence)",
}

#: flags checked to be booleans -> the other types also accepted
FLAGS: dict[str, tuple[type, ...]] = {"reml": (), "fast": (), "penalized": (dict,)}


@functools.lru_cache(maxsize=32)
def _parameters(func: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """The parameters of ``func``'s signature (cached: every fit asks)."""
    return inspect.signature(func).parameters


def resolve_keywords(func: Callable, extra: dict[str, Any], **values: Any) -> tuple:
    """The values of ``values`` after applying lme4's spellings in ``extra`` and checking flags.

    Parameters
    ----------
    func : callable
        The fitting function (its name and parameters word the messages).
    extra : dict
        The keywords ``func`` received in ``**kwargs``.
    **values : Any
        The function's own arguments that have an lme4 spelling or are flags, as received.

    Returns
    -------
    tuple
        The resolved values, in the order of ``values``.

    Raises
    ------
    ArgumentError
        An unknown keyword; an lme4 spelling given together with glamm's (with a value
        other than the default); a flag that is not a boolean.
    """
    name = f"glamm.{func.__name__}"
    params = _parameters(func)
    resolved = dict(values)
    for key, value in extra.items():
        target = LME4_ALIASES.get(key)
        if target is None or target not in values:
            raise ArgumentError(_unknown_message(name, key, list(params)))
        if key == "nAGQ" and isinstance(value, (int, np.integer)) and value == 0:
            raise ArgumentError(f"{name}(): lme4's nAGQ=0 (beta estimated inside PIRLS) is "
                                "glamm's fast=True")
        default = params[target].default
        if resolved[target] != default:
            raise ArgumentError(f"{name}() got both {target}= and {key}= (lme4's spelling of "
                                f"{target}); give {target}= only")
        resolved[target] = value
    for key, value in resolved.items():
        if key in FLAGS:
            resolved[key] = check_flag(name, key, value, FLAGS[key])
    return tuple(resolved.values())


def check_flag(func_name: str, arg: str, value: Any, also: tuple[type, ...] = ()) -> Any:
    """``value`` as a Python ``bool`` if it is one (or a NumPy boolean); values of the types in
    ``also`` pass unchanged; anything else is an :class:`~glamm.errors.ArgumentError`."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if also and isinstance(value, also):
        return value
    kinds = " or ".join(["True or False"] + [t.__name__ for t in also])
    raise ArgumentError(f"{func_name}(): {arg} must be {kinds}, got {value!r}")


def _unknown_message(name: str, key: str, params: list[str]) -> str:
    """The message for a keyword ``name`` does not take: a hint from the table, an lme4 alias
    of a parameter the function lacks, or the closest parameter names."""
    text = f"{name}() got an unexpected keyword argument {key!r}"
    if key in LME4_ALIASES:
        return (f"{text}: {key} is lme4's spelling of {LME4_ALIASES[key]!r}, which {name} "
                f"does not take" + (f" ({HINTS[LME4_ALIASES[key]]})"
                                    if LME4_ALIASES[key] in HINTS else ""))
    if key in HINTS:
        return f"{text}: {HINTS[key]}"
    accepted = [p for p in params if p not in ("formula", "data", "kwargs")]
    close = difflib.get_close_matches(key, accepted, n=1) or \
        [p for p in accepted if p.lower() == key.lower()]
    if close:
        return f"{text}; did you mean {close[0]!r}?"
    return f"{text}; it takes {', '.join(accepted)}"


def check_start_theta(start: Any, size: int, names: list[str],
                      label: str = "start (theta)") -> np.ndarray | None:
    """A user's starting ``theta`` as a float vector of ``size`` entries (lme4's order,
    ``names``); ``None`` stays ``None``. ``label`` names the argument in messages.

    Raises
    ------
    GlammError
        Not numbers, or the wrong number of them.
    """
    if start is None:
        return None
    try:
        theta = np.atleast_1d(np.asarray(start, dtype=float))
    except (TypeError, ValueError):
        raise GlammError(f"{label} must be numbers, got {start!r}") from None
    if theta.ndim != 1 or theta.size != size:
        raise GlammError(f"{label} needs {size} value(s), one per variance parameter "
                         f"({', '.join(names)}), got {theta.size}")
    if not np.all(np.isfinite(theta)):
        raise GlammError(f"{label} has missing or infinite values")
    return theta

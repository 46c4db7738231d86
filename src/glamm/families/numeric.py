"""Numeric helpers of the response families: arrays of floats, ``y log(y / mu)``, the data's
constants of the log-densities (log-factorials) cached per response array, integer checks.
Not public API."""

from __future__ import annotations

import math
import weakref

import numpy as np
from scipy import special

INTEGER_RTOL = 1e-8

#: a family parameter on the log scale (log dispersion, log shape, log phi) beyond this
#: overflows or underflows ``exp``: a wild optimizer step, where the objective is infinite
LOG_PARAMETER_LIMIT = 700.0

_LOG_2PI = math.log(2.0 * math.pi)


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _ylogy(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``y * log(y / mu)`` with the value 0 where ``y == 0`` (R's ``y_log_y``)."""
    y, mu = _arr(y), _arr(mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        return special.xlogy(y, y / mu)


_CACHE: dict = {}
#: data arrays whose constants the cache keeps per kind (a fit on partitioned data evaluates
#: one partition after another, every PIRLS iteration)
CACHE_SIZE = 32


def _cached(tag: tuple, y: np.ndarray, wt: np.ndarray, compute):
    """Constants of the log-density that depend on the data only (log-factorials), kept for
    the last :data:`CACHE_SIZE` ``(y, wt)`` arrays seen: GLMM fits evaluate the log-likelihood
    for the same data hundreds of times (as vectors in PIRLS, as columns in quadrature, one
    partition after another on partitioned data). The cache refers to the arrays weakly and
    compares identity, so a new array is never mistaken for an old one, and the constants of
    arrays that are gone are dropped."""
    entries = _CACHE.setdefault(tag, [])
    for ry, rw, value in entries:
        if ry() is y and rw() is wt:
            return value
    value = compute()
    try:
        refs = (weakref.ref(y), weakref.ref(wt))
    except TypeError:   # (not arrays: nothing to key on)
        return value
    live = [e for e in entries if e[0]() is not None and e[1]() is not None]
    live.insert(0, (*refs, value))
    _CACHE[tag] = live[:CACHE_SIZE]
    return value


def _binomial_constants(y: np.ndarray, wt: np.ndarray):
    def compute():
        n = np.round(wt)
        k = np.round(wt * y)
        return n, k, (special.gammaln(n + 1.0) - special.gammaln(k + 1.0)
                      - special.gammaln(n - k + 1.0))

    return _cached(("binomial",), y, wt, compute)


def _non_integer(x: np.ndarray) -> np.ndarray:
    return np.abs(x - np.round(x)) > INTEGER_RTOL * np.maximum(1.0, np.abs(x))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"

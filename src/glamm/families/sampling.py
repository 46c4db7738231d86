"""Drawing responses from a discrete family by inverting its distribution function, for the
families without a sampler of their own in NumPy (generalized Poisson, Conway-Maxwell-Poisson,
zero-truncated counts): the log-density is evaluated on ``0, 1, ..., K`` (``K`` grown until
each row's mass is complete to 1e-12) and each row takes the first count whose cumulative
probability reaches a uniform draw. Not public API."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .numeric import _arr

#: the support is grown up to this count
_MAX_COUNT = 1_000_000


def sample_by_inversion(family, mu, rng: np.random.Generator, lower: int = 0,
                        dispersion=1.0) -> np.ndarray:
    """One count per row of ``mu`` from ``family``'s log-density, conditional on
    ``y >= lower`` (``lower = 1``: zero-truncated)."""
    mu = _arr(mu).reshape(-1)
    n = mu.size
    out = np.zeros(n)
    if n == 0:
        return out
    u = rng.random(n)
    todo = np.arange(n)
    width = int(min(_MAX_COUNT, max(32, 4 * np.ceil(np.max(mu)) + 32)))
    while todo.size:
        grid = np.arange(lower, lower + width, dtype=float)
        m = mu[todo][:, None]
        with np.errstate(all="ignore"):
            ll = family.loglik(np.broadcast_to(grid, (todo.size, width)).copy(),
                               np.broadcast_to(m, (todo.size, width)).copy(), None,
                               dispersion)
        pmf = np.exp(np.where(np.isfinite(ll), ll, -np.inf))
        cdf = np.cumsum(pmf, axis=1)
        total = cdf[:, -1]
        if lower > 0:   # the mass below ``lower`` is left out: renormalize what is kept
            with np.errstate(all="ignore"):
                below = 1.0 - np.exp(family.loglik(np.zeros(todo.size), mu[todo], None,
                                                   dispersion)) if lower == 1 else None
            if below is None:
                raise DataError("inversion sampling supports lower = 0 or 1")
            complete = total >= below * (1.0 - 1e-12)
            norm = np.where(complete, total, below)
        else:
            complete = total >= 1.0 - 1e-12
            norm = total
        target = u[todo] * norm
        idx = np.argmax(cdf >= target[:, None], axis=1)
        found = cdf[np.arange(todo.size), idx] >= target
        done = complete | found
        out[todo[done]] = grid[idx[done]]
        todo = todo[~done]
        if width >= _MAX_COUNT:
            if todo.size:
                raise DataError(f"{family.name} family: could not draw counts for means "
                                f"up to {np.max(mu[todo]):.3g} (support beyond {_MAX_COUNT})")
            break
        width = min(_MAX_COUNT, 4 * width)
    return out

"""Steps of :func:`glamm.galamm` around the fit (not public API): galamm's ``start`` list,
the rows a missing ``load_var`` removes from weights and offsets, the latent variable of a
loaded fixed-effect column, and the refit of a latent variance that ended at zero or on a
ridge of growing loadings."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .arguments import check_start_theta
from .errors import GlammError


def fixed_column_factor(name: str, factors: Sequence[str]) -> int | None:
    """The latent variable whose loadings multiply the fixed-effect column ``name`` (the
    factor's name is one of the column's ``:`` parts), or ``None``."""
    hits = [k for k, f in enumerate(factors) if f in name.split(":")]
    if len(hits) > 1:
        raise GlammError(f"fixed-effect column {name!r} multiplies several latent factors; a "
                         "column can carry one factor's loadings")
    return hits[0] if hits else None


def leave_zero_latent_variance(result: Any, new_model: Any, fit: Any) -> Any:
    """Refit from better loadings a fit that ended where the loadings carry little signal.

    At a latent variable's variance of zero the loadings have no effect, and as the variance
    shrinks towards zero with free loadings growing (a ridge: the scale item's loading
    becomes negligible) the optimizer can drift without reaching the maximum. For each term
    ``(0 + f | group)`` that ended so (variance zero, or free loadings of ``f`` more than
    :data:`RIDGE_RATIO` times its fixed ones),
    :func:`~glamm.terms.loadings.zero_variance_loadings` gives the loadings along which the
    variance grows from zero (the second-order score there); the model is refitted from them
    (``fit(model, theta0)`` on ``new_model()``) and the better fit kept. Other fits are
    returned as they are."""
    from .terms.loadings import zero_variance_loadings

    for k, cols in result.model.loadings.terms:
        spec = result.model.loadings.spec
        term, part = result.model.reterms[k], result.model.layout.slices[k]
        f = cols[0][1]
        if term.p != 1 or not term.is_grouped or not _stuck(result, part, f):
            continue
        at_zero = _at_zero_variance(result, part, new_model)
        column = zero_variance_loadings(
            spec, f, at_zero.loadings.item, term.refs,
            at_zero.response.score(at_zero.eta, at_zero.mu),
            at_zero.response.observed_weights(at_zero.eta, at_zero.mu),
            z=at_zero.loadings.base_z[k][:, cols[0][0]])
        if column is None:
            continue
        free = result.loadings.copy()
        on_f = np.flatnonzero(spec.free[:, 1] == f)
        free[on_f] = column[spec.free[on_f, 0]]
        theta0 = result.theta.copy()
        theta0[part] = 0.5 / max(float(np.max(np.abs(column))), 1.0)
        candidate = new_model()
        candidate.set_loadings(free)
        with warnings.catch_warnings(record=True) as caught:   # said only if kept
            warnings.simplefilter("always")
            try:
                refit = fit(candidate, theta0)
            except (GlammError, ArithmeticError, np.linalg.LinAlgError):
                continue
        if refit.loglik > result.loglik + 1e-10 * abs(result.loglik):
            result = refit
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=3)
    return result


#: free loadings this many times the factor's fixed ones mark a fit drifting along the ridge
#: towards a zero variance (see :func:`leave_zero_latent_variance`)
RIDGE_RATIO = 10.0


def _stuck(result: Any, part: slice, f: int) -> bool:
    """Whether the term's variance (``theta[part]``, one entry) is zero, or factor ``f``'s
    free loadings dwarf its fixed ones."""
    if result.theta[part][0] <= 0.0:
        return True
    spec = result.model.loadings.spec
    column = spec.full_matrix(result.loadings[:spec.n_free])[:, f]
    fixed = spec.matrix[:, f]
    scale = np.abs(fixed[np.isfinite(fixed) & (fixed != 0)])
    free = np.abs(column[np.isnan(fixed)])
    return bool(free.size and scale.size and free.max() > RIDGE_RATIO * scale.max())


def _at_zero_variance(result: Any, part: slice, new_model: Any) -> Any:
    """A fresh model at the fit's estimates with the term's variance (``theta[part]``) set
    to zero (its state, ``eta`` and ``mu``, there); the fitted model is left alone."""
    model = new_model()
    model.set_loadings(result.loadings)
    x = model.parameters.split(result._parameter_vector())
    model.response.set_parameters(x["response"])
    theta = result.theta.copy()
    theta[part] = 0.0
    model.objective(theta, result.fixef.to_numpy())
    return model


#: the blocks of galamm's ``start`` list glamm takes (galamm's "weights" belong to its
#: heteroscedastic models)
_START_BLOCKS = ("theta", "beta", "lambda")


def start_parts(start: Any) -> dict[str, Any]:
    """galamm's ``start`` as a dict of blocks: an array (or list) is the starting ``theta``.

    Raises
    ------
    GlammError
        A key other than ``theta``, ``beta``, ``lambda``.
    """
    if start is None:
        return {}
    if not isinstance(start, dict):
        return {"theta": start}
    unknown = [k for k in start if k not in _START_BLOCKS]
    if unknown:
        raise GlammError(f"start has unknown entries {unknown}; galamm's start is a dict with "
                         "any of 'theta', 'beta' and 'lambda'")
    return dict(start)


def check_start_block(parts: dict[str, Any], block: str, names: list[str]) -> np.ndarray | None:
    """The ``block`` entry of a start dict as a float vector of ``len(names)`` finite values
    (``None`` when not given)."""
    if block not in parts:
        return None
    try:
        values = np.atleast_1d(np.asarray(parts[block], dtype=float))
    except (TypeError, ValueError):
        raise GlammError(f"start[{block!r}] must be numbers, got {parts[block]!r}") from None
    if values.ndim != 1 or values.size != len(names):
        raise GlammError(f"start[{block!r}] needs {len(names)} value(s) "
                         f"({', '.join(names) or 'none in this model'}), got {values.size}")
    if not np.all(np.isfinite(values)):
        raise GlammError(f"start[{block!r}] has missing or infinite values")
    return values


def galamm_start(start: Any, model: Any) -> np.ndarray | None:
    """Check galamm's ``start`` against the built ``model``, put its loadings in place, and
    return the starting ``theta`` (``None``: the covariance structures' own)."""
    parts = start_parts(start)
    loadings = model.loadings
    label = "start['theta']" if isinstance(start, dict) else "start (theta)"
    theta = check_start_theta(parts.get("theta"), model.layout.initial().size,
                              model.layout.names(), label)
    check_start_block(parts, "beta", list(model.frame.xnames))
    free = check_start_block(parts, "lambda", loadings.free_names())
    if free is not None:
        model.set_loadings(free)
    return theta


def rows_kept(arg: Any, keep: np.ndarray) -> Any:
    """``weights`` or ``offset`` given as values (not a column name) for every row of the data,
    restricted to the rows ``keep``; anything else is returned as it is."""
    if arg is None or isinstance(arg, str) or np.ndim(arg) != 1 or len(arg) != keep.size:
        return arg
    return np.asarray(arg)[keep]

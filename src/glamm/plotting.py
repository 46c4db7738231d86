"""Plots of fitted models (matplotlib, an optional dependency: ``pip install glamm[plot]``)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from .errors import GlammError


def plot_smooth(model, smooth: str, ax=None, n: int = 100, level: float = 0.95,
                rug: bool = True):
    """Plot an estimated smooth with a pointwise confidence band and a rug of the data, as
    mgcv's ``plot.gam`` (the band uses the Bayesian standard errors of ``smooth_estimates``).
    One-covariate smooths only.

    Parameters
    ----------
    model : LmerResult or GlmerResult
        a fitted model with smooth terms (``glamm.lmer``/``glamm.glmer`` result).
    smooth : str
        the smooth's label, e.g. ``"s(x2)"``.
    ax : matplotlib.axes.Axes, optional
        a matplotlib ``Axes`` to draw on (default ``None``: a new figure).
    n : int, optional
        number of grid points (default 100).
    level : float, optional
        coverage of the band (default 0.95; mgcv draws +-2 standard errors).
    rug : bool, optional
        draw the covariate values along the horizontal axis (default True).

    Returns
    -------
    matplotlib.axes.Axes
        The ``Axes`` drawn on.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:   # pragma: no cover - depends on the installation
        raise GlammError("plot_smooth needs matplotlib: pip install matplotlib "
                         "(or glamm[plot])") from exc
    sm = model._find_smooth(smooth)
    if len(sm.spec.terms) != 1:
        raise GlammError(f"plot_smooth draws one-covariate smooths; {sm.label} has "
                         f"{len(sm.spec.terms)} covariates (use smooth_estimates)")
    est = model.smooth_estimates(sm.label, n=n)
    x = est[sm.spec.terms[0]].to_numpy()
    z = stats.norm.ppf(0.5 + level / 2)
    if ax is None:
        _, ax = plt.subplots()
    ax.plot(x, est["estimate"], color="C0", lw=1.5)
    ax.fill_between(x, est["estimate"] - z * est["se"], est["estimate"] + z * est["se"],
                    color="C0", alpha=0.25, lw=0)
    if rug and sm.x_data is not None:
        ax.plot(sm.x_data, np.zeros_like(sm.x_data), "|", color="k", ms=8, alpha=0.5,
                transform=ax.get_xaxis_transform())
    ax.set_xlabel(sm.spec.terms[0])
    ax.set_ylabel(f"{sm.label}, edf {model.edf[sm.label]:.2f}")
    return ax

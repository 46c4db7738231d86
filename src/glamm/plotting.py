"""Plots of fitted models (matplotlib, an optional dependency: ``pip install glamm[plot]``):
smooths (:func:`plot_smooth`), conditional modes as caterpillar plots (:func:`plot_ranef`),
residuals against fitted values (:func:`plot_residuals`), normal QQ plots of residuals and
random effects (:func:`plot_qq`), observed against fitted values (:func:`plot_fitted`),
likelihood profiles (:func:`plot_profile`) and bootstrap distributions
(:func:`plot_bootstrap`). Each returns what it drew on (an ``Axes`` or a ``Figure``) and draws
nothing else; numbers come from the results' own methods."""

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
    plt = _pyplot("plot_smooth")
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


def _pyplot(what: str):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:   # pragma: no cover - depends on the installation
        raise GlammError(f"{what} needs matplotlib: pip install matplotlib "
                         "(or glamm[plot])") from exc
    return plt


def _grid(plt, n: int, ncols: int = 3, size: tuple[float, float] = (3.6, 3.2)):
    """A figure with ``n`` panels (at most ``ncols`` per row) and the flat list of them."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def plot_ranef(model, group: str | None = None, level: float = 0.95, max_labels: int = 40):
    """Caterpillar plot of the conditional modes (lme4's ``dotplot(ranef(m, condVar =
    TRUE))``): per grouping factor and random-effect column, the levels' modes sorted, with
    intervals of +- z conditional SDs.

    Parameters
    ----------
    model : LmerResult or GlmerResult
        A fitted mixed model.
    group : str, optional
        One grouping factor (default: all).
    level : float
        Coverage of the intervals (default 0.95).
    max_labels : int
        Label the levels on the axis when there are at most this many (default 40).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot("plot_ranef")
    z = stats.norm.ppf(0.5 + level / 2)
    panels = []
    for g, modes in model.ranef.items():
        if group is not None and g != group:
            continue
        cv = model.ranef_condvar[g]
        for col in modes.columns:
            panels.append((g, col, modes[col].to_numpy(float),
                           np.sqrt(np.maximum(cv[col].to_numpy(float), 0.0)),
                           [str(v) for v in modes.index]))
    if not panels:
        raise GlammError(f"no grouping factor {group!r}; the model has "
                         f"{', '.join(model.ranef)}")
    fig, axes = _grid(plt, len(panels), ncols=min(len(panels), 3),
                      size=(3.8, max(3.0, 0.16 * max(len(p[2]) for p in panels))))
    for ax, (g, col, b, sd, labels) in zip(axes, panels):
        order = np.argsort(b)
        pos = np.arange(b.size)
        ax.errorbar(b[order], pos, xerr=z * sd[order], fmt="o", ms=3, color="C0",
                    ecolor="0.55", elinewidth=1, capsize=0)
        ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
        if b.size <= max_labels:
            ax.set_yticks(pos)
            ax.set_yticklabels([labels[i] for i in order], fontsize=7)
        else:
            ax.set_yticks([])
        ax.set_title(f"{g}: {col}", fontsize=9)
        ax.set_xlabel("conditional mode")
    fig.tight_layout()
    return fig


def plot_residuals(model, ax=None, type: str | None = None):
    """Residuals against fitted values, with a zero line (lme4's ``plot(m)``). ``type``: the
    residuals' type for a GLMM (default its ``residuals()``'s); an LMM's are the response
    residuals. Returns the ``Axes``."""
    plt = _pyplot("plot_residuals")
    if ax is None:
        _, ax = plt.subplots()
    res = model.residuals() if type is None else model.residuals(type=type)
    fit = model.fitted()
    ax.scatter(fit, res, s=10, alpha=0.7, color="C0", edgecolors="none")
    ax.axhline(0.0, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("fitted values")
    ax.set_ylabel("residuals" if type is None else f"{type} residuals")
    return ax


def _qq(ax, x: np.ndarray, title: str) -> None:
    x = np.sort(x[np.isfinite(x)])
    n = x.size
    q = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    ax.scatter(q, x, s=10, color="C0", edgecolors="none")
    lo, hi = np.quantile(x, [0.25, 0.75]) if n > 1 else (x[0], x[0])
    qlo, qhi = stats.norm.ppf([0.25, 0.75])
    slope = (hi - lo) / (qhi - qlo) if hi > lo else 1.0
    ax.axline((qlo, lo), slope=slope, color="0.3", lw=0.8)
    ax.set_xlabel("normal quantiles")
    ax.set_ylabel("sample quantiles")
    ax.set_title(title, fontsize=9)


def plot_qq(model, which: str = "residuals"):
    """Normal QQ plots: of the residuals (``which="residuals"``, one panel) or of the
    conditional modes (``"ranef"``: one panel per grouping factor and column), with a line
    through the quartiles. Returns the ``Figure``."""
    plt = _pyplot("plot_qq")
    if which == "residuals":
        fig, (ax,) = _grid(plt, 1)
        _qq(ax, np.asarray(model.residuals(), dtype=float), "residuals")
    elif which == "ranef":
        panels = [(g, col, modes[col].to_numpy(float))
                  for g, modes in model.ranef.items() for col in modes.columns]
        fig, axes = _grid(plt, len(panels))
        for ax, (g, col, b) in zip(axes, panels):
            _qq(ax, b, f"{g}: {col}")
    else:
        raise GlammError(f"which must be 'residuals' or 'ranef', got {which!r}")
    fig.tight_layout()
    return fig


def plot_fitted(model, ax=None):
    """Observed responses against fitted values with the identity line (a binomial
    response as the proportion of its trials). Returns the ``Axes``."""
    plt = _pyplot("plot_fitted")
    if ax is None:
        _, ax = plt.subplots()
    y = np.asarray(model.frame.y, dtype=float)
    fit = model.fitted()
    ax.scatter(fit, y, s=10, alpha=0.7, color="C0", edgecolors="none")
    lo, hi = float(min(fit.min(), y.min())), float(max(fit.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8)
    ax.set_xlabel("fitted values")
    ax.set_ylabel("observed")
    return ax


def plot_profile(profile, which=None, levels=(0.5, 0.8, 0.9, 0.95, 0.99),
                 absval: bool = False):
    """Likelihood profile (zeta) plots, as lme4's ``xyplot(profile(m))``: for each parameter
    ``zeta`` against its value, with the horizontal lines of the confidence levels
    ``levels`` and the interval ends where the profile crosses them.

    Parameters
    ----------
    profile : Profile or LmerResult
        A :meth:`~glamm.results.lmer_result.LmerResult.profile` (or a fit, which is then
        profiled).
    which : optional
        Parameters to draw (names or aliases; default all profiled).
    levels : sequence of float
        Confidence levels marked (default 50, 80, 90, 95 and 99%).
    absval : bool
        Draw ``|zeta|`` (lme4's ``absVal = TRUE``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot("plot_profile")
    from .inference.profile import Profile

    prof = profile if isinstance(profile, Profile) else profile.profile(which=which)
    tr = prof.traces
    names = list(dict.fromkeys(tr[".par"]))
    if which is not None:
        wanted = [which] if isinstance(which, str) else list(which)
        keep = {prof.names[prof.aliases.index(w)] if w in prof.aliases else w for w in wanted}
        names = [n for n in names if n in keep]
    if not names:
        raise GlammError("no profiled parameter selected")
    fig, axes = _grid(plt, len(names))
    zs = stats.norm.ppf(0.5 + np.asarray(levels, dtype=float) / 2)
    for ax, name in zip(axes, names):
        part = tr[tr[".par"] == name].sort_values(name)
        x = part[name].to_numpy(float)
        zeta = part[".zeta"].to_numpy(float)
        ax.plot(x, np.abs(zeta) if absval else zeta, "-o", ms=2.5, color="C0", lw=1)
        for z in zs:
            for sign in ((1,) if absval else (-1, 1)):
                ax.axhline(sign * z, color="0.75", lw=0.6)
        ax.axhline(0.0, color="0.4", lw=0.6)
        ax.set_xlabel(prof.aliases[prof.names.index(name)])
        ax.set_ylabel("|zeta|" if absval else "zeta")
    fig.tight_layout()
    return fig


def plot_bootstrap(boot, columns=None, level: float = 0.95, bins: int = 40):
    """Histograms of a bootstrap's replicates (:meth:`~glamm.results.lmer_result.LmerResult.
    bootstrap`), each with the estimate (solid line) and the percentile interval (dashed).
    ``columns``: which quantities (default all). Returns the ``Figure``."""
    plt = _pyplot("plot_bootstrap")
    reps = boot.replicates
    cols = list(reps.columns) if columns is None else list(columns)
    missing = [c for c in cols if c not in reps.columns]
    if missing:
        raise GlammError(f"no bootstrap column(s) {missing}; the columns are "
                         f"{', '.join(map(str, reps.columns))}")
    ci = boot.confint(level=level)
    fig, axes = _grid(plt, len(cols))
    for ax, c in zip(axes, cols):
        x = reps[c].to_numpy(float)
        x = x[np.isfinite(x)]
        ax.hist(x, bins=bins, color="C0", alpha=0.75)
        ax.axvline(float(boot.estimates[c]), color="k", lw=1.2)
        for v in ci.loc[c].iloc[:2]:
            ax.axvline(float(v), color="k", lw=0.9, ls="--")
        ax.set_xlabel(boot.aliases.get(c, c))
    fig.tight_layout()
    return fig

"""The diagnostic and inference plots render: each is drawn to a PNG in memory and checked for
its size and for content (not a blank canvas), and for what its panels show."""

from __future__ import annotations

import io

import numpy as np
import pytest

import glamm
from glamm.errors import GlammError

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sleep():
    return glamm.lmer("Reaction ~ Days + (Days | Subject)", glamm.datasets.load("sleepstudy"))


def _png(fig) -> np.ndarray:
    """The figure rendered to PNG and read back as an RGB(A) array."""
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    buf.seek(0)
    return mpimg.imread(buf)


def _check(fig, min_px: int = 150) -> None:
    img = _png(fig)
    assert img.shape[0] >= min_px and img.shape[1] >= min_px
    gray = img[..., :3].mean(axis=2)
    # not blank: a good share of pixels differ from the background, and there is ink
    assert (gray < 0.9).mean() > 0.01
    assert gray.std() > 0.05
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_caterpillar(sleep):
    fig = glamm.plot_ranef(sleep)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["Subject: (Intercept)", "Subject: Days"]
    # one interval per level, sorted by the mode
    xs = axes[1].collections[0].get_paths() if axes[1].collections else None
    assert xs is not None and len(xs) == 18
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    modes = sleep.ranef["Subject"]["(Intercept)"]
    assert labels == [str(i) for i in modes.sort_values().index]
    _check(fig)
    with pytest.raises(GlammError, match="no grouping factor"):
        glamm.plot_ranef(sleep, group="Nobody")


def test_residual_fitted_and_qq(sleep):
    ax = glamm.plot_residuals(sleep)
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], sleep.fitted())
    np.testing.assert_allclose(offsets[:, 1], sleep.residuals())
    _check(ax.figure)
    ax = glamm.plot_fitted(sleep)
    _check(ax.figure)
    fig = glamm.plot_qq(sleep)
    _check(fig)
    fig = glamm.plot_qq(sleep, which="ranef")
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    _check(fig)
    with pytest.raises(GlammError, match="which must be"):
        glamm.plot_qq(sleep, which="fixed")


def test_glmm_plots():
    cbpp = glamm.datasets.load("cbpp")
    g = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                    family="binomial")
    _check(glamm.plot_ranef(g))
    _check(glamm.plot_residuals(g, type="pearson").figure)


def test_profile_and_bootstrap_plots(sleep):
    prof = sleep.profile(which=["sigma", "Days"])
    fig = glamm.plot_profile(prof)
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_xlabel() for a in axes] == ["sigma", "Days"]
    _check(fig)
    fig = glamm.plot_profile(prof, which="Days", absval=True)
    assert [a.get_xlabel() for a in fig.axes if a.get_visible()] == ["Days"]
    _check(fig)
    boot = sleep.bootstrap(60, seed=2, progress=False)
    fig = glamm.plot_bootstrap(boot, columns=["Days", ".sigma"])
    assert [a.get_xlabel() for a in fig.axes if a.get_visible()] == ["Days", "sigma"]
    _check(fig)
    with pytest.raises(GlammError, match="no bootstrap column"):
        glamm.plot_bootstrap(boot, columns=["x"])

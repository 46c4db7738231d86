"""Simulation from fitted models and the parametric bootstrap (issue 14): the families'
samplers against their moments and probabilities, simulated responses against the model's
mean and variance, and the bootstrap's reproducibility, statistics and intervals. Random by
nature: tested by properties with many draws (tolerances of several standard errors)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.errors import GlammError
from glamm.families import get_family


# --------------------------------------------------------------------------- samplers
def _moments(fam, mu, wt, disp, n=200_000, seed=1):
    rng = np.random.default_rng(seed)
    x = fam.sample(np.full(n, mu), np.full(n, wt), disp, rng)
    return x.mean(), x.var()


@pytest.mark.parametrize("name,kw,mu,wt,disp,var", [
    ("gaussian", {}, 2.0, 2.0, 3.0, 1.5),
    ("poisson", {}, 3.5, 1.0, 1.0, 3.5),
    ("binomial", {}, 0.3, 10.0, 1.0, 0.3 * 0.7 / 10.0),
    ("Gamma", {}, 2.0, 1.0, 0.5, 0.5 * 4.0),
    ("inverse_gaussian", {}, 2.0, 1.0, 0.2, 0.2 * 8.0),
    ("negative_binomial", {"shape": 2.5}, 4.0, 1.0, 1.0, 4.0 + 16.0 / 2.5),
    ("nbinom1", {"phi": 1.5}, 4.0, 1.0, 1.0, 4.0 * 2.5),
    ("beta", {"phi": 6.0}, 0.3, 1.0, 1.0, 0.21 / 7.0),
    ("betabinomial", {"phi": 4.0}, 0.3, 8.0, 1.0, 0.21 * (1 + 7.0 / 5.0) / 8.0),
    ("t", {"df": 6.0}, 1.0, 1.0, 4.0, 4.0 * 6.0 / 4.0),
    ("tweedie", {"power": 1.4}, 2.0, 1.0, 0.8, 0.8 * 2.0**1.4),
])
def test_sampler_moments(name, kw, mu, wt, disp, var):
    fam = get_family(name)
    if kw:
        fam = fam.with_values(**kw) if hasattr(fam, "with_values") else get_family(name, **kw)
    mean, v = _moments(fam, mu, wt, disp)
    assert mean == pytest.approx(mu, rel=0.01, abs=0.005)
    assert v == pytest.approx(var, rel=0.03)


@pytest.mark.parametrize("name,kw,mu", [("genpois", {"phi": 1.8}, 3.0),
                                        ("genpois", {"phi": 0.7}, 3.0),
                                        ("compois", {"nu": 0.6}, 2.5),
                                        ("compois", {"nu": 2.0}, 2.5)])
def test_inversion_sampler_frequencies(name, kw, mu):
    fam = get_family(name).with_values(**kw)
    n = 100_000
    x = fam.sample(np.full(n, mu), np.ones(n), 1.0, np.random.default_rng(4))
    assert np.all(x == np.round(x)) and x.min() >= 0
    ks = np.arange(0, 12, dtype=float)
    pmf = np.exp(fam.loglik(ks, np.full(ks.size, mu)))
    freq = np.array([(x == k).mean() for k in ks])
    se = np.sqrt(pmf * (1 - pmf) / n)
    assert np.all(np.abs(freq - pmf) < 5 * se + 1e-4)
    assert x.mean() == pytest.approx(mu, rel=0.02)


def test_ordinal_sampler_frequencies():
    from glamm.families.ordinal import Ordinal

    fam = Ordinal(levels=("a", "b", "c", "d"))
    eta = np.full(80_000, 0.4)
    x = fam.sample(eta, np.ones(eta.size), 1.0, np.random.default_rng(2))
    prob = fam.probabilities(eta[:1])[0]
    freq = np.array([(x == k).mean() for k in (1, 2, 3, 4)])
    np.testing.assert_allclose(freq, prob, atol=0.01)


def test_binomial_needs_whole_trials():
    with pytest.raises(Exception, match="whole numbers of trials"):
        get_family("binomial").sample(np.array([0.5]), np.array([2.5]), 1.0,
                                      np.random.default_rng(0))


# --------------------------------------------------------------------------- simulate
@pytest.fixture(scope="module")
def sleep_fit():
    return glamm.lmer("Reaction ~ Days + (Days | Subject)", glamm.datasets.load("sleepstudy"))


def test_lmm_simulation_mean_and_variance(sleep_fit):
    m = sleep_fit
    sims = m.simulate(4000, seed=11)
    assert sims.shape == (180, 4000)
    assert list(sims.columns[:2]) == ["sim_1", "sim_2"]
    mean = m.predict(re=False)
    S = m.term_covariances()[0]
    days = glamm.datasets.load("sleepstudy")["Days"].to_numpy(float)
    Z = np.column_stack([np.ones(180), days])
    var = np.einsum("ij,jk,ik->i", Z, S, Z) + m.sigma**2
    se_mean = np.sqrt(var / 4000)
    assert np.all(np.abs(sims.mean(axis=1).to_numpy() - mean) < 5 * se_mean)
    np.testing.assert_allclose(sims.var(axis=1).to_numpy(), var, rtol=0.12)
    # (the average over rows of the relative variance error is much tighter)
    assert np.mean(sims.var(axis=1).to_numpy() / var) == pytest.approx(1.0, abs=0.03)


def test_simulation_options(sleep_fit):
    m = sleep_fit
    none = m.simulate(3000, seed=2, re=False)
    assert none.var(axis=1).mean() == pytest.approx(m.sigma**2, rel=0.05)
    fitted = m.simulate(3000, seed=2, re="fitted")
    np.testing.assert_allclose(fitted.mean(axis=1), m.fitted(), atol=5 * m.sigma / np.sqrt(3000))
    a = m.simulate(2, seed=5)
    b = m.simulate(2, seed=5)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(GlammError, match="re must be"):
        m.simulate(re="maybe")
    with pytest.raises(GlammError, match="at least 1"):
        m.simulate(0)


def test_simulate_new_data_gets_new_levels(sleep_fit):
    new = pd.DataFrame({"Days": [0.0, 9.0, 0.0, 9.0], "Subject": ["A", "A", "B", "B"]})
    sims = sleep_fit.simulate(3000, seed=3, newdata=new)
    assert sims.shape == (4, 3000)
    # two new subjects, independent: their rows correlate within, not across
    r_within = np.corrcoef(sims.iloc[0], sims.iloc[1])[0, 1]
    r_across = np.corrcoef(sims.iloc[0], sims.iloc[3])[0, 1]
    assert r_within > 0.2 and abs(r_across) < 0.06


def test_glmm_simulation_population_mean():
    cbpp = glamm.datasets.load("cbpp")
    g = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                    family="binomial")
    sims = g.simulate(3000, seed=7, re=False)
    mu = 1.0 / (1.0 + np.exp(-g.predict(re=False)))
    trials = (cbpp["size"]).to_numpy(float)
    se = np.sqrt(mu * (1 - mu) / trials / 3000)
    assert np.all(np.abs(sims.mean(axis=1).to_numpy() - mu) < 5 * se)
    # proportions of whole trials
    assert np.allclose((sims.to_numpy() * trials[:, None]) % 1.0, 0.0, atol=1e-9)


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_replicates_and_reproducibility():
    d = glamm.datasets.load("Dyestuff")
    m = glamm.lmer("Yield ~ 1 + (1 | Batch)", d, reml=False)
    b1 = m.bootstrap(40, seed=9, progress=False)
    b2 = m.bootstrap(40, seed=9, n_jobs=2, progress=False)
    assert list(b1.replicates.columns) == ["(Intercept)", ".sig01", ".sigma"]
    pd.testing.assert_frame_equal(b1.replicates, b2.replicates)
    assert b1.n_failed == 0
    assert b1.estimates[".sigma"] == pytest.approx(m.sigma, rel=1e-10)
    # each replicate is the fit of its simulated response
    sim = glamm.inference.simulate.simulation_model(m)
    rng = np.random.default_rng(np.random.SeedSequence(9).spawn(40)[3])
    y = sim.response(sim.eta(True, rng), rng)
    d3 = d.assign(Yield=y)
    r3 = glamm.lmer("Yield ~ 1 + (1 | Batch)", d3, reml=False)
    assert b1.replicates["(Intercept)"].iloc[3] == pytest.approx(r3.fixef.iloc[0], rel=1e-6)
    assert b1.replicates[".sigma"].iloc[3] == pytest.approx(r3.sigma, rel=1e-4)
    ci = b1.confint()
    assert list(ci.index) == [".sig01", ".sigma", "(Intercept)"]
    assert list(ci["term"]) == ["sd_(Intercept)|Batch", "sigma", "(Intercept)"]
    for method in ("basic", "norm", "bc"):
        c = b1.confint(method=method)
        assert np.all(c.iloc[:, 0] < c.iloc[:, 1])


def test_bootstrap_statistic(sleep_fit):
    b = sleep_fit.bootstrap(6, seed=1, stat=lambda r: {"days": r.fixef["Days"],
                                                        "sigma": r.sigma})
    assert list(b.replicates.columns) == ["days", "sigma"]
    assert b.estimates["days"] == pytest.approx(sleep_fit.fixef["Days"])
    plain = sleep_fit.bootstrap(6, seed=1)
    np.testing.assert_allclose(b.replicates["days"], plain.replicates["Days"], rtol=1e-6)
    scalar = sleep_fit.bootstrap(3, seed=1, stat=lambda r: r.loglik)
    assert list(scalar.replicates.columns) == ["stat"]


def test_confint_boot(sleep_fit):
    ci = sleep_fit.confint(method="boot", n=60, seed=4)
    assert list(ci.index) == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]
    assert ci.loc["Days"].iloc[0] < sleep_fit.fixef["Days"] < ci.loc["Days"].iloc[1]


def test_glmm_bootstrap():
    cbpp = glamm.datasets.load("cbpp")
    g = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                    family="binomial")
    b = g.bootstrap(10, seed=3)
    assert list(b.replicates.columns) == ["(Intercept)", "period2", "period3", "period4",
                                          ".sig01"]
    assert b.estimates[".sig01"] == pytest.approx(g.varcorr["sdcor"].iloc[0], rel=1e-8)
    assert b.n_failed == 0


@pytest.mark.slow
def test_bootstrap_interval_coverage():
    """Percentile intervals of the fixed effects cover the true values at about the nominal
    rate over simulated data sets (60 data sets x 200 replicates)."""
    rng = np.random.default_rng(2024)
    g = np.repeat(np.arange(12), 8)
    x = rng.normal(size=g.size)
    cover = {"(Intercept)": 0, "x": 0, ".sigma": 0}
    n_sets = 60
    for _ in range(n_sets):
        b = rng.normal(0, 0.8, 12)
        y = 1.0 + 0.5 * x + b[g] + rng.normal(0, 1.0, g.size)
        d = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
        m = glamm.lmer("y ~ x + (1 | g)", d, reml=False)
        ci = m.bootstrap(200, seed=int(rng.integers(1 << 30)), progress=False).confint(0.9)
        cover["(Intercept)"] += ci.loc["(Intercept)"].iloc[0] < 1.0 < ci.loc["(Intercept)"].iloc[1]
        cover["x"] += ci.loc["x"].iloc[0] < 0.5 < ci.loc["x"].iloc[1]
        cover[".sigma"] += ci.loc[".sigma"].iloc[0] < 1.0 < ci.loc[".sigma"].iloc[1]
    for name, c in cover.items():
        # nominal 0.9; ML intervals run a little short with 12 groups
        assert 0.72 <= c / n_sets <= 0.99, (name, c / n_sets)


def test_bca_intervals():
    d = glamm.datasets.load("Dyestuff")
    m = glamm.lmer("Yield ~ 1 + (1 | Batch)", d, reml=False)
    b = m.bootstrap(200, seed=5, progress=False)
    jack = b.jackknife()
    assert jack.shape == (6, 3)   # one refit per batch left out
    d_without = d[d["Batch"] != d["Batch"].cat.categories[0]]
    one = glamm.lmer("Yield ~ 1 + (1 | Batch)", d_without, reml=False)
    assert jack["(Intercept)"].iloc[0] == pytest.approx(one.fixef.iloc[0], rel=1e-8)
    bca = b.confint(method="bca")
    assert np.all(bca.iloc[:, 0] < bca.iloc[:, 1])
    # with no skewness in the jackknife the acceleration is 0: BCa is the BC interval
    b._jack = pd.DataFrame(np.tile([1.0, 2.0, 3.0], (6, 1)) + np.array(
        [-1, 1, -1, 1, -1, 1])[:, None], columns=b.replicates.columns)
    np.testing.assert_allclose(b.confint(method="bca").iloc[:, :2].to_numpy(float),
                               b.confint(method="bc").iloc[:, :2].to_numpy(float))

"""Conway-Maxwell-Poisson counts (glmmTMB's ``compois``): the log-density against glmmTMB
1.1.5's own (TMB's ``dcompois2``) and against a brute-force sum, the moments, glmer fits by
Laplace against glmmTMB on simulated under- and overdispersed counts
(tests/reference/families_extra/make_compois.R), quadrature against a brute-force integral,
glm, and bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glamm
from glamm.errors import DataError
from glamm.families import ConwayMaxwellPoisson, get_family
from glamm.families.compois import cmp_loglambda, cmp_moments

REF = Path(__file__).parent / "reference" / "families_extra"


def _tmb() -> dict:
    return json.loads((REF / "tmb_compois.json").read_text())


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    d = pd.read_csv(REF / "sim_compois.csv")
    d["g"] = d["g"].astype(str)
    return d


def _brute_logpmf(y, mu, nu, terms=6000):
    """log P(y) of the CMP with mean ``mu`` by summing the series over ``0..terms`` and solving
    ``lambda`` from the mean with SciPy's brentq."""
    j = np.arange(terms, dtype=float)

    def logterms(ll):
        return j * ll - nu * special.gammaln(j + 1)

    def mean_gap(ll):
        t = logterms(ll)
        return float(np.exp(t - special.logsumexp(t)) @ j) - mu

    from scipy.optimize import brentq
    ll = brentq(mean_gap, nu * np.log(mu) - 40, nu * np.log(mu) + 40, xtol=1e-15, rtol=1e-15)
    return y * ll - nu * special.gammaln(y + 1) - special.logsumexp(logterms(ll))


def test_compois_density_matches_glmmtmb():
    d = _tmb()["density"]
    y, mu = np.array(d["y"], float), np.array(d["mu"], float)
    got = [ConwayMaxwellPoisson(phi=p).loglik(y[i:i + 1], mu[i:i + 1])[0]
           for i, p in enumerate(d["phi"])]
    np.testing.assert_allclose(got, d["logp"], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("nu", [0.05, 0.4, 1.0, 2.5, 12.0])
@pytest.mark.parametrize("mu", [0.1, 1.3, 6.0, 35.0])
def test_compois_density_matches_brute_force_sum(mu, nu):
    y = np.array([0.0, 1.0, 2.0, 5.0, 11.0, 40.0])
    fam = ConwayMaxwellPoisson(phi=1.0 / nu)
    got = fam.loglik(y, np.full(y.size, mu))
    np.testing.assert_allclose(got, _brute_logpmf(y, mu, nu), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("nu", [0.1, 0.7, 1.0, 3.0])
def test_compois_moments_are_those_of_the_pmf(nu):
    mu = 4.5
    y = np.arange(0.0, 3000.0)
    fam = ConwayMaxwellPoisson(phi=1.0 / nu)
    p = np.exp(fam.loglik(y, np.full(y.size, mu)))
    assert p.sum() == pytest.approx(1.0, abs=1e-11)
    assert (y * p).sum() == pytest.approx(mu, rel=1e-11)
    var = fam.variance(np.array([mu]))[0]
    assert ((y - mu) ** 2 * p).sum() == pytest.approx(var, rel=1e-10)
    _, _, _, k3 = cmp_loglambda(np.array([mu]), nu)
    assert ((y - mu) ** 3 * p).sum() == pytest.approx(k3[0], rel=1e-8)
    if nu == 1.0:
        np.testing.assert_allclose(p[:40], stats.poisson.pmf(y[:40], mu), rtol=1e-11)
        assert var == pytest.approx(mu, rel=1e-12)


def test_compois_logz_and_its_derivatives_in_loglambda():
    loglambda, nu = np.array([-3.0, 0.2, 1.5, 4.0]), np.array([0.3, 0.8, 2.0, 5.0])
    h = 1e-4
    logz, mean, var, k3 = cmp_moments(loglambda, nu)
    zp, mp, vp, _ = cmp_moments(loglambda + h, nu)
    zm, mm, vm, _ = cmp_moments(loglambda - h, nu)
    np.testing.assert_allclose(mean, (zp - zm) / (2 * h), rtol=1e-7)
    np.testing.assert_allclose(var, (mp - mm) / (2 * h), rtol=1e-7)
    np.testing.assert_allclose(k3, (vp - vm) / (2 * h), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("phi", [0.3, 1.0, 4.0])
def test_compois_derivatives_in_mu_match_differences(phi):
    fam = ConwayMaxwellPoisson(phi=phi)
    y = np.array([0.0, 2.0, 3.0, 9.0])
    mu = np.array([0.7, 2.5, 3.0, 6.0])
    h = 1e-5 * mu
    lp, lm = fam.loglik(y, mu + h), fam.loglik(y, mu - h)
    np.testing.assert_allclose(fam.dloglik_dmu(y, mu), (lp - lm) / (2 * h), rtol=1e-6, atol=1e-8)
    dp, dm = fam.dloglik_dmu(y, mu + h), fam.dloglik_dmu(y, mu - h)
    np.testing.assert_allclose(fam.d2loglik_dmu2(y, mu), (dp - dm) / (2 * h), rtol=1e-6, atol=1e-8)


def test_compois_names_and_sigma():
    for name in ("compois", "conway_maxwell_poisson", "cmp", "Conway-Maxwell-Poisson"):
        assert isinstance(get_family(name), ConwayMaxwellPoisson)
    fam = ConwayMaxwellPoisson(phi=0.25)
    assert fam.nu == pytest.approx(4.0)
    assert fam.tmb_sigma() == pytest.approx(0.25)


@pytest.mark.parametrize("case,resp", [("under", "y_under"), ("over", "y_over")])
def test_compois_glmer_matches_glmmtmb(case, resp, sim):
    r = _tmb()["fits"][case]
    m = glamm.glmer(f"{resp} ~ x + (1 | g)", sim, family="compois")
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-6)
    np.testing.assert_allclose(m.fixef.to_numpy(), r["fixef"], rtol=1e-4)
    np.testing.assert_allclose(m.stderr.to_numpy(), r["fixef_se"], rtol=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    fp = m.family_parameters
    assert fp.loc["phi", "estimate"] == pytest.approx(r["sigma"], rel=1e-4)
    assert bool(fp.loc["phi", "tmb_sigma"]) and fp["std_error"].gt(0).all()
    sd = m.varcorr.loc[m.varcorr["group"] != "Residual", "sdcor"].to_numpy()
    np.testing.assert_allclose(sd, [r["sd_g"]], rtol=1e-4)


def test_compois_glm_maximizes_the_likelihood(sim):
    m = glamm.glm("y_under ~ x", sim, family="compois")
    y = sim["y_under"].to_numpy(float)
    X = np.column_stack([np.ones(len(sim)), sim["x"].to_numpy()])
    beta = m.fixef.to_numpy()

    def ll(b, phi):
        return ConwayMaxwellPoisson(phi=phi).loglik(y, np.exp(X @ b)).sum()

    best = ll(beta, m.sigma)
    assert m.loglik == pytest.approx(best, rel=1e-10)
    for step in (np.array([1e-3, 0]), np.array([0, 1e-3])):
        assert ll(beta + step, m.sigma) < best and ll(beta - step, m.sigma) < best
    assert ll(beta, m.sigma * 1.01) < best and ll(beta, m.sigma / 1.01) < best
    assert np.all(np.isfinite(m.stderr)) and m.stderr.gt(0).all()


@pytest.mark.slow
def test_compois_quadrature_matches_brute_force(sim):
    m = glamm.glmer("y_over ~ x + (1 | g)", sim, family="compois", nagq=7)
    lap = glamm.glmer("y_over ~ x + (1 | g)", sim, family="compois")
    assert m.loglik == pytest.approx(lap.loglik, rel=1e-3)
    fam = m.model.family
    y = sim["y_over"].to_numpy(float)
    eta0 = m.predict(type="link", re=False)
    cluster = m.model.reterms[0].refs
    sd_b = float(m.varcorr["sdcor"].iloc[0])
    z = np.linspace(-8, 8, 101)
    eta = eta0[None, :] + sd_b * z[:, None]
    logp = fam.loglik(np.tile(y, z.size), np.exp(eta).ravel()).reshape(z.size, -1)
    k = cluster.max() + 1
    a = np.stack([np.bincount(cluster, row, minlength=k) for row in logp], axis=1)
    logw = stats.norm.logpdf(z) + np.log(z[1] - z[0])
    exact = float(np.sum(special.logsumexp(a + logw, axis=1)))
    assert m.loglik == pytest.approx(exact, rel=1e-7)
    assert "nAGQ = 7" in m.summary()


@pytest.mark.parametrize("bad,what", [(-1.0, "negative counts"), (2.5, "non-integer counts")])
def test_compois_rejects_non_counts(bad, what, sim):
    d = sim.astype({"y_under": float})
    d.loc[[3, 17], "y_under"] = bad
    with pytest.raises(DataError, match=f"compois family.*{what} in rows 3, 17"):
        glamm.glmer("y_under ~ x + (1 | g)", d, family="compois")
    with pytest.raises(DataError, match=what):
        glamm.glm("y_under ~ x", d, family="compois")


def test_compois_tiny_nu_is_geometric():
    """nu -> 0 (the degenerate fits glmmTMB also reaches): the geometric distribution, with
    a window sized by lambda rather than sqrt(1 / nu)."""
    y = np.array([0.0, 1.0, 4.0, 30.0])
    mu = np.full(y.size, 3.6)
    got = ConwayMaxwellPoisson(phi=1e9).loglik(y, mu)
    np.testing.assert_allclose(got, stats.geom.logpmf(y + 1, 1 / (1 + mu)), rtol=1e-7)

"""Response distributions and links (glamm.families), checked against scipy.stats densities,
finite differences and values printed by R 4.x (stats families, MASS::negative.binomial)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from glamm.errors import DataError
from glamm.families import (
    FAMILIES,
    LINKS,
    Binomial,
    Family,
    Gamma,
    Gaussian,
    InverseGaussian,
    NegativeBinomial,
    Poisson,
    from_name,
    get_family,
    get_link,
)
from glamm.families.links import EPS

BINARY_LINKS = ["logit", "probit", "cloglog", "cauchit"]
POSITIVE_LINKS = ["log", "identity", "inverse", "sqrt", "inverse_squared"]


def _mu_grid(link: str) -> np.ndarray:
    if link in BINARY_LINKS:
        return np.linspace(0.02, 0.98, 25)
    return np.geomspace(0.05, 30.0, 25)


# ------------------------------------------------------------------------------------ links


@pytest.mark.parametrize("name", sorted(LINKS))
def test_link_roundtrip(name):
    link = get_link(name)
    mu = _mu_grid(name)
    np.testing.assert_allclose(link.inverse(link.link(mu)), mu, rtol=1e-12)
    if name == "identity":
        np.testing.assert_allclose(link.link(mu), mu)


@pytest.mark.parametrize("name", sorted(LINKS))
def test_link_derivatives_match_finite_differences(name):
    link = get_link(name)
    eta = link.link(_mu_grid(name))
    h = 1e-5 * np.abs(eta) + 1e-7
    d1 = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    d2 = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta(eta), d1, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(link.d2mu_deta2(eta), d2, rtol=1e-6, atol=1e-10)
    # the second derivative also from mu directly (second central difference)
    h2 = 1e-3 * np.abs(eta) + 1e-5
    d2b = (link.inverse(eta + h2) - 2 * link.inverse(eta) + link.inverse(eta - h2)) / h2**2
    np.testing.assert_allclose(link.d2mu_deta2(eta), d2b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", BINARY_LINKS)
def test_binary_link_tails_stay_inside_unit_interval(name):
    link = get_link(name)
    pos = np.geomspace(1e-3, 1e300, 60)
    eta = np.concatenate([[-np.inf], -pos[::-1], [0.0], pos, [np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mu = link.inverse(eta)
        d = link.mu_eta(eta[1:-1])
        d2 = link.d2mu_deta2(eta[1:-1])
    assert np.all(np.isfinite(d2))
    assert np.all((mu > 0) & (mu < 1))
    assert np.all(mu >= EPS * 0.99) and np.all(mu <= 1 - EPS * 0.49)
    assert np.all(np.diff(mu) >= 0)  # monotone, even across the clamps
    assert np.all(d >= EPS) and np.all(np.isfinite(d))


def test_log_link_safe_at_extremes():
    link = get_link("log")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mu = link.inverse(np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
    assert mu[0] == EPS and mu[1] == EPS and mu[2] == 1.0
    assert np.all(np.isfinite(mu)) and mu[3] > 1e300


# R 4.x: binomial()$linkinv / $mu.eta (logit), make.link(name)$linkinv / $mu.eta otherwise
R_ETA = [-40, -20, -5, 0, 3, 20, 40]
R_LINKS = {
    "logit": (
        [2.2204460492503126e-16, 2.0611536181902033e-09, 0.0066928509242848563, 0.5,
         0.95257412682243325, 0.99999999793884642, 0.99999999999999978],
        [2.2204460492503131e-16, 2.0611536139418492e-09, 0.0066480566707901563, 0.25,
         0.04517665973091213, 2.0611536139418496e-09, 2.2204460492503131e-16]),
    "probit": (
        [2.2204460492503284e-16, 2.2204460492503284e-16, 2.8665157187919391e-07, 0.5,
         0.9986501019683699, 0.99999999999999978, 0.99999999999999978],
        [2.2204460492503131e-16, 2.2204460492503131e-16, 1.4867195147342977e-06,
         0.3989422804014327, 0.0044318484119380075, 2.2204460492503131e-16,
         2.2204460492503131e-16]),
    "cloglog": (
        [2.2204460492503131e-16, 2.0611536203143808e-09, 0.0067152979321585104,
         0.63212055882855767, 0.99999999810782125, 0.99999999999999978, 0.99999999999999978],
        [2.2204460492503131e-16, 2.0611536181902037e-09, 0.0066926996775355145,
         0.36787944117144233, 3.8005425040443575e-08, 2.2204460492503131e-16,
         2.2204460492503131e-16]),
    "cauchit": (
        [0.0079560899120258138, 0.015902251256176378, 0.062832958189001198, 0.5,
         0.89758361765043326, 0.98409774874382361, 0.99204391008797421],
        [0.0001988194167294133, 0.00079379023985982715, 0.012242687930145794,
         0.31830988618379069, 0.031830988618379068, 0.00079379023985982715,
         0.0001988194167294133]),
    "log": (
        [2.2204460492503131e-16, 2.0611536224385579e-09, 0.006737946999085467, 1,
         20.085536923187668, 485165195.40979028, 2.3538526683702e+17],
        [2.2204460492503131e-16, 2.0611536224385579e-09, 0.006737946999085467, 1,
         20.085536923187668, 485165195.40979028, 2.3538526683702e+17]),
}


@pytest.mark.parametrize("name", sorted(R_LINKS))
def test_links_match_r(name):
    link = get_link(name)
    inv, mueta = R_LINKS[name]
    np.testing.assert_allclose(link.inverse(R_ETA), inv, rtol=1e-12)
    np.testing.assert_allclose(link.mu_eta(R_ETA), mueta, rtol=1e-12)


def test_get_link_names():
    assert get_link("1/mu^2").name == "inverse_squared"
    assert get_link("1/mu^2").r_name == "1/mu^2"
    assert get_link("inverse").name == "inverse"
    assert get_link(" LOGIT ").name == "logit"
    logit = get_link("logit")
    assert get_link(logit) is logit
    assert get_link(type(logit)) == logit
    with pytest.raises(DataError, match="unknown link 'loglog'"):
        get_link("loglog")


def test_valid_eta():
    assert not get_link("inverse").valid_eta([1.0, 0.0])
    assert not get_link("sqrt").valid_eta([1.0, -0.5])
    assert not get_link("1/mu^2").valid_eta([0.0])
    assert not get_link("logit").valid_eta([np.nan])
    assert get_link("logit").valid_eta([-1e3, 1e3])


# --------------------------------------------------------------------------------- families

DISP = 0.7
THETA = 2.5


def _data(fam: Family, mu: np.ndarray, rng: np.random.Generator):
    """Valid responses and weights for ``fam`` at means ``mu``."""
    n = mu.size
    if isinstance(fam, Binomial):
        wt = rng.integers(1, 12, n).astype(float)
        y = rng.binomial(wt.astype(int), mu) / wt
    elif isinstance(fam, (Poisson, NegativeBinomial)):
        wt = rng.uniform(0.5, 2.0, n)
        y = rng.poisson(mu).astype(float)
    elif isinstance(fam, Gaussian):
        wt = rng.uniform(0.5, 2.0, n)
        y = mu + rng.normal(0, math.sqrt(DISP), n)
    else:
        wt = rng.uniform(0.5, 2.0, n)
        y = mu * rng.gamma(4.0, 0.25, n)
    fam.validate(y, wt)
    return y, wt


def _family(name: str, link: str | None = None) -> Family:
    return get_family(name, link=link, shape=THETA) if name == "negative_binomial" \
        else get_family(name, link=link)


#: the exponential families (those outside it are tested in test_families_extra.py
#: and test_compois.py)
GLM_FAMILIES = [n for n in FAMILIES
                if n not in ("nbinom1", "beta", "betabinomial", "t", "genpois", "tweedie",
                             "compois")]
COMBOS = [(name, link) for name, cls in FAMILIES.items() for link in cls.valid_links
          if name in GLM_FAMILIES]


def test_combos_cover_r_links():
    assert ("binomial", "cloglog") in COMBOS and ("inverse_gaussian", "inverse_squared") in COMBOS
    assert len(COMBOS) == 5 + 3 + 3 + 3 + 4 + 3


def _mu_for(fam: Family) -> np.ndarray:
    if isinstance(fam, Binomial):
        return np.linspace(0.05, 0.95, 19)
    if isinstance(fam, Gaussian):
        return np.linspace(0.3, 6.0, 19)  # positive: valid for log and inverse links too
    return np.geomspace(0.2, 15.0, 19)


@pytest.mark.parametrize("name,link", COMBOS)
def test_eta_derivatives_match_finite_differences(name, link):
    fam = _family(name, link)
    rng = np.random.default_rng(COMBOS.index((name, link)))
    mu = _mu_for(fam)
    y, wt = _data(fam, mu, rng)
    eta = fam.link.link(mu)

    def ll(e):
        return fam.loglik(y, fam.link.inverse(e), wt, DISP)

    def score(e):
        return fam.dloglik_deta(y, fam.link.inverse(e), e, wt, DISP)

    h = 1e-5 * np.abs(eta) + 1e-7
    g = score(eta)
    np.testing.assert_allclose(g, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-7)
    H = fam.d2loglik_deta2(y, mu, eta, wt, DISP)
    np.testing.assert_allclose(H, (score(eta + h) - score(eta - h)) / (2 * h), rtol=1e-6,
                               atol=1e-7)
    h2 = 1e-3 * np.abs(eta) + 1e-5
    np.testing.assert_allclose(H, (ll(eta + h2) - 2 * ll(eta) + ll(eta - h2)) / h2**2,
                               rtol=1e-3, atol=1e-4)
    # the derivatives in mu too
    hm = 1e-6 * mu
    np.testing.assert_allclose(
        fam.dloglik_dmu(y, mu, wt, DISP),
        (fam.loglik(y, mu + hm, wt, DISP) - fam.loglik(y, mu - hm, wt, DISP)) / (2 * hm),
        rtol=1e-6, atol=1e-6)
    # observed information is affine in y, so at y = mu it is the expected one: w / dispersion
    w, _ = fam.weights_and_working(y, mu, eta, wt)
    phi = DISP if fam.has_dispersion else 1.0
    np.testing.assert_allclose(fam.d2loglik_deta2(mu, mu, eta, wt, DISP), -w / phi, rtol=1e-10)
    if fam.link_is_canonical:  # ... and at the canonical link for every y
        np.testing.assert_allclose(H, -w / phi, rtol=1e-9)
    else:
        assert not np.allclose(H, -w / phi, rtol=1e-6)
    # the three in one call (a family's shortcut must agree with its separate methods),
    # zero responses and zero prior weights included
    y0, wt0 = y.copy(), wt.copy()
    y0[::4] = 0.0
    wt0[1] = 0.0
    together = fam.eta_derivatives(y0, mu, eta, wt0, DISP)
    apart = (fam.loglik(y0, mu, wt0, DISP), fam.dloglik_deta(y0, mu, eta, wt0, DISP),
             fam.d2loglik_deta2(y0, mu, eta, wt0, DISP))
    for a, b in zip(together, apart, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name,link", COMBOS)
def test_weights_and_working(name, link):
    fam = _family(name, link)
    mu = _mu_for(fam)
    y, wt = _data(fam, mu, np.random.default_rng(1))
    eta = fam.link.link(mu)
    w, r = fam.weights_and_working(y, mu, eta, wt)
    d = fam.link.mu_eta(eta)
    np.testing.assert_allclose(w, wt * d**2 / fam.variance(mu), rtol=1e-14)
    np.testing.assert_allclose(r, (y - mu) / d, rtol=1e-14)
    # the score is w * r / dispersion (the IRLS identity)
    np.testing.assert_allclose(fam.dloglik_deta(y, mu, eta, wt, 1.0), w * r, rtol=1e-10,
                               atol=1e-12)


def test_gaussian_identity_irls_quantities():
    w, r = Gaussian().weights_and_working([1.0, 2.0], [0.5, 2.5], [0.5, 2.5], [2.0, 3.0])
    np.testing.assert_array_equal(w, [2.0, 3.0])
    np.testing.assert_array_equal(r, [0.5, -0.5])


@pytest.mark.parametrize("name", sorted(GLM_FAMILIES))
def test_variance_deriv(name):
    fam = _family(name)
    mu = _mu_for(fam)
    h = 1e-6 * mu
    np.testing.assert_allclose(fam.variance_deriv(mu),
                               (fam.variance(mu + h) - fam.variance(mu - h)) / (2 * h),
                               rtol=1e-7, atol=1e-9)


# ----------------------------------------------------------------- log-densities vs scipy


def test_loglik_binomial_vs_scipy():
    rng = np.random.default_rng(2)
    mu = rng.uniform(0.01, 0.99, 40)
    wt = rng.integers(0, 30, 40).astype(float)
    k = rng.binomial(wt.astype(int), mu).astype(float)
    y = np.divide(k, wt, out=np.zeros_like(k), where=wt > 0)
    ref = stats.binom.logpmf(k, wt, mu)
    np.testing.assert_allclose(Binomial().loglik(y, mu, wt), ref, rtol=1e-12, atol=1e-12)
    # dispersion is ignored
    np.testing.assert_array_equal(Binomial().loglik(y, mu, wt, 3.0), Binomial().loglik(y, mu, wt))
    # 0/1 data with default weights
    yb = (rng.uniform(size=40) < mu).astype(float)
    np.testing.assert_allclose(Binomial().loglik(yb, mu), stats.bernoulli.logpmf(yb, mu),
                               rtol=1e-12)


def test_loglik_poisson_vs_scipy():
    rng = np.random.default_rng(3)
    mu = rng.uniform(0.05, 40, 50)
    y = rng.poisson(mu).astype(float)
    wt = rng.uniform(0.2, 3, 50)
    np.testing.assert_allclose(Poisson().loglik(y, mu, wt), wt * stats.poisson.logpmf(y, mu),
                               rtol=1e-12)


def test_loglik_gaussian_vs_scipy():
    rng = np.random.default_rng(4)
    mu = rng.normal(0, 3, 50)
    y = mu + rng.normal(0, 1, 50)
    wt = rng.uniform(0.2, 3, 50)
    for disp in (0.3, 1.0, 2.5):
        ref = stats.norm.logpdf(y, mu, np.sqrt(disp / wt))
        np.testing.assert_allclose(Gaussian().loglik(y, mu, wt, disp), ref, rtol=1e-12)


def test_loglik_gamma_vs_scipy():
    rng = np.random.default_rng(5)
    mu = rng.uniform(0.1, 20, 50)
    y = rng.gamma(2.0, mu / 2.0)
    wt = rng.uniform(0.2, 3, 50)
    for disp in (0.2, 1.0, 1.7):
        ref = wt * stats.gamma.logpdf(y, a=1 / disp, scale=mu * disp)
        np.testing.assert_allclose(Gamma().loglik(y, mu, wt, disp), ref, rtol=1e-12)


def test_loglik_inverse_gaussian_vs_scipy_and_closed_form():
    rng = np.random.default_rng(6)
    mu = rng.uniform(0.1, 10, 50)
    y = rng.gamma(3.0, mu / 3.0)
    wt = rng.uniform(0.2, 3, 50)
    for disp in (0.2, 1.0, 1.7):
        lam = 1.0 / disp
        closed = 0.5 * np.log(lam / (2 * np.pi * y**3)) - lam * (y - mu) ** 2 / (2 * mu**2 * y)
        # scipy: invgauss(m, scale=s) has mean m*s and shape s, so IG(mu, lam) is
        # invgauss(mu/lam, scale=lam)
        scipy_ref = stats.invgauss.logpdf(y, mu / lam, scale=lam)
        np.testing.assert_allclose(scipy_ref, closed, rtol=1e-10)
        np.testing.assert_allclose(InverseGaussian().loglik(y, mu, wt, disp), wt * closed,
                                   rtol=1e-12)


def test_loglik_negative_binomial_vs_scipy():
    rng = np.random.default_rng(7)
    mu = rng.uniform(0.05, 40, 50)
    y = rng.poisson(mu).astype(float)
    wt = rng.uniform(0.2, 3, 50)
    for theta in (0.3, 1.0, 4.0, 200.0):
        ref = wt * stats.nbinom.logpmf(y, theta, theta / (theta + mu))
        got = NegativeBinomial(theta).loglik(y, mu, wt, dispersion=5.0)  # dispersion ignored
        np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_zero_weights_contribute_nothing():
    y = np.array([3.0, 2.0])
    mu = np.array([0.0, 2.0])  # impossible for y = 3, but that row has weight 0
    wt = np.array([0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ll = Poisson().loglik(y, mu, wt)
        dr = Poisson().deviance_residuals(y, mu, wt)
        llg = Gaussian().loglik(y, [1.0, 2.0], wt, 2.0)
    assert ll[0] == 0.0 and dr[0] == 0.0 and llg[0] == 0.0
    assert ll[1] == pytest.approx(stats.poisson.logpmf(2, 2.0))


# -------------------------------------------------------- R's aic and dev.resids conventions

# R 4.x: family()$dev.resids(y, mu, wt) and family()$aic(y, n, mu, wt, sum(dev))
YB, WB, MB = [0, 0.25, 1, 0.6, 0.5], [3, 4, 1, 5, 2], [0.2, 0.3, 0.7, 0.55, 0.45]
YC, WC, MC = [0, 1, 3, 7, 2], [1, 2, 1, 0.5, 1], [0.5, 1.2, 2.5, 6, 3]
YG, WG, MG = [1.2, -0.3, 2.5, 0.7], [1, 2, 0.5, 1.5], [1, 0, 2, 1]
YP, WP, MP = [0.5, 1.5, 2.2, 3.1], [1, 2, 1, 0.5], [0.8, 1.2, 2.5, 2.9]
R_REF = {
    # name: (family, y, wt, mu, dev.resids, aic, R's plug-in dispersion rule, aic's "+ 2")
    "binomial": (Binomial(), YB, WB, MB,
                 [1.3388613078852587, 0.049314115333799313, 0.71334988787746478,
                  0.050936119312245121, 0.020100671707002915], 7.40989538205082, None, 0),
    "poisson": (Poisson(), YC, WC, MC,
                [1, 0.070713772824181453, 0.093929340763727609, 0.079054758790808588,
                 0.37813956756734224], 13.131178602951842, None, 0),
    "negative_binomial": (NegativeBinomial(2.5), YC, WC, MC,
                          [0.91160778396977293, 0.048691688991532311, 0.045517362916153381,
                           0.02241122524367678, 0.18417582672670219], 15.56589974213952, None,
                          0),
    "gaussian": (Gaussian(), YG, WG, MG,
                 [0.03999999999999998, 0.17999999999999999, 0.125, 0.13500000000000004],
                 4.4649890127288527, "nobs", 2),
    "gamma": (Gamma(), YP, WP, MP,
              [0.19000725849147104, 0.10742579474316116, 0.015666743019769697,
               0.0022741427427070277], 5.805552083224101, "sumwt", 2),
    "inverse_gaussian": (InverseGaussian(), YP, WP, MP,
                         [0.28125, 0.083333333333333356, 0.0065454545454545375,
                          0.00076713589812435403], 7.9667872947381575, "sumwt", 2),
}


@pytest.mark.parametrize("name", sorted(R_REF))
def test_deviance_and_loglik_match_r(name):
    fam, y, wt, mu, dev, aic, disp_rule, plus = R_REF[name]
    y, wt, mu = map(np.asarray, (y, wt, mu))
    fam.validate(y, wt)
    dr = fam.deviance_residuals(y, mu, wt)
    np.testing.assert_allclose(dr, dev, rtol=1e-12)
    assert fam.deviance(y, mu, wt) == pytest.approx(sum(dev), rel=1e-12)
    if disp_rule == "nobs":
        disp = dr.sum() / y.size
    elif disp_rule == "sumwt":
        disp = dr.sum() / wt.sum()
    else:
        disp = 1.0
    assert fam.loglik(y, mu, wt, disp).sum() == pytest.approx(-(aic - plus) / 2, rel=1e-12)


def test_binomial_known_deviance_residual():
    assert Binomial().unit_deviance(1.0, 0.7) == pytest.approx(2 * math.log(1 / 0.7), rel=1e-14)
    assert Binomial().unit_deviance(0.0, 0.7) == pytest.approx(2 * math.log(1 / 0.3), rel=1e-14)
    assert Binomial().deviance_residuals([1.0], [0.7], [1.0])[0] == pytest.approx(
        2 * math.log(1 / 0.7), rel=1e-14)


@pytest.mark.parametrize("name", sorted(GLM_FAMILIES))
def test_unit_deviance_is_twice_loglik_ratio(name):
    fam = _family(name)
    rng = np.random.default_rng(8)
    mu = _mu_for(fam)
    if isinstance(fam, Binomial):
        y = (rng.uniform(size=mu.size) < 0.5).astype(float)
        wt = None
    else:
        y, _ = _data(fam, mu, rng)
        wt = None
    expect = 2 * (fam.loglik(y, y, wt, 1.0) - fam.loglik(y, mu, wt, 1.0))
    np.testing.assert_allclose(fam.unit_deviance(y, mu), expect, rtol=1e-10, atol=1e-12)
    if isinstance(fam, Binomial):  # proportions out of wt trials: the choose terms cancel
        wt = rng.integers(1, 9, mu.size).astype(float)
        y = rng.binomial(wt.astype(int), mu) / wt
        expect = 2 * (fam.loglik(y, y, wt) - fam.loglik(y, mu, wt))
        np.testing.assert_allclose(fam.deviance_residuals(y, mu, wt), expect, rtol=1e-10,
                                   atol=1e-12)
    assert np.all(fam.unit_deviance(mu, mu) == pytest.approx(0.0, abs=1e-14))


# ------------------------------------------------------------------------------ validation


def _raises(fam, y, wt, *words):
    with pytest.raises(DataError) as info:
        fam.validate(np.asarray(y, float), None if wt is None else np.asarray(wt, float))
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


def test_validate_binomial():
    fam = Binomial()
    msg = _raises(fam, [0, 1, 1.2, -0.1, 0.5], [1, 1, 1, 1, 2], "outside [0, 1]",
                  "2 offending values", "index 2")
    assert "binomial" in msg
    _raises(fam, [0, 0.5], None, "successes", "non-integer", "1 offending value", "index 1")
    _raises(fam, [0.5, 0.5], [2.0, 2.5], "trials", "whole numbers", "index 1")
    _raises(fam, [0.5, 0.5], [2.0, -2.0], "negative", "index 1")
    _raises(fam, [0.5, np.nan], [2.0, 2.0], "non-finite", "index 1")
    _raises(fam, [0.5, 0.5], [2.0, np.inf], "non-finite", "weights", "index 1")
    fam.validate([1 / 3, 2 / 3, 0.1, 1.0], [3, 3, 10, 7])  # k/n in floating point passes
    fam.validate([0.0, 0.7], [0.0, 10.0])
    fam.validate([True, False])


def test_validate_counts():
    for fam in (Poisson(), NegativeBinomial(1.5)):
        msg = _raises(fam, [0, 3, -1, -2], None, "negative", "2 offending values", "index 2")
        assert fam.name in msg
        _raises(fam, [0, 3, 1.5], None, "non-integer", "index 2")
        _raises(fam, [0, np.inf], None, "non-finite", "index 1")
        fam.validate([0, 1, 2, 1e6], [1, 0.5, 2, 1])


def test_validate_positive_families():
    for fam in (Gamma(), InverseGaussian()):
        msg = _raises(fam, [1.0, 0.0, 2.0, -1.0], None, "positive", "<= 0", "2 offending",
                      "index 1")
        assert fam.name in msg
        _raises(fam, [1.0, np.nan], None, "non-finite")
        fam.validate([0.1, 3.0])


def test_validate_gaussian_and_shapes():
    Gaussian().validate([-3.0, 0.0, 2.5], [1.0, 2.0, 0.0])
    _raises(Gaussian(), [1.0, -np.inf], None, "non-finite", "response", "index 1")
    _raises(Gaussian(), [1.0, 2.0], [1.0, -0.5], "negative")
    with pytest.raises(DataError, match="shape"):
        Gaussian().validate([1.0, 2.0, 3.0], [1.0, 2.0])


# -------------------------------------------------------------------------- starting values


def test_mustart_r_values():
    y = np.array([0.0, 0.5, 1.0, 0.25])
    wt = np.array([1.0, 2.0, 3.0, 0.0])
    np.testing.assert_allclose(Binomial().mustart(y, wt), [0.25, 1.5 / 3, 3.5 / 4, 0.5])
    counts = np.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(Poisson().mustart(counts), counts + 0.1)
    np.testing.assert_allclose(NegativeBinomial(2.0).mustart(counts), [1 / 6, 1.0, 4.0])
    np.testing.assert_array_equal(Gamma().mustart([0.5, 2.0]), [0.5, 2.0])
    np.testing.assert_array_equal(InverseGaussian().mustart([0.5, 2.0]), [0.5, 2.0])
    np.testing.assert_array_equal(Gaussian().mustart([-1.0, 2.0]), [-1.0, 2.0])
    with pytest.raises(DataError, match="starting values"):
        Gaussian("log").mustart([1.0, 0.0])
    with pytest.raises(DataError, match="starting values"):
        Gaussian("inverse").mustart([1.0, 0.0])


def test_valid_mu():
    assert Binomial().valid_mu([0.1, 0.9]) and not Binomial().valid_mu([0.0, 0.5])
    assert Poisson().valid_mu([0.1]) and not Poisson().valid_mu([0.0])
    assert not Gamma().valid_mu([-1.0]) and Gaussian().valid_mu([-1.0])


# ------------------------------------------------------------------------ names and objects


@pytest.mark.parametrize("alias,cls,link", [
    ("binomial", Binomial, "logit"),
    ("poisson", Poisson, "log"),
    ("gaussian", Gaussian, "identity"),
    ("Gamma", Gamma, "inverse"),
    ("gamma", Gamma, "inverse"),
    ("inverse_gaussian", InverseGaussian, "inverse_squared"),
    ("inverse.gaussian", InverseGaussian, "inverse_squared"),
    ("negative_binomial", NegativeBinomial, "log"),
    ("nbinom2", NegativeBinomial, "log"),
    ("negbin", NegativeBinomial, "log"),
])
def test_get_family_names(alias, cls, link):
    fam = get_family(alias)
    assert type(fam) is cls and fam.link.name == link == fam.canonical_link
    assert type(from_name(alias)) is cls


def test_get_family_objects_and_links():
    fam = Binomial("probit")
    assert get_family(fam) is fam
    other = get_family(fam, link="cloglog")
    assert other.link.name == "cloglog" and fam.link.name == "probit"
    assert get_family(Poisson).link.name == "log"
    assert get_family("inverse.gaussian", link="1/mu^2") == InverseGaussian()
    assert get_family("Gamma", link="log").link.name == "log"
    nb = get_family("negbin", shape=3.0)
    assert nb.shape == 3.0 and nb.has_shape and not nb.has_dispersion
    assert get_family(nb, shape=4.0).shape == 4.0 and nb.shape == 3.0
    assert from_name("nbinom2", link="sqrt", shape=0.5) == NegativeBinomial(0.5, "sqrt")
    assert NegativeBinomial().shape == 1.0
    assert NegativeBinomial(2.0).r_name == "Negative Binomial(2)"
    assert Gamma().r_name == "Gamma" and InverseGaussian().r_name == "inverse.gaussian"


def test_flags():
    assert not Binomial().has_dispersion and not Poisson().has_dispersion
    assert Gaussian().has_dispersion and Gamma().has_dispersion
    assert InverseGaussian().has_dispersion
    assert not any(FAMILIES[n]().has_shape for n in FAMILIES if n != "negative_binomial")


def test_with_shape():
    nb = NegativeBinomial(1.0, "sqrt")
    nb2 = nb.with_shape(5.0)
    assert nb2.shape == 5.0 and nb.shape == 1.0 and nb2.link.name == "sqrt"
    assert nb2.variance(2.0) == pytest.approx(2.0 + 4.0 / 5.0)
    with pytest.raises(DataError, match="shape"):
        nb.with_shape(0.0)
    with pytest.raises(DataError, match="shape"):
        NegativeBinomial(-1.0)
    with pytest.raises(DataError, match="no shape"):
        Poisson().with_shape(2.0)


def test_invalid_link_errors():
    with pytest.raises(DataError) as info:
        Poisson("probit")
    msg = str(info.value)
    assert "probit" in msg and "poisson" in msg and "log, identity, sqrt" in msg
    with pytest.raises(DataError, match="logit.*gaussian"):
        get_family("gaussian", link="logit")
    with pytest.raises(DataError, match="binomial.*unknown link 'loglog'"):
        Binomial("loglog")
    with pytest.raises(DataError, match="gamma"):
        get_family(Gamma(), link="1/mu^2")
    with pytest.raises(DataError, match="unknown family 'quasipoisson'"):
        get_family("quasipoisson")


def test_dispersion_must_be_positive():
    with pytest.raises(DataError, match="dispersion"):
        Gaussian().loglik([1.0], [1.0], None, 0.0)
    Poisson().loglik([1.0], [1.0], None, 0.0)  # ignored where there is no dispersion


def test_negative_binomial_size_derivatives_against_differences():
    """The closed-form derivatives in log(size) at fixed eta (the Laplace gradient's column
    for the size) against central differences of the family, with prior weights; none for
    the expected information or another link."""
    from glamm.families import get_family

    fam = get_family("negative_binomial").with_shape(2.3)
    y = np.array([0, 0, 1, 2, 5, 9, 0, 3, 14], dtype=float)
    eta = np.array([-0.3, 0.8, 0.1, 1.2, 1.5, 2.0, 2.5, -1.0, 3.1])
    wt = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0, 1.0, 0.0])
    mu = np.exp(eta)
    dlp, ds, dw = fam.extra_derivatives(y, eta, wt, observed=True)
    assert dlp.shape == ds.shape == dw.shape == (9, 1)
    v, h = fam.extra_values(), 1e-6
    up, down = fam.with_extra(v + h), fam.with_extra(v - h)
    for got, fn in ((dlp, lambda f: f.loglik(y, mu, wt)),
                    (ds, lambda f: f.dloglik_deta(y, mu, eta, wt)),
                    (dw, lambda f: -f.d2loglik_deta2(y, mu, eta, wt))):
        assert got[:, 0] == pytest.approx((fn(up) - fn(down)) / (2 * h), rel=1e-6, abs=1e-8)
    assert fam.extra_derivatives(y, eta, wt, observed=False) is None
    sqrt = get_family("negative_binomial", link="sqrt").with_shape(2.3)
    assert sqrt.extra_derivatives(y, np.sqrt(mu), wt, observed=True) is None

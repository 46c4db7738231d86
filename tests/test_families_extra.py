"""Families outside the exponential family (glmmTMB's nbinom1, beta, betabinomial, t):
densities against R and SciPy, derivatives against differences, glmer fits against glmmTMB
1.1.5 (tests/reference/families_extra, made by make_families_extra.R), adaptive quadrature
against a brute-force integral, glm without random effects, and bad input."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glamm
from glamm.errors import DataError
from glamm.families import (
    Beta,
    BetaBinomial,
    GeneralizedPoisson,
    NegativeBinomial1,
    StudentT,
    Tweedie,
    get_family,
)
from glamm.families.extra import trigamma
from glamm.families.tweedie import tweedie_log_series

REF = Path(__file__).parent / "reference" / "families_extra"


def _json(name: str) -> dict:
    return json.loads((REF / name).read_text())


@pytest.fixture(scope="module")
def sal() -> pd.DataFrame:
    d = pd.read_csv(REF / "Salamanders.csv")
    d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    d["site"] = d["site"].astype(str)
    return d


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    d = pd.read_csv(REF / "sim_families.csv")
    d["g"] = pd.Categorical(d["g"].astype(str), categories=[str(i) for i in range(1, 31)])
    return d


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    d = pd.read_csv(REF / "cbpp.csv")
    d["herd"] = pd.Categorical(d["herd"].astype(str), [str(i) for i in range(1, 16)])
    d["period"] = pd.Categorical(d["period"].astype(str), ["1", "2", "3", "4"])
    return d


# ------------------------------------------------------------------------------- densities
def test_densities_match_r():
    d = _json("densities.json")
    i = d["inputs"]
    y, mu = np.array(i["y_cnt"]), np.array(i["mu_cnt"])
    np.testing.assert_allclose(NegativeBinomial1(phi=i["phi1"]).loglik(y, mu), d["nbinom1"],
                               rtol=1e-10)
    y01, mu01 = np.array(i["y01"]), np.array(i["mu01"])
    np.testing.assert_allclose(Beta(phi=i["phib"]).loglik(y01, mu01), d["beta"], rtol=1e-10)
    k, n = np.array(i["k"], float), np.array(i["n"], float)
    np.testing.assert_allclose(BetaBinomial(phi=i["phib"]).loglik(k / n, mu01, n),
                               d["betabinomial"], rtol=1e-10)
    yt, mut = np.array(i["yt"]), np.array(i["mut"])
    np.testing.assert_allclose(StudentT(df=i["df"]).loglik(yt, mut, dispersion=i["sig"] ** 2),
                               d["t"], rtol=1e-10)


def test_densities_match_scipy():
    rng = np.random.default_rng(3)
    mu = rng.uniform(0.3, 12, 50)
    y = rng.poisson(mu * 1.5).astype(float)
    phi = 1.7
    k = mu / phi
    np.testing.assert_allclose(NegativeBinomial1(phi=phi).loglik(y, mu),
                               stats.nbinom.logpmf(y, k, 1 / (1 + phi)), rtol=1e-9)
    m01 = rng.uniform(0.05, 0.95, 50)
    y01 = rng.uniform(0.01, 0.99, 50)
    np.testing.assert_allclose(Beta(phi=4.2).loglik(y01, m01),
                               stats.beta.logpdf(y01, m01 * 4.2, (1 - m01) * 4.2), rtol=1e-9)
    n = rng.integers(1, 30, 50).astype(float)
    s = np.floor(rng.uniform(0, 1, 50) * (n + 1))
    np.testing.assert_allclose(
        BetaBinomial(phi=3.3).loglik(s / n, m01, n),
        stats.betabinom.logpmf(s, n, m01 * 3.3, (1 - m01) * 3.3), rtol=1e-9)
    yt = rng.normal(0, 3, 50)
    np.testing.assert_allclose(StudentT(df=2.6).loglik(yt, m01, dispersion=2.25),
                               stats.t.logpdf(yt, 2.6, loc=m01, scale=1.5), rtol=1e-9)


def test_genpois_density_matches_r_and_sums_to_one():
    d = _json("tmb_salamanders_genpois.json")["density"]
    np.testing.assert_allclose(GeneralizedPoisson(phi=d["phi"]).loglik(
        np.array(d["y"], float), np.array(d["mu"])), d["logp"], rtol=1e-10)
    y = np.arange(0, 400, dtype=float)
    for phi in (0.7, 1.0, 3.5):
        p = np.exp(GeneralizedPoisson(phi=phi).loglik(y, np.full(y.size, 4.0)))
        assert p.sum() == pytest.approx(1.0, abs=1e-10)
        assert (y * p).sum() == pytest.approx(4.0, rel=1e-9)
        assert ((y - 4.0) ** 2 * p).sum() == pytest.approx(4.0 * phi, rel=1e-8)
    np.testing.assert_allclose(GeneralizedPoisson(phi=1.0).loglik(y[:30], np.full(30, 2.5)),
                               stats.poisson.logpmf(y[:30], 2.5), rtol=1e-10)


def _tweedie_by_sum(y, mu, phi, p, terms=600):
    """The compound Poisson-gamma density by its defining sum (SciPy's Poisson and gamma)."""
    lam = mu ** (2 - p) / (phi * (2 - p))
    alpha, tau = (2 - p) / (p - 1), phi * (p - 1) * mu ** (p - 1)
    j = np.arange(1, terms)[:, None]
    logs = stats.poisson.logpmf(j, lam) + stats.gamma.logpdf(y, j * alpha, scale=tau)
    return special.logsumexp(logs, axis=0)


@pytest.mark.parametrize("p,phi,mu", [(1.4, 1.3, 2.0), (1.1, 0.5, 3.0), (1.9, 2.0, 0.7),
                                      (1.5, 0.05, 10.0), (1.05, 3.0, 40.0)])
def test_tweedie_series_matches_compound_poisson(p, phi, mu):
    y = np.array([1e-3, 0.3, 1.0, 2.5, 7.0, 20.0, 60.0])
    np.testing.assert_allclose(Tweedie(power=p).loglik(y, np.full(y.size, mu), dispersion=phi),
                               _tweedie_by_sum(y, mu, phi, p), rtol=1e-10)
    p0 = Tweedie(power=p).loglik(np.zeros(1), np.full(1, mu), dispersion=phi)
    assert p0[0] == pytest.approx(-mu ** (2 - p) / (phi * (2 - p)), rel=1e-12)
    # vectorized in blocks: the same values for one row at a time and for an n x 1 column
    single = [float(tweedie_log_series(np.array([v]), phi, p)[0]) for v in y]
    np.testing.assert_allclose(tweedie_log_series(y[:, None], phi, p)[:, 0], single,
                               rtol=1e-13)
    with pytest.raises(DataError, match=r"power must be in \(1, 2\)"):
        Tweedie(power=2.5)


def test_tweedie_series_memory_is_bounded(monkeypatch):
    from glamm.families import tweedie as tw

    y = np.array([1e-3, 0.3, 1.0, 2.5, 7.0, 20.0, 60.0])
    # near the gamma limit the window would need ~1e6 terms per row: NaN, at once
    assert np.all(np.isnan(tweedie_log_series(y, 0.4, 1.99999)))
    # rows in blocks of bounded size give the same values as all rows at once
    rng = np.random.default_rng(0)
    many = rng.gamma(1.0, 3.0, 300)
    whole = tweedie_log_series(many, 0.7, 1.6)
    monkeypatch.setattr(tw, "_SERIES_BUDGET", 500)
    blocked = tweedie_log_series(many, 0.7, 1.6)
    np.testing.assert_allclose(blocked, whole, rtol=1e-14)
    vals, d_phi, d_p = tw.tweedie_log_series_derivatives(many, 0.7, 1.6)
    np.testing.assert_allclose(vals, whole, rtol=1e-14)
    assert np.all(np.isfinite(d_phi)) and np.all(np.isfinite(d_p))


def test_tweedie_without_zeros_warns_once():
    fam = Tweedie()
    y = np.array([0.5, 1.2, 3.0])
    with pytest.warns(UserWarning, match="no zeros"):
        fam.validate(y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fam.validate(y)                            # the same responses: not again
        Tweedie().validate(np.array([0.0, 1.0]))   # zeros: no warning


@pytest.mark.slow
def test_tweedie_fit_without_zeros_stops_near_the_gamma_limit():
    # no zeros: the power's estimate runs to 2; the fit must stop (bounded series) close to
    # the gamma model's log-likelihood (glmmTMB reports false convergence on such data)
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(8), 8)
    x = rng.normal(size=g.size)
    y = rng.gamma(3.0, np.exp(0.3 + 0.4 * x + rng.normal(0, 0.5, 8)[g]) / 3.0)
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    with pytest.warns(UserWarning, match="no zeros"):
        m = glamm.glmer("y ~ x + (1 | g)", d, family="tweedie")
    gamma = glamm.glmer("y ~ x + (1 | g)", d, family="Gamma", link="log")
    assert m.family_parameters.loc["power", "estimate"] > 1.99
    assert m.loglik == pytest.approx(gamma.loglik, abs=0.01)


@pytest.mark.parametrize("p,phi", [(1.4, 1.3), (1.1, 0.5), (1.9, 2.0), (1.5, 0.05)])
def test_tweedie_parameter_derivatives_against_differences(p, phi):
    # the series' derivatives in log(phi) and the power, and the log-density's in log(phi)
    # and logit(power - 1), against central differences of the log-density itself
    y = np.array([0.0, 1e-3, 0.3, 1.0, 2.5, 7.0, 0.0, 20.0, 60.0])
    mu = np.array([0.5, 0.2, 0.4, 1.3, 2.0, 5.0, 1.0, 12.0, 50.0])
    wt = np.array([1.0, 1.0, 2.0, 1.0, 0.0, 1.0, 1.0, 0.5, 1.0])
    fam = Tweedie(power=p)
    d_logphi, d_extra = fam.loglik_parameter_derivatives(y, mu, wt, phi)
    h = 1e-3

    def fourth_order(f):   # error O(h^4) ~ 1e-12, without the round-off of a tiny step
        return (8.0 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12.0 * h)

    np.testing.assert_allclose(
        d_logphi, fourth_order(lambda e: fam.loglik(y, mu, wt, phi * np.exp(e))),
        rtol=1e-8, atol=1e-9)
    v = fam.extra_values()
    np.testing.assert_allclose(
        d_extra[:, 0], fourth_order(lambda e: fam.with_extra(v + e).loglik(y, mu, wt, phi)),
        rtol=1e-8, atol=1e-9)
    assert fam.loglik_parameter_derivatives(y, mu, wt, np.full(y.size, phi)) is None


def test_trigamma_matches_scipy():
    x = np.concatenate([np.geomspace(1e-8, 1e8, 2001), np.linspace(0.01, 30, 300)])
    np.testing.assert_allclose(trigamma(x), special.polygamma(1, x), rtol=1e-13)
    assert trigamma(np.zeros(0)).shape == (0,)
    np.testing.assert_allclose(trigamma(np.full((2, 3), 4.5)), special.polygamma(1, 4.5),
                               rtol=1e-13)


CASES = [(NegativeBinomial1(phi=2.0), "log"), (NegativeBinomial1(phi=0.5), "sqrt"),
         (Beta(phi=6.0), "logit"), (Beta(phi=3.0), "probit"), (Beta(phi=3.0), "cloglog"),
         (BetaBinomial(phi=4.0), "logit"), (StudentT(df=3.5), "identity"),
         (StudentT(df=8.0), "log"), (GeneralizedPoisson(phi=2.5), "log"),
         (GeneralizedPoisson(phi=1.4), "sqrt"), (Tweedie(power=1.3), "log"),
         (Tweedie(power=1.7), "sqrt")]


def _data(fam, rng):
    if isinstance(fam, Tweedie):
        y = np.where(rng.uniform(size=30) < 0.3, 0.0, rng.gamma(2.0, 1.5, 30))
        return y, np.ones(30), rng.uniform(0.5, 2.0, 30)
    if isinstance(fam, NegativeBinomial1 | GeneralizedPoisson):
        return rng.poisson(4.0, 30).astype(float), np.ones(30), rng.uniform(0.5, 2.0, 30)
    if isinstance(fam, Beta):
        return rng.uniform(0.02, 0.98, 30), np.ones(30), rng.uniform(-1.0, 0.5, 30)
    if isinstance(fam, BetaBinomial):
        n = rng.integers(1, 12, 30).astype(float)
        return np.floor(rng.uniform(0, 1, 30) * (n + 1)) / n, n, rng.uniform(-1.5, 1.5, 30)
    return rng.normal(2.0, 2.0, 30) + 3.0, np.ones(30), rng.uniform(0.8, 1.8, 30)


@pytest.mark.parametrize("fam,link", CASES, ids=[f"{f.name}-{lk}" for f, lk in CASES])
def test_eta_derivatives_match_differences(fam, link):
    fam = fam.with_link(link)
    y, wt, eta = _data(fam, np.random.default_rng(7))
    disp = 1.3 if fam.has_dispersion else 1.0
    mu = fam.link.inverse(eta)
    h = 1e-5

    def ll(e):
        return fam.loglik(y, fam.link.inverse(e), wt, disp)

    def score(e):
        return fam.dloglik_deta(y, fam.link.inverse(e), e, wt, disp)

    num = (ll(eta + h) - ll(eta - h)) / (2 * h)
    np.testing.assert_allclose(fam.dloglik_deta(y, mu, eta, wt, disp), num, rtol=1e-6,
                               atol=1e-7)
    num2 = (score(eta + h) - score(eta - h)) / (2 * h)
    np.testing.assert_allclose(fam.d2loglik_deta2(y, mu, eta, wt, disp), num2, rtol=1e-5,
                               atol=1e-6)
    # the loglik in eta and quadrature's 2-D shapes agree with the plain one
    np.testing.assert_allclose(fam.loglik_eta(y[:, None], eta[:, None] + np.zeros((1, 3)),
                                              wt[:, None], disp)[:, 1], ll(eta), rtol=1e-12)
    w, mu_eta = fam.fisher_weights(eta, mu, wt, disp)
    assert np.all(w > 0)
    # PIRLS's working residual carries the score
    np.testing.assert_allclose(w * fam.working_residual(y, mu, eta, wt, disp, w, mu_eta),
                               fam.dloglik_deta(y, mu, eta, wt, disp), rtol=1e-12, atol=1e-14)


def test_beta_and_t_weights_are_expected_information():
    """The beta's Fisher weight is its (y-free) information; the t's integrates to the
    expected information (checked by quadrature over the t density)."""
    fam = StudentT(df=4.0)
    z = np.linspace(-200, 200, 400001)
    dens = stats.t.pdf(z, 4.0)
    info = np.trapezoid(dens * (fam.dloglik_dmu(z, 0.0)) ** 2, z)
    np.testing.assert_allclose(fam.fisher_weights(np.zeros(1), np.zeros(1), np.ones(1))[0],
                               info, rtol=1e-4)


def test_names_aliases_and_equality():
    assert get_family("nbinom1").name == "nbinom1"
    for alias in ("beta", "beta_family", "beta.fam"):
        assert get_family(alias) == Beta()
    for alias in ("t", "students.t", "student_t", "t_family"):
        assert get_family(alias).name == "t"
    assert get_family("betabinomial").link.name == "logit"
    assert Beta(phi=2.0) != Beta(phi=3.0)
    assert NegativeBinomial1(phi=2.0) == NegativeBinomial1(phi=2.0)
    b = Beta().with_extra(np.log([5.0]))
    assert b.phi == pytest.approx(5.0) and b.extra_names() == ["log(phi)"]
    assert StudentT().extra_names() == ["log(df)"] and StudentT().has_dispersion


# ------------------------------------------------------------------------------ bad input
def test_bad_input_names_rows(sal, sim):
    d = sim.copy()
    d.loc[[3, 7], "y_beta"] = [0.0, 1.0]
    with pytest.raises(DataError, match=r"rows 3, 7.*\(y \* \(n - 1\) \+ 0.5\) / n"):
        glamm.glmer("y_beta ~ x + (1 | g)", d, family="beta")
    s = sal.copy()
    s["count"] = s["count"].astype(float)
    s.loc[5, "count"] = -1
    with pytest.raises(DataError, match="negative counts in rows 5"):
        glamm.glmer("count ~ mined + (1 | site)", s, family="nbinom1")
    s.loc[5, "count"] = 1.5
    with pytest.raises(DataError, match="non-integer counts in rows 5"):
        glamm.glmer("count ~ mined + (1 | site)", s, family="nbinom1")
    with pytest.raises(DataError, match="phi must be positive"):
        NegativeBinomial1(phi=-1.0)
    with pytest.raises(DataError, match="non-finite"):
        StudentT().validate(np.array([1.0, np.nan]))


def test_betabinomial_bad_trials():
    with pytest.raises(DataError, match="non-integer numbers of successes in rows 1"):
        BetaBinomial().validate(np.array([0.5, 0.3]), np.array([2.0, 3.0]))


# ---------------------------------------------------------------------- glmmTMB references
FITS = [("fam_salamanders_nb1.json", "count ~ mined + (1 | site)", "sal", {"family": "nbinom1"}),
        ("fam_sim_beta.json", "y_beta ~ x + (1 | g)", "sim", {"family": "beta"}),
        ("fam_sim_t.json", "y_t ~ x + (1 | g)", "sim", {"family": "t"}),
        ("fam_sim_gamma_log.json", "y_gamma ~ x + (1 | g)", "sim",
         {"family": "Gamma", "link": "log"})]


@pytest.mark.parametrize("ref,formula,data,kw", FITS, ids=[f[0][:-5] for f in FITS])
def test_matches_glmmtmb(ref, formula, data, kw, request):
    r = _json(ref)
    m = glamm.glmer(formula, request.getfixturevalue(data), **kw)
    ll = r["logLik"]
    assert m.loglik >= ll - 1e-6 * abs(ll)
    assert m.loglik == pytest.approx(ll, rel=1e-6)
    np.testing.assert_allclose(m.fixef.to_numpy(), list(r["fixef"]["cond"].values()),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.stderr.to_numpy(), list(r["fixef_se"]["cond"].values()),
                               rtol=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    sd = m.varcorr.loc[m.varcorr["group"] != "Residual", "sdcor"].to_numpy()
    np.testing.assert_allclose(sd, r["varcorr"]["cond"][0]["sd"], rtol=1e-4)
    if kw["family"] == "t":
        assert m.model.family.df == pytest.approx(np.exp(r["fit_par"]["psi"]), rel=1e-3)
        fp = m.family_parameters
        assert fp.loc["df", "estimate"] == pytest.approx(np.exp(r["fit_par"]["psi"]), rel=1e-3)
        assert fp.loc["sigma", "estimate"] == pytest.approx(r["sigma"], rel=1e-4)
    if kw["family"] in ("nbinom1", "beta"):
        fp = m.family_parameters
        assert fp.loc["phi", "estimate"] == pytest.approx(r["sigma"], rel=1e-4)
        assert fp.loc["phi", "std_error"] > 0 and bool(fp.loc["phi", "tmb_sigma"])
        assert f"Dispersion parameter for {kw['family']} family ()" in m.summary()
        assert m.to_dict()["family_parameters"]["phi"]["estimate"] == pytest.approx(
            r["sigma"], rel=1e-4)


@pytest.mark.parametrize("ref,formula,data,family,natural",
                         [("tmb_salamanders_genpois.json", "count ~ mined + (1 | site)", "sal",
                           "genpois", "phi"),
                          ("tmb_sim_tweedie.json", "y_tweedie ~ x + (1 | g)", "sim", "tweedie",
                           "dispersion")], ids=["genpois", "tweedie"])
def test_genpois_and_tweedie_match_glmmtmb(ref, formula, data, family, natural, request):
    r = _json(ref)
    m = glamm.glmer(formula, request.getfixturevalue(data), family=family)
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-6)
    np.testing.assert_allclose(m.fixef.to_numpy(), r["fixef"], rtol=1e-4)
    np.testing.assert_allclose(m.stderr.to_numpy(), r["fixef_se"], rtol=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    fp = m.family_parameters
    assert fp.loc[natural, "estimate"] == pytest.approx(r["sigma"], rel=1e-4)
    assert bool(fp.loc[natural, "tmb_sigma"]) and fp["std_error"].gt(0).all()
    if family == "tweedie":
        assert m.model.family.power == pytest.approx(r["power"], rel=1e-4)
        assert fp.loc["power", "estimate"] == pytest.approx(r["power"], rel=1e-4)
        assert "Tweedie power: 1.464" in m.summary()
    sd = m.varcorr.loc[m.varcorr["group"] != "Residual", "sdcor"].to_numpy()
    np.testing.assert_allclose(sd, [r.get("sd_site", r.get("sd_g"))], rtol=1e-4)


def test_betabinomial_matches_glmmtmb(cbpp):
    r = _json("tmb_cbpp_betabinomial.json")
    with pytest.warns(glamm.errors.SingularFitWarning):
        m = glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                        family="betabinomial")
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-6)
    np.testing.assert_allclose(m.fixef.to_numpy(), r["fixef"], rtol=1e-4)
    np.testing.assert_allclose(m.stderr.to_numpy(), r["fixef_se"], rtol=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    assert m.family_parameters.loc["phi", "std_error"] == pytest.approx(
        r["sigma"] * r["betad_se"], rel=1e-3)


GLMS = [("nbinom1", "count ~ mined", "sal"), ("beta", "y_beta ~ x", "sim"),
        ("t", "y_t ~ x", "sim"), ("genpois", "count ~ mined", "sal"),
        ("tweedie", "y_tweedie ~ x", "sim")]


@pytest.mark.parametrize("family,formula,data", GLMS, ids=[g[0] for g in GLMS])
def test_glm_matches_glmmtmb(family, formula, data, request):
    r = _json("tmb_glm_families.json")[family]
    m = glamm.glm(formula, request.getfixturevalue(data), family=family)
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    np.testing.assert_allclose(m.fixef.to_numpy(), r["fixef"], rtol=1e-4)
    np.testing.assert_allclose(m.stderr.to_numpy(), r["fixef_se"], rtol=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    if family == "t":
        assert m.family_parameters["df"] == pytest.approx(np.exp(r["psi"]), rel=1e-3)
    if family == "tweedie":
        assert m.family_parameters["power"] == pytest.approx(r["power"], rel=1e-4)
        assert m.family_parameters["dispersion"] == pytest.approx(r["sigma"], rel=1e-4)
    assert set(m.to_dict()["family_parameters"]) == set(m.family_parameters)
    assert "estimated by maximum likelihood" in m.summary()
    assert "z value" in m.summary()


# ------------------------------------------------------------------------------ quadrature
def _brute_force(fam_logpdf, y, eta0, cluster, sd_b, points=4001):
    """The marginal log-likelihood by a fine trapezoid rule over each cluster's random
    intercept (+-10 prior SDs, ``points`` points), densities from SciPy."""
    z = np.linspace(-10, 10, points)
    b = sd_b * z
    m = cluster.max() + 1
    a = np.zeros((m, z.size))
    for k in range(z.size):
        a[:, k] = np.bincount(cluster, fam_logpdf(y, eta0 + b[k]), minlength=m)
    logw = stats.norm.logpdf(z) + np.log(z[1] - z[0])
    return float(np.sum(special.logsumexp(a + logw, axis=1)))


def _scipy_logpdf(m, data):
    fam = m.model.family
    if fam.name == "nbinom1":
        phi = fam.phi
        return lambda y, e: stats.nbinom.logpmf(y, np.exp(e) / phi, 1 / (1 + phi))
    if fam.name == "beta":
        phi = fam.phi
        return lambda y, e: stats.beta.logpdf(y, special.expit(e) * phi,
                                              (1 - special.expit(e)) * phi)
    if fam.name == "t":
        df, s = fam.df, m.sigma
        return lambda y, e: stats.t.logpdf(y, df, loc=e, scale=s)
    if fam.name == "genpois":
        s = np.sqrt(fam.phi)

        def genpois(y, e):
            theta, lam = np.exp(e) / s, 1 - 1 / s
            return (np.log(theta) + (y - 1) * np.log(theta + lam * y) - theta - lam * y
                    - special.gammaln(y + 1))
        return genpois
    if fam.name == "tweedie":
        p, phi = fam.power, m.sigma

        def tweedie(y, e):
            mu = np.exp(e)
            out = -mu ** (2 - p) / (phi * (2 - p))
            pos = y > 0
            out[pos] = _tweedie_by_sum(y[pos], mu[pos], phi, p, terms=80)
            return out
        return tweedie
    phi = fam.phi
    n = data["size"].to_numpy(float)
    return lambda y, e: stats.betabinom.logpmf(y, n, special.expit(e) * phi,
                                               (1 - special.expit(e)) * phi)


QUAD = [("count ~ mined + (1 | site)", "sal", "nbinom1", "count"),
        ("y_beta ~ x + (1 | g)", "sim", "beta", "y_beta"),
        ("y_t ~ x + (1 | g)", "sim", "t", "y_t"),
        ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "betabinomial",
         "incidence"),
        ("count ~ mined + (1 | site)", "sal", "genpois", "count"),
        ("y_tweedie ~ x + (1 | g)", "sim", "tweedie", "y_tweedie")]


@pytest.mark.slow
@pytest.mark.parametrize("formula,data,family,ycol", QUAD, ids=[q[2] for q in QUAD])
def test_quadrature_matches_brute_force(formula, data, family, ycol, request):
    d = request.getfixturevalue(data)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glamm.glmer(formula, d, family=family, nagq=9)
    y = d[ycol].to_numpy(float)
    eta0 = m.predict(type="link", re=False)
    cluster = m.model.reterms[0].refs
    sd_b = float(m.varcorr["sdcor"].iloc[0])
    if sd_b < 1e-6:
        pytest.skip("singular fit: no random effect to integrate")
    exact = _brute_force(_scipy_logpdf(m, d), y, eta0, cluster, sd_b,
                         points=401 if family == "tweedie" else 4001)
    assert m.loglik == pytest.approx(exact, rel=1e-7)
    assert np.all(np.isfinite(m.stderr))
    assert "nAGQ = 9" in m.summary()


def test_with_values_replaces_named_parameters_only():
    fam = get_family("nbinom1")
    two = fam.with_values(phi=2.5)
    assert two.values == (2.5,) and fam.values != two.values
    assert two.variance(np.array([2.0]))[0] == pytest.approx(2.0 * 3.5)
    assert get_family("t").with_values().values == get_family("t").values
    with pytest.raises(DataError, match="phi must be positive"):
        fam.with_values(phi=-1.0)

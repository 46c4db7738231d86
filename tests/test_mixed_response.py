"""Per-row families (galamm's mixed response types) and heteroscedastic residuals in them.

Truth here is an independent computation written in this file: for one scalar random effect
per cluster (times each row's loading) the marginal likelihood is a product of one-dimensional
integrals, evaluated by brute-force Gauss-Hermite quadrature (60 points, non-adaptive on the
prior scale) and by a per-cluster Laplace approximation (Newton for each cluster's mode).

galamm's own values for these models (``galamm_mresp``, ``galamm_mixed_response``) are not the
marginal likelihood: its C++ code plugs in the Gaussian dispersion as ``(RSS + |u|^2) / n``
and its Laplace log-determinant leaves the binomial rows' weights unscaled by that
dispersion (``src/model.h``, ``src/compute_galamm.cpp``; ``_galamm_value`` below reproduces
its printed value to 1e-9). At galamm's mresp estimates the
brute-force log-likelihood is -4624.64 (galamm prints -4619.34); its maximum is -4620.873,
which glamm's quadrature fit reaches and its Laplace fit comes within 0.05 of. The tests
therefore check glamm against the brute-force values, and against galamm only where the two
definitions agree (the sign and size of the effects).
"""

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, load_reference
from scipy import special

import glamm
from glamm.errors import DataError, FormulaError, GlammError
from glamm.glmm.fit import full_objective

GH_Z, GH_W = np.polynomial.hermite_e.hermegauss(60)
GH_W = GH_W / np.sqrt(2.0 * np.pi)


def _logp(y, eta, fam, phi, trials):
    """Log-density per row: fam 0 Gaussian (dispersion phi), 1 binomial logit (successes
    y out of trials), 2 Poisson log."""
    gauss = -0.5 * (y - eta) ** 2 / phi - 0.5 * np.log(2 * np.pi * phi)
    k = y * trials
    binom = (special.gammaln(trials + 1) - special.gammaln(k + 1) - special.gammaln(trials - k + 1)
             + k * eta - trials * np.logaddexp(0.0, eta))
    pois = y * eta - np.exp(eta) - special.gammaln(y + 1)
    return np.where(fam == 0, gauss, np.where(fam == 1, binom, pois))


def brute_force_loglik(y, eta0, load, cluster, fam, phi, sd_b, trials=None):
    """The marginal log-likelihood by 60-point Gauss-Hermite quadrature per cluster."""
    trials = np.ones_like(y) if trials is None else trials
    m = cluster.max() + 1
    a = np.empty((m, GH_Z.size))
    for k, z in enumerate(GH_Z):
        a[:, k] = np.bincount(cluster, _logp(y, eta0 + load * sd_b * z, fam, phi, trials),
                              minlength=m)
    return float(np.sum(special.logsumexp(a + np.log(GH_W), axis=1)))


def laplace_loglik(y, eta0, load, cluster, fam, phi, sd_b, trials=None):
    """The Laplace approximation per cluster (observed information; canonical links)."""
    trials = np.ones_like(y) if trials is None else trials
    m = cluster.max() + 1
    b = np.zeros(m)
    for _ in range(100):
        eta = eta0 + load * b[cluster]
        mu = np.where(fam == 0, eta, np.where(fam == 1, special.expit(eta), np.exp(eta)))
        score = np.where(fam == 0, (y - eta) / phi, np.where(fam == 1, trials * (y - mu),
                                                             y - mu))
        info = np.where(fam == 0, 1.0 / phi, np.where(fam == 1, trials * mu * (1 - mu), mu))
        g = np.bincount(cluster, load * score, minlength=m) - b / sd_b**2
        H = np.bincount(cluster, load**2 * info, minlength=m) + 1.0 / sd_b**2
        step = g / H
        b += step
        if np.max(np.abs(step)) < 1e-12:
            break
    eta = eta0 + load * b[cluster]
    h = np.bincount(cluster, _logp(y, eta, fam, phi, trials), minlength=m) \
        - 0.5 * b**2 / sd_b**2 - 0.5 * np.log(2 * np.pi * sd_b**2)
    return float(np.sum(h + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(H)))


# ------------------------------------------------------------------------ mresp (galamm)
@pytest.fixture(scope="module")
def mresp():
    return load_data("mresp")


MRESP_CALL = dict(family=["gaussian", "binomial"], family_index="family_index",
                  load_var="itemgroup", factor="level", lambda_=[[1], [np.nan]])


@pytest.fixture(scope="module")
def mresp_fit(mresp):
    return glamm.galamm("y ~ x + (0 + level | id)", mresp, **MRESP_CALL)


def _mresp_pieces(d, beta, lam, phi, sd_b):
    y = d["y"].to_numpy(float)
    fam = d["family_index"].to_numpy() - 1
    cluster = pd.factorize(d["id"])[0]
    eta0 = beta[0] + beta[1] * d["x"].to_numpy(float)
    load = np.where(fam == 0, 1.0, lam)
    return y, eta0, load, cluster, fam, np.where(fam == 0, phi, 1.0), sd_b


def test_mresp_laplace_objective_at_fixed_parameters(mresp, mresp_fit):
    """The Laplace deviance at given (theta, beta, loading, dispersion), away from the
    optimum, equals the per-cluster Laplace computed independently."""
    model = mresp_fit.model.working_copy()
    f = full_objective(model)
    for sd_b, beta, lam, phi in [(0.8, (0.2, 0.5), 1.4, 1.3), (1.2, (-0.1, 1.2), 0.6, 0.8)]:
        x = model.parameters.assemble({"theta": np.array([sd_b]), "beta": np.array(beta),
                                       "lambda": np.array([lam]),
                                       "response": np.array([np.log(phi)])})
        want = laplace_loglik(*_mresp_pieces(mresp, beta, lam, phi, sd_b))
        assert -0.5 * f(x) == pytest.approx(want, rel=1e-10)


def test_mresp_laplace_fit(mresp, mresp_fit):
    m = mresp_fit
    assert m.families == {"1": "gaussian(identity)", "2": "binomial(logit)"}
    # the maximum of the independent Laplace approximation: the gradient there is zero
    beta, lam = m.fixef.to_numpy(), float(m.loadings[0])
    phi, sd_b = float(m.family_dispersions.iloc[0]), float(m.theta[0])
    assert m.loglik == pytest.approx(
        laplace_loglik(*_mresp_pieces(mresp, beta, lam, phi, sd_b)), rel=1e-10)
    x0 = np.array([*beta, lam, np.log(phi), sd_b])

    def ll(x):
        return laplace_loglik(*_mresp_pieces(mresp, x[:2], x[2], np.exp(x[3]), x[4]))

    h = 1e-5
    grad = [(ll(x0 + h * e) - ll(x0 - h * e)) / (2 * h) for e in np.eye(5)]
    assert np.max(np.abs(grad)) < 2e-3
    # the brute-force likelihood at glamm's Laplace estimates is within 0.05 of its maximum
    # (the quadrature fit's, below) and 3.7 above its value at galamm's estimates
    ref = load_reference("galamm_mresp")
    exact_ours = brute_force_loglik(*_mresp_pieces(mresp, beta, lam, phi, sd_b))
    exact_galamm = brute_force_loglik(*_mresp_pieces(
        mresp, list(ref["fixef"].values()), ref["factor_loadings"]["values"][1][0],
        ref["dispersion_parameter"][0], ref["varcorr"][0]["sd"][0]))
    assert exact_ours == pytest.approx(-4620.916, abs=2e-3)
    assert exact_galamm == pytest.approx(-4624.641, abs=2e-3)
    # the effects agree with galamm's in size (its approximation moves them a little)
    assert beta == pytest.approx(list(ref["fixef"].values()), abs=0.01)
    assert m.stderr.to_numpy() == pytest.approx(list(ref["fixef_se"].values()), rel=0.05)


def test_mresp_quadrature_reaches_the_exact_maximum(mresp):
    m = glamm.galamm("y ~ x + (0 + level | id)", mresp, nagq=15, **MRESP_CALL)
    beta, lam = m.fixef.to_numpy(), float(m.loadings[0])
    phi, sd_b = float(m.family_dispersions.iloc[0]), float(m.theta[0])
    exact = brute_force_loglik(*_mresp_pieces(mresp, beta, lam, phi, sd_b))
    assert m.loglik == pytest.approx(exact, rel=1e-8)
    x0 = np.array([*beta, lam, np.log(phi), np.log(sd_b)])

    def ll(x):
        return brute_force_loglik(*_mresp_pieces(mresp, x[:2], x[2], np.exp(x[3]),
                                                 np.exp(x[4])))

    h = 1e-5
    grad = [(ll(x0 + h * e) - ll(x0 - h * e)) / (2 * h) for e in np.eye(5)]
    assert np.max(np.abs(grad)) < 2e-3
    assert m.loglik == pytest.approx(-4620.8734, abs=1e-3)
    assert "Quadrature, nAGQ = 15" in m.summary()


def test_family_dict_and_invariances(mresp, mresp_fit):
    """A dict by itemgroup is the same model; so are permuted rows and the families listed
    in the other order."""
    by = glamm.galamm("y ~ x + (0 + level | id)", mresp, family={"a": "gaussian",
                                                                 "b": "binomial"},
                      family_by="itemgroup", load_var="itemgroup", factor="level",
                      lambda_=[[1], [np.nan]])
    assert by.loglik == pytest.approx(mresp_fit.loglik, rel=1e-10)
    assert by.families == {"a": "gaussian(identity)", "b": "binomial(logit)"}
    perm = mresp.sample(frac=1.0, random_state=3).reset_index(drop=True)
    p = glamm.galamm("y ~ x + (0 + level | id)", perm, **MRESP_CALL)
    assert p.loglik == pytest.approx(mresp_fit.loglik, rel=1e-9)
    assert p.loadings == pytest.approx(mresp_fit.loadings, rel=1e-4)
    swapped = mresp.assign(fi=3 - mresp["family_index"])
    s = glamm.galamm("y ~ x + (0 + level | id)", swapped, family=["binomial", "gaussian"],
                     family_index="fi", load_var="itemgroup", factor="level",
                     lambda_=[[1], [np.nan]])
    assert s.loglik == pytest.approx(mresp_fit.loglik, rel=1e-9)
    assert s.fixef.to_numpy() == pytest.approx(mresp_fit.fixef.to_numpy(), rel=1e-4)


def _galamm_value(d, theta, beta, lam):
    """galamm 0.4.0's objective for this model, written from its C++ (``loss`` in
    src/compute_galamm.cpp, the families in src/model.h): ``b = theta u`` with
    ``u ~ N(0, phi)``, the Gaussian ``phi`` plugged in as ``(RSS + |u|^2) / n_gauss``, and the
    mode and log-determinant with weight 1 on Gaussian rows and ``mu (1 - mu)`` on binary
    rows, which omits the factor ``phi`` the binary rows' weights carry in the Laplace
    approximation of the marginal likelihood."""
    y = d["y"].to_numpy(float)
    gauss = d["family_index"].to_numpy() == 1
    g = pd.factorize(d["id"])[0]
    m = g.max() + 1
    load = np.where(gauss, 1.0, lam) * theta
    eta0 = beta[0] + beta[1] * d["x"].to_numpy(float)
    u = np.zeros(m)
    for _ in range(200):
        lp = eta0 + load * u[g]
        mu = np.where(gauss, lp, special.expit(lp))
        H = np.bincount(g, load**2 * np.where(gauss, 1.0, mu * (1 - mu)), minlength=m) + 1
        step = (np.bincount(g, load * (y - mu), minlength=m) - u) / H
        u += step
        if np.max(np.abs(step)) < 1e-13:
            break
    lp = eta0 + load * u[g]
    mu = np.where(gauss, lp, special.expit(lp))
    H = np.bincount(g, load**2 * np.where(gauss, 1.0, mu * (1 - mu)), minlength=m) + 1
    phi = (np.sum((y - lp)[gauss] ** 2) + u @ u) / gauss.sum()
    ll = (np.sum(-0.5 * (y - lp)[gauss] ** 2 / phi - 0.5 * np.log(2 * np.pi * phi))
          + np.sum((y * lp - np.logaddexp(0.0, lp))[~gauss]))
    return ll - u @ u / (2 * phi) - 0.5 * np.sum(np.log(H)), phi


def test_galamm_value_is_its_own_approximation(mresp):
    """Why glamm's mresp log-likelihood is below galamm's printed one: galamm's number is the
    value of the objective above at its estimates (reproduced to 1e-9), not the marginal
    likelihood (brute force there: -4624.64)."""
    ref = load_reference("galamm_mresp")
    value, phi = _galamm_value(mresp, ref["theta"]["theta1"], list(ref["fixef"].values()),
                               ref["factor_loadings"]["values"][1][0])
    assert value == pytest.approx(ref["logLik"], rel=1e-9)
    assert phi == pytest.approx(ref["dispersion_parameter"][0], rel=1e-8)


def test_mixed_response_results(mresp, mresp_fit):
    m = mresp_fit
    gauss = mresp["family_index"].to_numpy() == 1
    mu = m.predict(mresp, type="response")
    eta = m.predict(mresp, type="link")
    assert mu[gauss] == pytest.approx(eta[gauss])
    assert mu[~gauss] == pytest.approx(special.expit(eta[~gauss]))
    # new data: each row's family from the family_index column
    new = mresp.iloc[[0, 1, 2, 3, 3995, 3996]].copy()
    got = m.predict(new, type="response")
    assert got == pytest.approx(mu[[0, 1, 2, 3, 3995, 3996]])
    with pytest.raises(DataError, match="need the column 'family_index'"):
        m.predict(new.drop(columns="family_index"), type="response")
    assert m.sigma_rows[gauss] == pytest.approx(np.sqrt(m.family_dispersions.iloc[0]))
    assert np.all(m.sigma_rows[~gauss] == 1.0)
    r = m.residuals("pearson", scaled=True)
    raw = mresp["y"].to_numpy() - m.fitted()
    assert r[gauss] == pytest.approx(raw[gauss] / m.sigma_rows[gauss])
    text = m.summary()
    assert "Families: [1] gaussian(identity), [2] binomial(logit)" in text
    assert "Residual [1]" in text


def test_mixed_response_reference_sim(mresp_fit):
    """galamm's sim_mixed_response case: same model, data galamm 0.3.0 fitted; glamm's
    Laplace fit is the maximum of the independent Laplace approximation."""
    d = load_data("sim_mixed_response")
    m = glamm.galamm("y ~ x + (0 + level | id)", d, **MRESP_CALL)
    beta, lam = m.fixef.to_numpy(), float(m.loadings[0])
    phi, sd_b = float(m.family_dispersions.iloc[0]), float(m.theta[0])
    x0 = np.array([*beta, lam, np.log(phi), sd_b])

    def ll(x):
        return laplace_loglik(*_mresp_pieces(d, x[:2], x[2], np.exp(x[3]), x[4]))

    assert m.loglik == pytest.approx(ll(x0), rel=1e-10)
    h = 1e-5
    grad = [(ll(x0 + h * e) - ll(x0 - h * e)) / (2 * h) for e in np.eye(5)]
    assert np.max(np.abs(grad)) < 2e-3
    ref = load_reference("galamm_mixed_response")
    assert beta == pytest.approx(list(ref["fixef"].values()), abs=0.05)


# ------------------------------------------------------- three families, trials, dispformula
def _simulated(seed=4):
    rng = np.random.default_rng(seed)
    m, per = 150, 6
    cluster = np.repeat(np.arange(m), per)
    fam = np.tile([0, 0, 1, 1, 2, 2], m)
    grp = rng.choice(["p", "q"], m * per)
    x = rng.uniform(size=m * per)
    b = rng.normal(0, 0.7, m)
    eta = 0.3 + 0.6 * x + b[cluster]
    trials = np.where(fam == 1, rng.integers(1, 6, m * per), 1)
    sd = np.where(grp == "p", 0.6, 1.5)
    y = np.where(fam == 0, eta + rng.normal(0, 1, m * per) * sd,
                 np.where(fam == 1, rng.binomial(trials, special.expit(eta)),
                          rng.poisson(np.exp(eta))))
    return pd.DataFrame({"id": cluster, "fam": fam + 1, "grp": grp, "x": x, "y": y,
                         "n": trials, "isgauss": (fam == 0).astype(float)})


def test_three_families_trials_and_grouped_dispersion():
    """Gaussian rows with a variance per grp, binomial counts out of trials, Poisson counts;
    the quadrature fit's log-likelihood is the brute-force one at its estimates, where the
    brute-force gradient vanishes."""
    d = _simulated()
    m = glamm.glmer("y ~ x + (1 | id)", d, family=["gaussian", "binomial", "poisson"],
                    family_index="fam", trials="n", dispformula="~ (0 + isgauss | grp)",
                    nagq=15)
    y = d["y"].to_numpy(float)
    fam = d["fam"].to_numpy() - 1
    n = d["n"].to_numpy(float)
    prop = np.where(fam == 1, y / n, y)
    cluster = d["id"].to_numpy()
    gq = (d["grp"] == "q").to_numpy()
    vf = m.variance_function
    assert list(vf.index) == ["p", "q"] or list(vf.index) == ["q", "p"]
    ref_level = vf.index[0]

    def ll(x):
        beta, logphi, delta, sd_b = x[:2], x[2], x[3], x[4]
        other = gq if ref_level == "p" else ~gq
        phi = np.where(fam == 0, np.exp(logphi + 2 * delta * other), 1.0)
        return brute_force_loglik(prop, beta[0] + beta[1] * d["x"].to_numpy(float),
                                  np.ones_like(prop), cluster, fam, phi, sd_b, n)

    x0 = np.array([*m.fixef.to_numpy(), np.log(m.family_dispersions.iloc[0]),
                   np.log(vf["SD ratio"].iloc[1]), m.theta[0]])
    assert m.loglik == pytest.approx(ll(x0), rel=1e-8)
    h = 1e-5
    grad = [(ll(x0 + h * e) - ll(x0 - h * e)) / (2 * h) for e in np.eye(5)]
    assert np.max(np.abs(grad)) < 2e-3
    sd = m.sigma_rows[fam == 0]
    assert set(np.round(sd, 8)) == set(np.round(np.sqrt(m.family_dispersions.iloc[0])
                                                * vf["SD ratio"].to_numpy(), 8))
    assert np.all(m.sigma_rows[fam != 0] == 1.0)


# ------------------------------------------------------------------------- bad input
def test_bad_family_arguments(mresp):
    f = "y ~ x + (1 | id)"
    with pytest.raises(GlammError, match="needs family_index"):
        glamm.glmer(f, mresp, family=["gaussian", "binomial"])
    with pytest.raises(DataError, match="family_index 3 .row"):
        glamm.glmer(f, mresp.assign(fi=np.where(mresp.index == 5, 3, mresp["family_index"])),
                    family=["gaussian", "binomial"], family_index="fi")
    with pytest.raises(DataError, match="family 2 has no rows"):
        glamm.glmer(f, mresp.assign(fi=1), family=["gaussian", "binomial"], family_index="fi")
    with pytest.raises(DataError, match="unknown column 'nope'"):
        glamm.glmer(f, mresp, family=["gaussian", "binomial"], family_index="nope")
    with pytest.raises(DataError, match=r"values \['b'\] are not keys"):
        glamm.glmer(f, mresp, family={"a": "gaussian"}, family_by="itemgroup")
    with pytest.raises(GlammError, match="needs family_by"):
        glamm.glmer(f, mresp, family={"a": "gaussian", "b": "binomial"})
    with pytest.raises(GlammError, match="not link="):
        glamm.glmer(f, mresp, family=["gaussian", "binomial"], family_index="family_index",
                    link="probit")
    with pytest.raises(GlammError, match="choose among several"):
        glamm.glmer(f, mresp, family="binomial", family_index="family_index")
    with pytest.raises(DataError, match="family 2 .binomial."):
        glamm.glmer(f, mresp.assign(y=mresp["y"] + 5), family=["gaussian", "binomial"],
                    family_index="family_index")


def test_bad_dispformula(mresp):
    f = "y ~ x + (1 | id)"
    args = dict(family=["gaussian", "binomial"], family_index="family_index")
    with pytest.raises(FormulaError, match="unknown column 'nope'"):
        glamm.glmer(f, mresp, dispformula="~ (1 | nope)", **args)
    with pytest.raises(DataError, match="one level"):
        glamm.glmer(f, mresp, dispformula="~ (1 | itemgroup)", **args)
    with pytest.raises(FormulaError, match="grouped form"):
        glamm.glmer(f, mresp, dispformula="~ x", **args)
    single = mresp.assign(g=np.where(mresp.index == 0, "lonely", "crowd"))
    with pytest.raises(DataError, match="single row"):
        glamm.glmer(f, single, dispformula="~ (1 | g)", **args)
    with pytest.raises(GlammError, match="needs a family with a dispersion"):
        glamm.glmer(f, mresp[mresp["family_index"] == 2], family="binomial",
                    dispformula="~ (1 | itemgroup)")


def test_mixed_response_with_a_smooth_and_links():
    """A smooth in a mixed-response model: here its wiggly part is shrunk to zero, so the fit
    is the model with x linear; families given by label with their own links."""
    d = load_data("sim_mixed_response")
    lin = glamm.galamm("y ~ x + (0 + level | id)", d, **MRESP_CALL)
    sm = glamm.galamm("y ~ s(x) + (0 + level | id)", d, **MRESP_CALL)
    assert sm.loglik == pytest.approx(lin.loglik, abs=1e-6)
    assert "Chi.sq" in sm.smooth_table.columns   # no common scale: chi-squared tests
    g = glamm.glmer("y ~ x + (1 | id)", d, family={"a": "gaussian", "b": ("binomial", "probit")},
                    family_by="itemgroup")
    assert g.families == {"a": "gaussian(identity)", "b": "binomial(probit)"}
    probit = d["itemgroup"].to_numpy() == "b"
    eta = g.fitted("link")
    assert g.fitted()[probit] == pytest.approx(special.ndtr(eta[probit]))

"""glamm.clmm: cumulative link mixed models against ordinal 2022.11 (wine, logit, Laplace and
nAGQ = 10) and, for the probit and cloglog links, against an independent brute-force
marginal likelihood (per-judge Gauss-Hermite integration with many points)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special

import glamm
from glamm.errors import DataError, FormulaError
from glamm.families.ordinal import Ordinal, cdf

HERE = Path(__file__).resolve().parent / "reference" / "clmm_extra"
WINE_CSV = HERE / "wine.csv"
REF_JSON = HERE / "fam_wine_clmm.json"
FORMULA = "rating ~ temp + contact + (1 | judge)"


def _wine() -> pd.DataFrame:
    d = pd.read_csv(WINE_CSV)
    d["rating"] = pd.Categorical(d["rating"].astype(str), categories=list("12345"),
                                 ordered=True)
    for col in ("temp", "contact", "judge", "bottle"):
        d[col] = pd.Categorical(d[col].astype(str))
    return d


@pytest.fixture(scope="module")
def wine():
    return _wine()


@pytest.fixture(scope="module")
def ref():
    return json.loads(REF_JSON.read_text())


@pytest.fixture(scope="module")
def fit(wine):
    return glamm.clmm(FORMULA, wine)


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8))


# --------------------------------------------------------------------- ordinal references
def test_laplace_matches_ordinal(fit, ref):
    assert fit.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    assert abs(fit.loglik - ref["logLik"]) < 1e-6 * abs(ref["logLik"])
    assert fit.npar == ref["logLik_df"] and abs(fit.aic - ref["AIC"]) < 1e-4
    assert list(fit.thresholds.index) == ["1|2", "2|3", "3|4", "4|5"]
    assert _rel(fit.thresholds, list(ref["thresholds"].values())) < 1e-4
    assert list(fit.fixef.index) == ["tempwarm", "contactyes"]
    assert _rel(fit.fixef, list(ref["beta"].values())) < 1e-4
    assert _rel(fit.varcorr["sdcor"].iloc[0], ref["ST"]["judge"]) < 1e-4
    se = ref["se"]
    assert _rel(fit.stderr, [se["tempwarm"], se["contactyes"]]) < 1e-3
    assert _rel(fit.threshold_stderr, [se[k] for k in fit.thresholds.index]) < 1e-3
    modes = fit.ranef["judge"]["(Intercept)"].to_numpy()
    assert np.max(np.abs(modes - ref["ranef"]["judge"]["modes"])) < 1e-4


def test_quadrature_matches_ordinal(wine, ref):
    c = ref["crosscheck"]["clmm_agq10"]
    m = glamm.clmm(FORMULA, wine, nagq=10)
    assert abs(m.loglik - c["logLik"]) < 1e-6 * abs(c["logLik"])
    coefs = c["coefficients"]
    assert _rel(m.thresholds, [coefs[k] for k in m.thresholds.index]) < 1e-4
    assert _rel(m.fixef, [coefs[k] for k in m.fixef.index]) < 1e-4
    assert _rel(m.varcorr["sdcor"].iloc[0], c["judge_sd"]) < 1e-4
    assert "quadrature" in str(m)


# ------------------------------------------------------------------ the family itself
@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_family_derivatives(link):
    fam = Ordinal(link, list("abcd"), thresholds=[-1.0, 0.3, 2.0])
    y = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 1.0])
    eta = np.array([-0.5, 0.2, 1.7, 3.0, -2.0, -1.0, 4.0])
    wt = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0])
    h = 1e-5

    def ll(e):
        return fam.loglik(y, e, wt)

    s = fam.dloglik_deta(y, eta, eta, wt)
    assert np.allclose(s, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    d2 = fam.d2loglik_deta2(y, eta, eta, wt)
    num = (fam.dloglik_deta(y, eta + h, eta + h, wt)
           - fam.dloglik_deta(y, eta - h, eta - h, wt)) / (2 * h)
    assert np.allclose(d2, num, rtol=1e-6, atol=1e-8)
    assert np.all(d2 < 0)                      # log-concave: PIRLS weights positive
    # the probabilities add to one; F is ordinal's (cloglog: 1 - exp(-exp(x)))
    P = fam.probabilities(eta)
    assert np.allclose(P.sum(axis=1), 1.0)
    assert np.allclose(P[:, 0], cdf(link, -1.0 - eta))
    if link == "cloglog":
        assert np.allclose(P[:, 0], 1 - np.exp(-np.exp(-1.0 - eta)))
    # Fisher weights = expected squared score over the categories
    info = np.zeros(eta.size)
    for k in range(1, 5):
        sk = fam.dloglik_deta(np.full(eta.size, float(k)), eta, eta)
        info += P[:, k - 1] * sk**2
    assert np.allclose(fam.fisher_weights(eta, eta, wt)[0], wt * info, rtol=1e-10)
    # thresholds <-> unconstrained parameters
    assert np.allclose(fam.with_extra(fam.extra_values()).thresholds, fam.thresholds)


# ---------------------------------------------------------------- brute-force likelihood
def _brute_loglik(wine, link, thresholds, beta, sd, points=80):
    """Marginal log-likelihood of the one-judge model by Gauss-Hermite with many points."""
    z, w = np.polynomial.hermite_e.hermegauss(points)
    w = w / np.sqrt(2 * np.pi)
    eta_fixed = beta[0] * (wine["temp"] == "warm").to_numpy() \
        + beta[1] * (wine["contact"] == "yes").to_numpy()
    y = wine["rating"].cat.codes.to_numpy()
    ext = np.concatenate([[-np.inf], thresholds, [np.inf]])
    eta = eta_fixed[:, None] + sd * z[None, :]
    p = cdf(link, ext[y + 1][:, None] - eta) - cdf(link, ext[y][:, None] - eta)
    judge = wine["judge"].cat.codes.to_numpy()
    logp = np.zeros((judge.max() + 1, points))
    np.add.at(logp, judge, np.log(np.maximum(p, 1e-300)))   # (far nodes underflow)
    return float(np.sum(special.logsumexp(logp + np.log(w)[None, :], axis=1)))


@pytest.mark.parametrize("link", ["probit", "cloglog"])
def test_quadrature_fit_maximizes_brute_force_likelihood(wine, link):
    m = glamm.clmm(FORMULA, wine, link=link, nagq=15)
    th, beta = m.thresholds.to_numpy(), m.fixef.to_numpy()
    sd = float(m.varcorr["sdcor"].iloc[0])
    x0 = np.concatenate([th, beta, [sd]])

    def f(x):
        return _brute_loglik(wine, link, x[:4], x[4:6], x[6])

    assert abs(f(x0) - m.loglik) < 1e-7 * abs(m.loglik)
    h = 1e-5
    grad = np.array([(f(x0 + h * e) - f(x0 - h * e)) / (2 * h) for e in np.eye(x0.size)])
    assert np.max(np.abs(grad)) < 1e-3
    # the Laplace fit is close to the quadrature one
    lap = glamm.clmm(FORMULA, wine, link=link)
    assert abs(lap.loglik - m.loglik) < 0.1
    assert lap.link == link


def test_laplace_two_grouping_factors_and_slope(wine, fit):
    two = glamm.clmm("rating ~ temp + contact + (1 | judge) + (1 | bottle)", wine)
    assert two.loglik >= fit.loglik - 1e-6    # nested: the bottle variance may be 0
    assert set(two.ngroups) == {"judge", "bottle"}
    with pytest.raises(glamm.GlammError, match="single grouping factor"):
        glamm.clmm("rating ~ temp + contact + (1 | judge) + (1 | bottle)", wine, nagq=5)
    slope = glamm.clmm("rating ~ temp + contact + (1 + contact | judge)", wine)
    assert slope.loglik >= fit.loglik - 1e-6
    assert np.all(np.isfinite(slope.stderr))


# ------------------------------------------------------------------------ predictions
def test_predict_probabilities(fit, wine):
    P = fit.predict()
    assert list(P.columns) == list("12345")
    assert np.allclose(P.sum(axis=1), 1.0)
    # the fitted probability of the observed category
    y = wine["rating"].cat.codes.to_numpy()
    assert np.allclose(P.to_numpy()[np.arange(len(wine)), y], fit.fitted())
    new = wine.iloc[:4]
    pop = fit.predict(new, re=False)
    eta = fit.fixef["tempwarm"] * (new["temp"] == "warm") \
        + fit.fixef["contactyes"] * (new["contact"] == "yes")
    want = np.diff(np.column_stack([np.zeros(4),
                                    special.expit(fit.thresholds.to_numpy()[None, :]
                                                  - eta.to_numpy()[:, None]),
                                    np.ones(4)]), axis=1)
    assert np.allclose(pop.to_numpy(), want)
    cls = fit.predict(new, type="class")
    assert list(cls.astype(str)) == list(P.iloc[:4].idxmax(axis=1))


def test_summary_and_dict(fit):
    text = str(fit)
    for part in ("Cumulative Link Mixed Model fitted with the Laplace approximation",
                 "Random effects:", "Coefficients:", "Threshold coefficients:", "1|2"):
        assert part in text
    d = fit.to_dict()
    assert set(d["thresholds"]) == {"1|2", "2|3", "3|4", "4|5"}
    assert d["family"] == "ordinal" and d["link"] == "logit"
    json.dumps(d)


# ------------------------------------------------------------------------- bad input
def test_response_must_be_ordered(wine):
    d = wine.assign(rating=wine["rating"].cat.as_unordered())
    with pytest.raises(DataError, match="not ordered"):
        glamm.clmm(FORMULA, d)
    d = wine.assign(rating=wine["rating"].astype(int))
    with pytest.raises(DataError, match="ordered categorical"):
        glamm.clmm(FORMULA, d)
    d = wine.assign(rating=pd.Categorical(["3"] * len(wine), categories=list("12345"),
                                          ordered=True))
    with pytest.raises(DataError, match="1 observed level"):
        glamm.clmm(FORMULA, d)
    with pytest.raises(FormulaError, match="intercept"):
        glamm.clmm("rating ~ 0 + temp + contact + (1 | judge)", wine)
    with pytest.raises(DataError, match="link"):
        glamm.clmm(FORMULA, wine, link="cauchit")
    with pytest.raises(FormulaError):
        glamm.clmm("rating ~ temp + (1 | nosuch)", wine)


def test_empty_levels_dropped_as_ordinal(wine, fit):
    d = wine.assign(rating=wine["rating"].cat.add_categories(["6"]))
    with pytest.warns(UserWarning, match="without observations"):
        m = glamm.clmm(FORMULA, d)
    assert list(m.thresholds.index) == list(fit.thresholds.index)
    assert abs(m.loglik - fit.loglik) < 1e-8


def test_case_weights_are_repeated_rows(wine):
    dup = pd.concat([wine, wine.iloc[:10]], ignore_index=True)
    w = np.ones(len(wine))
    w[:10] = 2.0
    a = glamm.clmm(FORMULA, dup)
    b = glamm.clmm(FORMULA, wine.assign(w=w), weights="w")
    assert abs(a.loglik - b.loglik) < 1e-8
    assert np.allclose(a.thresholds, b.thresholds, rtol=1e-6)


def test_conditional_variances_and_new_data(fit, ref, wine):
    cv = fit.ranef_condvar["judge"].iloc[:, 0].to_numpy()
    assert _rel(cv, ref["ranef"]["judge"]["cond_var"]) < 1e-3
    nd = wine[["temp", "contact", "judge"]].iloc[:3]      # no response column needed
    assert np.allclose(fit.predict(nd).to_numpy(), fit.predict().to_numpy()[:3])


def test_levels_observed_only_in_unused_rows_are_dropped(wine, fit):
    """As ordinal: the levels are those with positive weight among the rows the model uses."""
    d = wine.assign(rating=wine["rating"].cat.add_categories(["0"]).cat.reorder_categories(
        ["0", "1", "2", "3", "4", "5"], ordered=True))
    extra = d.iloc[:2].copy()
    extra["rating"] = pd.Categorical(["0", "0"], categories=d["rating"].cat.categories,
                                     ordered=True)
    extra.loc[extra.index[0], "temp"] = np.nan        # dropped: missing covariate
    d = pd.concat([d, extra], ignore_index=True)
    w = np.ones(len(d))
    w[-1] = 0.0                                       # zero weight
    with pytest.warns(UserWarning, match="without observations dropped.*: 0"):
        m = glamm.clmm(FORMULA, d.assign(w=w), weights="w")
    assert list(m.thresholds.index) == list(fit.thresholds.index)
    assert abs(m.loglik - fit.loglik) < 1e-8


def _dense_laplace(fam, X, beta, Z, sds, y):
    """The Laplace approximation written out densely: the mode of ``log p(y | b) -
    |u|^2 / 2`` (``b = L u``, ``L = diag(sds)`` or the matrix ``sds``) by Newton, then
    ``- log det(I + L Z' W Z L) / 2`` with the observed information ``W``."""
    L = np.diag(sds) if np.ndim(sds) == 1 else sds
    ZL = Z @ L
    u = np.zeros(Z.shape[1])
    for _ in range(50):
        eta = X @ beta + ZL @ u
        g = ZL.T @ fam.dloglik_deta(y, eta, eta) - u
        H = np.eye(u.size) + ZL.T @ (-fam.d2loglik_deta2(y, eta, eta)[:, None] * ZL)
        step = np.linalg.solve(H, g)
        u += step
        if np.max(np.abs(step)) < 1e-12:
            break
    eta = X @ beta + ZL @ u
    H = np.eye(u.size) + ZL.T @ (-fam.d2loglik_deta2(y, eta, eta)[:, None] * ZL)
    return float(np.sum(fam.loglik(y, eta)) - u @ u / 2 - np.linalg.slogdet(H)[1] / 2)


def _crossed_data(seed=1, n=240):
    """Ordinal data with two crossed grouping factors, both with clear variance."""
    rng = np.random.default_rng(seed)
    g1, g2 = rng.integers(0, 12, n), rng.integers(0, 10, n)
    x = rng.normal(size=n)
    latent = 0.8 * x + rng.normal(0, 1.0, 12)[g1] + rng.normal(0, 0.7, 10)[g2] \
        + rng.logistic(size=n)
    y = np.digitize(latent, [-1.5, 0.0, 1.5]) + 1
    return pd.DataFrame({"y": pd.Categorical(y.astype(str), categories=list("1234"),
                                             ordered=True),
                         "x": x, "g1": [f"a{i}" for i in g1], "g2": [f"b{i}" for i in g2]})


@pytest.mark.parametrize("link", ["logit", "cloglog"])
def test_crossed_laplace_against_dense_computation(link):
    d = _crossed_data()
    m = glamm.clmm("y ~ x + (1 | g1) + (1 | g2)", d, link=link)
    sd = m.varcorr.set_index("group")["sdcor"]
    assert sd["g1"] > 0.3 and sd["g2"] > 0.1
    X = d[["x"]].to_numpy(float)
    Z1 = pd.get_dummies(d["g1"]).to_numpy(float)
    Z2 = pd.get_dummies(d["g2"]).to_numpy(float)
    Z = np.hstack([Z1, Z2])
    y = d["y"].cat.codes.to_numpy() + 1.0

    def f(x):
        fam = Ordinal(link, m.levels, thresholds=x[:3])
        s = np.concatenate([np.full(Z1.shape[1], x[4]), np.full(Z2.shape[1], x[5])])
        return _dense_laplace(fam, X, x[3:4], Z, s, y)

    x0 = np.concatenate([m.thresholds, m.fixef, [sd["g1"], sd["g2"]]])
    assert abs(f(x0) - m.loglik) < 1e-8 * abs(m.loglik)
    # the estimates maximize it: zero gradient in the thresholds, beta and the SDs
    h = 1e-5
    grad = np.array([(f(x0 + h * e) - f(x0 - h * e)) / (2 * h) for e in np.eye(x0.size)])
    assert np.max(np.abs(grad)) < 1e-3


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_threshold_derivatives_against_differences(link):
    """The family's per-row derivatives in its parameters (used by the Laplace gradient)
    against central differences of the log-density, score and observed information."""
    fam = Ordinal(link, list("abcd"), thresholds=[-1.0, 0.3, 2.0])
    y = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 1.0, 3.0])
    eta = np.array([-0.5, 0.2, 1.7, 3.0, -2.0, -1.0, 4.0, 0.0])
    wt = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.0, 3.0, 1.0])
    dlp, ds, dw = fam.extra_derivatives(y, eta, wt, observed=True)
    p0 = fam.extra_values()
    h = 1e-6
    for j in range(p0.size):
        e = np.zeros(p0.size)
        e[j] = h
        up, down = fam.with_extra(p0 + e), fam.with_extra(p0 - e)
        assert np.allclose(dlp[:, j], (up.loglik(y, eta, wt) - down.loglik(y, eta, wt))
                           / (2 * h), atol=1e-7)
        assert np.allclose(ds[:, j], (up.dloglik_deta(y, eta, eta, wt)
                                      - down.dloglik_deta(y, eta, eta, wt)) / (2 * h),
                           atol=1e-7)
        assert np.allclose(dw[:, j], (down.d2loglik_deta2(y, eta, eta, wt)
                                      - up.d2loglik_deta2(y, eta, eta, wt)) / (2 * h),
                           atol=1e-7)
    assert fam.extra_derivatives(y, eta, wt, observed=False) is None


def test_random_slope_laplace_against_dense_computation():
    rng = np.random.default_rng(7)
    n, m = 300, 15
    g, x = rng.integers(0, m, n), rng.normal(size=n)
    b0, b1 = rng.normal(0, 1.0, m), rng.normal(0, 0.6, m)
    latent = (0.5 + b1[g]) * x + b0[g] + rng.logistic(size=n)
    y = np.digitize(latent, [-1.0, 0.5, 2.0]) + 1
    d = pd.DataFrame({"y": pd.Categorical(y.astype(str), categories=list("1234"),
                                          ordered=True), "x": x, "g": [f"g{i:02d}" for i in g]})
    fit = glamm.clmm("y ~ x + (1 + x | g)", d)
    vc = fit.varcorr
    s1, s2 = vc["sdcor"].iloc[0], vc["sdcor"].iloc[1]
    rho = vc["sdcor"].iloc[2]
    assert s2 > 0.2 and abs(rho) < 0.99
    Lg = np.linalg.cholesky(np.array([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]]))
    levels = sorted(set(d["g"]))
    Z = np.zeros((n, 2 * len(levels)))
    idx = np.array([levels.index(v) for v in d["g"]])
    Z[np.arange(n), 2 * idx] = 1.0
    Z[np.arange(n), 2 * idx + 1] = x
    fam = Ordinal("logit", fit.levels, thresholds=fit.thresholds.to_numpy())
    ll = _dense_laplace(fam, x[:, None], fit.fixef.to_numpy(), Z,
                        np.kron(np.eye(len(levels)), Lg), y.astype(float))
    assert abs(ll - fit.loglik) < 1e-8 * abs(ll)

"""Zero-inflated and hurdle count models (ziformula) against glmmTMB 1.1.5 (Salamanders), and
their log-density and derivatives against direct computations."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glamm
from glamm.errors import DataError, GlammError
from glamm.families import get_family
from glamm.families.zero_inflated import ZeroInflated

D = Path(__file__).parent / "reference" / "zero_inflation"


def ref(name):
    return json.loads((D / f"{name}.json").read_text())


CASES = [
    ("fam_salamanders_zip_mined", "poisson", "count ~ spp + mined + (1 | site)"),
    ("fam_salamanders_zinb2_mined", "nbinom2", "count ~ spp + mined + (1 | site)"),
    ("fam_salamanders_hurdle_poisson", "truncated_poisson", "count ~ spp + mined + (1 | site)"),
    ("tmb_salamanders_zinb2", "nbinom2", "count ~ mined + (1 | site)"),
    ("tmb_salamanders_hurdle_nb2", "truncated_nbinom2", "count ~ spp + mined + (1 | site)"),
]


@pytest.mark.parametrize("case,family,formula", CASES)
def test_against_glmmtmb(sal, case, family, formula):
    r = ref(case)
    m = glamm.glmer(formula, sal, family=family, ziformula="~ mined")
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-6)
    cond = r["fixef"]["cond"]
    # the hurdle's sppEC-A is 2e-5 (1e-4 of its SE) from glmmTMB's: glmmTMB stopped there
    # (glamm's log-likelihood is 1.9e-8 higher, and a Newton step from glamm's estimates
    # moves them by 2e-7), so the coefficients are compared to 1e-4 or 5e-5 absolute
    assert m.fixef.to_numpy() == pytest.approx(list(cond.values()), rel=1e-4, abs=5e-5)
    zi = m.zero_inflation
    assert zi["Estimate"].to_numpy() == pytest.approx(list(r["fixef"]["zi"].values()),
                                                      rel=1e-4, abs=1e-5)
    assert m.stderr.to_numpy() == pytest.approx(list(r["fixef_se"]["cond"].values()), rel=1e-3)
    assert zi["Std. Error"].to_numpy() == pytest.approx(list(r["fixef_se"]["zi"].values()),
                                                        rel=1e-3)
    if family in ("nbinom2", "truncated_nbinom2"):
        assert m.shape == pytest.approx(r["sigma"], rel=1e-4)   # glmmTMB's sigma: NB2 size
    text = m.summary()
    assert "minedno" in text and ("Zero-inflation model" in text or "Zero part" in text)


def test_predictions(sal):
    m = glamm.glmer("count ~ mined + (1 | site)", sal, family="poisson", ziformula="~ mined")
    new = sal.iloc[:5]
    pi = m.predict(new, type="zprob")
    mu = m.predict(new, type="conditional")
    assert m.predict(new, type="response") == pytest.approx((1 - pi) * mu)
    assert np.all((pi > 0) & (pi < 1))
    assert m.fitted()[:5] == pytest.approx(mu)   # fitted: the count part's mean


# ----------------------------------------------------------------- the density itself
def _zi(base, hurdle, pi_val, n):
    Z = np.ones((n, 1))
    fam = ZeroInflated(base, Z, ["(Intercept)"], hurdle=hurdle)
    return fam.with_extra(np.concatenate([base.extra_values(), [special.logit(pi_val)]]))


@pytest.mark.parametrize("hurdle", [False, True])
@pytest.mark.parametrize("base", [get_family("poisson"),
                                  get_family("negative_binomial").with_shape(1.7)])
def test_log_density_and_derivatives(base, hurdle):
    y = np.array([0, 0, 1, 2, 5, 9], dtype=float)
    eta = np.array([-0.3, 0.8, 0.1, 1.2, 1.5, 2.0])
    mu = np.exp(eta)
    fam = _zi(base, hurdle, 0.3, y.size)
    if base.name == "poisson":
        f = stats.poisson.pmf(y, mu)
        f0 = stats.poisson.pmf(0, mu)
    else:
        k = 1.7
        f = stats.nbinom.pmf(y, k, k / (k + mu))
        f0 = stats.nbinom.pmf(0, k, k / (k + mu))
    if hurdle:
        want = np.where(y == 0, 0.3, 0.7 * f / (1 - f0))
    else:
        want = np.where(y == 0, 0.3 + 0.7 * f0, 0.7 * f)
    assert fam.loglik(y, mu) == pytest.approx(np.log(want), rel=1e-10)
    h = 1e-5
    up, down = fam.loglik_eta(y, eta + h), fam.loglik_eta(y, eta - h)
    assert fam.dloglik_deta(y, mu, eta) == pytest.approx((up - down) / (2 * h), rel=1e-6,
                                                         abs=1e-8)
    d_up = fam.dloglik_deta(y, np.exp(eta + h), eta + h)
    d_dn = fam.dloglik_deta(y, np.exp(eta - h), eta - h)
    assert fam.d2loglik_deta2(y, mu, eta) == pytest.approx((d_up - d_dn) / (2 * h), rel=1e-5,
                                                           abs=1e-7)


@pytest.mark.parametrize("hurdle", [False, True])
@pytest.mark.parametrize("base", [get_family("poisson"),
                                  get_family("negative_binomial").with_shape(1.7)])
def test_extra_derivatives_against_differences(base, hurdle):
    # the closed forms in the zero part's coefficients (and the differences in a negative
    # binomial's size) against central differences of the family's own functions
    y = np.array([0, 0, 1, 2, 5, 9, 0, 3], dtype=float)
    eta = np.array([-0.3, 0.8, 0.1, 1.2, 1.5, 2.0, 2.5, -1.0])
    Z = np.column_stack([np.ones(8), np.linspace(-1, 1, 8)])
    fam = ZeroInflated(base, Z, ["(Intercept)", "x"], hurdle=hurdle)
    fam = fam.with_extra(np.concatenate([base.extra_values(), [-0.4, 0.9]]))
    mu = np.exp(eta)
    dlp, ds, dw = fam.extra_derivatives(y, eta, None, observed=True)
    values = fam.extra_values()
    assert dlp.shape == ds.shape == dw.shape == (8, values.size)
    h = 1e-6
    for j in range(values.size):
        step = np.zeros(values.size)
        step[j] = h
        up, down = fam.with_extra(values + step), fam.with_extra(values - step)
        for got, fn in ((dlp, lambda f: f.loglik(y, mu)),
                        (ds, lambda f: f.dloglik_deta(y, mu, eta)),
                        (dw, lambda f: -f.d2loglik_deta2(y, mu, eta))):
            assert got[:, j] == pytest.approx((fn(up) - fn(down)) / (2 * h), rel=1e-6,
                                              abs=1e-8)
    assert fam.extra_derivatives(y, eta, None, observed=False) is None


def test_bad_input(sal):
    with pytest.raises(GlammError, match="for count families"):
        glamm.glmer("count ~ mined + (1 | site)", sal.assign(count=sal["count"] + 0.5),
                    family="Gamma", ziformula="~ mined")
    with pytest.raises(GlammError, match="share one grouping factor"):
        glamm.glmer("count ~ mined + (1 | site)", sal, family="poisson",
                    ziformula="~ mined + (1 | spp)")
    with pytest.raises(DataError, match="zero-truncated model"):
        glamm.glmer("count ~ mined + (1 | site)", sal, family="truncated_poisson")
    with pytest.raises(GlammError, match="prior weights are not available"):
        glamm.glmer("count ~ mined + (1 | site)", sal.assign(w=2.0), family="poisson",
                    ziformula="~ mined", weights="w")
    with pytest.raises(DataError, match="poisson family"):
        glamm.glmer("count ~ mined + (1 | site)", sal.assign(count=-sal["count"] - 1),
                    family="poisson", ziformula="~ mined")


def test_quadrature_against_brute_force(sal):
    """Adaptive quadrature (one grouping factor): the log-likelihood at glamm's estimates is
    the brute-force 60-point Gauss-Hermite value, whose gradient vanishes there."""
    m = glamm.glmer("count ~ mined + (1 | site)", sal, family="poisson", ziformula="~ mined",
                    nagq=15)
    y = sal["count"].to_numpy(float)
    no = (sal["mined"] == "no").to_numpy(float)
    g = pd.factorize(sal["site"])[0]
    z, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / np.sqrt(2 * np.pi)

    def ll(x):
        b0, b1, sd, g0, g1 = x
        pi = special.expit(g0 + g1 * no)
        a = np.empty((g.max() + 1, z.size))
        for k in range(z.size):
            mu = np.exp(b0 + b1 * no + sd * z[k])
            p = np.where(y == 0, pi + (1 - pi) * np.exp(-mu),
                         (1 - pi) * stats.poisson.pmf(y, mu))
            a[:, k] = np.bincount(g, np.log(p), minlength=g.max() + 1)
        return float(np.sum(special.logsumexp(a + np.log(w), axis=1)))

    x0 = np.array([*m.fixef.to_numpy(), m.theta[0], *m.zero_inflation["Estimate"]])
    assert m.loglik == pytest.approx(ll(x0), rel=1e-8)
    h = 1e-5
    grad = [(ll(x0 + h * e) - ll(x0 - h * e)) / (2 * h) for e in np.eye(5)]
    assert np.max(np.abs(grad)) < 2e-3


# ------------------------------------------------ zero parts on NB1 and genpois (Owls)
OWLS_CASES = {
    "zinb1": ("NCalls ~ FoodTreatment * SexParent + offset(logBS) + (1 | Nest)",
              {"family": "nbinom1", "ziformula": "~1"}),
    "hnb1": ("NCalls ~ FoodTreatment + offset(logBS) + (1 | Nest)",
             {"family": "truncated_nbinom1", "ziformula": "~ FoodTreatment"}),
    "hgp": ("NCalls ~ FoodTreatment + offset(logBS) + (1 | Nest)",
            {"family": "truncated_genpois", "ziformula": "~ FoodTreatment"}),
    "zigp": ("NCalls ~ FoodTreatment + offset(logBS) + (1 | Nest)",
             {"family": "genpois", "ziformula": "~ FoodTreatment"}),
}


@pytest.fixture(scope="module")
def owls():
    d = pd.read_csv(D / "Owls.csv")
    return d.assign(Nest=pd.Categorical(d["Nest"]),
                    FoodTreatment=pd.Categorical(d["FoodTreatment"], ["Deprived", "Satiated"]),
                    SexParent=pd.Categorical(d["SexParent"], ["Female", "Male"]))


@pytest.mark.parametrize("case", sorted(OWLS_CASES))
def test_zero_parts_on_nbinom1_and_genpois_match_glmmtmb(owls, case):
    r = ref("tmb_owls_zi")[case]
    formula, kw = OWLS_CASES[case]
    m = glamm.glmer(formula, owls, **kw)
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), r["fixef"], rtol=1e-4)
    np.testing.assert_allclose(m.zero_inflation["Estimate"].to_numpy(), r["zi"], rtol=1e-4)
    np.testing.assert_allclose(m.stderr.to_numpy(), r["se"], rtol=1e-3)
    np.testing.assert_allclose(m.zero_inflation["Std. Error"].to_numpy(), r["se_zi"],
                               rtol=1e-3)
    # glmmTMB's sigma(): the count family's phi
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    assert "zi~(Intercept)" not in m.family_parameters.index


def test_hurdle_nb1_leaves_a_local_optimum_on_the_bound():
    # the deviance in the random-intercept variance has a local optimum at zero (the KKT test
    # supports it) and the global one inside, 0.2 log-likelihood units higher: the fit must
    # report glmmTMB's interior optimum, not the boundary. From the default start (the
    # hurdle's GLM) the stages go straight to the interior; started at theta = 0 they reach
    # the boundary first, and the interior restart must leave it
    fam_dir = Path(__file__).parent / "reference" / "families_extra"
    r = json.loads((fam_dir / "tmb_hurdle_nb1.json").read_text())
    d = pd.read_csv(fam_dir / "sim_hurdle_nb1.csv").assign(g=lambda t: t["g"].astype(str))
    direct = glamm.glmer("y ~ x + (1 | g)", d, family="truncated_nbinom1", ziformula="~ z")
    assert direct.loglik == pytest.approx(r["logLik"], rel=1e-9)
    m = glamm.glmer("y ~ x + (1 | g)", d, family="truncated_nbinom1", ziformula="~ z",
                    start=np.array([0.0]))
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik > r["logLik_no_random_effect"] + 0.1
    assert not m.is_singular
    assert m.fixef.to_numpy() == pytest.approx(r["cond"], rel=1e-4)
    assert m.zero_inflation["Estimate"].to_numpy() == pytest.approx(r["zi"], rel=1e-4)
    assert m.stderr.to_numpy() == pytest.approx(r["cond_se"], rel=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    sd = m.varcorr.loc[m.varcorr["group"] == "g", "sdcor"].to_numpy()
    assert sd == pytest.approx([r["sd_g"]], rel=1e-4)
    assert any("local optimum" in msg for msg in m.record.full.messages)


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("hurdle", [False, True])
def test_extra_hessian_zero_part_block_against_differences(hurdle, kernels):
    from glamm.families import compiled

    base = get_family("negative_binomial").with_shape(1.7)
    y = np.array([0, 0, 1, 2, 5, 9, 0, 3, 0, 0], dtype=float)
    eta = np.array([-0.3, 0.8, 0.1, 1.2, 1.5, 2.0, 2.5, -1.0, 0.4, 1.1])
    Z = np.column_stack([np.ones(10), np.linspace(-1, 1, 10)])
    fam = ZeroInflated(base, Z, ["(Intercept)", "x"], hurdle=hurdle)
    values = np.concatenate([base.extra_values(), [-0.4, 0.9]])
    fam = fam.with_extra(values)
    compiled.use_kernels(kernels)
    try:
        H = fam.extra_hessian(y, eta, None)
        assert np.isnan(H[0]).all() and np.isnan(H[:, 0]).all()   # the size: not given
        h = 1e-6
        for j in (1, 2):
            step = np.zeros(3)
            step[j] = h
            up = fam.with_extra(values + step).extra_derivatives(y, eta, None, True)[0]
            down = fam.with_extra(values - step).extra_derivatives(y, eta, None, True)[0]
            col = (up.sum(axis=0) - down.sum(axis=0)) / (2 * h)
            assert H[1:, j] == pytest.approx(col[1:], rel=1e-6, abs=1e-8)
    finally:
        compiled.use_kernels(None)


@pytest.mark.parametrize("family,hurdle", [("poisson", False), ("negative_binomial", False),
                                           ("negative_binomial", True)])
def test_glm_start_with_zero_part_is_the_glm_optimum(sal, family, hurdle):
    """The GLMM's start (glmm.glm.fit_glm_own_parameters): the two-part GLM's maximum
    likelihood, checked against a quasi-Newton maximization of the same likelihood."""
    from scipy import optimize

    from glamm.glmm.glm import fit_glm_own_parameters

    base = get_family(family)
    if family == "negative_binomial":
        base = base.with_shape(1.0)
    X = np.column_stack([np.ones(len(sal)), (sal["mined"] == "no").to_numpy(float)])
    y = sal["count"].to_numpy(float)
    wt, off = np.ones(y.size), np.zeros(y.size)
    fam = ZeroInflated(base, X, ["(Intercept)", "minedno"], hurdle=hurdle)
    extra0 = np.concatenate([base.extra_values(), [0.0, 0.0]])
    beta, extra = fit_glm_own_parameters(fam, X, y, wt, off, np.zeros(2), extra0, tol=1e-14)

    def nll(z):
        f = fam.with_extra(z[2:])
        return -np.sum(f.loglik(y, np.exp(X @ z[:2]), wt))

    ref = optimize.minimize(nll, np.concatenate([beta, extra]) + 0.05, method="BFGS",
                            options={"gtol": 1e-9})
    assert nll(np.concatenate([beta, extra])) <= ref.fun + 1e-9
    np.testing.assert_allclose(np.concatenate([beta, extra]), ref.x, atol=2e-4)


def test_hurdle_nb2_start_keeps_the_count_part():
    """A hurdle's count part starts from the untruncated GLM: fitted jointly without the
    random effects, the zero-truncated NB2's size went towards 0 on these data, and the fit
    ended at logLik -710.7 instead of glmmTMB's -536.94 (found by
    benchmarks/crosscheck_families.py; the data are its y_zinb response)."""
    r = json.loads((D / "tmb_hurdle_zero_re.json").read_text())
    d = pd.read_csv(D / "sim_hurdle_zero_re.csv").assign(g=lambda t: t["g"].astype(str))
    m = glamm.glmer("y ~ x + (1 | g)", d, family="truncated_nbinom2", ziformula="~ z")
    ref = r["logLik_no_zero_part_re"]
    assert m.loglik >= ref - 1e-6 * abs(ref)
    assert m.loglik == pytest.approx(ref, rel=1e-9)
    assert m.record.full.converged

"""Random effects in the zero part (ziformula = "~ mined + (1 | site)"): the two-predictor
log-density, the Laplace objective at glmmTMB's estimates, quadrature against a brute-force
integral, and fits against glmmTMB 1.1.5 (tests/reference/zero_inflation/make_zi_random.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.errors import GlammError
from glamm.families import get_family
from glamm.families.zero_inflated import ZeroInflated
from glamm.glmm.two_part import PartTerm, TwoPartModel
from glamm.terms.covariance import Unstructured

D = Path(__file__).parent / "reference" / "zero_inflation"
REF = json.loads((D / "tmb_zi_random.json").read_text())
COND = "count ~ spp + mined + (1 | site)"
ZI = "~ mined + (1 | site)"


def _model(sal, hurdle, base="poisson", slope=False):
    """The two-part model of ``COND`` / ``ZI`` built by hand (not through glmer); with
    ``slope`` the zero part's term is ``(1 + cover | site)``."""
    X = np.column_stack([np.ones(len(sal))]
                        + [(sal["spp"] == s).to_numpy(float)
                           for s in sal["spp"].cat.categories[1:]]
                        + [(sal["mined"] == "no").to_numpy(float)])
    Xz = np.column_stack([np.ones(len(sal)), (sal["mined"] == "no").to_numpy(float)])
    fam = ZeroInflated(get_family(base), Xz, ["(Intercept)", "minedno"], hurdle=hurdle)
    one = np.ones((len(sal), 1))
    zz = np.column_stack([one, sal["cover"].to_numpy(float)]) if slope else one
    terms = [PartTerm(one, Unstructured(1), "cond", ("(Intercept)",)),
             PartTerm(zz, Unstructured(zz.shape[1]), "zi", ("(Intercept)", "cover")[:zz.shape[1]])]
    codes = sal["site"].cat.codes.to_numpy()
    return TwoPartModel(fam, sal["count"].to_numpy(float), X, np.zeros(len(sal)), codes,
                        sal["site"].cat.categories.size, terms)


def _tmb_point(r):
    return np.concatenate([[r["sd_cond"], r["sd_zi"]], r["fixef_cond"], r["fixef_zi"]])


# ---------------------------------------------------------------------- the log-density
@pytest.mark.parametrize("hurdle", [False, True])
@pytest.mark.parametrize("base", ["poisson", "nbinom2"])
def test_joint_derivatives_against_differences(base, hurdle):
    rng = np.random.default_rng(3)
    n = 60
    y = rng.poisson(1.5, n) * (rng.random(n) < 0.6)
    eta, zeta = rng.normal(0, 1, n), rng.normal(0, 1.5, n)
    fam = get_family(base)
    if base == "nbinom2":
        fam = fam.with_extra(np.array([0.4]))
    zi = ZeroInflated(fam, np.zeros((n, 0)), [], hurdle=hurdle)
    out = zi.joint_derivatives(y, eta, zeta)
    h = 1e-5

    def d(k, which):
        de = np.array([h, 0.0]) if which == 0 else np.array([0.0, h])
        return (zi.joint_derivatives(y, eta + de[0], zeta + de[1])[k]
                - zi.joint_derivatives(y, eta - de[0], zeta - de[1])[k]) / (2 * h)

    np.testing.assert_allclose(out[1], d(0, 0), atol=1e-7)
    np.testing.assert_allclose(out[2], d(0, 1), atol=1e-7)
    np.testing.assert_allclose(out[3], d(1, 0), atol=1e-7)
    np.testing.assert_allclose(out[4], d(1, 1), atol=1e-7)
    np.testing.assert_allclose(out[5], d(2, 1), atol=1e-7)
    # the same density as the one-predictor family with zeta = Z gamma
    one = ZeroInflated(fam, np.ones((n, 1)), ["(Intercept)"], hurdle=hurdle)
    one = one.with_extra(np.concatenate([fam.extra_values(), [0.7]]))
    np.testing.assert_allclose(out[0] * 0 + zi.joint_derivatives(y, eta, np.full(n, 0.7))[0],
                               one.loglik(y, np.exp(eta)), rtol=1e-13)


# ------------------------------------------------------------ the objective at given values
@pytest.mark.parametrize("case,hurdle", [("zip", False), ("hurdle_poisson", True)])
def test_laplace_objective_at_glmmtmb_estimates(sal, case, hurdle):
    r = REF[case]
    m = _model(sal, hurdle)
    # glmmTMB's objective is -log L (Laplace) at its estimates
    assert m.deviance(_tmb_point(r)) / 2 == pytest.approx(r["objective"], rel=1e-10)


def test_quadrature_against_brute_force(sal):
    m = _model(sal, hurdle=False)
    x = _tmb_point(REF["zip"])
    thetas, beta, gamma, _ = m.split(x)
    fam = m.family.with_extra(gamma)
    eta0 = m.X @ beta
    zeta0 = m.Xz @ gamma

    def log_joint(rows, u1, u2):
        eta = eta0[rows][:, None] + thetas[0][0] * u1[None, :]
        zeta = zeta0[rows][:, None] + thetas[1][0] * u2[None, :]
        return (fam.joint_derivatives(m.y[rows], eta, zeta)[0].sum(axis=0)
                - 0.5 * (u1**2 + u2**2) - np.log(2 * np.pi))

    # per site: the integral over (u_cond, u_zi) by the rectangle rule, on a coarse grid to
    # find where the integrand lives, then on a fine grid 10 of its SDs wide around there
    total = 0.0
    for j in range(m.n_groups):
        rows = m.group == j
        g = np.linspace(-8, 8, 61)
        U1, U2 = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
        w = np.exp(log_joint(rows, U1, U2) - log_joint(rows, U1, U2).max())
        w /= w.sum()
        c1, c2 = w @ U1, w @ U2
        s1 = max(np.sqrt(w @ (U1 - c1) ** 2), 0.05)
        s2 = max(np.sqrt(w @ (U2 - c2) ** 2), 0.05)
        g1, g2 = c1 + s1 * np.linspace(-10, 10, 121), c2 + s2 * np.linspace(-10, 10, 121)
        U1, U2 = (a.ravel() for a in np.meshgrid(g1, g2, indexing="ij"))
        ll = log_joint(rows, U1, U2)
        top = ll.max()
        total += top + np.log(np.sum(np.exp(ll - top)) * (g1[1] - g1[0]) * (g2[1] - g2[0]))
    # (the rule converges slowly here: 15 points are 1.2e-6 off, 21 points 1.7e-8)
    assert -0.5 * m.deviance(x, nagq=31) == pytest.approx(total, abs=1e-8)
    # Laplace is the one-point rule, and the rule converges
    assert m.deviance(x, nagq=1) == pytest.approx(2 * REF["zip"]["objective"], rel=1e-10)
    assert m.deviance(x, nagq=15) == pytest.approx(m.deviance(x, nagq=21), abs=1e-5)


@pytest.mark.parametrize("hurdle,base,slope", [(False, "poisson", False),
                                               (True, "poisson", False),
                                               (False, "nbinom2", False),
                                               (False, "poisson", True)])
def test_analytic_gradient_against_differences(sal, hurdle, base, slope):
    from glamm.optim.newton import gradient

    m = _model(sal, hurdle, base, slope)
    r = REF["zip"]
    theta = [r["sd_cond"], r["sd_zi"]] + ([0.1, 0.2] if slope else [])
    x = np.concatenate([theta, r["fixef_cond"], r["fixef_zi"],
                        [0.3] if base == "nbinom2" else []]) + 0.01
    fd = gradient(lambda z: m.deviance(z), x, rel_step=1e-5)
    np.testing.assert_allclose(m.gradient(x), fd, atol=2e-6 * np.max(np.abs(fd)))


def test_objective_invariant_to_row_order(sal):
    x = _tmb_point(REF["zip"])
    perm = np.random.default_rng(5).permutation(len(sal))
    a = _model(sal, hurdle=False).deviance(x)
    b = _model(sal.iloc[perm].reset_index(drop=True), hurdle=False).deviance(x)
    assert a == pytest.approx(b, rel=1e-12)


# ------------------------------------------------------------------------------- fits
@pytest.mark.parametrize("case,family", [("zip", "poisson"),
                                         ("hurdle_poisson", "truncated_poisson")])
def test_fit_against_glmmtmb(sal, case, family):
    r = REF[case]
    m = glamm.glmer(COND, sal, family=family, ziformula=ZI)
    assert m.converged
    # never below glmmTMB's log-likelihood (glamm's may be higher: glmmTMB stops earlier)
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), r["fixef_cond"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.fixef_zi.to_numpy(), r["fixef_zi"], rtol=1e-4)
    np.testing.assert_allclose(m.varcorr["std_dev"].to_numpy(), [r["sd_cond"], r["sd_zi"]],
                               rtol=1e-4)
    np.testing.assert_allclose(m.stderr.to_numpy(), r["se_cond"], rtol=1e-3)
    np.testing.assert_allclose(m.stderr_zi.to_numpy(), r["se_zi"], rtol=1e-3)
    text = m.summary()
    assert "Zero" in text and "site" in text and "minedno" in text
    # predictions at the modes: the zero part's probability and the response mean
    pi, mu = m.fitted("zprob"), m.fitted("conditional")
    assert np.all((pi > 0) & (pi < 1))
    expected = (1 - pi) * mu if family == "poisson" else (1 - pi) * mu / (1 - np.exp(-mu))
    np.testing.assert_allclose(m.fitted("response"), expected, rtol=1e-12)
    assert m.ranef("zi").shape == (23, 1)
    d = json.loads(json.dumps(m.to_dict()))
    assert d["zero_part"]["minedno"]["estimate"] == pytest.approx(m.fixef_zi["minedno"])
    assert d["loglik"] == m.loglik


@pytest.mark.slow
def test_correlated_zero_part_effects_reach_glmmtmb(sal):
    # (1 + cover | site) in the zero part: glmmTMB reports a convergence problem (code 1)
    # with the correlation at 1; glamm's log-likelihood is at least glmmTMB's
    r = REF["zip_slope"]
    m = glamm.glmer(COND, sal, family="poisson", ziformula="~ mined + (1 + cover | site)")
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.is_singular


def test_errors(sal):
    d = sal.assign(other=pd.Categorical(np.arange(len(sal)) % 5))
    with pytest.raises(GlammError, match="one grouping factor"):
        glamm.glmer(COND, d, family="poisson", ziformula="~ mined + (1 | other)")
    with pytest.raises(GlammError, match="dispformula"):
        glamm.glmer(COND, d, family="nbinom2", ziformula=ZI, dispformula="~ mined")
    with pytest.raises(GlammError, match="count families"):
        glamm.glmer("cover ~ mined + (1 | site)", d, family="gaussian", ziformula=ZI)


@pytest.mark.slow
def test_quadrature_fit_improves_on_the_laplace_answer(sal):
    lap = glamm.glmer(COND, sal, family="truncated_poisson", ziformula=ZI)
    agq = glamm.glmer(COND, sal, family="truncated_poisson", ziformula=ZI, nagq=7)
    assert agq.converged and agq.nagq == 7
    # the quadrature fit maximizes the quadrature likelihood: at least its value at the
    # Laplace estimates, and stationary
    assert agq.loglik >= -0.5 * lap.model.deviance(lap.x, 7) - 1e-9
    assert np.max(np.abs(agq.gradient)) < 1e-3
    assert "nagq = 7" in agq.summary()


def test_predict_new_data(sal):
    m = glamm.glmer(COND, sal, family="poisson", ziformula=ZI)
    # the fitted rows as new data reproduce the fitted values
    for type in ("response", "conditional", "zprob"):
        np.testing.assert_allclose(m.predict(sal, type=type), m.fitted(type), rtol=1e-12)
    # population level: no random effects
    pop = m.predict(sal, type="zprob", re=False)
    gamma = m.fixef_zi.to_numpy()
    expected = 1 / (1 + np.exp(-(gamma[0] + gamma[1] * (sal["mined"] == "no"))))
    np.testing.assert_allclose(pop, expected, rtol=1e-12)
    # an unseen site: zero random effects when allowed, an error otherwise
    new = sal.iloc[:3].assign(site=pd.Categorical(["nowhere"] * 3))
    with pytest.raises(glamm.errors.DataError):
        m.predict(new)
    np.testing.assert_allclose(m.predict(new, allow_new_levels=True),
                               m.predict(sal.iloc[:3], re=False), rtol=1e-12)


def test_nbinom1_count_part_reports_its_phi(sal):
    # (the result used to read a negative binomial's shape, which NB1 does not have)
    m = glamm.glmer("count ~ mined + (1 | site)", sal, family="nbinom1",
                    ziformula="~ 1 + (1 | site)")
    assert set(m.family_parameters) == {"phi"}
    own = m.model.split(m.x)[3]
    assert m.family_parameters["phi"] == pytest.approx(np.exp(own[0]))
    assert "phi" in m.summary()


def test_zero_part_variance_leaves_a_stationary_point_at_zero():
    # the deviance in the zero part's random-intercept SD is flat at zero (a stationary
    # point an optimizer can stop on) and lower inside: the fit must report glmmTMB's
    # interior optimum. From the default start the optimizers find it; started with that
    # SD at zero they stop on the stationary point, and the fit is refitted from the SD's
    # starting value
    r = json.loads((D / "tmb_hurdle_zero_re.json").read_text())
    d = pd.read_csv(D / "sim_hurdle_zero_re.csv").assign(g=lambda t: t["g"].astype(str))
    direct = glamm.glmer("y ~ x + (1 | g)", d, family="truncated_nbinom2",
                         ziformula="~ z + (1 | g)")
    assert direct.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    m = glamm.glmer("y ~ x + (1 | g)", d, family="truncated_nbinom2",
                    ziformula="~ z + (1 | g)", start=np.array([0.7, 0.0]))
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik > r["logLik_no_zero_part_re"] + 0.02
    assert m.fixef.to_numpy() == pytest.approx(r["cond"], rel=1e-4)
    assert m.fixef_zi.to_numpy() == pytest.approx(r["zi"], rel=1e-4)
    assert m.stderr_zi.to_numpy() == pytest.approx(r["zi_se"], rel=1e-3)
    assert m.varcorr["std_dev"].to_numpy() == pytest.approx([r["sd_cond"], r["sd_zi"]],
                                                            rel=1e-4)
    assert any("local optimum" in msg for msg in m.messages)

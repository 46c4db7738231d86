"""Covariance structures of random-effects terms (glmmTMB's syntax) against glmmTMB 1.1.5.

References in ``tests/reference/covstruct/``: copies of the shared ``cov_*`` fits and the
fits ``make_covstruct.R`` made there (toep, ou, gau, mat with kappa 1.5, a binary GLMM with
ar1). glmmTMB's standard errors come from the observed Hessian in all parameters; glamm's
LMM standard errors are lme4's (conditional on the variance parameters), so they are compared
to 5% only for the LMMs; the GLMM's (full Hessian in both) to 1e-3.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

import glamm
from glamm.errors import DataError, FormulaError

D = Path(__file__).parent / "reference" / "covstruct"
REF = Path(__file__).parent / "reference"


def ref(name):
    return json.loads((D / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def orthodont():
    d = pd.read_csv(REF / "data" / "Orthodont.csv")
    return d.assign(Sex=pd.Categorical(d["Sex"], ["Male", "Female"]),
                    fage=pd.Categorical(d["age"]))


@pytest.fixture(scope="module")
def sleep():
    d = glamm.datasets.load("sleepstudy")
    return d.assign(fDays=pd.Categorical(d["Days"]))


@pytest.fixture(scope="module")
def machines():
    d = pd.read_csv(D / "Machines.csv")
    return d.assign(Machine=pd.Categorical(d["Machine"]), Worker=d["Worker"].astype(str))


@pytest.fixture(scope="module")
def spatial():
    return pd.read_csv(D / "sim_spatial.csv")


def _tmb_fixef(r):
    fe = r["fixef"]
    return np.array(list(fe["cond"].values()) if isinstance(fe, dict) and "cond" in fe
                    else (list(fe.values()) if isinstance(fe, dict) else fe), dtype=float)


def _check(m, r, rtol=1e-4):
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-6)
    assert m.fixef.to_numpy() == pytest.approx(_tmb_fixef(r), rel=rtol, abs=1e-6)


def test_cs_and_homcs(machines):
    m = glamm.lmer("score ~ Machine + cs(0 + Machine | Worker)", machines)
    r = ref("cov_machines_cs_tmb")
    _check(m, r)
    st = m.covariance_structures["Worker"]
    cs = r["covstruct"]["Machine + 0 | Worker"]
    assert st["sd"] == pytest.approx(cs["sd"], rel=1e-4)
    assert st["rho"] == pytest.approx(cs["rho"], rel=1e-4)
    h = glamm.lmer("score ~ Machine + homcs(0 + Machine | Worker)", machines)
    _check(h, ref("cov_machines_cs_hom_tmb"))
    # homogeneous cs = lme4's (1 | Worker) + (1 | Worker:Machine)
    lm = glamm.lmer("score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", machines)
    assert h.loglik == pytest.approx(lm.loglik, rel=1e-9)
    vc = lm.varcorr.set_index("group")["vcov"]
    v_w, v_wm = vc["Worker"], vc["Worker:Machine"]
    st = h.covariance_structures["Worker"]
    assert st["sd"] ** 2 == pytest.approx(v_w + v_wm, rel=1e-5)
    assert st["rho"] == pytest.approx(v_w / (v_w + v_wm), rel=1e-5)
    assert "Covariance structures:" in h.summary() and "homcs: sd" in h.summary()


def test_diag_equals_double_bar(orthodont):
    m = glamm.lmer("distance ~ age * Sex + diag(age | Subject)", orthodont)
    _check(m, ref("cov_orthodont_diag_tmb"))
    lm = glamm.lmer("distance ~ age * Sex + (age || Subject)", orthodont)
    assert m.loglik == pytest.approx(lm.loglik, rel=1e-10)


def test_ar1_with_and_without_residual(sleep):
    m = glamm.lmer("Reaction ~ Days + ar1(0 + fDays | Subject)", sleep, reml=False)
    r = load_shared("tmb_sleepstudy_ar1_start")
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-6)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    assert m.covariance_structures["Subject"]["sd"] == pytest.approx(
        r["varcorr"]["cond"][0]["sd"][0], rel=1e-4)
    # ou on the numeric days is the same model (equally spaced)
    ou = glamm.lmer("Reaction ~ Days + ou(0 + coords(Days) | Subject)", sleep, reml=False)
    _check(ou, ref("tmb_sleepstudy_ou"))
    assert ou.loglik == pytest.approx(m.loglik, rel=1e-9)
    assert ou.covariance_structures["Subject"]["range"] == pytest.approx(
        ref("tmb_sleepstudy_ou")["range"], rel=1e-4)
    # without a residual: the exact marginal likelihood
    n = glamm.lmer("Reaction ~ Days + ar1(0 + fDays | Subject)", sleep, reml=False,
                   dispformula="~ 0")
    rn = load_shared("tmb_sleepstudy_ar1_nonugget")
    assert n.loglik == pytest.approx(rn["logLik"], rel=1e-6)
    assert n.sigma == 0.0
    assert n.covariance_structures["Subject"]["rho"] == pytest.approx(rn["ar1"]["rho"],
                                                                      rel=1e-4)


def test_unstructured_and_toeplitz_without_residual(orthodont, sleep):
    m = glamm.lmer("distance ~ age * Sex + us(0 + fage | Subject)", orthodont, reml=False,
                   dispformula="~ 0")
    r = ref("cov_orthodont_us_tmb")
    _check(m, r)
    sd = np.sqrt(m.varcorr["vcov"].to_numpy()[:4])
    assert sd == pytest.approx(r["varcorr"]["cond"][0]["sd"], rel=1e-4)
    t = glamm.lmer("distance ~ age * Sex + toep(0 + fage | Subject)", orthodont, reml=False,
                   dispformula="~ 0")
    rt = ref("tmb_orthodont_toep_nores")
    _check(t, rt)
    st = t.covariance_structures["Subject"]
    assert st["sd"] == pytest.approx(rt["sd"], rel=1e-4)
    assert st["lag correlations"] == pytest.approx(rt["lag_corr"], rel=1e-4)
    s = glamm.lmer("Reaction ~ Days + toep(0 + fDays | Subject)", sleep, reml=False,
                   dispformula="~ 0")
    rs = ref("tmb_sleepstudy_toep_nores")
    assert s.loglik >= rs["logLik"] - 1e-6 * abs(rs["logLik"])
    assert s.covariance_structures["Subject"]["lag correlations"] == pytest.approx(
        rs["lag_corr"], rel=2e-3)


def test_reduced_rank(sleep):
    m = glamm.lmer("Reaction ~ Days + rr(0 + fDays | Subject, d=1)", sleep, reml=False)
    r = ref("cov_sleepstudy_rr1_tmb")
    _check(m, r)
    implied = np.array(r["covstruct"]["fDays + 0 | Subject"]["implied_cov"]["values"])
    S = m.term_covariances()[0]
    assert np.max(np.abs(S - implied)) / np.max(np.abs(implied)) < 1e-4


@pytest.mark.parametrize("name,formula", [
    ("cov_spatial_exp_tmb", "resp ~ z + exp(0 + coords(x, y) | group)"),
    ("tmb_spatial_gau", "resp ~ z + gau(0 + coords(x, y) | group)"),
    ("tmb_spatial_mat15", "resp ~ z + mat(0 + coords(x, y) | group, kappa=1.5)"),
])
def test_spatial(spatial, name, formula):
    m = glamm.lmer(formula, spatial, reml=False)
    r = ref(name)
    _check(m, r)
    st = m.covariance_structures["group"]
    if "covstruct" in r:
        cs = r["covstruct"]["pos + 0 | group"]
        sd, rng = cs["sd"], cs["range"]
    else:
        sd, rng = r["sd"], r["range"]
    assert st["sd"] == pytest.approx(sd, rel=1e-4)
    assert st["range"] == pytest.approx(rng, rel=1e-4)
    assert m.stderr.to_numpy() == pytest.approx(r["fixef_se"] if isinstance(
        r["fixef_se"], list) else list(r["fixef_se"].get("cond", r["fixef_se"]).values()),
        rel=0.05)


def test_glmm_with_ar1():
    d = pd.read_csv(D / "binary_ar1.csv")
    d = d.assign(focc=pd.Categorical(d["focc"]), id=d["id"].astype(str))
    m = glamm.glmer("y ~ x + ar1(0 + focc | id)", d, family="binomial")
    r = ref("tmb_binary_ar1")
    _check(m, r)
    assert m.stderr.to_numpy() == pytest.approx(r["fixef_se"], rel=1e-3)
    st = m.covariance_structures["id"]
    assert st["sd"] == pytest.approx(r["sd"], rel=1e-3)
    assert st["rho"] == pytest.approx(r["rho"], rel=1e-3)


def load_shared(name):
    return json.loads((REF / "ref" / f"{name}.json").read_text())


# --------------------------------------------------------- the objective at fixed parameters
def _dense_deviance(frame, Sigma_of_level, sigma2_free=True):
    """-2 log L profiled over beta and sigma (ML), from the dense marginal covariance
    ``Z (I kron S) Z' + I`` (relative to sigma^2), computed directly."""
    t = frame.reterms[0]
    n = frame.n
    Z = np.zeros((n, t.q))
    for j in range(t.p):
        Z[np.arange(n), t.refs * t.p + j] = t.z[:, j]
    V = Z @ np.kron(np.eye(t.nlevels), Sigma_of_level) @ Z.T + np.eye(n)
    L = linalg.cholesky(V, lower=True)
    Xw = linalg.solve_triangular(L, frame.X, lower=True)
    yw = linalg.solve_triangular(L, frame.y, lower=True)
    beta = np.linalg.lstsq(Xw, yw, rcond=None)[0]
    rss = float(np.sum((yw - Xw @ beta) ** 2))
    return 2 * np.sum(np.log(np.diag(L))) + n * (1 + np.log(2 * np.pi * rss / n))


@pytest.mark.parametrize("formula,theta", [
    ("distance ~ age + cs(0 + fage | Subject)", [0.8, 1.1, 0.9, 1.3, 0.4]),
    ("distance ~ age + ar1(0 + fage | Subject)", [1.2, -0.7]),
    ("distance ~ age + toep(0 + fage | Subject)", [0.9, 1.0, 1.1, 0.8, 1.5, -0.4, 0.3]),
    ("distance ~ age + ou(0 + coords(age) | Subject)", [1.1, 0.6]),
])
def test_objective_at_fixed_theta(orthodont, formula, theta):
    m = glamm.lmer(formula, orthodont, reml=False)
    theta = np.array(theta)
    lam = m.model.reterms[0].covariance.lambda_(theta)
    want = _dense_deviance(m.frame, lam @ lam.T)
    assert m.model.objective(theta) == pytest.approx(want, rel=1e-10)


def test_row_order_invariance(sleep):
    f = "Reaction ~ Days + ar1(0 + fDays | Subject)"
    a = glamm.lmer(f, sleep, reml=False)
    b = glamm.lmer(f, sleep.sample(frac=1.0, random_state=2).reset_index(drop=True),
                   reml=False)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10)
    assert b.covariance_structures["Subject"]["rho"] == pytest.approx(
        a.covariance_structures["Subject"]["rho"], rel=1e-6)


# --------------------------------------------------------------------------- bad input
def test_bad_structures(sleep, spatial):
    with pytest.raises(FormulaError, match="unknown covariance structure 'arma'"):
        glamm.lmer("Reaction ~ Days + arma(0 + fDays | Subject)", sleep)
    with pytest.raises(FormulaError, match="ar1 needs a factor's indicator"):
        glamm.lmer("Reaction ~ Days + ar1(Days | Subject)", sleep)
    uneven = sleep[sleep["Days"].isin([0, 1, 2, 5, 9])].assign(
        fDays=lambda d: pd.Categorical(d["Days"]))
    with pytest.raises(DataError, match=r"equally spaced times, and they are not; use ou\("):
        glamm.lmer("Reaction ~ Days + ar1(0 + fDays | Subject)", uneven)
    with pytest.raises(DataError, match="coordinate column 'g' must be numeric"):
        glamm.lmer("resp ~ z + exp(0 + coords(x, g) | group)",
                   spatial.assign(g=spatial["x"].astype(str)))
    with pytest.raises(FormulaError, match="needs the locations"):
        glamm.lmer("resp ~ z + exp(0 + x | group)", spatial)
    with pytest.raises(FormulaError, match="unknown argument"):
        glamm.lmer("Reaction ~ Days + ar1(0 + fDays | Subject, d=2)", sleep)
    with pytest.raises(FormulaError, match="d must be between 1"):
        glamm.lmer("Reaction ~ Days + rr(0 + fDays | Subject, d=11)", sleep)


def test_propto_known_matrix(sleep):
    """propto: a known matrix times a variance. With the AR(1) correlation matrix of the ar1
    fit's rho it reproduces that fit's likelihood (the one free parameter is the SD); a K
    that is not positive definite or does not match the levels is refused."""
    a = glamm.lmer("Reaction ~ Days + ar1(0 + fDays | Subject)", sleep, reml=False)
    rho = a.covariance_structures["Subject"]["rho"]
    lag = np.abs(np.arange(10)[:, None] - np.arange(10)[None, :])
    levels = [str(v) for v in sorted(sleep["Days"].unique())]
    labels = [f"{float(v)}" for v in sorted(sleep["Days"].unique())]
    K = pd.DataFrame(rho ** lag, index=labels, columns=labels)
    p = glamm.lmer("Reaction ~ Days + propto(0 + fDays | Subject, K)", sleep, reml=False,
                   covariances={"K": K.iloc[::-1, ::-1]})   # matched by label, any order
    assert p.loglik == pytest.approx(a.loglik, rel=1e-8)
    assert p.covariance_structures["Subject"]["sd"] == pytest.approx(
        a.covariance_structures["Subject"]["sd"], rel=1e-4)
    with pytest.raises(DataError, match="not positive definite"):
        glamm.lmer("Reaction ~ Days + propto(0 + fDays | Subject, K)", sleep,
                   covariances={"K": np.ones((10, 10))})
    with pytest.raises(DataError, match="no row/column for level"):
        glamm.lmer("Reaction ~ Days + propto(0 + fDays | Subject, K)", sleep,
                   covariances={"K": K.rename(index={labels[0]: "zero"},
                                              columns={labels[0]: "zero"})})
    with pytest.raises(FormulaError, match="not in covariances"):
        glamm.lmer("Reaction ~ Days + propto(0 + fDays | Subject, K)", sleep)
    assert len(levels) == 10


def test_structure_standard_errors(sleep, spatial):
    """Wald SEs of the shape parameters by the delta method: glmmTMB's (full covariance) for
    ar1's rho and the exponential range (tmb_structure_se.json)."""
    r = ref("tmb_structure_se")
    a = glamm.lmer("Reaction ~ Days + ar1(0 + fDays | Subject)", sleep, reml=False)
    t = a.structure_table().set_index("parameter")
    assert t.loc["rho", "estimate"] == pytest.approx(r["ar1_rho"]["estimate"], rel=1e-4)
    assert t.loc["rho", "se"] == pytest.approx(r["ar1_rho"]["se"], rel=1e-3)
    e = glamm.lmer("resp ~ z + exp(0 + coords(x, y) | group)", spatial, reml=False)
    t = e.structure_table().set_index("parameter")
    assert t.loc["range", "estimate"] == pytest.approx(r["exp_range"]["estimate"], rel=1e-4)
    assert t.loc["range", "se"] == pytest.approx(r["exp_range"]["se"], rel=1e-3)


def test_implied_covariance_matrices(sleep):
    """covariance_matrices(): the implied covariance, e.g. ar1's sd^2 rho^|i-j|."""
    m = glamm.lmer("Reaction ~ Days + ar1(0 + fDays | Subject)", sleep, reml=False)
    S = m.covariance_matrices()["Subject"]
    st = m.covariance_structures["Subject"]
    lag = np.abs(np.arange(10)[:, None] - np.arange(10)[None, :])
    assert S.to_numpy() == pytest.approx(st["sd"] ** 2 * st["rho"] ** lag, rel=1e-10)
    assert list(S.columns)[:2] == ["fDays0.0", "fDays1.0"] or len(S.columns) == 10


# ------------------------------------------------ lmer with a residual correlation (nlme lme)
@pytest.mark.parametrize("key,formula,data,reml,correlation", [
    ("ar1_int_ml", "Reaction ~ Days + (1 | Subject)", "sleep", False, "ar1(Days | Subject)"),
    ("ar1_int_reml", "Reaction ~ Days + (1 | Subject)", "sleep", True, "ar1(Days | Subject)"),
    ("exp_nugget_ml", "distance ~ age * Sex + (1 | Subject)", "orthodont", False,
     "exp(age | Subject, nugget=True)"),
])
def test_lmer_with_residual_correlation(request, key, formula, data, reml, correlation):
    """nlme's lme(..., correlation=) against nlme 3.1 (nlme_lme_correlation.json). The
    exponential range and nugget on Orthodont are not identified (ages 2 apart: any range
    below ~0.3 gives the same likelihood), so they are not compared."""
    r = ref("nlme_lme_correlation")[key]
    d = request.getfixturevalue(data)
    m = glamm.lmer(formula, d, reml=reml, correlation=correlation)
    assert m.loglik >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert m.loglik == pytest.approx(r["logLik"], rel=1e-6)
    assert m.fixef.to_numpy() == pytest.approx(r["fixef"], rel=1e-4)
    assert m.stderr.to_numpy() == pytest.approx(r["fixef_se"], rel=1e-3)
    assert m.sigma == pytest.approx(r["sigma"], rel=1e-4)
    assert np.sqrt(m.varcorr["vcov"].iloc[0]) == pytest.approx(r["sd_re"], rel=1e-4)
    if key.startswith("ar1"):
        assert m.correlation["estimate"].iloc[0] == pytest.approx(r["cor"], rel=1e-4)
    assert "Random effects:" in m.summary()


def test_lmer_correlation_bad_input(sleep):
    with pytest.raises(FormulaError, match="must be the random-effects term's grouping"):
        glamm.lmer("Reaction ~ Days + (1 | Subject)", sleep.assign(g=1),
                   correlation="ar1(Days | g)")
    with pytest.raises(FormulaError, match="one random-effects term"):
        glamm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep,
                   correlation="ar1(Days | Subject)")

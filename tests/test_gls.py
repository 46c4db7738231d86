"""glamm.gls: generalized least squares with nlme's residual correlation structures.

References: nlme 3.1-162 ``gls`` fits (``tests/reference/ref``: the public cases;
``tests/reference/gls_extra``: every structure, ML and REML, with varIdent, made by
``make_gls_extra.R`` there). The criterion at fixed parameters is checked against a dense
multivariate normal log-density built independently of the structures' code.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, load_reference
from scipy import stats
from scipy.spatial.distance import cdist

import glamm
from glamm.corstruct.fit import profile
from glamm.corstruct.spec import parse_correlation
from glamm.errors import DataError, FormulaError, GlammError

EXTRA = Path(__file__).parent / "reference" / "gls_extra"

PUBLIC = {
    "cov_spatial_gls_exp_nugget": ("sim_spatial", "resp ~ z", "exp(x + y, nugget=True)", False),
    "cov_orthodont_gls_cs": ("Orthodont", "distance ~ age * Sex", "cs(1 | Subject)", True),
    "nlme_sleepstudy_gls_ar1": ("sleepstudy", "Reaction ~ Days", "ar1(Days | Subject)", False),
    "nlme_sleepstudy_gls_exp_nugget": ("sleepstudy", "Reaction ~ Days",
                                       "exp(Days | Subject, nugget=True)", False),
}


@lru_cache(maxsize=None)
def _extra() -> dict:
    return json.loads((EXTRA / "gls_extra.json").read_text(encoding="utf-8"))["cases"]


def extra_data(name: str) -> pd.DataFrame:
    """A data set of the gls_extra references, typed as make_gls_extra.R types it."""
    if name in ("Orthodont", "sim_spatial", "sleepstudy"):
        d = load_data(name)
        if name == "Orthodont":
            d["pos"] = d["age"] / 2 - 3
        return d
    d = pd.read_csv(EXTRA / f"{name}.csv")
    for c in ("id", "grp"):
        if c in d:
            d[c] = pd.Categorical(d[c].astype(str))
    if "trt" in d:
        d["trt"] = pd.Categorical(d["trt"], categories=["a", "b"])
    return d


@lru_cache(maxsize=None)
def _fit(dataset: str, formula: str, correlation: str | None, reml: bool,
         dispformula: str | None = None):
    return glamm.gls(formula, extra_data(dataset), correlation=correlation,
                     dispformula=dispformula, reml=reml)


def _check_against(m, ref: dict, loglik: float, fixef: dict, fixef_se: dict) -> None:
    rel = (m.loglik - loglik) / abs(loglik)
    assert rel > -1e-6, f"logLik {m.loglik} below the reference {loglik}"
    assert abs(rel) < 1e-6
    np.testing.assert_allclose(m.fixef.to_numpy(), list(fixef.values()), rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(m.stderr.to_numpy(), list(fixef_se.values()), rtol=1e-3)
    assert list(m.fixef.index) == list(fixef)


# --------------------------------------------------------------------------- references
@pytest.mark.parametrize("case", sorted(PUBLIC))
def test_public_reference(case):
    dataset, formula, correlation, reml = PUBLIC[case]
    ref = load_reference(case)
    m = _fit(dataset, formula, correlation, reml)
    _check_against(m, ref, ref["logLik"], ref["fixef"], ref["fixef_se"])
    np.testing.assert_allclose(m.sigma, ref["sigma"], rtol=1e-4)
    coef = ref["corStruct"]["coef"]
    np.testing.assert_allclose(m.correlation["estimate"].to_numpy(), list(coef.values()),
                               rtol=1e-4)
    assert list(m.correlation.index) == list(coef)
    assert m.nobs == ref["nobs"]
    np.testing.assert_allclose([m.aic, m.bic], [ref["AIC"], ref["BIC"]], rtol=1e-6)


EXTRA_CASES = sorted(c for c in _extra() if c != "spher_ml")


@pytest.mark.parametrize("case", EXTRA_CASES)
def test_extra_reference(case):
    ref = _extra()[case]
    g = ref["glamm"]
    m = _fit(ref["data"], g["formula"], g["correlation"], g["reml"], g.get("dispformula"))
    _check_against(m, ref, ref["logLik"], ref["fixef"], ref["fixef_se"])
    np.testing.assert_allclose(m.correlation["estimate"].to_numpy(),
                               np.atleast_1d(ref["corStruct"]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([m.aic, m.bic], [ref["AIC"], ref["BIC"]], rtol=1e-6)
    if ref["varStruct"] is None:
        np.testing.assert_allclose(m.sigma, ref["sigma"], rtol=1e-4)
    else:
        # residual SD per level: glamm's reference level is the factor's first level, nlme's
        # the first in the data sorted by the correlation groups; the SDs are the same
        vf = m.variance_function
        ours = dict(zip(vf.index.astype(str), vf["residual SD"]))
        (other, ratio), = ref["varStruct"].items()
        base = [lv for lv in ours if lv != other][0]
        np.testing.assert_allclose([ours[base], ours[other]],
                                   [ref["sigma"], ref["sigma"] * ratio], rtol=1e-4)


def test_nlme_default_start_spher_is_beaten():
    """nlme's spherical fit from its default start (1.1 x the smallest distance) stays where
    the correlation is nearly the identity; glamm reaches the maximum nlme finds from a good
    start (spher_ml_start), far above."""
    bad, good = _extra()["spher_ml"], _extra()["spher_ml_start"]
    m = _fit("sim_spatial", "resp ~ z", "spher(x + y)", False)
    assert m.loglik > bad["logLik"] + 10
    assert m.loglik == pytest.approx(good["logLik"], rel=1e-8)


# nlme's unconstrained scales: d natural / d unconstrained at the estimate
_DNAT = {
    "ar1": lambda v, st: (1 - v * v) / 2,
    "car1": lambda v, st: v * (1 - v),
    "range": lambda v, st: v - st._offset,
    "nugget": lambda v, st: v * (1 - v),
}


@pytest.mark.parametrize("case", ["car1_ml", "ar1_reml", "ar1_gaps_ml", "gau_ml",
                                  "exp_grouped_reml", "gau_nugget_grouped_ml"])
def test_correlation_stderr_matches_nlme_apvar(case):
    """Approximate SEs of the correlation parameters: nlme's apVar (unconstrained scale)
    carried to the natural scale by the delta method."""
    ref = _extra()[case]
    g = ref["glamm"]
    m = _fit(ref["data"], g["formula"], g["correlation"], g["reml"], g.get("dispformula"))
    sd_unc = np.sqrt(np.diag(np.array(ref["apVar"])))
    for i, (name, row) in enumerate(m.correlation.iterrows()):
        key = m.structure.spec.name if name == "Phi" else name
        expect = sd_unc[i] * _DNAT[key](row["estimate"], m.structure)
        assert row["std_error"] == pytest.approx(expect, rel=0.01)


# --------------------------------------------------------------------------- the criterion
def _dense_R(kind: str, par: np.ndarray, groups: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The whole ``n x n`` correlation matrix, written out directly."""
    same = groups[:, None] == groups[None, :]
    d = cdist(t, t)
    if kind in ("ar1", "car1"):
        R = par[0] ** d
    elif kind == "cs":
        R = np.full(d.shape, par[0])
    elif kind == "exp":
        R = (1 - par[1]) * np.exp(-d / par[0])
    elif kind == "gau":
        R = np.exp(-(d / par[0]) ** 2)
    else:
        raise AssertionError(kind)
    R = np.where(same, R, 0.0)
    np.fill_diagonal(R, 1.0)
    return R


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("kind,dataset,formula,correlation,cols,group,disp", [
    ("ar1", "sleepstudy", "Reaction ~ Days", "ar1(Days | Subject)", ["Days"], "Subject", None),
    ("car1", "long_irregular", "y ~ time + x", "car1(time | id)", ["time"], "id", "~ (1 | trt)"),
    ("cs", "Orthodont", "distance ~ age * Sex", "cs(1 | Subject)", ["age"], "Subject", None),
    ("exp", "sim_spatial", "resp ~ z", "exp(x + y, nugget=True)", ["x", "y"], None, "~ z"),
    ("gau", "spatial_groups", "resp ~ z", "gau(x + y | grp)", ["x", "y"], "grp", None),
])
def test_criterion_matches_dense_loglik(kind, dataset, formula, correlation, cols, group, disp,
                                        reml):
    """The profiled criterion at parameters away from the optimum equals the multivariate
    normal log-density (ML) or the REML log-likelihood built densely from the definitions."""
    d = extra_data(dataset)
    m = _fit(dataset, formula, correlation, reml, disp)
    x = m.parameters + 0.3 * np.cos(np.arange(m.parameters.size) + 1.0)
    pr = profile(m.problem, x)
    z, delta = m.problem.split(x)
    par = m.structure.natural(z)
    groups = (d[group].astype(str).to_numpy() if group else np.zeros(len(d)))
    R = _dense_R(kind, par, groups, d[cols].to_numpy(dtype=float))
    s = np.exp(m.problem.D @ delta) if disp else np.ones(len(d))
    V0 = R * np.outer(s, s)
    X, y = m.frame.X, m.frame.y
    Vi = np.linalg.inv(V0)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    n, p = X.shape
    sigma2 = (r @ Vi @ r) / (n - p if reml else n)
    ll = stats.multivariate_normal(X @ beta, sigma2 * V0).logpdf(y)
    if reml:
        ll += p / 2 * math.log(2 * math.pi * sigma2) - np.linalg.slogdet(XtViX)[1] / 2
    assert -pr.criterion / 2 == pytest.approx(ll, rel=1e-10)
    np.testing.assert_allclose(pr.beta, beta, rtol=1e-8)
    assert pr.sigma == pytest.approx(math.sqrt(sigma2), rel=1e-10)


def test_symm_block_is_the_general_correlation():
    """corSymm: every z gives a valid correlation matrix whose pairs are the natural
    parameters, in nlme's order (1,2), (1,3), ..., and the blocks index it by position."""
    m = _fit("Orthodont", "distance ~ age * Sex", "symm(1 | Subject)", True)
    st = m.structure
    z = np.array([0.3, -1.2, 2.0, 0.1, -0.4, 0.9])
    R = st.matrix(z)
    assert np.allclose(np.diag(R), 1.0) and np.all(np.linalg.eigvalsh(R) > 0)
    nat = st.natural(z)
    assert np.allclose(nat, [R[0, 1], R[0, 2], R[0, 3], R[1, 2], R[1, 3], R[2, 3]])
    assert list(st.names) == ["cor(1,2)", "cor(1,3)", "cor(1,4)", "cor(2,3)", "cor(2,4)",
                              "cor(3,4)"]
    assert np.allclose(st.block(z, 0), R[None])


# --------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("correlation,dataset,formula", [
    ("ar1(Days | Subject)", "sleepstudy", "Reaction ~ Days"),
    ("exp(x + y, nugget=True)", "sim_spatial", "resp ~ z"),
    ("car1(time | id)", "long_irregular", "y ~ time + x"),
])
def test_row_order_does_not_matter(correlation, dataset, formula):
    d = extra_data(dataset)
    perm = np.random.default_rng(4).permutation(len(d))
    a = _fit(dataset, formula, correlation, False)
    b = glamm.gls(formula, d.iloc[perm], correlation=correlation, reml=False)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-9)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-6)
    np.testing.assert_allclose(b.correlation["estimate"], a.correlation["estimate"], rtol=1e-5)
    np.testing.assert_allclose(b.residuals(), a.residuals()[perm], rtol=1e-6, atol=1e-8)


def test_missing_values_in_structure_columns_are_dropped():
    d = extra_data("long_irregular")
    d.loc[[3, 10], "time"] = np.nan
    m = glamm.gls("y ~ time + x", d, correlation="car1(time | id)", reml=False)
    ref = glamm.gls("y ~ time + x", d.dropna(), correlation="car1(time | id)", reml=False)
    assert m.nobs == len(d) - 2 and m.n_dropped_na == 2
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-10)


# --------------------------------------------------------------------------- the result
def test_residuals_fitted_and_normalized():
    m = _fit("sleepstudy", "Reaction ~ Days", "ar1(Days | Subject)", False)
    d = extra_data("sleepstudy")
    r = m.residuals()
    np.testing.assert_allclose(r, d["Reaction"] - m.fitted())
    np.testing.assert_allclose(m.residuals("pearson"), r / m.sigma)
    # normalized: each subject's Pearson residuals times the inverse Cholesky factor
    phi = m.correlation.loc["Phi", "estimate"]
    rows = np.flatnonzero(d["Subject"].astype(str) == "308")
    t = d["Days"].to_numpy()[rows]
    L = np.linalg.cholesky(phi ** np.abs(t[:, None] - t[None, :]))
    np.testing.assert_allclose(m.residuals("normalized")[rows],
                               np.linalg.solve(L, r[rows] / m.sigma), rtol=1e-8)
    with pytest.raises(ValueError, match="normalized"):
        m.residuals("deviance")
    np.testing.assert_allclose(m.predict(d.head(3)), m.fitted()[:3])


def test_summary_and_to_dict():
    m = _fit("sleepstudy", "Reaction ~ Days", "ar1(Days | Subject)", False)
    text = m.summary()
    assert "Generalized least squares fit by maximum likelihood" in text
    assert "Correlation Structure: AR(1)" in text
    assert "Formula: ~Days | Subject" in text and "Phi" in text and "0.79166" in text
    assert "Degrees of freedom: 180 total; 178 residual" in text
    out = m.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["correlation"]["Phi"]["estimate"] == pytest.approx(0.7916617, rel=1e-5)
    assert out["method"] == "ML" and out["nobs"] == 180
    v = _fit("long_irregular", "y ~ time + x", "car1(time | id)", True, "~ (1 | trt)")
    assert "Variance function" in v.summary() and "Continuous AR(1)" in v.summary()
    assert "variance_function" in v.to_dict()
    sp = _fit("sim_spatial", "resp ~ z", "exp(x + y, nugget=True)", False)
    assert "Exponential spatial correlation" in sp.summary() and "nugget" in sp.summary()


def test_no_correlation_is_weighted_least_squares():
    """Without a structure, gls with varIdent is the heteroscedastic linear model; without
    either it is ordinary least squares (REML sigma = lm's)."""
    d = extra_data("long_irregular")
    m = glamm.gls("y ~ time + x", d)
    X = np.column_stack([np.ones(len(d)), d["time"], d["x"]])
    beta, rss = np.linalg.lstsq(X, d["y"], rcond=None)[:2]
    np.testing.assert_allclose(m.fixef, beta, rtol=1e-10)
    assert m.sigma == pytest.approx(math.sqrt(rss[0] / (len(d) - 3)), rel=1e-10)
    h = glamm.gls("y ~ time + x", d, dispformula="~ (1 | trt)", reml=False)
    assert h.variance_function.loc["b", "SD ratio"] > 1.2
    assert h.correlation is None and h.npar == 5


def test_reml_keyword_spelling():
    d = extra_data("sleepstudy")
    m = glamm.gls("Reaction ~ Days", d, correlation="ar1(Days | Subject)", REML=False)
    assert not m.reml


# --------------------------------------------------------------------------- bad input
def test_parse_correlation():
    s = parse_correlation("exp(~ x + y | g1/g2, nugget=TRUE, metric='man')")
    assert (s.name, s.covariates, s.groups, s.nugget, s.metric) == \
        ("exp", ("x", "y"), ("g1", "g2"), True, "manhattan")
    assert parse_correlation("cs(~ 1 | Subject)").covariates == ()


@pytest.mark.parametrize("text,match", [
    ("arma(Days | Subject)", "unknown structure 'arma'"),
    ("ar1 Days", "structure call"),
    ("exp(x + y, nuget=True)", "unknown option 'nuget'"),
    ("ar1(Days | Subject, nugget=True)", "only the spatial structures"),
    ("exp(x, metric='cosine')", "metric must be one of"),
    ("ar1(Days + Reaction | Subject)", "one time or position covariate"),
    ("ar1(log(Days) | Subject)", "column names"),
])
def test_bad_correlation_strings(text, match):
    with pytest.raises(FormulaError, match=match):
        glamm.gls("Reaction ~ Days", extra_data("sleepstudy"), correlation=text)


def test_bad_columns_and_data():
    sleep = extra_data("sleepstudy")
    with pytest.raises(FormulaError, match="unknown column 'Day'"):
        glamm.gls("Reaction ~ Days", sleep, correlation="ar1(Day | Subject)")
    with pytest.raises(DataError, match="'Subject' must be numeric"):
        glamm.gls("Reaction ~ Days", sleep, correlation="car1(Subject)")
    irr = extra_data("long_irregular")
    with pytest.raises(DataError, match="non-integer.*car1"):
        glamm.gls("y ~ time", irr, correlation="ar1(time | id)")
    dup = sleep.copy()
    dup.loc[1, "Days"] = 0
    with pytest.raises(DataError, match="repeats a value within group '308'"):
        glamm.gls("Reaction ~ Days", dup, correlation="ar1(Days | Subject)")
    single = sleep.copy()
    single["row"] = np.arange(len(single)).astype(str)
    with pytest.raises(DataError, match="single observation"):
        glamm.gls("Reaction ~ Days", single, correlation="cs(1 | row)")
    sp = extra_data("sim_spatial")
    sp.loc[1, ["x", "y"]] = sp.loc[0, ["x", "y"]].to_numpy()
    with pytest.raises(DataError, match="same coordinates.*nugget=True"):
        glamm.gls("resp ~ z", sp, correlation="exp(x + y)")
    with pytest.raises(FormulaError, match="no random effects"):
        glamm.gls("Reaction ~ Days + (1 | Subject)", sleep, correlation="ar1(Days | Subject)")
    with pytest.raises(GlammError, match="power\\(fitted\\)"):
        glamm.gls("Reaction ~ Days", sleep, dispformula="~ power(fitted)")


# --------------------------------------------------------------------------- anova
def test_anova_between_gls_fits_and_with_lmer():
    """Nested gls fits are compared by likelihood ratio (REML fits refitted by ML); a gls
    with compound symmetry has the ML log-likelihood of the random-intercept LMM (its
    correlation is positive on Orthodont)."""
    d = extra_data("Orthodont")
    m0 = glamm.gls("distance ~ age * Sex", d, reml=False)
    m1 = _fit("Orthodont", "distance ~ age * Sex", "cs(1 | Subject)", True)
    table = glamm.anova(m0, m1)
    ml = m1.refit_ml()
    assert not ml.reml and ml.loglik > m1.loglik - 50
    assert table.attrs["refitted"] == ["m1"]
    assert table["Chisq"].iloc[1] == pytest.approx(2 * (ml.loglik - m0.loglik), rel=1e-9)
    assert int(table["Df"].iloc[1]) == 1
    lmm = glamm.lmer("distance ~ age * Sex + (1 | Subject)", d, reml=False)
    assert ml.loglik == pytest.approx(lmm.loglik, rel=1e-8)
    both = glamm.anova(lmm, ml)
    assert both["npar"].tolist() == [6, 6]


def test_ar1_without_covariate_uses_the_rows_order():
    """``ar1(1 | g)``: positions within each group in data order (nlme's ~ 1 | g), the same
    model as the covariate when the rows are sorted by it."""
    d = extra_data("sleepstudy")
    a = _fit("sleepstudy", "Reaction ~ Days", "ar1(Days | Subject)", False)
    b = glamm.gls("Reaction ~ Days", d, correlation="ar1(1 | Subject)", reml=False)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10)
    assert "Formula: ~1 | Subject" in b.summary()


def test_symm_summary_prints_the_matrix():
    m = _fit("Orthodont", "distance ~ age * Sex", "symm(1 | Subject)", True)
    text = m.summary()
    assert "Correlation Structure: General" in text and " Correlation:" in text
    assert "0.749" in text   # cor(2,4), as nlme prints it


def test_car1_phi_zero_limit_is_reached():
    """With times 0.014 apart, car1's correlation stays large for any positive Phi, so the
    maximum (nlme: Phi = 0, logLik -38.65621, that of independent rows) is only at the limit;
    the fit tries it once the optimizer heads there. REML refits start inside again."""
    irr = extra_data("long_irregular")
    d = irr[irr["id"].astype(str).isin(["1", "2", "3"])]
    m = glamm.gls("y ~ x", d, correlation="car1(time)", reml=False)
    ols = glamm.gls("y ~ x", d, reml=False)
    assert m.loglik == pytest.approx(-38.65621, abs=1e-5)
    assert m.loglik == pytest.approx(ols.loglik, rel=1e-12)
    assert m.correlation.loc["Phi", "estimate"] == 0.0
    assert np.isnan(m.correlation.loc["Phi", "std_error"])
    json.dumps(m.to_dict(), allow_nan=False)
    r = glamm.gls("y ~ x", d, correlation="car1(time)")
    assert r.refit_ml().loglik == pytest.approx(m.loglik, rel=1e-9)


def test_ar1_times_need_whole_number_lags_not_integer_values():
    """Times 0.5, 1.5, ... are consecutive (nlme's corAR1 takes them); 0, 0.5, ... are not."""
    d = extra_data("sleepstudy")
    a = _fit("sleepstudy", "Reaction ~ Days", "ar1(Days | Subject)", False)
    shifted = d.assign(t=d["Days"] + 0.5)
    b = glamm.gls("Reaction ~ Days", shifted, correlation="ar1(t | Subject)", reml=False)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10)
    with pytest.raises(DataError, match="non-integer lags in group '308'.*car1"):
        glamm.gls("Reaction ~ Days", d.assign(t=d["Days"] / 2), correlation="ar1(t | Subject)")

"""glamm.glmer against lme4 and glmmTMB on links, families, weights, offsets and response
codings not covered by the main GLMM references.

The data and the fits are committed under ``tests/reference/glmm_extra/`` and were made by
``tests/reference/glmm_extra/make_glmm_extra.R`` (lme4 1.1-31, glmmTMB 1.1.5, R 4.2.2); R is not
needed here. Each reference holds four package fits of one model (``fits``: lme4 and glmmTMB,
each with default and with tight optimizer settings) and, for the random-intercept models, two
fits by an independent plain-R Laplace approximation (``own``: ``fisher`` with the expected,
``exact`` with the observed information in the log-determinant). ``best`` names the fit the
estimates are compared with: the highest log-likelihood among the package fits whose
log-likelihood is comparable (lme4's is not for the Gamma, inverse Gaussian and Gaussian
families, see the R script); for the inverse Gaussian, which glmmTMB 1.1.5 lacks, ``own_exact``.

Tolerances are the project's and are not to be loosened:

- log-likelihood: within 1e-6 relative of the best fit and never lower by more than that;
- fixed effects and random-effect SDs: 1e-4 relative (fixed effects below 1e-2 in absolute
  value: 1e-4 absolute);
- standard errors of the fixed effects: 1e-3 relative;
- dispersion and negative binomial shape: 1e-3 relative;
- correlations: 1e-4 absolute;
- names and counts (nobs, groups): exact.

glamm's default is the exact Laplace approximation (observed information in the
log-determinant, as glmmTMB), so the default fits are compared with ``best`` (glmmTMB, or
``own.exact`` for the inverse Gaussian). ``test_fisher_laplace`` fits with
``laplace="expected"`` (Fisher weights, lme4's variant) and compares, with the same
tolerances, with ``own.fisher``, which has the dispersion estimated jointly by maximum
likelihood. For canonical links (binomial logit, Poisson log) the two are the same function.
"""

from __future__ import annotations

import math
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from conftest import ReferenceSet

import glamm
from glamm.errors import SingularFitWarning

GLMM_DIR = Path(__file__).parent / "reference" / "glmm_extra"
GLMM_DATA = GLMM_DIR / "data"
GLMM_REF = GLMM_DIR / "ref"

LOGLIK_RTOL = 1e-6
ESTIMATE_RTOL = 1e-4
SMALL_COEF = 1e-2  # fixed effects smaller than this in absolute value: absolute tolerance
ESTIMATE_ATOL_SMALL = 1e-4
STDERR_RTOL = 1e-3
DISPERSION_RTOL = 1e-3
CORR_ATOL = 1e-4

CASES = [
    "cbpp_logit",
    "cbpp_probit",
    "cbpp_cloglog",
    "cbpp_prop_logit",
    "grouseticks_pois",
    "simpois_offset",
    "simgamma_log",
    "simig_log",
    "simgauss_log",
    "simnb",
    "verbagg_r2",
    "simbin_slope_crossed",
]

# Fits that take more than 3 s with glamm go in here. None does: every fit takes under 0.5 s
# (verbagg_r2, 7584 rows and 316 groups: ~0.2 s).
SLOW_CASES: set[str] = set()

# families whose dispersion glamm estimates (``dispersion``); the negative binomial has a shape
DISPERSION_FAMILIES = {"Gamma", "inverse.gaussian", "gaussian"}


def _params(cases=CASES):
    return [
        pytest.param(case, id=case, marks=[pytest.mark.slow] if case in SLOW_CASES else [])
        for case in cases
    ]


# --------------------------------------------------------------------------- loading
_REFS = ReferenceSet(GLMM_DIR)
_catalogue = _REFS.catalogue
reference = _REFS.reference
load_glmm_data = _REFS.load


def best_fit(case: str) -> dict:
    """The fit named by ``best``: one of ``fits`` or, as ``own_<info>``, of ``own``."""
    ref = reference(case)
    key = ref["best"]
    if key.startswith("own_"):
        return ref["own"][key[len("own_"):]]
    return ref["fits"][key]


def glamm_formula(ref: dict) -> str:
    return ref.get("formula_glamm") or ref["formula"]


def glamm_name(ref: dict, name):
    """The name glamm gives to what R calls ``name`` (see ``names_glamm``)."""
    if name is None:
        return None
    for r_name, g_name in (ref.get("names_glamm") or {}).items():
        name = name.replace(r_name, g_name)
    return name


FIT_SECONDS: dict[str, float] = {}


def _glmer(ref: dict, formula: str | None = None, laplace: str = "observed"):
    data = load_glmm_data(ref["dataset"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return glamm.glmer(formula or glamm_formula(ref), data, family=ref["family_glamm"],
                           link=ref["link"], weights=ref["weights"], laplace=laplace)


@lru_cache(maxsize=None)
def fitted(case: str):
    """glamm's fit of ``case`` (made once), as R made it."""
    ref = reference(case)
    t0 = time.perf_counter()
    res = _glmer(ref)
    FIT_SECONDS[case] = time.perf_counter() - t0
    return res


@lru_cache(maxsize=None)
def fitted_expected(case: str):
    """glamm's fit with Fisher weights in the log-determinant (``laplace="expected"``, lme4's
    variant of the approximation)."""
    return _glmer(reference(case), laplace="expected")


# --------------------------------------------------------------------------- comparison
def _rel_err(ours: float, ref: float) -> float:
    if ref == 0.0:
        return 0.0 if ours == 0.0 else math.inf
    return abs(ours - ref) / abs(ref)


def _check_relative(pairs: dict, rtol: float, what: str, who: str) -> None:
    """``pairs``: name -> (ours, reference). Fails listing every entry off by more than
    ``rtol``."""
    bad = []
    for key, (ours, ref) in pairs.items():
        err = _rel_err(float(ours), float(ref))
        if not err <= rtol:
            bad.append(f"  {key}: glamm {float(ours)!r}, {who} {float(ref)!r}, "
                       f"rel. error {err:.2e}")
    assert not bad, f"{what} off by more than {rtol:g} relative:\n" + "\n".join(bad)


def _check_fixef(ref: dict, fit: dict, res, who: str) -> None:
    bad = []
    for name, theirs in fit["fixef"].items():
        ours = float(res.fixef.get(glamm_name(ref, name), math.nan))
        if abs(theirs) < SMALL_COEF:
            if not abs(ours - theirs) <= ESTIMATE_ATOL_SMALL:
                bad.append(f"  {name}: glamm {ours!r}, {who} {theirs!r}, "
                           f"abs. error {abs(ours - theirs):.2e} (> {ESTIMATE_ATOL_SMALL:g})")
        elif not _rel_err(ours, theirs) <= ESTIMATE_RTOL:
            bad.append(f"  {name}: glamm {ours!r}, {who} {theirs!r}, "
                       f"rel. error {_rel_err(ours, theirs):.2e} (> {ESTIMATE_RTOL:g})")
    assert not bad, "fixed effects:\n" + "\n".join(bad)


def _check_loglik(ours: float, theirs: float, who: str) -> None:
    tol = LOGLIK_RTOL * abs(theirs)
    assert ours >= theirs - tol, (
        f"logLik {ours!r} is below {who}'s {theirs!r} by {theirs - ours:.3e} (> {tol:.3e})"
    )
    assert abs(ours - theirs) <= tol, (
        f"logLik {ours!r} vs {who} {theirs!r}: difference {ours - theirs:.3e} (> {tol:.3e})"
    )


def _key(group, var1, var2) -> tuple:
    def norm(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    return (str(group), norm(var1), norm(var2))


def _our_varcorr(res) -> dict:
    """glamm's random-effects rows (no Residual row): key -> sdcor."""
    return {
        _key(r.group, r.var1, r.var2): float(r.sdcor)
        for r in res.varcorr.itertuples(index=False)
        if str(r.group) != "Residual"
    }


def _ref_varcorr(ref: dict, fit: dict) -> dict:
    return {
        _key(r["grp"], glamm_name(ref, r["var1"]), glamm_name(ref, r["var2"])): r["sdcor"]
        for r in fit["varcorr"]
        if r["grp"] != "Residual"
    }


def _check_sds(ref: dict, fit: dict, res, who: str) -> None:
    ours = _our_varcorr(res)
    pairs = {"/".join(k for k in key if k): (ours.get(key, math.nan), sd)
             for key, sd in _ref_varcorr(ref, fit).items() if key[2] is None}
    _check_relative(pairs, ESTIMATE_RTOL, "random-effect standard deviations", who)


def _check_dispersion(ref: dict, fit: dict, res, who: str) -> None:
    if ref["family"] in DISPERSION_FAMILIES:
        _check_relative({"dispersion": (res.dispersion, fit["dispersion"])}, DISPERSION_RTOL,
                        "dispersion", who)
    elif ref["family"] == "nbinom2":
        assert res.shape is not None
        _check_relative({"shape": (res.shape, fit["shape"])}, DISPERSION_RTOL, "NB shape", who)
    else:
        assert res.dispersion == 1.0 and res.shape is None


# --------------------------------------------------------------------------- tests
def test_catalogue_lists_every_csv():
    files = {p.name for p in GLMM_DATA.glob("*.csv")}
    assert files == {entry["file"] for entry in _catalogue().values()}
    assert {p.stem for p in GLMM_REF.glob("*.json")} == set(CASES)


@pytest.mark.parametrize("case", _params())
def test_structure(case):
    """Same model as R: coefficient names, random-effects terms and names, counts."""
    ref, res = reference(case), fitted(case)
    fit = best_fit(case)
    lme4 = ref["fits"]["lme4"]
    assert res.fixef.index.tolist() == [glamm_name(ref, n) for n in fit["fixef"]]
    assert res.fixef.index.tolist() == [glamm_name(ref, n) for n in lme4["fixef"]]
    assert res.nobs == fit["nobs"] == lme4["nobs"]
    assert dict(res.ngroups) == fit["ngrps"] == lme4["ngrps"]
    assert list(res.theta_names) == [glamm_name(ref, n) for n in lme4["theta_names"]]
    assert list(_our_varcorr(res)) == list(_ref_varcorr(ref, lme4))
    has_residual = any(str(g) == "Residual" for g in res.varcorr["group"])
    assert has_residual == (ref["family"] in DISPERSION_FAMILIES)
    assert res.link == ref["link"]


@pytest.mark.parametrize("case", _params())
def test_loglik(case):
    """Within 1e-6 relative of the best reference and never lower by more than that."""
    ref, res = reference(case), fitted(case)
    _check_loglik(float(res.loglik), float(best_fit(case)["logLik"]), ref["best"])


@pytest.mark.parametrize("case", _params())
def test_fixef(case):
    ref, res = reference(case), fitted(case)
    _check_fixef(ref, best_fit(case), res, ref["best"])


@pytest.mark.parametrize("case", _params())
def test_stderr(case):
    ref, res = reference(case), fitted(case)
    pairs = {k: (res.stderr.get(glamm_name(ref, k), math.nan), v)
             for k, v in best_fit(case)["fixef_se"].items()}
    _check_relative(pairs, STDERR_RTOL, "standard errors", ref["best"])


@pytest.mark.parametrize("case", _params())
def test_random_effect_sds(case):
    ref, res = reference(case), fitted(case)
    _check_sds(ref, best_fit(case), res, ref["best"])


def _has_correlations(case: str) -> bool:
    return any(r["var2"] is not None for r in reference(case)["fits"]["lme4"]["varcorr"])


@pytest.mark.parametrize("case", _params([c for c in CASES if _has_correlations(c)]))
def test_correlations(case):
    ref, res = reference(case), fitted(case)
    ours = _our_varcorr(res)
    bad = []
    for key, corr in _ref_varcorr(ref, best_fit(case)).items():
        if key[2] is None:
            continue
        mine = ours.get(key, math.nan)
        if not abs(mine - corr) <= CORR_ATOL:
            bad.append(f"  {key}: glamm {mine!r}, {ref['best']} {corr!r}, diff {mine - corr:.2e}")
    assert not bad, f"correlations off by more than {CORR_ATOL:g}:\n" + "\n".join(bad)


@pytest.mark.parametrize("case", _params())
def test_dispersion_and_shape(case):
    """The dispersion (Gamma, inverse Gaussian, Gaussian) or NB shape; 1 / None otherwise."""
    ref, res = reference(case), fitted(case)
    _check_dispersion(ref, best_fit(case), res, ref["best"])


@pytest.mark.parametrize("case", _params([c for c in CASES if reference(c)["own"]]))
def test_fisher_laplace(case):
    """With ``laplace="expected"``, the same quantities against own.fisher: the Laplace
    approximation with Fisher weights in the log-determinant and the dispersion / shape
    estimated jointly (lme4's approximation, with a proper dispersion)."""
    ref, res = reference(case), fitted_expected(case)
    own = ref["own"]["fisher"]
    _check_loglik(float(res.loglik), float(own["logLik"]), "own.fisher")
    _check_fixef(ref, own, res, "own.fisher")
    _check_sds(ref, own, res, "own.fisher")
    _check_dispersion(ref, own, res, "own.fisher")
    pairs = {k: (res.stderr.get(glamm_name(ref, k), math.nan), v)
             for k, v in own["fixef_se"].items()}
    _check_relative(pairs, STDERR_RTOL, "standard errors", "own.fisher")


def test_proportions_with_weights_equal_cbind():
    """``incidence / size`` with ``weights = size`` is the same likelihood as
    ``cbind(incidence, size - incidence)``: glamm's two fits agree."""
    prop, cb = fitted("cbpp_prop_logit"), fitted("cbpp_logit")
    assert prop.nobs == cb.nobs
    assert abs(prop.loglik - cb.loglik) <= 1e-9 * abs(cb.loglik)
    np.testing.assert_allclose(prop.fixef.to_numpy(), cb.fixef.to_numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(prop.theta, cb.theta, rtol=1e-6)
    np.testing.assert_allclose(prop.stderr.to_numpy(), cb.stderr.to_numpy(), rtol=1e-5)


def test_factor_response_is_success_probability_of_second_level():
    """A two-level factor response models P(second level); recoding it as 0/1 numbers gives
    the same fit."""
    ref = reference("verbagg_r2")
    data = load_glmm_data(ref["dataset"])
    assert list(data["r2"].cat.categories) == ["N", "Y"]
    data["r2_num"] = (data["r2"] == "Y").astype("float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        num = glamm.glmer("r2_num ~ btype + (1 | id)", data, family="binomial")
    fac = fitted("verbagg_r2")
    assert abs(num.loglik - fac.loglik) <= 1e-9 * abs(fac.loglik)
    np.testing.assert_allclose(num.fixef.to_numpy(), fac.fixef.to_numpy(), rtol=1e-6, atol=1e-8)

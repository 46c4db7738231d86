"""glamm.galamm with free factor loadings, for every response family, against glmmTMB's
reduced-rank covariance ``rr(0 + item | id, d = 1)``.

The data and the fits are committed under ``tests/reference/galamm_extra/`` and were made by
``tests/reference/galamm_extra/make_galamm_extra.R`` (glmmTMB 1.1.5, R 4.2.2); R is not needed
here. Each case is a one-factor model: items ``i1..ik`` measure one latent variable per ``id``.
glamm fixes the first loading at 1 and estimates the latent SD; rr estimates all ``k`` loadings
``L`` with unit latent variance. The two are the same Laplace likelihood, with glamm's loadings
``L / L_1`` and its latent SD ``|L_1|``; the R script records those (``loadings``,
``latent_sd``). The fixed effects are the same parameters in both, so their standard errors are
compared too; those of the loadings and the SD are not (a different parametrization).

Each reference holds three glmmTMB fits (default settings, tight settings, and the better of
those polished by Newton steps); ``best`` names the one with the highest log-likelihood. glmmTMB
1.1.5 has no inverse Gaussian family: that case is compared with an independent plain-R Laplace
fit (``own.exact``), whose code the script also runs on the Gamma and Gaussian-log cases, where
it agrees with glmmTMB (``test_own_laplace_code_agrees_with_glmmtmb``).

Tolerances are the project's and are not to be loosened:

- log-likelihood: within 1e-6 relative of the best fit and never lower by more than that;
- loadings, latent SD, fixed effects, dispersion and negative binomial shape: 1e-4 relative
  (fixed effects below 1e-2 in absolute value: 1e-4 absolute);
- standard errors of the fixed effects: 1e-3 relative.
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

GALAMM_DIR = Path(__file__).parent / "reference" / "galamm_extra"

LOGLIK_RTOL = 1e-6
ESTIMATE_RTOL = 1e-4
SMALL_COEF = 1e-2  # fixed effects smaller than this in absolute value: absolute tolerance
ESTIMATE_ATOL_SMALL = 1e-4
STDERR_RTOL = 1e-3

CASES = [
    "bin_logit",
    "bin_cbind",
    "bin_probit",
    "pois_log",
    "pois_offset",
    "nbinom2_log",
    "gamma_log",
    "gauss_log",
    "ig_log",
    "bin5_x",
]

# Fits slower than ~2 s with glamm go in here. None is: each takes under 0.6 s.
SLOW_CASES: set[str] = set()

DISPERSION_FAMILIES = {"Gamma", "gaussian", "inverse.gaussian"}

_REFS = ReferenceSet(GALAMM_DIR)
reference = _REFS.reference

FIT_SECONDS: dict[str, float] = {}


def _params(cases=CASES):
    return [
        pytest.param(case, id=case, marks=[pytest.mark.slow] if case in SLOW_CASES else [])
        for case in cases
    ]


def best_fit(case: str) -> dict:
    """The fit named by ``best``: one of ``fits`` or, as ``own_exact``, ``own.exact``."""
    ref = reference(case)
    if ref["best"] == "own_exact":
        return ref["own"]["exact"]
    return ref["fits"][ref["best"]]


def fitted(case: str):
    """glamm's fit of ``case`` (made once, a failure too): the first loading fixed at 1, the
    others free."""
    res, exc = _fit_once(case)
    if exc is not None:
        raise exc
    return res


@lru_cache(maxsize=None)
def _fit_once(case: str):
    try:
        return _fit(case), None
    except glamm.errors.GlammError as exc:
        return None, exc


def _fit(case: str):
    ref = reference(case)
    data = _REFS.load(ref["dataset"])
    lambda_ = [[1.0]] + [[math.nan]] * (len(ref["items"]) - 1)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", glamm.errors.ConvergenceWarning)
        res = glamm.galamm(ref["formula_glamm"], data, family=ref["family_glamm"],
                           link=ref["link"], load_var=ref["load_var"], factor=ref["factor"],
                           lambda_=lambda_)
    FIT_SECONDS[case] = time.perf_counter() - t0
    return res


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


def _items(res) -> list[str]:
    """The rows of glamm's loading table: the levels of load_var."""
    return [str(level) for level in res.factor_loadings.index]


def _loadings(res) -> dict[str, float]:
    """glamm's loadings by item."""
    return dict(zip(_items(res), res.factor_loadings["f"].to_numpy(dtype=float)))


def _latent_sd(res) -> float:
    rows = res.varcorr[(res.varcorr["group"] == "id") & (res.varcorr["var1"] == "f")]
    assert len(rows) == 1, res.varcorr
    return float(rows["sdcor"].iloc[0])


# --------------------------------------------------------------------------- tests
def test_catalogue_lists_every_file():
    files = {p.name for p in (GALAMM_DIR / "data").glob("*.csv")}
    assert files == {entry["file"] for entry in _REFS.catalogue().values()}
    assert {p.stem for p in (GALAMM_DIR / "ref").glob("*.json")} == set(CASES)


def test_own_laplace_code_agrees_with_glmmtmb():
    """The plain-R Laplace code behind the inverse Gaussian reference reproduces glmmTMB where
    both apply (Gamma and Gaussian with a log link)."""
    for case in ("gamma_log", "gauss_log"):
        ref = reference(case)
        own, tmb = ref["own"]["exact"], best_fit(case)
        assert abs(own["logLik"] - tmb["logLik"]) <= 1e-10 * abs(tmb["logLik"]), case
        for item, value in tmb["loadings"].items():
            assert own["loadings"][item] == pytest.approx(value, rel=1e-5), (case, item)
        assert own["latent_sd"] == pytest.approx(tmb["latent_sd"], rel=1e-5), case
        assert own["dispersion"] == pytest.approx(tmb["dispersion"], rel=1e-5), case


@pytest.mark.parametrize("case", _params())
def test_structure(case):
    ref, res = reference(case), fitted(case)
    fit = best_fit(case)
    assert res.fixef.index.tolist() == list(fit["fixef"])
    assert _items(res) == ref["items"]
    assert res.nobs == fit["nobs"]
    assert res.link == ref["link"]


@pytest.mark.parametrize("case", _params())
def test_loglik(case):
    """Within 1e-6 relative of the best reference and never lower by more than that."""
    ours, theirs = float(fitted(case).loglik), float(best_fit(case)["logLik"])
    tol = LOGLIK_RTOL * abs(theirs)
    who = reference(case)["best"]
    assert ours >= theirs - tol, f"logLik {ours!r} below {who}'s {theirs!r} by {theirs - ours:.3e}"
    assert abs(ours - theirs) <= tol, f"logLik {ours!r} vs {who} {theirs!r}"


@pytest.mark.parametrize("case", _params())
def test_loadings(case):
    """glamm's loadings are rr's loadings divided by the first item's."""
    fit, ours = best_fit(case), _loadings(fitted(case))
    pairs = {item: (ours.get(item, math.nan), value) for item, value in fit["loadings"].items()}
    _check_relative(pairs, ESTIMATE_RTOL, "factor loadings", reference(case)["best"])


@pytest.mark.parametrize("case", _params())
def test_latent_sd(case):
    """glamm's SD of the latent variable is |L_1|, rr's first loading."""
    _check_relative({"sd(f)": (_latent_sd(fitted(case)), best_fit(case)["latent_sd"])},
                    ESTIMATE_RTOL, "latent SD", reference(case)["best"])


@pytest.mark.parametrize("case", _params())
def test_fixef(case):
    res, fit, who = fitted(case), best_fit(case), reference(case)["best"]
    bad = []
    for name, theirs in fit["fixef"].items():
        ours = float(res.fixef.get(name, math.nan))
        if abs(theirs) < SMALL_COEF:
            if not abs(ours - theirs) <= ESTIMATE_ATOL_SMALL:
                bad.append(f"  {name}: glamm {ours!r}, {who} {theirs!r} (abs.)")
        elif not _rel_err(ours, theirs) <= ESTIMATE_RTOL:
            bad.append(f"  {name}: glamm {ours!r}, {who} {theirs!r}, "
                       f"rel. error {_rel_err(ours, theirs):.2e}")
    assert not bad, "fixed effects:\n" + "\n".join(bad)


@pytest.mark.parametrize("case", _params())
def test_fixef_stderr(case):
    """The fixed effects' standard errors: the same parameters in both parametrizations."""
    res, fit = fitted(case), best_fit(case)
    pairs = {k: (res.stderr.get(k, math.nan), v) for k, v in fit["fixef_se"].items()}
    _check_relative(pairs, STDERR_RTOL, "standard errors", reference(case)["best"])


@pytest.mark.parametrize("case", _params())
def test_dispersion_and_shape(case):
    """The dispersion (Gamma, Gaussian, inverse Gaussian) or NB2 shape; 1 / None otherwise."""
    ref, res, fit = reference(case), fitted(case), best_fit(case)
    if ref["family"] in DISPERSION_FAMILIES:
        _check_relative({"dispersion": (res.dispersion, fit["dispersion"])}, ESTIMATE_RTOL,
                        "dispersion", ref["best"])
    elif ref["family"] == "nbinom2":
        assert res.shape is not None
        _check_relative({"shape": (res.shape, fit["shape"])}, ESTIMATE_RTOL, "NB shape",
                        ref["best"])
    else:
        assert res.dispersion == 1.0 and res.shape is None


def test_pirls_finds_the_mode_where_fisher_scoring_overshoots():
    """Inverse Gaussian with a log link: where a group's responses are large, its observed
    information is more than twice the Fisher weights and scoring steps overshoot. PIRLS used
    to circle the mode there (steps raising the deviance by less than its rounding allowance),
    failed after 200 iterations, and glmer stopped at logLik -1478.89 on this model (the
    maximum is -1397.79). Near that maximum PIRLS now returns the mode: every u_j's score is 0,
    computed here from the family's derivatives."""
    data = _REFS.load("sim_items3")
    res = glamm.glmer("y_ig ~ 0 + item + (1 | id)", data, family="inverse_gaussian",
                      link="log", fast=True)
    model = res.model
    phi, sd = 0.2151, 0.4374   # about the maximum (a plain-R Laplace fit)
    beta = np.array([0.6876, 0.3318, 1.0867])
    theta = np.array([sd / math.sqrt(phi)])   # relative to the residual scale
    model.response.set_parameters(np.array([math.log(phi)]))
    assert np.isfinite(model.objective(theta, beta))
    scale = float(model.lambdas(theta)[0].ravel()[0])
    assert scale == pytest.approx(sd)
    group = data["id"].cat.codes.to_numpy()
    score = model.response.score(model.eta, model.mu)
    residual = scale * np.bincount(group, score, minlength=model.u.size) - model.u
    assert np.max(np.abs(residual)) < 1e-8
    assert float(glamm.glmer("y_ig ~ 0 + item + (1 | id)", data, family="inverse_gaussian",
                             link="log").loglik) > -1397.8

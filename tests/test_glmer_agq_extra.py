"""glamm.glmer with adaptive Gauss-Hermite quadrature (nagq > 1) against lme4 on scalar
random-intercept models and data sets not used elsewhere.

Data and fits are committed under ``tests/reference/agq_extra/`` and were made by
``tests/reference/agq_extra/make_agq_extra.R`` (lme4 1.1-31, R 4.2.2, tight bobyqa settings);
R is not needed here. lme4 1.1-31's nAGQ > 1 log-likelihood is the full one minus the saturated
model's; ``logLik_full`` adds that back (checked in the script on cbpp logit nAGQ = 25, -91.98337,
and for each case against a direct numerical integration, ``logLik_integrate``).

Tolerances: log-likelihood within 1e-6 relative of ``logLik_full`` and not lower by more than
that; fixed effects and theta 1e-4 relative. Standard errors only 1e-2 relative: lme4's nAGQ > 1
standard errors come from a finite-difference Hessian of its own (different approximation),
so they do not match an exact Hessian to the usual 1e-3.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import pytest
from conftest import ReferenceSet

import glamm

AGQ_DIR = Path(__file__).parent / "reference" / "agq_extra"
CASES = sorted(p.stem for p in (AGQ_DIR / "ref").glob("*.json"))

LOGLIK_RTOL = 1e-6
ESTIMATE_RTOL = 1e-4
STDERR_RTOL = 1e-2


_REFS = ReferenceSet(AGQ_DIR)
reference = _REFS.reference


@lru_cache(maxsize=None)
def fitted(case: str):
    ref = reference(case)
    data = _REFS.load(ref["dataset"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.glmer(ref["formula"], data, family=ref["family"], link=ref["link"],
                           nagq=ref["nagq"])


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_cases_present():
    assert len(CASES) == 3


@pytest.mark.parametrize("case", CASES)
def test_loglik(case):
    ref, res = reference(case), fitted(case)
    ll, ll_ref = float(res.loglik), float(ref["logLik_full"])
    assert _rel(ll, ll_ref) <= LOGLIK_RTOL, (case, ll, ll_ref)
    assert ll >= ll_ref - LOGLIK_RTOL * abs(ll_ref), (case, ll, ll_ref)


@pytest.mark.parametrize("case", CASES)
def test_fixef(case):
    ref, res = reference(case), fitted(case)
    assert list(res.fixef.index) == list(ref["fixef"])
    for name, value in ref["fixef"].items():
        assert _rel(float(res.fixef[name]), value) <= ESTIMATE_RTOL, (case, name)


@pytest.mark.parametrize("case", CASES)
def test_theta(case):
    ref, res = reference(case), fitted(case)
    theta_ref = list(ref["theta"].values())
    assert len(res.theta) == len(theta_ref) == 1
    assert _rel(float(res.theta[0]), theta_ref[0]) <= ESTIMATE_RTOL, case


@pytest.mark.parametrize("case", CASES)
def test_stderr(case):
    # lme4's nAGQ > 1 SEs use a different Hessian approximation: compare at 1e-2 only.
    ref, res = reference(case), fitted(case)
    for name, value in ref["fixef_se"].items():
        assert _rel(float(res.stderr[name]), value) <= STDERR_RTOL, (case, name)

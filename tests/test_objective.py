"""The profiled deviance / REML criterion at fixed ``theta`` (no optimizer involved).

1. At the reference ``theta`` the objective equals the reference's -2 logLik (ML) or REML
   criterion to 1e-8 relative.
2. At other ``theta`` values it equals an independent dense computation written here from the
   data frame (dense ``Z`` and ``Lambda``, Bates et al. 2015, J. Stat. Softw. 67(1), eqs. 34 and
   41), itself cross-checked against the marginal-likelihood formula ``y ~ N(X beta,
   sigma^2 (Z Lambda Lambda' Z' + W^-1))``.
3. Prior weights and offsets (dense check), and weights of 1 change nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import load_data, load_reference, parse_r_call, reference_cases

import glamm
from glamm.formula.design import build_model_frame
from glamm.lmm.model import LinearMixedModel

OBJ_RTOL_REF = 1e-8  # objective at the reference theta vs the reference value
OBJ_RTOL_DENSE = 1e-10  # blocked sparse factor vs dense linear algebra (both exact formulas)

LOG2PI = np.log(2 * np.pi)


def _model(dataset, formula, reml, **kw):
    return LinearMixedModel(build_model_frame(formula, load_data(dataset), **kw), reml=reml)


# --------------------------------------------------------------------------- 1. reference theta
NLME_GROUP_NAMES = {"nlme_pastes_reml": {"cask": "cask:batch"}}
OBJ_CASES = reference_cases("lmer_") + ["nlme_pastes_reml", "nlme_sleepstudy_slope_reml"]
SLOW_CASES = {"lmer_insteval_ml"}   # 73,421 rows: a few seconds (run by `make test-all`)


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c, marks=[pytest.mark.slow] if c in SLOW_CASES else []) for c in OBJ_CASES
])
def test_objective_at_reference_theta(case):
    ref = load_reference(case)
    spec = parse_r_call(ref["call"])
    mod = _model(spec["dataset"], spec["formula"], spec["reml"])
    raw = ref.get("theta") or ref["theta_lme4_equiv"]
    names = []
    for k in raw:
        group, _, rest = k.partition(".")
        names.append(f"{NLME_GROUP_NAMES.get(case, {}).get(group, group)}.{rest}")
    assert mod.theta_names() == names
    theta = np.array(list(raw.values()), dtype=float)
    val = mod.objective(theta)
    want = ref["REMLcrit"] if spec["reml"] else -2.0 * ref["logLik"]
    assert abs(val - want) <= OBJ_RTOL_REF * abs(want), (val, want)
    if spec["reml"] and ref.get("deviance_ML_at_estimates") is not None:
        dev = mod.objective_from_factor(reml=False)
        want_ml = ref["deviance_ML_at_estimates"]
        assert abs(dev - want_ml) <= OBJ_RTOL_REF * abs(want_ml), (dev, want_ml)
    dc = ref.get("devcomp_cmp")
    if dc:
        f = mod.factor
        assert f.pwrss() == pytest.approx(dc["pwrss"], rel=1e-8)
        assert f.logdet_re() == pytest.approx(dc["ldL2"], rel=1e-8, abs=1e-10)
        assert f.logdet_fixed() == pytest.approx(dc["ldRX2"], rel=1e-8, abs=1e-10)
        sigma_key = "sigmaREML" if spec["reml"] else "sigmaML"
        assert mod.sigma() == pytest.approx(dc[sigma_key], rel=1e-8)


# --------------------------------------------------------------------------- dense reference
def _design_term(codes: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Dense ``Z_k`` (n x m*p), level-major.

    Column ``j*p + c`` is covariate ``c`` of level ``j``.
    """
    n, p = cols.shape
    m = int(codes.max()) + 1
    Z = np.zeros((n, m * p))
    for c in range(p):
        Z[np.arange(n), codes * p + c] = cols[:, c]
    return Z


def _codes(labels) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(labels).astype(str), sort=True)
    return codes


def _lower_tri(theta_k: np.ndarray, p: int) -> np.ndarray:
    lam = np.zeros((p, p))
    k = 0
    for j in range(p):
        for i in range(j, p):
            lam[i, j] = theta_k[k]
            k += 1
    return lam


def dense_problem(dataset: str, key: str):
    """``(y, X, [(Z_k, p_k)])`` built by hand from the data frame, terms in lme4's order."""
    d = load_data(dataset)
    n = len(d)
    one = np.ones((n, 1))
    if dataset == "sleepstudy":
        y = d["Reaction"].to_numpy(float)
        days = d["Days"].to_numpy(float)[:, None]
        X = np.hstack([one, days])
        g = _codes(d["Subject"])
        terms = {
            "int": [(np.hstack([one]), g)],
            "slope": [(np.hstack([one, days]), g)],
            "uncorr": [(one, g), (days, g)],
        }[key]
    elif dataset == "Penicillin":
        y = d["diameter"].to_numpy(float)
        X = one
        terms = [(one, _codes(d["plate"])), (one, _codes(d["sample"]))]
    elif dataset == "Pastes":
        y = d["strength"].to_numpy(float)
        X = one
        inner = _codes(d["cask"].astype(str) + ":" + d["batch"].astype(str))
        terms = [(one, inner), (one, _codes(d["batch"]))]
    elif dataset in ("Dyestuff", "Dyestuff2"):
        y = d["Yield"].to_numpy(float)
        X = one
        terms = [(one, _codes(d["Batch"]))]
    else:
        raise KeyError(dataset)
    return y, X, [(_design_term(codes, cols), cols.shape[1]) for cols, codes in terms]


def _big_lambda(Zs, theta):
    blocks, k = [], 0
    for Z, p in Zs:
        nt = p * (p + 1) // 2
        lam = _lower_tri(theta[k : k + nt], p)
        k += nt
        m = Z.shape[1] // p
        blocks.append(np.kron(np.eye(m), lam))
    assert k == len(theta)
    q = sum(b.shape[0] for b in blocks)
    L = np.zeros((q, q))
    o = 0
    for b in blocks:
        L[o : o + b.shape[0], o : o + b.shape[0]] = b
        o += b.shape[0]
    return L


def dense_pls_objective(y, X, Zs, theta, reml, w=None, offset=None):
    """Profiled deviance from the penalized least-squares problem, all dense.

    With ``Zt = W^1/2 Z Lambda``, ``Xt = W^1/2 X``, ``yt = W^1/2 (y - offset)``:
    ``L L' = Zt'Zt + I``, ``RX'RX = Xt'Xt - Xt'Zt (Zt'Zt + I)^-1 Zt'Xt``,
    ``r2 = min_{u,beta} ||yt - Xt beta - Zt u||^2 + ||u||^2``;
    ML: ``log|L|^2 - sum log w + n (1 + log(2 pi r2 / n))``;
    REML: ``log|L|^2 + log|RX|^2 - sum log w + (n-p) (1 + log(2 pi r2 / (n-p)))``.
    """
    n, p = X.shape
    w = np.ones(n) if w is None else np.asarray(w, float)
    off = np.zeros(n) if offset is None else np.asarray(offset, float)
    Z = np.hstack([Zk for Zk, _ in Zs])
    Lam = _big_lambda(Zs, np.asarray(theta, float))
    sw = np.sqrt(w)
    Zt = sw[:, None] * (Z @ Lam)
    Xt = sw[:, None] * X
    yt = sw * (y - off)
    q = Zt.shape[1]
    A = Zt.T @ Zt + np.eye(q)
    M = np.block([[A, Zt.T @ Xt], [Xt.T @ Zt, Xt.T @ Xt]])
    sol = np.linalg.solve(M, np.concatenate([Zt.T @ yt, Xt.T @ yt]))
    u, beta = sol[:q], sol[q:]
    r2 = float(np.sum((yt - Xt @ beta - Zt @ u) ** 2) + u @ u)
    ldL2 = np.linalg.slogdet(A)[1]
    RXtRX = Xt.T @ Xt - Xt.T @ Zt @ np.linalg.solve(A, Zt.T @ Xt)
    ldRX2 = np.linalg.slogdet(RXtRX)[1]
    slw = float(np.log(w).sum())
    if reml:
        return ldL2 + ldRX2 - slw + (n - p) * (1 + LOG2PI + np.log(r2 / (n - p)))
    return ldL2 - slw + n * (1 + LOG2PI + np.log(r2 / n))


def dense_marginal_objective(y, X, Zs, theta, reml, w=None, offset=None):
    """The same objective from the marginal distribution ``V = Z Lambda Lambda' Z' + W^-1``
    (generalized least squares, sigma^2 profiled out)."""
    n, p = X.shape
    w = np.ones(n) if w is None else np.asarray(w, float)
    off = np.zeros(n) if offset is None else np.asarray(offset, float)
    Z = np.hstack([Zk for Zk, _ in Zs])
    ZL = Z @ _big_lambda(Zs, np.asarray(theta, float))
    V = ZL @ ZL.T + np.diag(1.0 / w)
    Vi_X = np.linalg.solve(V, X)
    yc = y - off
    XtViX = X.T @ Vi_X
    beta = np.linalg.solve(XtViX, Vi_X.T @ yc)
    r = yc - X @ beta
    rVr = float(r @ np.linalg.solve(V, r))
    ldV = np.linalg.slogdet(V)[1]
    if reml:
        return ldV + np.linalg.slogdet(XtViX)[1] + (n - p) * (1 + LOG2PI + np.log(rVr / (n - p)))
    return ldV + n * (1 + LOG2PI + np.log(rVr / n))


DENSE_MODELS = {
    # id: (dataset, dense key, formula, theta values to try)
    "sleepstudy_int": ("sleepstudy", "int", "Reaction ~ Days + (1 | Subject)",
                       [[1.0], [0.25], [1.19788], [0.0], [3.5]]),
    "sleepstudy_slope": ("sleepstudy", "slope", "Reaction ~ Days + (Days | Subject)",
                         [[1.0, 0.0, 1.0], [0.9667, 0.0152, 0.2309], [0.5, -0.3, 0.1],
                          [2.0, 0.7, 0.0], [0.0, 0.4, 0.3]]),
    "sleepstudy_uncorr": ("sleepstudy", "uncorr", "Reaction ~ Days + (Days || Subject)",
                          [[1.0, 1.0], [0.9458, 0.2269], [0.0, 0.5], [1.5, 0.0]]),
    "penicillin": ("Penicillin", None, "diameter ~ 1 + (1 | plate) + (1 | sample)",
                   [[1.0, 1.0], [1.5376, 3.2198], [0.3, 7.0], [0.0, 2.0]]),
    "pastes": ("Pastes", None, "strength ~ 1 + (1 | batch/cask)",
               [[1.0, 1.0], [3.5269, 1.5635], [0.2, 4.0], [3.0, 0.0]]),
    "dyestuff": ("Dyestuff", None, "Yield ~ 1 + (1 | Batch)", [[1.0], [0.7526], [0.0]]),
}

DENSE_PARAMS = [
    pytest.param(key, reml, i, id=f"{key}-{'REML' if reml else 'ML'}-theta{i}")
    for key, (_, _, _, thetas) in DENSE_MODELS.items()
    for reml in (False, True)
    for i in range(len(thetas))
]


def test_dense_helpers_agree():
    """The two dense formulas (PLS and marginal) agree: a check on the test's own code."""
    y, X, Zs = dense_problem("sleepstudy", "slope")
    rng = np.random.default_rng(1)
    w = rng.uniform(0.3, 3.0, len(y))
    off = rng.normal(0, 10, len(y))
    for theta in ([1.0, 0.0, 1.0], [0.5, -0.3, 0.1], [0.0, 0.4, 0.3]):
        for reml in (False, True):
            a = dense_pls_objective(y, X, Zs, theta, reml, w, off)
            b = dense_marginal_objective(y, X, Zs, theta, reml, w, off)
            assert a == pytest.approx(b, rel=1e-11)


@pytest.mark.parametrize("key,reml,i", DENSE_PARAMS)
def test_objective_matches_dense(key, reml, i):
    dataset, dkey, formula, thetas = DENSE_MODELS[key]
    theta = np.array(thetas[i], dtype=float)
    y, X, Zs = dense_problem(dataset, dkey)
    want = dense_pls_objective(y, X, Zs, theta, reml)
    mod = _model(dataset, formula, reml)
    got = mod.objective(theta)
    assert abs(got - want) <= OBJ_RTOL_DENSE * abs(want), (got, want)
    # the objective does not depend on earlier evaluations (the factor is updated in place)
    mod.objective(np.array(thetas[0], dtype=float) * 1.7)
    assert mod.objective(theta) == pytest.approx(got, rel=1e-13)


# --------------------------------------------------------------------------- weights and offsets
def _weights_and_offset(n, seed=20240611):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 5.0, n), rng.normal(0.0, 20.0, n)


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("what", ["weights", "offset", "both"])
@pytest.mark.parametrize("theta", [[1.0, 0.0, 1.0], [0.9, 0.05, 0.25], [0.4, -0.6, 0.0]])
def test_weighted_offset_objective_matches_dense(reml, what, theta):
    y, X, Zs = dense_problem("sleepstudy", "slope")
    w, off = _weights_and_offset(len(y))
    kw = {}
    if what in ("weights", "both"):
        kw["weights"] = w
    if what in ("offset", "both"):
        kw["offset"] = off
    theta = np.array(theta)
    want = dense_pls_objective(y, X, Zs, theta, reml, kw.get("weights"), kw.get("offset"))
    check = dense_marginal_objective(y, X, Zs, theta, reml, kw.get("weights"), kw.get("offset"))
    assert want == pytest.approx(check, rel=1e-11)
    mod = _model("sleepstudy", "Reaction ~ Days + (Days | Subject)", reml, **kw)
    got = mod.objective(theta)
    assert abs(got - want) <= OBJ_RTOL_DENSE * abs(want), (got, want)


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
def test_weighted_crossed_objective_matches_dense(reml):
    y, X, Zs = dense_problem("Penicillin", None)
    w, _ = _weights_and_offset(len(y), seed=7)
    for theta in ([1.0, 1.0], [1.5, 3.2], [0.0, 0.8]):
        want = dense_pls_objective(y, X, Zs, theta, reml, w)
        got = _model("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", reml,
                     weights=w).objective(np.array(theta))
        assert abs(got - want) <= OBJ_RTOL_DENSE * abs(want), (theta, got, want)


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
def test_unit_weights_change_nothing(reml):
    formula = "Reaction ~ Days + (Days | Subject)"
    plain = _model("sleepstudy", formula, reml)
    ones = _model("sleepstudy", formula, reml, weights=np.ones(180))
    for theta in ([1.0, 0.0, 1.0], [0.9, 0.05, 0.25], [0.0, 0.3, 0.2]):
        theta = np.array(theta)
        assert ones.objective(theta) == pytest.approx(plain.objective(theta), rel=1e-13)
    data = load_data("sleepstudy")
    a = glamm.lmer(formula, data, reml=reml)
    b = glamm.lmer(formula, data, reml=reml, weights=np.ones(len(data)))
    assert b.loglik == pytest.approx(a.loglik, rel=1e-12)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.fixef.to_numpy(), a.fixef.to_numpy(), rtol=1e-10)
    assert b.sigma == pytest.approx(a.sigma, rel=1e-10)


def test_weights_column_name_equals_array():
    data = load_data("sleepstudy")
    w, _ = _weights_and_offset(len(data), seed=3)
    data["wt"] = w
    formula = "Reaction ~ Days + (Days | Subject)"
    a = LinearMixedModel(build_model_frame(formula, data, weights="wt"))
    b = LinearMixedModel(build_model_frame(formula, data, weights=w))
    theta = np.array([0.8, 0.1, 0.3])
    assert a.objective(theta) == pytest.approx(b.objective(theta), rel=1e-14)


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
def test_offset_equals_shifted_response(reml):
    """An offset ``o`` gives the objective of the response ``y - o`` without an offset."""
    data = load_data("sleepstudy")
    _, off = _weights_and_offset(len(data), seed=11)
    shifted = data.assign(Reaction=data["Reaction"] - off)
    formula = "Reaction ~ Days + (Days | Subject)"
    a = LinearMixedModel(build_model_frame(formula, data, offset=off), reml)
    b = LinearMixedModel(build_model_frame(formula, shifted), reml)
    for theta in ([1.0, 0.0, 1.0], [0.3, -0.2, 0.5]):
        theta = np.array(theta)
        assert a.objective(theta) == pytest.approx(b.objective(theta), rel=1e-12)


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
def test_fit_reports_objective_at_its_theta(reml, fit):
    m = fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", reml)
    mod = _model("sleepstudy", "Reaction ~ Days + (Days | Subject)", reml)
    val = mod.objective(m.theta)
    assert -2.0 * m.loglik == pytest.approx(val, rel=1e-12)
    assert m.optsum.fmin == pytest.approx(val, rel=1e-12)
    assert m.deviance == pytest.approx(mod.objective_from_factor(reml=False), rel=1e-12)

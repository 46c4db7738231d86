"""Record every number a battery of fits produces, and compare two records.

A refactoring that must not change results (the "same numbers" rule) is checked by recording
a snapshot before and after it::

    .venv/bin/python benchmarks/snapshot.py record before.json
    # ... change the code ...
    .venv/bin/python benchmarks/snapshot.py record after.json
    .venv/bin/python benchmarks/snapshot.py compare before.json after.json

``compare`` prints the largest relative difference per model and quantity and exits 1 when a
log-likelihood moved by more than 1e-10 (relative) or another number by more than 1e-6.

The battery covers LMMs (ML, REML, weights, ``||``, nested, crossed), GLMMs by Laplace
(binomial, Poisson, negative binomial, Gamma, Gaussian, probit), adaptive quadrature (scalar
and vector random effects) and smooths (LMM and GLMM). It is a development tool, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

import glamm

# name -> (kind, dataset, formula, keyword arguments)
BATTERY: dict[str, tuple[str, str, str, dict]] = {
    "dyestuff_ml": ("lmer", "Dyestuff", "Yield ~ 1 + (1 | Batch)", {"reml": False}),
    "dyestuff2_reml": ("lmer", "Dyestuff2", "Yield ~ 1 + (1 | Batch)", {}),
    "sleep_slope_ml": ("lmer", "sleepstudy", "Reaction ~ Days + (Days | Subject)",
                       {"reml": False}),
    "sleep_slope_reml": ("lmer", "sleepstudy", "Reaction ~ Days + (Days | Subject)", {}),
    "sleep_uncorr": ("lmer", "sleepstudy", "Reaction ~ Days + (Days || Subject)",
                     {"reml": False}),
    "sleep_weights": ("lmer", "sleepstudy", "Reaction ~ Days + (Days | Subject)",
                      {"weights": "w"}),
    "penicillin": ("lmer", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)",
                   {"reml": False}),
    "pastes": ("lmer", "Pastes", "strength ~ 1 + (1 | batch/cask)", {}),
    "insteval": ("lmer", "InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
                 {"reml": False}),
    "gamm_lmm_reml": ("lmer", "gamm4_sim1", "y ~ s(x0) + x1 + s(x2) + (1 | fac)", {}),
    "gamm_lmm_ml": ("lmer", "gamm4_sim1", "y ~ s(x0) + x1 + s(x2) + (1 | fac)", {"reml": False}),
    "cbpp": ("glmer", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
             {"family": "binomial"}),
    "cbpp_weights": ("glmer", "cbpp", "prop ~ period + (1 | herd)",
                     {"family": "binomial", "weights": "size"}),
    "simbin_int": ("glmer", "sim_binary_longitudinal", "y ~ sex * time + (1 | id)",
                   {"family": "binomial"}),
    "simbin_slope": ("glmer", "sim_binary_longitudinal", "y ~ sex * time + (time | id)",
                     {"family": "binomial"}),
    "simbin_probit": ("glmer", "sim_binary_longitudinal", "y ~ sex * time + (1 | id)",
                      {"family": "binomial", "link": "probit"}),
    "simpois": ("glmer", "sim_poisson_longitudinal", "y ~ sex * time + (1 | id)",
                {"family": "poisson"}),
    "simpois_offset": ("glmer", "sim_poisson_longitudinal",
                       "y ~ sex * time + offset(0.1 * time) + (1 | id)", {"family": "poisson"}),
    "verbagg": ("glmer", "VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                {"family": "binomial"}),
    "cbpp_nb": ("glmer", "cbpp", "incidence ~ period + offset(np.log(size)) + (1 | herd)",
                {"family": "negative_binomial"}),
    "sleep_gamma": ("glmer", "sleepstudy", "Reaction ~ Days + (1 | Subject)",
                    {"family": "Gamma", "link": "log"}),
    "sleep_gaussian": ("glmer", "sleepstudy", "Reaction ~ Days + (Days | Subject)",
                       {"family": "gaussian"}),
    "gamm_binomial": ("glmer", "gamm4_sim1", "yb ~ s(x0) + x1 + (1 | fac)",
                      {"family": "binomial"}),
    "cbpp_agq25": ("glmer", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                   {"family": "binomial", "nagq": 25}),
    "simbin_int_agq11": ("glmer", "sim_binary_longitudinal", "y ~ sex * time + (1 | id)",
                         {"family": "binomial", "nagq": 11}),
    "simbin_slope_agq11": ("glmer", "sim_binary_longitudinal", "y ~ sex * time + (time | id)",
                           {"family": "binomial", "nagq": 11}),
    "simbin_uncorr_agq7": ("glmer", "sim_binary_longitudinal", "y ~ sex * time + (time || id)",
                           {"family": "binomial", "nagq": 7}),
    "simpois_agq11": ("glmer", "sim_poisson_longitudinal", "y ~ sex * time + (1 | id)",
                      {"family": "poisson", "nagq": 11}),
    "glm_cbpp": ("glm", "cbpp", "cbind(incidence, size - incidence) ~ period",
                 {"family": "binomial"}),
}


def _data(name: str):
    df = glamm.datasets.load(name)
    if name == "sleepstudy":
        df["w"] = 1.0 + (np.arange(len(df)) % 3) / 2.0
    if name == "cbpp":
        df["prop"] = df["incidence"] / df["size"]
    if name == "gamm4_sim1":
        df["yb"] = (df["y"] > df["y"].median()).astype(float)
    return df


def _array(x) -> list:
    return np.asarray(x, dtype=float).ravel().tolist()


def _numbers(m) -> dict:
    out: dict[str, list] = {"loglik": [float(m.loglik)]}
    for name in ("theta", "fixef", "stderr", "sigma", "dispersion", "shape"):
        value = getattr(m, name, None)
        if callable(value) or value is None:
            continue
        try:
            out[name] = _array(value)
        except (TypeError, ValueError):
            pass
    vc = getattr(m, "varcorr", None)
    if vc is not None:
        out["varcorr"] = _array(vc["vcov"])
    ranef = getattr(m, "ranef", None)
    if isinstance(ranef, dict):
        out["ranef"] = [float(v) for df in ranef.values() for v in np.ravel(df.to_numpy())[:50]]
    vcov = getattr(m, "vcov", None)
    if vcov is not None:
        v = vcov() if callable(vcov) else vcov
        out["vcov"] = _array(v)
    return out


def record(path: str, only: list[str] | None) -> None:
    snap = {}
    for name, (kind, dataset, formula, kw) in BATTERY.items():
        if only and name not in only:
            continue
        fit = getattr(glamm, kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                m = fit(formula, _data(dataset), **kw)
                snap[name] = _numbers(m)
            except Exception as exc:  # recorded, so a change in behaviour shows
                snap[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(name, "error" if "error" in snap[name] else f"{snap[name]['loglik'][0]:.10f}")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(snap, fh, indent=1)


def _rel(a: list, b: list) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.shape != y.shape:
        return float("inf")
    both_nan = np.isnan(x) & np.isnan(y)
    d = np.abs(x - y) / np.maximum(np.maximum(np.abs(x), np.abs(y)), 1e-8)
    d[both_nan] = 0.0
    return float(np.max(d)) if d.size else 0.0


def compare(before: str, after: str) -> int:
    a = json.load(open(before, encoding="utf-8"))
    b = json.load(open(after, encoding="utf-8"))
    bad = 0
    for name in a:
        if name not in b:
            print(f"{name:22s} missing in {after}")
            bad += 1
            continue
        if "error" in a[name] or "error" in b[name]:
            same = a[name].get("error") == b[name].get("error")
            print(f"{name:22s} {'same error' if same else 'ERROR CHANGED'}: "
                  f"{a[name].get('error')} -> {b[name].get('error')}")
            bad += not same
            continue
        parts = []
        for key, va in a[name].items():
            if key not in b[name]:
                parts.append(f"{key}: missing")
                bad += 1
                continue
            r = _rel(va, b[name][key])
            limit = 1e-10 if key == "loglik" else 1e-6
            flag = "!" if r > limit else ""
            bad += bool(flag)
            if r > 0:
                parts.append(f"{key} {r:.1e}{flag}")
        print(f"{name:22s} " + (", ".join(parts) or "identical"))
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("path")
    r.add_argument("--only", nargs="*")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = ap.parse_args()
    if args.cmd == "record":
        record(args.path, args.only)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()

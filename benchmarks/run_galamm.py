"""Time glamm.galamm on the galamm reference models and compare with galamm's recorded times.

Usage (from the repository root, after ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/run_galamm.py [--repeat N]

Each model is fitted once untimed (warm-up), then ``--repeat`` times; the table shows the
median wall time of the fit alone and of the fit plus the loadings' standard errors (galamm
always computes its Hessian, so the second is the fair comparison), the log-likelihood, and
the ratio against galamm's median time recorded in the reference file (galamm 0.4.0, R 4.2,
the same 2-core machine).
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_common import parse_args, print_header

import glamm

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"
nan = np.nan


def _reference_data(name: str) -> pd.DataFrame:
    entry = json.loads((REF / "data" / "datasets.json").read_text())[name]
    return glamm.datasets.read_csv(REF / "data" / entry["file"], entry)


def _irtsim_sub300() -> pd.DataFrame:
    d = _reference_data("IRTsim_sub300")
    return d.assign(item=pd.Categorical(d["item"].astype(str)))


def _cognition_d1() -> pd.DataFrame:
    cog = glamm.datasets.load("cognition")
    d = cog[cog["domain"].astype(str) == "1"].copy()
    d["item"] = d["item"].cat.remove_unused_categories()
    return d


# name -> (data loader, formula, keyword arguments, reference case)
BATTERY = {
    "factor_gaussian": (lambda: _reference_data("sim_factor_gaussian"),
                        "y ~ 0 + item + (0 + loading | id)",
                        dict(load_var="item", factor="loading", lambda_=[[1], [nan], [nan]]),
                        "galamm_factor_gaussian"),
    "factor_binomial": (lambda: _reference_data("sim_factor_binomial"),
                        "y ~ 0 + item + (0 + ability | id)",
                        dict(family="binomial", load_var="item", factor="ability",
                             lambda_=[[1], [nan], [nan], [nan], [nan]]),
                        "galamm_factor_binomial"),
    "irtsim_sub300_lmm": (_irtsim_sub300, "y ~ 0 + item + (0 + abil.sid | school/sid)",
                          dict(load_var="item", factor="abil.sid", lambda_=[[1], [nan], [nan]]),
                          "galamm_irtsim_sub300_lmm"),
    "irtsim_binomial": (lambda: glamm.datasets.load("IRTsim"),
                        "y ~ item + (0 + ability | school/sid)",
                        dict(family="binomial", load_var="item", factor="ability",
                             lambda_=[[1], [nan], [nan], [nan], [nan]]),
                        "galamm_irtsim_binomial"),
    "kypssim": (lambda: glamm.datasets.load("KYPSsim"),
                "esteem ~ time + (0 + ms | mid) + (0 + hs | hid) + (1 | sid)",
                dict(load_var="time", factor=["ms", "hs"],
                     lambda_=[[1, 0], [nan, 0], [nan, 1], [nan, nan]]),
                "galamm_kypssim"),
    "cognition_sl": (_cognition_d1,
                     "y ~ 0 + item + sl(x, factor='loading') + (0 + loading | id/timepoint)",
                     dict(load_var="item", factor="loading", lambda_=[[1], [nan], [nan]]),
                     "galamm_cognition_d1_factor_smooth"),
    # issue 11: residual variance per item (no loadings: lmer with dispformula, by ML)
    "hsced_dispformula": (lambda: _reference_data("hsced").assign(
                              item=lambda d: d["item"].astype(str).astype("category")),
                          "y ~ x + (1 | id)", dict(dispformula="~ (1 | item)"),
                          "galamm_hsced"),
    "hetero_dispformula": (lambda: _reference_data("sim_hetero"), "y ~ x + (1 | id)",
                           dict(dispformula="~ (1 | item)"), "galamm_hetero"),
    # mixed response types: a Gaussian and a binary item on one latent variable (galamm's
    # printed log-likelihood is its own approximation, not the marginal likelihood: see
    # tests/test_mixed_response.py)
    "mresp": (lambda: _reference_data("mresp"), "y ~ x + (0 + level | id)",
              dict(family=["gaussian", "binomial"], family_index="family_index",
                   load_var="itemgroup", factor="level", lambda_=[[1], [nan]]),
              "galamm_mresp"),
    "mixed_response": (lambda: _reference_data("sim_mixed_response"), "y ~ x + (0 + level | id)",
                       dict(family=["gaussian", "binomial"], family_index="family_index",
                            load_var="itemgroup", factor="level", lambda_=[[1], [nan]]),
                       "galamm_mixed_response"),
}


def _standard_errors(m):
    """What galamm's fit computes besides the estimates: the loadings' SEs where there are
    loadings (a Hessian), else the fixed effects' (computed with the fit)."""
    return m.loading_stderr if hasattr(m, "loading_stderr") else m.vcov


def main() -> None:
    args = parse_args(__doc__)
    print_header([("model", 20), ("fit s", 8), ("fit+SE s", 9), ("logLik", 16), ("ref logLik", 16),
                  ("galamm s", 9), ("ratio", 7)])
    for name, (load, formula, kw, case) in BATTERY.items():
        if args.only and name not in args.only:
            continue
        data = load()
        ref = json.loads((REF / "ref" / f"{case}.json").read_text())
        fit_times, total_times = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _ = _standard_errors(glamm.galamm(formula, data, **kw))   # warm-up
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                m = glamm.galamm(formula, data, **kw)
                t1 = time.perf_counter()
                _ = _standard_errors(m)
                t2 = time.perf_counter()
                fit_times.append(t1 - t0)
                total_times.append(t2 - t0)
        timing = ref.get("timing")
        base = timing.get("median_elapsed_s") if isinstance(timing, dict) else None
        total = statistics.median(total_times)
        ratio = f"{base / total:6.1f}x" if base else "      -"
        base_s = f"{base:9.3f}" if base else "        -"
        print(f"{name:20s} {statistics.median(fit_times):8.3f} {total:9.3f} {m.loglik:16.6f} "
              f"{ref['logLik']:16.6f} {base_s} {ratio}")


if __name__ == "__main__":
    main()

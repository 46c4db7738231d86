"""Time glamm's structured random-effects terms on the glmmTMB reference models and compare
with glmmTMB's recorded times.

Usage (from the repository root, after ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/run_covstruct.py [--repeat N] [--only NAME ...]

Each model is fitted once untimed (warm-up), then ``--repeat`` times; the table shows the
median wall time of the fit (glmmTMB's recorded time includes its standard errors, which
glamm computes with the fit for LMMs), the log-likelihoods and the ratio against glmmTMB's
median time in the reference file (glmmTMB 1.1.5, R 4.2, the same 2-core machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from bench_common import parse_args, print_header, timed

import glamm

ROOT = Path(__file__).resolve().parents[1]
COV = ROOT / "tests" / "reference" / "covstruct"
REF = ROOT / "tests" / "reference"


def _orthodont() -> pd.DataFrame:
    d = pd.read_csv(REF / "data" / "Orthodont.csv")
    return d.assign(Sex=pd.Categorical(d["Sex"], ["Male", "Female"]),
                    fage=pd.Categorical(d["age"]))


def _machines() -> pd.DataFrame:
    d = pd.read_csv(COV / "Machines.csv")
    return d.assign(Machine=pd.Categorical(d["Machine"]), Worker=d["Worker"].astype(str))


def _sleep() -> pd.DataFrame:
    d = glamm.datasets.load("sleepstudy")
    return d.assign(fDays=pd.Categorical(d["Days"]))


def _spatial() -> pd.DataFrame:
    return pd.read_csv(COV / "sim_spatial.csv")


# name -> (data, formula, keyword arguments, reference file)
BATTERY = {
    "machines_cs": (_machines, "score ~ Machine + cs(0 + Machine | Worker)", {},
                    COV / "cov_machines_cs_tmb.json"),
    "machines_homcs": (_machines, "score ~ Machine + homcs(0 + Machine | Worker)", {},
                       COV / "cov_machines_cs_hom_tmb.json"),
    "orthodont_diag": (_orthodont, "distance ~ age * Sex + diag(age | Subject)", {},
                       COV / "cov_orthodont_diag_tmb.json"),
    "orthodont_us_nores": (_orthodont, "distance ~ age * Sex + us(0 + fage | Subject)",
                           {"reml": False, "dispformula": "~ 0"},
                           COV / "cov_orthodont_us_tmb.json"),
    "sleepstudy_ar1": (_sleep, "Reaction ~ Days + ar1(0 + fDays | Subject)", {"reml": False},
                       REF / "ref" / "tmb_sleepstudy_ar1_start.json"),
    "sleepstudy_rr1": (_sleep, "Reaction ~ Days + rr(0 + fDays | Subject, d=1)",
                       {"reml": False}, COV / "cov_sleepstudy_rr1_tmb.json"),
    "spatial_exp": (_spatial, "resp ~ z + exp(0 + coords(x, y) | group)", {"reml": False},
                    COV / "cov_spatial_exp_tmb.json"),
}


def main() -> None:
    args = parse_args(__doc__)
    print_header([("model", 20), ("fit s", 8), ("logLik", 16), ("ref logLik", 16),
                  ("glmmTMB s", 10), ("ratio", 7)])
    for name, (load, formula, kw, path) in BATTERY.items():
        if args.only and name not in args.only:
            continue
        data = load()
        ref = json.loads(path.read_text())
        t, m = timed(glamm.lmer, args.repeat, formula, data, **kw)
        base = ref["timing"]["median_elapsed_s"]
        print(f"{name:20s} {t:8.3f} {m.loglik:16.6f} {ref['logLik']:16.6f} {base:10.3f} "
              f"{base / t:6.1f}x")


if __name__ == "__main__":
    main()

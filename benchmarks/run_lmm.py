"""Time glamm on the reference LMM, GLMM and GAMM battery and print a table.

Usage (from the repository root, after ``make demo`` or ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/run_lmm.py [--repeat N] [--only NAME ...] [--with-r]

Each model is fitted once untimed (warm-up), then ``--repeat`` times; the table shows the
median wall time of the whole ``glamm.lmer`` call (formula to fitted result), the number of
objective evaluations and the log-likelihood. ``--with-r`` also times lme4 on the same machine
in the same session (needs ``Rscript`` with lme4; never needed by the tests) and prints the
ratio lme4 / glamm; without it the ratio uses the lme4 times recorded in the reference files
(2-core machine, R 4.2, lme4 1.1-31).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from bench_common import timed

import glamm

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference" / "ref"

# name -> (dataset, formula, REML flag (LMM) or family (GLMM), reference case)
BATTERY: dict[str, tuple[str, str, bool, str]] = {
    "dyestuff_ml": ("Dyestuff", "Yield ~ 1 + (1 | Batch)", False, "lmer_dyestuff_ml"),
    "sleepstudy_slope_ml": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", False,
                            "lmer_sleepstudy_slope_ml"),
    "sleepstudy_slope_reml": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True,
                              "lmer_sleepstudy_slope_reml"),
    "sleepstudy_uncorr_ml": ("sleepstudy", "Reaction ~ Days + (Days || Subject)", False,
                             "lmer_sleepstudy_uncorr_ml"),
    "penicillin_ml": ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", False,
                      "lmer_penicillin_ml"),
    "pastes_nested_reml": ("Pastes", "strength ~ 1 + (1 | batch/cask)", True,
                           "lmer_pastes_nested_reml"),
    "insteval_ml": ("InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", False,
                    "lmer_insteval_ml"),
    # GLMMs by Laplace: the third field is the family
    "cbpp_binomial": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                      "binomial", "glmer_cbpp_laplace"),
    "simbin_int": ("sim_binary_longitudinal", "y ~ sex * time + (1 | id)", "binomial",
                   "glmer_simbin_int_laplace"),
    "simbin_slope": ("sim_binary_longitudinal", "y ~ sex * time + (time | id)", "binomial",
                     "glmer_simbin_slope_laplace"),
    "simpois_int": ("sim_poisson_longitudinal", "y ~ sex * time + (1 | id)", "poisson",
                    "glmer_simpois_int_laplace"),
    "verbagg_binomial": ("VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                         "binomial", "glmer_verbagg_laplace"),
    # adaptive quadrature: "family:nagq"; the baseline is GLMMadaptive's or lme4's recorded time
    "cbpp_agq25": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                   "binomial:25", "glmer_cbpp_agq25"),
    "simbin_int_agq11": ("sim_binary_longitudinal", "y ~ sex * time + (1 | id)", "binomial:11",
                         "glmer_simbin_int_agq11"),
    "simbin_slope_agq11": ("sim_binary_longitudinal", "y ~ sex * time + (time | id)",
                           "binomial:11", "gla_simbin_slope_agq11"),
    # smooth terms (GAMMs); the baseline is gamm4's (recorded, or run with --with-r)
    "gamm4_sim1_reml": ("gamm4_sim1", "y ~ s(x0) + x1 + s(x2) + (1 | fac)", True,
                        "gamm4_sim1_reml"),
    "gamm4_sim1_ml": ("gamm4_sim1", "y ~ s(x0) + x1 + s(x2) + (1 | fac)", False,
                      "gamm4_sim1_ml"),
}

R_TEMPLATE = """
suppressMessages(library(lme4))
d <- read.csv("{csv}", stringsAsFactors = TRUE)
{factors}
invisible({call})
times <- numeric({repeat})
for (i in seq_len({repeat})) {{ gc(); times[i] <- system.time({call})[["elapsed"]] }}
cat(median(times), "\\n")
"""


def _fit(formula: str, df, how):
    """``how`` is the REML flag of an LMM or the family name of a GLMM. A GLMM's time includes
    its standard errors (computed on first use)."""
    if isinstance(how, str):
        family, _, nagq = how.partition(":")
        m = glamm.glmer(formula, df, family=family, nagq=int(nagq or 1))
        _ = m.stderr  # computed on first use; timed with the fit
        return m
    return glamm.lmer(formula, df, reml=how)


def time_glamm(dataset: str, formula: str, how, repeat: int) -> tuple[float, object]:
    df = glamm.datasets.load(dataset)
    return timed(_fit, repeat, formula, df, how)


def time_lme4(dataset: str, formula: str, how, repeat: int) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    df = glamm.datasets.load(dataset)
    meta = glamm.datasets.describe(dataset)
    factors = "\n".join(
        f'd${c["name"]} <- factor(d${c["name"]}, levels = {_r_vec(c["levels"])})'
        for c in meta["columns"] if c["type"] in ("factor", "ordered")
    )
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "d.csv"
        df.to_csv(csv, index=False)
        script = Path(tmp) / "fit.R"
        call = None
        if isinstance(how, str) and ":" in how:
            from glamm.formula.bars import parse_formula

            family, _, nagq = how.partition(":")
            if any(spec.expr != "1" for spec in parse_formula(formula).random):
                return None  # lme4 has no quadrature for vector random effects
            call = f"glmer({formula}, data = d, family = {family}, nAGQ = {nagq})"
        if "s(" in formula:   # a GAMM: gamm4, with the bars as its random= argument
            from glamm.formula.bars import parse_formula

            pf = parse_formula(formula)
            rand = " + ".join(f"({spec.expr} | {spec.group})" for spec in pf.random)
            call = (f"gamm4({pf.response} ~ {pf.fixed_rhs}, data = d, random = ~{rand}, "
                    f"REML = {'TRUE' if how else 'FALSE'})")
            factors = "suppressMessages(library(gamm4))\n" + factors
        call = call or (f"glmer({formula}, data = d, family = {how})" if isinstance(how, str)
                else f"lmer({formula}, data = d, REML = {'TRUE' if how else 'FALSE'})")
        script.write_text(R_TEMPLATE.format(csv=csv, factors=factors, call=call, repeat=repeat))
        out = subprocess.run(["Rscript", str(script)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  (lme4 run failed: {out.stderr.strip()[-200:]})")
        return None
    return float(out.stdout.split()[-1])


def _r_vec(levels: list[str]) -> str:
    return "c(" + ", ".join(json.dumps(str(v)) for v in levels) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--with-r", action="store_true")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"{_ncores()} cores, Python {platform.python_version()}, numpy {np.__version__}")
    header = (
        f"{'model':24s} {'glamm s':>9s} {'feval':>6s} {'logLik':>16s} "
        f"{'lme4 s':>8s} {'lme4/glamm':>11s}"
    )
    print(header)
    print("-" * len(header))
    for name, (dataset, formula, how, case) in BATTERY.items():
        if args.only and name not in args.only:
            continue
        secs, m = time_glamm(dataset, formula, how, args.repeat)
        ref = json.loads((REF / f"{case}.json").read_text())
        if args.with_r:
            base = time_lme4(dataset, formula, how, max(1, min(args.repeat, 3)))
        else:
            base = ref["timing"]["median_elapsed_s"]
        ratio = f"{base / secs:10.1f}x" if base else "         -"
        base_s = f"{base:8.3f}" if base else "       -"
        print(f"{name:24s} {secs:9.4f} {m.optsum.feval:6d} {m.loglik:16.6f} {base_s} {ratio}")
    source = "measured in this session" if args.with_r else "recorded in the reference files"
    print(f"lme4 times: {source}")


def _ncores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()

"""Time ``glamm.clmm`` on ordinal's reference fits and compare with ordinal's recorded times.

Usage (from the repository root, after ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/run_clmm.py [--repeat N] [--only NAME ...]

Each model is fitted once untimed (warm-up), then ``--repeat`` times; the table shows the
median wall time of the whole ``glamm.clmm`` call (formula and data frame to fitted result,
standard errors not computed: ordinal computes its Hessian with the fit, so a second column
adds the first ``stderr``), the log-likelihoods and ordinal's median time in the reference file
(ordinal 2022.11.16, R 4.2.2, the same 2-core machine) over glamm's. ``--with-r`` times
ordinal's ``clmm`` in this session instead (``Rscript`` with ordinal, e.g. Debian's
``r-cran-ordinal``; never needed by the tests): one untimed fit, then the median of
``--repeat`` fits.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path

import pandas as pd
from bench_common import parse_args, print_header, r_seconds

import glamm

ROOT = Path(__file__).resolve().parents[1]
CLMM = ROOT / "tests" / "reference" / "clmm_extra"


def _wine() -> pd.DataFrame:
    d = pd.read_csv(CLMM / "wine.csv")
    d["rating"] = pd.Categorical(d["rating"].astype(str), categories=list("12345"),
                                 ordered=True)
    return d.assign(judge=d["judge"].astype(str))


REF = json.loads((CLMM / "fam_wine_clmm.json").read_text())
FORMULA = "rating ~ temp + contact + (1 | judge)"

# name -> (data, formula, keyword arguments, reference logLik, reference time (s))
BATTERY = {
    "wine_laplace": (_wine, FORMULA, {}, REF["logLik"], REF["timing"]["median_elapsed_s"]),
    "wine_agq10": (_wine, FORMULA, {"nagq": 10}, REF["crosscheck"]["clmm_agq10"]["logLik"],
                   None),
}


R_TEMPLATE = """
suppressMessages(library(ordinal))
d <- read.csv("{csv}")
d$rating <- factor(d$rating, levels = 1:5, ordered = TRUE)
d$temp <- factor(d$temp, levels = c("cold", "warm"))
d$contact <- factor(d$contact, levels = c("no", "yes"))
d$judge <- factor(d$judge)
fit <- function() clmm({formula}, data = d{agq})
invisible(fit())
times <- numeric({repeat})
for (i in seq_len({repeat})) {{ gc(); times[i] <- system.time(fit())[["elapsed"]] }}
cat(median(times), "\\n")
"""


def time_ordinal(formula: str, kw: dict, repeat: int) -> float | None:
    """ordinal's median ``clmm`` time on the wine data in this session (``None`` without
    ``Rscript`` or ordinal)."""
    agq = f", nAGQ = {kw['nagq']}" if "nagq" in kw else ""
    return r_seconds(R_TEMPLATE.format(csv=CLMM / "wine.csv", formula=formula, agq=agq,
                                       repeat=repeat), "ordinal")


def main() -> None:
    args = parse_args(__doc__, with_r="time ordinal in this session")
    print_header([("model", 14), ("fit s", 8), ("+SE s", 8), ("logLik", 14),
                  ("ref logLik", 14), ("ordinal s", 10), ("ratio", 7)])
    for name, (load, formula, kw, ll_ref, base) in BATTERY.items():
        if args.only and name not in args.only:
            continue
        data = load()
        times, with_se = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            glamm.clmm(formula, data, **kw)   # warm-up
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                m = glamm.clmm(formula, data, **kw)
                times.append(time.perf_counter() - t0)
                _ = m.stderr
                with_se.append(time.perf_counter() - t0)
        t = statistics.median(times)
        ts = statistics.median(with_se)
        if args.with_r:
            base = time_ordinal(formula, kw, args.repeat) or base
        ratio = f"{base / ts:6.2f}x" if base else "     -"
        base_s = f"{base:10.3f}" if base else f"{'-':>10s}"
        print(f"{name:14s} {t:8.3f} {ts:8.3f} {m.loglik:14.6f} {ll_ref:14.6f} {base_s} {ratio}")
    print("ordinal times: " + ("measured in this session" if args.with_r
                               else "recorded in the reference file"))


if __name__ == "__main__":
    main()

"""Time glamm.gls on the nlme reference models and print a table against nlme's times.

Usage (from the repository root, after ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/run_gls.py [--repeat N] [--only NAME ...]

Each model is fitted once untimed (warm-up), then ``--repeat`` times; the table shows the
median wall time of the whole ``glamm.gls`` call (formula to fitted result, without the
lazily computed standard errors of the correlation parameters), nlme's time recorded in the
reference (``timing.median_elapsed_s``; 2-core machine, R 4.2, nlme 3.1-162; nlme's time
includes its ``apVar``), the ratio nlme / glamm (above 1: glamm is faster) and the difference
in log-likelihood.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import load_data, load_reference  # noqa: E402

import glamm  # noqa: E402

#: name -> (dataset, formula, correlation, reml, reference case) for tests/reference/ref
PUBLIC = {
    "spatial_exp_nugget_ml": ("sim_spatial", "resp ~ z", "exp(x + y, nugget=True)", False,
                              "cov_spatial_gls_exp_nugget"),
    "orthodont_cs_reml": ("Orthodont", "distance ~ age * Sex", "cs(1 | Subject)", True,
                          "cov_orthodont_gls_cs"),
    "sleepstudy_ar1_ml": ("sleepstudy", "Reaction ~ Days", "ar1(Days | Subject)", False,
                          "nlme_sleepstudy_gls_ar1"),
    "sleepstudy_exp_nugget_ml": ("sleepstudy", "Reaction ~ Days",
                                 "exp(Days | Subject, nugget=True)", False,
                                 "nlme_sleepstudy_gls_exp_nugget"),
}


def cases() -> dict[str, tuple]:
    """Every timed model: ``(data, formula, correlation, dispformula, reml, nlme logLik,
    nlme seconds)``."""
    out = {}
    for name, (ds, f, c, reml, case) in PUBLIC.items():
        ref = load_reference(case)
        out[name] = (load_data(ds), f, c, None, reml, ref["logLik"],
                     ref["timing"]["median_elapsed_s"])
    from test_gls import _extra, extra_data  # the gls_extra references and their data

    for name, ref in _extra().items():
        if name == "spher_ml":   # nlme stopped at its start; spher_ml_start is the model
            continue
        g = ref["glamm"]
        out[name] = (extra_data(ref["data"]), g["formula"], g["correlation"],
                     g.get("dispformula"), g["reml"], ref["logLik"],
                     ref["timing"]["median_elapsed_s"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    rows = []
    for name, (d, f, c, disp, reml, ll, t_nlme) in cases().items():
        if args.only and name not in args.only:
            continue
        m = glamm.gls(f, d, correlation=c, dispformula=disp, reml=reml)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            glamm.gls(f, d, correlation=c, dispformula=disp, reml=reml)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        rows.append((name, m.nobs, t, t_nlme, t_nlme / t, m.loglik - ll, m.optsum.feval))
    print(f"{'model':28s} {'n':>4s} {'glamm s':>8s} {'nlme s':>8s} {'nlme/glamm':>10s} "
          f"{'dlogLik':>9s} {'feval':>5s}")
    for name, n, t, tn, ratio, dll, fev in rows:
        print(f"{name:28s} {n:4d} {t:8.4f} {tn:8.4f} {ratio:10.2f} {dll:9.1e} {fev:5d}")
    print(json.dumps({"median_ratio": statistics.median(r[4] for r in rows)}))


if __name__ == "__main__":
    main()

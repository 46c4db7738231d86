"""Time glamm's parametric bootstrap (issue 14's target: 1000 replicates of
``Reaction ~ Days + (Days | Subject)`` in under 2 s on the project's 2-core machine) and, with
``--with-r``, lme4's ``bootMer`` on the same model in this session (``Rscript`` with lme4;
never needed by the tests).

Usage (from the repository root, after ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/run_bootstrap.py [--repeat N] [--with-r]

Each configuration runs once untimed (warm-up: the compiled kernels, the process pool), then
``--repeat`` times; the table shows the median wall time, the time per replicate and the
replicates' mean estimates (the same seed each time: the numbers do not depend on the
number of processes).
"""

from __future__ import annotations

from bench_common import parse_args, print_header, r_seconds, timed

import glamm

N = 1000
FORMULA = "Reaction ~ Days + (Days | Subject)"

R_SCRIPT = """
suppressMessages(library(lme4))
fm <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
fe <- function(m) c(fixef(m), sigma = sigma(m))
invisible(bootMer(fm, fe, nsim = 20, seed = 1))
t0 <- proc.time()[["elapsed"]]
b <- bootMer(fm, fe, nsim = {n}, seed = 1)
cat(proc.time()[["elapsed"]] - t0, "\\n")
"""


def main() -> None:
    args = parse_args(__doc__, with_r="also time lme4's bootMer in this session")
    d = glamm.datasets.load("sleepstudy")
    m = glamm.lmer(FORMULA, d, reml=False)
    print_header([("configuration", 26), ("s", 8), ("ms/rep", 8), ("mean Days", 10),
                  ("mean sigma", 11)])
    for n_jobs in (1, 2):
        m.bootstrap(50, seed=1, n_jobs=n_jobs, progress=False)
        sec, boot = timed(m.bootstrap, args.repeat, N, seed=1, n_jobs=n_jobs, progress=False)
        reps = boot.replicates
        print(f"{f'glamm, n_jobs={n_jobs}':26s} {sec:8.3f} {1000 * sec / N:8.2f} "
              f"{reps['Days'].mean():10.4f} {reps['.sigma'].mean():11.4f}")
    if args.with_r:
        sec_r = r_seconds(R_SCRIPT.replace("{n}", str(N)), "lme4 bootMer")
        if sec_r is not None:
            print(f"{'lme4 bootMer (this session)':26s} {sec_r:8.3f} {1000 * sec_r / N:8.2f}")


if __name__ == "__main__":
    main()

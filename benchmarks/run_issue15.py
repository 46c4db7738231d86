"""Issue 15's table: glamm against the Python peers with Rust cores (``glmm``, ``mixedlm``) on
the issue's models, every package in a fresh process, the minimum of ``--repeat`` fits after
a warm-up fit of the same model, with the process's peak resident memory.

The peak memory is the process's high-water mark after the warm-up (a small model of the
same form) and the first timed fit, data included.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run_issue15.py [--peer-python /path/to/venv/bin/python]
        [--models slope200k poisson200k ...] [--repeat 2] [--out issue15.csv]

The peers are not glamm's dependencies: install ``glmm`` and ``mixedlm`` in another
environment and pass its interpreter. Models (the issue's data: ``numpy`` seed 7, group
labels drawn uniformly, ``y = 1 + 0.5 x + b1[g1] (+ c1[g1] x) + b2[g2] + e`` with SDs 1,
0.5, 0.7 and 1; the Poisson one ``eta = 0.5 + 0.3 x + N(0, 0.5)[g1] + N(0, 0.3)[g2]``):

- ``insteval``: InstEval ML, ``y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)``;
- ``slope200k``: 200k rows, ``y ~ x + (1 + x | g1) + (1 | g2)``, 5000 x 500 levels, ML;
- ``poisson200k``: 200k rows Poisson GLMM ``y ~ x + (1 | g1) + (1 | g2)`` (Laplace);
- ``crossed1m``: 1M rows, ``y ~ x + (1 | g1) + (1 | g2)``, 100k x 2000 levels, ML;
- ``verbagg``: VerbAgg binomial GLMM, ``r2 ~ Anger + Gender + btype + situ + (1 | id) +
  (1 | item)`` (Laplace);
- ``agq_slope``: the binary random-slope model, ``y ~ sex * time + (time | id)`` on
  ``sim_binary_longitudinal``, 11-point adaptive quadrature (mixedlm: not available);
- ``sleepstudy_refit``: ``Reaction ~ Days + (Days | Subject)`` ML; glamm's time is
  ``m.refit(y)`` with a new response (the warm refit), the peers' a whole fit.

glamm's GLMM times include the standard errors (computed on first use); ``glmm`` computes
its own during the fit. ``glmm``'s LMM fits run with ``satterthwaite=False`` (glamm computes
no degrees of freedom unless asked).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
model, package, repeat, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def synthetic(n, m1, m2, kind):
    rng = np.random.default_rng(7)
    g1 = rng.integers(0, m1, n); g2 = rng.integers(0, m2, n)
    x = rng.normal(size=n)
    if kind == "poisson":
        eta = 0.5 + 0.3 * x + rng.normal(0, 0.5, m1)[g1] + rng.normal(0, 0.3, m2)[g2]
        y = rng.poisson(np.exp(eta)).astype(float)
    else:
        y = (1 + 0.5 * x + rng.normal(0, 1, m1)[g1] + rng.normal(0, 0.7, m2)[g2]
             + rng.normal(size=n))
        if kind == "slope":
            y += rng.normal(0, 0.5, m1)[g1] * x
    return pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1.astype(str)),
                         "g2": pd.Categorical(g2.astype(str))})


def dataset(name):
    return pd.read_pickle(f"{root}/{name}.pkl")   # written by the parent from glamm.datasets


SPEC = {
    "insteval": ("InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
                 "gaussian", 1),
    "slope200k": ((200_000, 5000, 500, "slope"), "y ~ x + (1 + x | g1) + (1 | g2)",
                  "gaussian", 1),
    "poisson200k": ((200_000, 5000, 500, "poisson"), "y ~ x + (1 | g1) + (1 | g2)",
                    "poisson", 1),
    "crossed1m": ((1_000_000, 100_000, 2000, "crossed"), "y ~ x + (1 | g1) + (1 | g2)",
                  "gaussian", 1),
    "verbagg": ("VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                "binomial", 1),
    "agq_slope": ("sim_binary_longitudinal", "y ~ sex * time + (time | id)", "binomial", 11),
    "sleepstudy_refit": ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian", 1),
}
source, formula, family, nagq = SPEC[model]
d = synthetic(*source) if isinstance(source, tuple) else dataset(source)
# the warm-up (imports, compiled kernels) on a small model of the same form
warm = synthetic(3000, 150, 30, source[3]) if isinstance(source, tuple) else d


def fit(d):
    if package == "glamm":
        import glamm
        if family == "gaussian":
            return glamm.lmer(formula, d, reml=False)
        m = glamm.glmer(formula, d, family=family, nAGQ=nagq)
        m.stderr   # the standard errors, as the peers compute theirs
        return m
    if package == "glmm":
        import glmm
        resp = formula.split("~")[0].strip()
        if d[resp].dtype.name == "category":   # a factor response: its first level is 0
            d = d.assign(**{resp: d[resp].cat.codes.astype(float)})
        if family == "gaussian":
            return glmm.fit(d, formula, family="gaussian", reml=False, satterthwaite=False)
        return glmm.fit(d, formula, family=family, nagq=nagq)
    import mixedlm
    if family == "gaussian":
        return mixedlm.lmer(formula, d, REML=False)
    if nagq > 1:
        raise SystemExit(json.dumps({"error": "no adaptive quadrature for this model"}))
    fam = mixedlm.families.Binomial() if family == "binomial" else mixedlm.families.Poisson()
    return mixedlm.glmer(formula, d, family=fam)


def loglik_of(m):
    for name in ("loglik", "log_likelihood", "logLik"):
        v = getattr(m, name, None)
        if v is not None:
            v = v() if callable(v) else v
            return float(getattr(v, "value", v))
    return float("nan")


m = fit(warm)
times = []
if package == "glamm" and model == "sleepstudy_refit":
    rng = np.random.default_rng(1)
    y0 = d["Reaction"].to_numpy()
    for _ in range(max(repeat, 50)):
        y = y0 + rng.normal(0, 5, y0.shape[0])
        t0 = time.perf_counter(); r = m.refit(y); times.append(time.perf_counter() - t0)
    loglik = loglik_of(m)
else:
    del m
    peak = None
    for _ in range(repeat if model != "sleepstudy_refit" else max(repeat, 50)):
        r = None
        t0 = time.perf_counter(); r = fit(d); times.append(time.perf_counter() - t0)
        if peak is None:
            # (the first fit's: later ones add the allocator's fragmentation, not the fit's)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    loglik = loglik_of(r)
if model == "sleepstudy_refit" and package == "glamm":
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"seconds": min(times), "peak_mb": peak, "loglik": loglik}))
"""

MODELS = ["insteval", "slope200k", "poisson200k", "crossed1m", "verbagg", "agq_slope",
          "sleepstudy_refit"]


def run(python: str, model: str, package: str, repeat: int, timeout: float,
        data_dir: str) -> dict:
    try:
        out = subprocess.run([python, "-c", CHILD, model, package, str(repeat), data_dir],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--packages", nargs="+", default=["glamm", "glmm", "mixedlm"])
    ap.add_argument("--peer-python", default=None,
                    help="interpreter with glmm and mixedlm installed (default: skip them)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", default=None, help="also write the rows as CSV")
    args = ap.parse_args()
    import tempfile

    import glamm

    data_dir = tempfile.mkdtemp(prefix="glamm_issue15_")
    for name in ("InstEval", "VerbAgg", "sim_binary_longitudinal", "sleepstudy"):
        glamm.datasets.load(name).to_pickle(f"{data_dir}/{name}.pkl")
    rows = []
    for model in args.models:
        for package in args.packages:
            if package != "glamm" and args.peer_python is None:
                continue
            python = sys.executable if package == "glamm" else args.peer_python
            res = run(python, model, package, args.repeat, args.timeout, data_dir)
            row = {"model": model, "package": package, **res}
            rows.append(row)
            if "error" in res:
                print(f"{model:18s} {package:8s} {res['error']}", flush=True)
            else:
                print(f"{model:18s} {package:8s} {res['seconds']:9.4f} s "
                      f"{res['peak_mb']:7.0f} MB  logLik {res['loglik']:.6f}", flush=True)
    if args.out:
        keys = ["model", "package", "seconds", "peak_mb", "loglik", "error"]
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()

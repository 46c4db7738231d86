"""Scaling study (issue 15, goal 3): fit time and peak memory of crossed models as the data
grow, for glamm and, with ``--peer-python``, the Python peers with Rust cores (``glmm``,
``mixedlm``) installed in another environment (they are not glamm's dependencies).

Usage (from the repository root)::

    .venv/bin/python benchmarks/run_scaling.py [--sizes 100000 300000 1000000]
        [--peer-python /path/to/venv/bin/python] [--timeout 600] [--out scaling.csv]

Models (the issue's data: ``numpy`` seed 7, group labels drawn uniformly):

- ``crossed``: ``y ~ x + (1 | g1) + (1 | g2)``, ``y = 1 + 0.5 x + b1[g1] + b2[g2] + e``;
- ``slope``: ``y ~ x + (1 + x | g1) + (1 | g2)``, plus ``c1[g1] x``;
- ``poisson``: ``y ~ x + (1 | g1) + (1 | g2)``, Poisson with ``eta = 0.5 + 0.3 x + ...``.

``g1`` has ``n / 10`` levels; ``g2`` grows as ``2000 (n / 1e5)^(1/2)`` (2000 at 1e5, 6325 at
1e6, 20000 at 1e7), so the dense block of the second factor grows too. Each fit runs in a
fresh process: the wall time of the fit alone, and the process's peak resident memory
(data included). Rows print as they finish; ``--out`` also writes them as CSV, from which
``docs/make_images.py`` draws the README's log-log plot.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
kind, n, package = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(7)
m1, m2 = max(n // 10, 2), int(round(2000 * (n / 1e5) ** 0.5))
g1 = rng.integers(0, m1, n); g2 = rng.integers(0, m2, n)
x = rng.normal(size=n)
if kind == "poisson":
    eta = 0.5 + 0.3 * x + rng.normal(0, 0.5, m1)[g1] + rng.normal(0, 0.3, m2)[g2]
    y = rng.poisson(np.exp(eta)).astype(float)
else:
    y = 1 + 0.5 * x + rng.normal(0, 1, m1)[g1] + rng.normal(0, 0.7, m2)[g2] + rng.normal(size=n)
    if kind == "slope":
        y += rng.normal(0, 0.5, m1)[g1] * x
d = pd.DataFrame({"y": y, "x": x, "g1": pd.Categorical(g1.astype(str)),
                  "g2": pd.Categorical(g2.astype(str))})
rhs = "x + (1 + x | g1) + (1 | g2)" if kind == "slope" else "x + (1 | g1) + (1 | g2)"


def fit(d):
    if package == "glamm":
        import glamm
        if kind == "poisson":
            return glamm.glmer("y ~ " + rhs, d, family="poisson")
        return glamm.lmer("y ~ " + rhs, d, reml=False)
    if package == "glmm":
        import glmm
        return glmm.fit(d, "y ~ " + rhs, family="poisson" if kind == "poisson" else "gaussian",
                        reml=False if kind != "poisson" else None)
    import mixedlm
    if kind == "poisson":
        return mixedlm.glmer("y ~ " + rhs, d, family=mixedlm.families.Poisson()
                             if hasattr(mixedlm, "families") else "poisson")
    return mixedlm.lmer("y ~ " + rhs, d, REML=False)


# (a warm-up fit on a small model of the same form first: imports and compiled kernels are
# not the fit; 150 x 30 levels, so that every level has several rows)
r2 = np.random.default_rng(1)
w1, w2 = r2.integers(0, 150, 3000), r2.integers(0, 30, 3000)
xw = r2.normal(size=3000)
small = pd.DataFrame({"y": r2.poisson(np.exp(0.5 + 0.3 * xw + r2.normal(0, 0.5, 150)[w1]))
                      .astype(float), "x": xw, "g1": pd.Categorical(w1.astype(str)),
                      "g2": pd.Categorical(w2.astype(str))})
fit(small)
t0 = time.perf_counter()
m = fit(d)
sec = time.perf_counter() - t0
if package == "glamm":
    loglik = m.loglik
elif package == "glmm":
    loglik = float(getattr(m, "loglik", getattr(m, "log_likelihood", float("nan"))))
else:
    ll = m.logLik() if callable(getattr(m, "logLik", None)) else getattr(m, "loglik", None)
    loglik = float(getattr(ll, "value", ll)) if ll is not None else float("nan")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"seconds": sec, "peak_mb": peak, "loglik": loglik, "m1": m1, "m2": m2}))
"""


def run(python: str, kind: str, n: int, package: str, timeout: float) -> dict:
    try:
        out = subprocess.run([python, "-c", CHILD, kind, str(n), package], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout ({timeout:.0f} s)"}
    if out.returncode != 0:
        tail = (out.stderr or "").strip().splitlines()[-1:] or [f"exit {out.returncode}"]
        return {"status": f"failed: {tail[0][:80]}"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["status"] = "ok"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--models", nargs="*", default=["crossed", "slope", "poisson"])
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--packages", nargs="*", default=["glamm", "glmm", "mixedlm"])
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    packages = [("glamm", sys.executable)] if "glamm" in args.packages else []
    if args.peer_python:
        packages += [(p, args.peer_python) for p in ("glmm", "mixedlm") if p in args.packages]
    rows = []
    print(f"{'model':8s} {'n':>9s} {'package':8s} {'s':>9s} {'peak MB':>9s} "
          f"{'logLik':>16s}  status")
    for kind in args.models:
        for n in args.sizes:
            for name, python in packages:
                res = run(python, kind, n, name, args.timeout)
                row = {"model": kind, "n": n, "package": name, **res}
                rows.append(row)
                s = res.get("seconds", float("nan"))
                mb = res.get("peak_mb", float("nan"))
                ll = res.get("loglik", float("nan"))
                print(f"{kind:8s} {n:9d} {name:8s} {s:9.2f} {mb:9.0f} {ll:16.6f}  "
                      f"{res['status']}", flush=True)
    if args.out is not None:
        with args.out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["model", "n", "package", "seconds", "peak_mb",
                                               "loglik", "m1", "m2", "status"],
                               extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()

"""Out-of-core fits (issue 15, goal 4): peak memory and time of ``glamm.lmer`` (or, with
``--family poisson``, ``glamm.glmer``) on a Dask DataFrame read from parquet partitions,
against the in-memory fit of the same files.

Usage (from the repository root)::

    nice -n 10 .venv/bin/python benchmarks/run_dask.py [--sizes 1000000 10000000]
        [--in-memory-max 10000000] [--rows-per-file 1000000] [--dir /tmp/glamm_dask]
        [--cluster] [--family poisson]

The data (``numpy`` seed ``1000 + file``, one generator per file) are written file by file,
so no more than one file's rows are ever in memory: ``y = 1 + 0.5 x + b1[g1] + b2[g2] + e``
with ``g1`` 2,000 levels and ``g2`` 300 (so the factor is cheap and the pass over the rows
dominates), fitted as ``y ~ x + (1 | g1) + (1 | g2)`` by ML; with ``--family poisson`` the counts
``y ~ Poisson(exp(0.5 + 0.3 x + b1[g1] + b2[g2]))`` with SDs 0.5 and 0.3, fitted by the
Laplace approximation (its standard errors included: a Dask fit computes them before it
returns). Each fit runs in a fresh process and reports its wall time and peak resident memory
(``ru_maxrss``):

- ``pandas``: ``pandas.read_parquet`` of the directory, then ``glamm.lmer``;
- ``dask``: ``dask.dataframe.read_parquet``, then ``glamm.lmer`` on the threaded scheduler
  with 2 workers (the whole fit in one process, so its peak is the total);
- ``cluster`` (with ``--cluster``): a ``distributed.LocalCluster`` of 2 worker processes
  (one thread each); the peak is the driver's plus each worker's.

The dask fits' log-likelihood is compared with the pandas fit's where both ran.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

M1, M2 = 2000, 300
FORMULA = "y ~ x + (1 | g1) + (1 | g2)"

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
how, path, family = sys.argv[1], sys.argv[2], sys.argv[3]
import glamm


def fit(data):
    if family == "gaussian":
        return glamm.lmer(FORMULA, data, reml=False)
    m = glamm.glmer(FORMULA, data, family=family)
    m.stderr
    return m


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

t0 = time.perf_counter()
workers = []
if how == "pandas":
    import pandas as pd
    data = pd.read_parquet(path)
    m = fit(data)
elif how == "dask":
    import dask, dask.dataframe as dd
    with dask.config.set(scheduler="threads", num_workers=2):
        m = fit(dd.read_parquet(path))
else:
    import dask, dask.dataframe as dd, distributed
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", memory_limit="4GiB") as cluster, \
            distributed.Client(cluster) as client:
        t0 = time.perf_counter()   # (the cluster's start-up is not the fit)
        m = fit(dd.read_parquet(path))
        workers = list(client.run(peak_mb).values())
sec = time.perf_counter() - t0
print(json.dumps({"seconds": sec, "peak_mb": peak_mb() + sum(workers), "driver_mb": peak_mb(),
                  "workers_mb": workers, "loglik": m.loglik, "nobs": m.nobs}))
""".replace("FORMULA", repr(FORMULA))


def write_data(directory: Path, n: int, rows_per_file: int, family: str = "gaussian") -> Path:
    """``n`` rows as parquet files of ``rows_per_file`` rows, generated file by file (kept if
    already there)."""
    out = directory / (f"n{n}" if family == "gaussian" else f"n{n}-{family}")
    done = out / "_complete"
    if done.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    counts = family == "poisson"
    b1 = np.random.default_rng(1).normal(0.0, 0.5 if counts else 1.0, M1)
    b2 = np.random.default_rng(2).normal(0.0, 0.3 if counts else 0.7, M2)
    for i, start in enumerate(range(0, n, rows_per_file)):
        k = min(rows_per_file, n - start)
        rng = np.random.default_rng(1000 + i)
        g1 = rng.integers(0, M1, k).astype(np.int32)
        g2 = rng.integers(0, M2, k).astype(np.int32)
        x = rng.normal(size=k)
        if counts:
            y = rng.poisson(np.exp(0.5 + 0.3 * x + b1[g1] + b2[g2])).astype(float)
        else:
            y = 1.0 + 0.5 * x + b1[g1] + b2[g2] + rng.normal(size=k)
        pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2}).to_parquet(
            out / f"part-{i:04d}.parquet", index=False)
    done.touch()
    return out


def run(how: str, path: Path, timeout: float, family: str = "gaussian") -> dict:
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, how, str(path), family],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout ({timeout:.0f} s)"}
    if out.returncode != 0:
        tail = (out.stderr or "").strip().splitlines()[-1:] or [f"exit {out.returncode}"]
        return {"status": f"failed: {tail[0][:100]}"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["status"] = "ok"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--in-memory-max", type=int, default=10_000_000,
                    help="largest size also fitted in memory (pandas)")
    ap.add_argument("--rows-per-file", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/glamm_dask_bench"))
    ap.add_argument("--cluster", action="store_true", help="also fit on a LocalCluster")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--family", choices=["gaussian", "poisson"], default="gaussian",
                    help="gaussian: an LMM (glamm.lmer); poisson: a GLMM (glamm.glmer)")
    args = ap.parse_args()
    print(f"{'n':>10s} {'files':>5s} {'how':8s} {'s':>8s} {'peak MB':>8s} {'logLik':>18s} "
          f"{'vs pandas':>9s}  status")
    for n in args.sizes:
        path = write_data(args.dir, n, args.rows_per_file, args.family)
        files = len(list(path.glob("*.parquet")))
        hows = (["pandas"] if n <= args.in_memory_max else []) + ["dask"] + \
            (["cluster"] if args.cluster else [])
        ref = None
        for how in hows:
            res = run(how, path, args.timeout, args.family)
            ll = res.get("loglik", float("nan"))
            if how == "pandas":
                ref = ll
            diff = abs(ll - ref) / abs(ref) if ref is not None and how != "pandas" else \
                float("nan")
            print(f"{n:10d} {files:5d} {how:8s} {res.get('seconds', float('nan')):8.1f} "
                  f"{res.get('peak_mb', float('nan')):8.0f} {ll:18.6f} {diff:9.1e}  "
                  f"{res['status']}", flush=True)


if __name__ == "__main__":
    main()

"""Huge crossed factors: a seeded MovieLens-shaped synthetic, fitted by ``glamm.lmer`` with the
exact blocked factor where it fits and with ``method="approximate"`` (first term eliminated,
PCG on the Schur complement, SLQ log-determinant), plus the approximate-vs-exact comparisons
on InstEval and the scaling study's 1M-row crossed model.

The synthetic (``--scale s``): about ``200,000 s`` users, ``84,000 s`` movies and
``32,000,000 s`` ratings (the MovieLens-32M shape at ``s = 1``). User activity is log-normal
(median about half the mean, heavy right tail, at least 20 ratings as in MovieLens), movie
popularity Zipf-Mandelbrot (weight of the movie of rank ``r`` proportional to
``(r + 150 s)^-1.3``: the most popular has about 0.2% of the ratings), repeated (user, movie)
pairs are dropped and drawn again, and ``rating = 3.5 + b_user + b_movie + e`` with SDs 0.5,
0.4 and 0.9 (numpy seed 32). The model is ``rating ~ 1 + (1 | user) + (1 | movie)``, by
maximum likelihood.

Every fit runs in a fresh process (time, peak resident memory, log-likelihood and its
Monte-Carlo standard error). Examples::

    nice -n 10 python benchmarks/run_huge_crossed.py --scales 0.01 0.05 --methods exact approximate
    nice -n 10 python benchmarks/run_huge_crossed.py --compare
    python benchmarks/run_huge_crossed.py --estimate 1.0     # the exact fit's predicted cost
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd

FORMULA = "rating ~ 1 + (1 | user) + (1 | movie)"


def movielens_like(scale: float, seed: int = 32) -> pd.DataFrame:
    """The MovieLens-shaped synthetic at ``scale`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_users = max(20, int(round(200_000 * scale)))
    n_movies = max(10, int(round(84_000 * scale)))
    target = int(round(32_000_000 * scale))
    act = rng.lognormal(0.0, 1.2, n_users)
    want = np.clip(np.round(act / act.sum() * target), 20, n_movies // 5).astype(np.int64)
    pop = (np.arange(1, n_movies + 1, dtype=float) + 150.0 * max(scale, 0.01)) ** -1.3
    cdf = np.cumsum(pop / pop.sum())
    order = rng.permutation(n_movies)            # movie id of each popularity rank
    keys = np.zeros(0, dtype=np.int64)
    have = np.zeros(n_users, dtype=np.int64)
    for _ in range(8):   # draw, drop repeated pairs, top up the users still short
        short = want - have
        if short.sum() <= 0.002 * want.sum():
            break
        user = np.repeat(np.arange(n_users, dtype=np.int64), short)
        rank = np.searchsorted(cdf, rng.random(user.shape[0]) * cdf[-1])
        movie = order[np.minimum(rank, n_movies - 1)]
        keys = np.sort(np.concatenate([keys, user * n_movies + movie]))
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
        have = np.bincount(keys // n_movies, minlength=n_users)
    user, movie = keys // n_movies, keys % n_movies
    b_user = rng.normal(0.0, 0.5, n_users)
    b_movie = rng.normal(0.0, 0.4, n_movies)
    rating = 3.5 + b_user[user] + b_movie[movie] + rng.normal(0.0, 0.9, user.shape[0])
    return pd.DataFrame({"rating": rating, "user": user.astype(np.int32),
                         "movie": movie.astype(np.int32)})


def _child(kind: str, arg: str, method: str, max_gib: str) -> None:
    """One fit in this process; prints a JSON line. An exact fit whose predicted memory
    exceeds ``max_gib`` is refused before it starts (``MemoryEstimateError``)."""
    import resource
    import warnings

    import glamm

    t0 = time.perf_counter()
    if kind == "movielens":
        d, formula, reml = movielens_like(float(arg)), FORMULA, False
    elif kind == "insteval":
        d = glamm.datasets.load("InstEval")
        formula, reml = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", True
    else:   # the scaling study's crossed model (benchmarks/run_scaling.py), n rows
        n = int(arg)
        rng = np.random.default_rng(7)
        m1, m2 = n // 10, int(round(2000 * (n / 1e5) ** 0.5))
        g1, g2 = rng.integers(0, m1, n), rng.integers(0, m2, n)
        x = rng.normal(size=n)
        y = 1 + 0.5 * x + rng.normal(0, 1, m1)[g1] + rng.normal(0, 0.7, m2)[g2] \
            + rng.normal(size=n)
        d = pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2})
        formula, reml = "y ~ x + (1 | g1) + (1 | g2)", False
    t_data = time.perf_counter() - t0
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = glamm.lmer(formula, d, reml=reml, method=method,
                           max_memory=float(max_gib) * 2**30 if method == "exact" else None)
        except glamm.MemoryEstimateError as err:
            print(json.dumps({"refused": str(err)}))
            return
    sec = time.perf_counter() - t0
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    rec = m.approximation or {}
    # one more evaluation near the optimum (the fit's per-evaluation cost), and the exact
    # factor's predicted cost for comparison
    from glamm.linalg.threads import single_threaded
    from glamm.lmm.method import frame_cost

    with single_threaded(1):
        t1 = time.perf_counter()
        m.model.objective(m.theta * 1.01)
        eval_s = time.perf_counter() - t1
    cost = frame_cost(m.frame)
    print(json.dumps({
        "n": int(m.nobs), "levels": [int(v) for v in m.ngroups.values()],
        "data_s": t_data, "fit_s": sec, "feval": int(m.optsum.feval),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "cpu_s": cpu,
        "loglik": float(m.loglik), "loglik_se": rec.get("loglik_se", 0.0),
        "cg_max": rec.get("cg_iterations_max", 0), "eval_s": eval_s,
        "pred_eval_s": cost.seconds_per_evaluation, "pred_gib": cost.memory_bytes / 2**30,
        "theta": [float(t) for t in m.theta], "sigma": float(m.sigma)}))


def _run(kind: str, arg: str, method: str, timeout: float, max_gib: float) -> dict:
    try:
        out = subprocess.run([sys.executable, __file__, "--child", kind, arg, method,
                              str(max_gib)],
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout ({timeout:.0f} s)"}
    if out.returncode != 0:
        tail = (out.stderr or "").strip().splitlines()[-1:] or [f"exit {out.returncode}"]
        return {"status": f"failed: {tail[0][:100]}"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["status"] = "ok" if "refused" not in res else "refused: " + res["refused"][:90]
    return res


def _estimate(scale: float) -> None:
    """Print the exact fit's predicted cost for the synthetic at ``scale``."""
    from glamm.formula.design import build_model_frame
    from glamm.lmm.method import frame_cost

    t0 = time.perf_counter()
    d = movielens_like(scale)
    frame = build_model_frame(FORMULA, d)
    cost = frame_cost(frame)
    print(f"scale {scale}: {len(d):,} ratings, {d.user.nunique():,} users, "
          f"{d.movie.nunique():,} movies ({time.perf_counter() - t0:.1f} s to generate and "
          f"estimate)")
    print(cost)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=float, nargs="*", default=[])
    ap.add_argument("--methods", nargs="*", default=["exact", "approximate"])
    ap.add_argument("--compare", nargs="*", default=None, choices=["insteval", "crossed"],
                    help="approximate against exact on InstEval and the 1M-row model "
                         "(default both)")
    ap.add_argument("--estimate", type=float, nargs="*", default=[])
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--max-exact-gib", type=float, default=5.0,
                    help="memory allowed to an exact fit (lmer's max_memory; default 5)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    for s in args.estimate:
        _estimate(s)
    jobs = [("movielens", str(s), m) for s in args.scales for m in args.methods]
    if args.compare is not None:
        which = args.compare or ["insteval", "crossed"]
        jobs += [(k, a, m) for k, a in (("insteval", "-"), ("crossed", "1000000"))
                 if k in which for m in ("exact", "approximate")]
    print(f"{'data':10s} {'size':>8s} {'method':12s} {'n':>10s} {'levels':>16s} {'fit s':>8s} "
          f"{'cpu s':>8s} {'feval':>5s} {'peak MB':>8s} {'logLik':>16s} {'+-se':>6s}  status")
    for kind, arg, method in jobs:
        r = _run(kind, arg, method, args.timeout, args.max_exact_gib)
        lev = "x".join(str(v) for v in r.get("levels", []))
        print(f"{kind:10s} {arg:>8s} {method:12s} {r.get('n', 0):10d} {lev:>16s} "
              f"{r.get('fit_s', float('nan')):8.1f} {r.get('cpu_s', float('nan')):8.1f} "
              f"{r.get('feval', 0):5d} "
              f"{r.get('peak_mb', float('nan')):8.0f} {r.get('loglik', float('nan')):16.3f} "
              f"{r.get('loglik_se', float('nan')):6.3f}  {r['status']} "
              f"theta={np.round(r.get('theta', []), 4).tolist()} "
              f"eval={r.get('eval_s', float('nan')):.3g}s "
              f"exact predicted: {r.get('pred_eval_s', float('nan')):.3g}s/eval "
              f"{r.get('pred_gib', float('nan')):.3g} GiB cg_max={r.get('cg_max', 0)}",
              flush=True)


if __name__ == "__main__":
    main()

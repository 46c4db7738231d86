"""Cross-check glamm's families against glmmTMB on simulated data the tests have not seen:
random slopes, crossed factors, offsets, prior weights, other links, zero parts with random
effects, variance functions. Needs ``Rscript`` with glmmTMB (and jsonlite); never run by the
tests. Each case prints the log-likelihood difference (glamm minus glmmTMB: at least
``-1e-6`` relative is a match, higher is allowed), the largest difference of a fixed effect
in units of glmmTMB's standard error, the largest relative difference of the standard
errors, glmmTMB's convergence code and both fit times (glamm's includes its standard
errors; the first glamm fit of a process also pays for the imports).

Usage (from the repository root, after ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/crosscheck_families.py [--seed N] [--only NAME ...]

The data are simulated here (NumPy, ``--seed``); glmmTMB fits the same CSV file. The
cases that found bugs when this sweep was first run (2026-12-02): a hurdle NB1 model whose
fit stopped on the variance bound (now refitted from inside, glmm/fit.py), and a Tweedie
model on a response without zeros whose series exhausted memory (now bounded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import glamm

# name -> (formula, glamm keywords, glmmTMB family, ziformula or None, dispformula or None,
#          weights column or None)
CASES = {
    "nb1_slope_offset": ("y_nb1 ~ x + offset(log(expo)) + (1 + x | g)", {"family": "nbinom1"},
                         "nbinom1()", None, None, None),
    "nb1_crossed": ("y_nb1 ~ x + (1 | g) + (1 | h)", {"family": "nbinom1"}, "nbinom1()", None,
                    None, None),
    "nb1_sqrt": ("y_nb1 ~ x + (1 | g)", {"family": "nbinom1", "link": "sqrt"},
                 'nbinom1(link = "sqrt")', None, None, None),
    "nb1_weights": ("y_nb1 ~ x + (1 | g)", {"family": "nbinom1", "weights": "w"}, "nbinom1()",
                    None, None, "w"),
    "nb1_diag": ("y_nb1 ~ x + diag(1 + x | g)", {"family": "nbinom1"}, "nbinom1()", None,
                 None, None),
    "nb2_crossed": ("y_nb2 ~ x + (1 | g) + (1 | h)", {"family": "nbinom2"}, "nbinom2()", None,
                    None, None),
    "beta_crossed": ("y_beta ~ x + (1 | g) + (1 | h)", {"family": "beta"}, "beta_family()",
                     None, None, None),
    "beta_probit": ("y_beta ~ x + (1 | g)", {"family": "beta", "link": "probit"},
                    'beta_family(link = "probit")', None, None, None),
    "beta_weights": ("y_beta ~ x + (1 | g)", {"family": "beta", "weights": "w"},
                     "beta_family()", None, None, "w"),
    "betabinomial_crossed": ("cbind(y_bb, size - y_bb) ~ x + (1 | g) + (1 | h)",
                             {"family": "betabinomial"}, "betabinomial()", None, None, None),
    "t_slope": ("y_t ~ x + (1 + x | g)", {"family": "t"}, "t_family()", None, None, None),
    "t_log": ("y_pos ~ x + (1 | g)", {"family": "t", "link": "log"}, 't_family(link = "log")',
              None, None, None),
    "t_dispformula": ("y_t ~ x + (1 | g)", {"family": "t", "dispformula": "~ f"}, "t_family()",
                      None, "~ f", None),
    "gamma_slope": ("y_pos ~ x + (1 + x | g)", {"family": "Gamma", "link": "log"},
                    'Gamma(link = "log")', None, None, None),
    "genpois_crossed": ("y_gp ~ x + f + (1 | g) + (1 | h)", {"family": "genpois"}, "genpois()",
                        None, None, None),
    "tweedie_zeros": ("y_tw ~ x + (1 | g)", {"family": "tweedie"}, "tweedie()", None, None,
                      None),
    "tweedie_dispformula": ("y_tw ~ x + (1 | g)", {"family": "tweedie", "dispformula": "~ f"},
                            "tweedie()", None, "~ f", None),
    "zip_slope": ("y_zi ~ x + (1 + x | g)", {"family": "poisson", "ziformula": "~ z"},
                  "poisson()", "~ z", None, None),
    "zinb_crossed": ("y_zinb ~ x + (1 | g) + (1 | h)", {"family": "nbinom2", "ziformula": "~ z"},
                     "nbinom2()", "~ z", None, None),
    "hurdle_nb2": ("y_zinb ~ x + (1 | g)", {"family": "truncated_nbinom2", "ziformula": "~ z"},
                   "truncated_nbinom2()", "~ z", None, None),
    "hurdle_nb1": ("y_zinb ~ x + (1 | g)", {"family": "truncated_nbinom1", "ziformula": "~ z"},
                   "truncated_nbinom1()", "~ z", None, None),
    "zi_genpois": ("y_zi ~ x + (1 | g)", {"family": "genpois", "ziformula": "~ z"},
                   "genpois()", "~ z", None, None),
    "zinb_zero_part_re": ("y_zinb ~ x + (1 | g)",
                          {"family": "nbinom2", "ziformula": "~ z + (1 | g)"}, "nbinom2()",
                          "~ z + (1 | g)", None, None),
    "hurdle_zero_part_re": ("y_zinb ~ x + (1 | g)",
                            {"family": "truncated_nbinom2", "ziformula": "~ z + (1 | g)"},
                            "truncated_nbinom2()", "~ z + (1 | g)", None, None),
}

R_TEMPLATE = """
suppressMessages(library(glmmTMB)); suppressMessages(library(jsonlite))
d <- read.csv("{csv}")
d$g <- factor(d$g); d$h <- factor(d$h); d$f <- factor(d$f)
cases <- fromJSON("{cases}", simplifyVector = FALSE)
out <- list()
for (nm in names(cases)) {{
  cs <- cases[[nm]]
  zi <- if (is.null(cs$zi)) ~0 else as.formula(cs$zi)
  disp <- if (is.null(cs$disp)) ~1 else as.formula(cs$disp)
  fam <- eval(parse(text = cs$family))
  args <- list(formula = as.formula(cs$formula), data = d, family = fam, ziformula = zi,
               dispformula = disp)
  if (!is.null(cs$weights)) args$weights <- d[[cs$weights]]
  t0 <- Sys.time()
  m <- tryCatch(suppressWarnings(do.call(glmmTMB, args)), error = function(e) NULL)
  el <- as.numeric(Sys.time() - t0, units = "secs")
  if (is.null(m)) {{ out[[nm]] <- list(error = TRUE); next }}
  out[[nm]] <- list(logLik = as.numeric(logLik(m)), cond = unname(fixef(m)$cond),
                    se = unname(sqrt(diag(vcov(m)$cond))), conv = m$fit$convergence,
                    pdHess = m$sdr$pdHess, seconds = el)
}}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA), "{out}")
"""


def simulate(seed: int) -> pd.DataFrame:
    """Counts, proportions and continuous responses around one linear predictor with a
    random intercept and slope per ``g`` (25 levels) and an intercept per ``h`` (12)."""
    rng = np.random.default_rng(seed)
    n_g, n_h, per = 25, 12, 16
    n = n_g * per
    g = np.repeat(np.arange(n_g), per)
    h = rng.integers(0, n_h, n)
    x, z = rng.normal(size=n), rng.uniform(size=n)
    f = rng.choice(["a", "b", "c"], n)
    b_g, s_g, b_h = rng.normal(0, 0.6, n_g), rng.normal(0, 0.3, n_g), rng.normal(0, 0.4, n_h)
    eta = 0.4 + 0.5 * x + b_g[g] + s_g[g] * x + b_h[h]
    mu = np.exp(eta)
    expo = rng.uniform(0.5, 2.0, n)

    def nbinom(mean, size):   # NB2 counts as a gamma-Poisson mixture
        return rng.poisson(rng.gamma(size, mean / size))

    p = 1.0 / (1.0 + np.exp(-(-0.3 + 0.6 * x + b_g[g] + b_h[h])))
    size = rng.integers(5, 16, n)
    d = pd.DataFrame({
        "g": g, "h": h, "f": f, "x": x, "z": z, "expo": expo, "size": size,
        "w": rng.integers(1, 4, n).astype(float),
        "y_nb1": nbinom(mu * expo, mu * expo / 1.5),
        "y_nb2": nbinom(mu, 1.3),
        "y_beta": np.clip(rng.beta(p * 8, (1 - p) * 8), 1e-6, 1 - 1e-6),
        "y_bb": rng.binomial(size, rng.beta(p * 4, (1 - p) * 4)),
        "y_t": 1 + 0.5 * x + b_g[g] + s_g[g] * x + b_h[h] + 0.7 * rng.standard_t(4, n),
        "y_pos": rng.gamma(3.0, mu / 3.0),
        "y_gp": nbinom(mu, 4.0),
        "y_zi": np.where(rng.uniform(size=n) < 1 / (1 + np.exp(1 - 0.8 * z)), 0,
                         rng.poisson(mu)),
        "y_zinb": np.where(rng.uniform(size=n) < 1 / (1 + np.exp(1 - 0.8 * z)), 0,
                           nbinom(mu, 2.0)),
    })
    zero = rng.uniform(size=n) < np.exp(-mu / 2)
    d["y_tw"] = np.where(zero, 0.0, rng.gamma(2.0, mu / 2.0))
    return d


def glmmtmb_fits(data: pd.DataFrame, names: list[str]) -> dict:
    """glmmTMB's fits of the named cases (an empty dict without a working Rscript)."""
    cases = {nm: {"formula": CASES[nm][0], "family": CASES[nm][2], "zi": CASES[nm][3],
                  "disp": CASES[nm][4], "weights": CASES[nm][5]} for nm in names}
    with tempfile.TemporaryDirectory() as tmp:
        csv, spec, out = Path(tmp) / "d.csv", Path(tmp) / "cases.json", Path(tmp) / "out.json"
        data.to_csv(csv, index=False)
        spec.write_text(json.dumps(cases))
        script = Path(tmp) / "fit.R"
        script.write_text(R_TEMPLATE.format(csv=csv, cases=spec, out=out))
        run = subprocess.run(["Rscript", str(script)], capture_output=True, text=True)
        if run.returncode != 0 or not out.exists():
            print(f"glmmTMB run failed: {run.stderr.strip()[-300:]}")
            return {}
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--only", nargs="*", help="cases to run (default: all)")
    args = ap.parse_args()
    names = [nm for nm in CASES if not args.only or nm in args.only]
    data = simulate(args.seed)
    refs = glmmtmb_fits(data, names)
    frame = data.assign(g=data["g"].astype(str), h=data["h"].astype(str))
    print(f"{'case':22s} {'':3s} {'dlogLik':>9s} {'fixef/SE':>9s} {'SE rel':>8s} "
          f"{'conv':>4s} {'glamm s':>8s} {'glmmTMB s':>9s}")
    for nm in names:
        r = refs.get(nm)
        if not r or r.get("error") or not isinstance(r.get("logLik"), float):
            print(f"{nm:22s} glmmTMB gave no fit")
            continue
        formula, kw = CASES[nm][0], CASES[nm][1]
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = glamm.glmer(formula, frame, **kw)
                se = np.asarray(m.stderr, dtype=float)
        except Exception as exc:   # report and go on: this is a sweep
            print(f"{nm:22s} ERROR {type(exc).__name__}: {str(exc)[:160]}")
            continue
        secs = time.perf_counter() - t0
        dl = m.loglik - r["logLik"]
        ref_se = np.asarray(r["se"], dtype=float)
        dfix = float(np.max(np.abs(m.fixef.to_numpy() - np.asarray(r["cond"])) / ref_se))
        dse = float(np.max(np.abs(se - ref_se) / ref_se))
        ok = dl >= -1e-6 * abs(r["logLik"]) and (dfix < 1e-2 or dl > 1e-4)
        print(f"{nm:22s} {'ok ' if ok else 'BAD'} {dl:+9.1e} {dfix:9.1e} {dse:8.1e} "
              f"{r['conv']:4d} {secs:8.3f} {r['seconds']:9.3f}", flush=True)


if __name__ == "__main__":
    main()

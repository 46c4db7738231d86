"""Time glamm's response families outside the exponential family (issue 13: nbinom1, beta,
betabinomial, t, genpois, tweedie; Gamma with a log link for comparison) on the glmmTMB
reference models and compare with glmmTMB's recorded times.

Usage (from the repository root, after ``make test`` made ``.venv``)::

    .venv/bin/python benchmarks/run_families.py [--repeat N] [--only NAME ...]

Each model is fitted once untimed (warm-up), then ``--repeat`` times; the table shows the
median wall time of the fit with its standard errors (``stderr``, as glmmTMB's recorded
time includes ``sdreport``), the log-likelihoods and the ratio against glmmTMB's median time
in the reference file (glmmTMB 1.1.5, R 4.2, the same 2-core machine; the shared oracle's
files record ``timing.median_elapsed_s``, make_families_extra.R the mean of 3 refits).

``--with-r`` also times glmmTMB in this session (``Rscript`` with glmmTMB; never needed by
the tests) on the same data, after one untimed fit, as the median of up to 3 fits (one fit,
no warm-up, for a model whose recorded time is above 5 s), and takes the ratio against it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from bench_common import parse_args, print_header, r_seconds, timed

import glamm

ROOT = Path(__file__).resolve().parents[1]
FAM = ROOT / "tests" / "reference" / "families_extra"
ZI = ROOT / "tests" / "reference" / "zero_inflation"


def _salamanders() -> pd.DataFrame:
    d = pd.read_csv(FAM / "Salamanders.csv")
    return d.assign(mined=pd.Categorical(d["mined"], ["yes", "no"]), site=d["site"].astype(str))


def _sim() -> pd.DataFrame:
    d = pd.read_csv(FAM / "sim_families.csv")
    return d.assign(g=pd.Categorical(d["g"].astype(str), [str(i) for i in range(1, 31)]))


def _cbpp() -> pd.DataFrame:
    d = pd.read_csv(FAM / "cbpp.csv")
    return d.assign(herd=pd.Categorical(d["herd"].astype(str), [str(i) for i in range(1, 16)]),
                    period=pd.Categorical(d["period"].astype(str), ["1", "2", "3", "4"]))


def _sim_compois() -> pd.DataFrame:
    d = pd.read_csv(FAM / "sim_compois.csv")
    return d.assign(g=pd.Categorical(d["g"].astype(str), [str(i) for i in range(1, 41)]))


# name -> (data, formula, keyword arguments, reference file or (file, key, ...))
BATTERY = {
    "salamanders_nbinom1": (_salamanders, "count ~ mined + (1 | site)", {"family": "nbinom1"},
                            "fam_salamanders_nb1.json"),
    "sim_beta": (_sim, "y_beta ~ x + (1 | g)", {"family": "beta"}, "fam_sim_beta.json"),
    "sim_t": (_sim, "y_t ~ x + (1 | g)", {"family": "t"}, "fam_sim_t.json"),
    "sim_gamma_log": (_sim, "y_gamma ~ x + (1 | g)", {"family": "Gamma", "link": "log"},
                      "fam_sim_gamma_log.json"),
    "cbpp_betabinomial": (_cbpp, "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                          {"family": "betabinomial"}, "tmb_cbpp_betabinomial.json"),
    "salamanders_genpois": (_salamanders, "count ~ mined + (1 | site)", {"family": "genpois"},
                            "tmb_salamanders_genpois.json"),
    "sim_tweedie": (_sim, "y_tweedie ~ x + (1 | g)", {"family": "tweedie"},
                    "tmb_sim_tweedie.json"),
    "sim_compois_under": (_sim_compois, "y_under ~ x + (1 | g)", {"family": "compois"},
                          ("tmb_compois.json", "fits", "under")),
    "sim_compois_over": (_sim_compois, "y_over ~ x + (1 | g)", {"family": "compois"},
                         ("tmb_compois.json", "fits", "over")),
    # zero inflation and hurdles (glmer ziformula)
    "salamanders_zip": (_salamanders, "count ~ spp + mined + (1 | site)",
                        {"family": "poisson", "ziformula": "~ mined"},
                        ZI / "fam_salamanders_zip_mined.json"),
    "salamanders_zinb2": (_salamanders, "count ~ spp + mined + (1 | site)",
                          {"family": "nbinom2", "ziformula": "~ mined"},
                          ZI / "fam_salamanders_zinb2_mined.json"),
    "salamanders_hurdle": (_salamanders, "count ~ spp + mined + (1 | site)",
                           {"family": "truncated_poisson", "ziformula": "~ mined"},
                           ZI / "fam_salamanders_hurdle_poisson.json"),
    # random effects in the zero part (one case of a multi-model reference file each)
    "salamanders_zip_re": (_salamanders, "count ~ spp + mined + (1 | site)",
                           {"family": "poisson", "ziformula": "~ mined + (1 | site)"},
                           (ZI / "tmb_zi_random.json", "zip")),
    "salamanders_hurdle_re": (_salamanders, "count ~ spp + mined + (1 | site)",
                              {"family": "truncated_poisson",
                               "ziformula": "~ mined + (1 | site)"},
                              (ZI / "tmb_zi_random.json", "hurdle_poisson")),
}


#: glamm's family names -> glmmTMB's family objects
TMB_FAMILY = {"nbinom1": "nbinom1()", "beta": "beta_family()", "t": "t_family()",
              "Gamma": 'Gamma(link = "log")', "betabinomial": "betabinomial()",
              "genpois": "genpois()", "tweedie": "tweedie()", "compois": "compois()",
              "poisson": "poisson()", "nbinom2": "nbinom2()",
              "truncated_poisson": "truncated_poisson()"}

R_TEMPLATE = """
suppressMessages(library(glmmTMB))
d <- read.csv("{csv}", stringsAsFactors = TRUE)
{factors}
fit <- function() glmmTMB({formula}, data = d, family = {family}{zi})
{warm}
times <- numeric({repeat})
for (i in seq_len({repeat})) {{ gc(); times[i] <- system.time(fit())[["elapsed"]] }}
cat(median(times), "\\n")
"""


def time_glmmtmb(data: pd.DataFrame, formula: str, kw: dict, recorded: float,
                 repeat: int) -> float | None:
    """glmmTMB's median time for the same model and data in this session (``None`` without
    ``Rscript``, or when the R run fails)."""

    def levels(col: pd.Series) -> str:
        return ", ".join(json.dumps(str(v)) for v in col.cat.categories)

    factors = "\n".join(f"d${c} <- factor(d${c}, levels = c({levels(col)}))"
                         for c, col in data.items()
                         if isinstance(col.dtype, pd.CategoricalDtype))
    zi = f", ziformula = {kw['ziformula']}" if "ziformula" in kw else ""
    slow = recorded > 5.0
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "d.csv"
        data.to_csv(csv, index=False)
        return r_seconds(R_TEMPLATE.format(
            csv=csv, factors=factors, formula=formula, family=TMB_FAMILY[kw["family"]], zi=zi,
            warm="" if slow else "invisible(fit())", repeat=1 if slow else repeat), "glmmTMB")


def _fit(formula: str, data: pd.DataFrame, kw: dict):
    m = glamm.glmer(formula, data, **kw)
    _ = m.stderr   # the standard errors, as glmmTMB's time includes them
    return m


def main() -> None:
    args = parse_args(__doc__, with_r="time glmmTMB in this session")
    print_header([("model", 20), ("fit s", 8), ("logLik", 16), ("ref logLik", 16),
                  ("glmmTMB s", 10), ("ratio", 7)])
    for name, (load, formula, kw, file) in BATTERY.items():
        if args.only and name not in args.only:
            continue
        data = load()
        if isinstance(file, tuple):
            ref = json.loads((FAM / file[0]).read_text())
            for key in file[1:]:
                ref = ref[key]
        else:
            ref = json.loads((FAM / file).read_text())
        t, m = timed(_fit, args.repeat, formula, data, kw)
        base = ref["timing"]["median_elapsed_s"]
        if args.with_r:
            base = time_glmmtmb(data, formula, kw, base, max(1, min(args.repeat, 3))) or base
        print(f"{name:20s} {t:8.3f} {m.loglik:16.6f} {ref['logLik']:16.6f} {base:10.3f} "
              f"{base / t:6.1f}x", flush=True)
    print("glmmTMB times: " + ("measured in this session" if args.with_r
                               else "recorded in the reference files"))


if __name__ == "__main__":
    main()

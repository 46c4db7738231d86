"""``python -m glamm.demo`` (what ``make demo`` runs).

Fits lme4's classic example, the sleep-deprivation study with a correlated random intercept
and slope per subject, by maximum likelihood, and prints the lme4-style summary::

    Reaction ~ Days + (Days | Subject)      on the bundled sleepstudy data

R's ``lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)`` gives
logLik -875.97; the subject SDs 23.78 (intercept) and 5.717 (slope), correlation 0.08,
residual SD 25.59.
"""

from __future__ import annotations

from . import datasets
from .lmer_api import lmer

FORMULA = "Reaction ~ Days + (Days | Subject)"


def main() -> int:
    """Fit the demo model and print its summary; returns the exit status 0."""
    data = datasets.load("sleepstudy")
    print(f"glamm demo: lmer({FORMULA!r}, sleepstudy, reml=False)\n")
    m = lmer(FORMULA, data, reml=False)
    print(m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

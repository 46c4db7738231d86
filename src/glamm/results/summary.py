"""Text summaries of fitted models (printing only; no numerics happen here)."""

from __future__ import annotations


def format_lmer(m) -> str:
    return f"Linear mixed model fit by {m.method}: {m.formula}\nlogLik {m.loglik:.4f}"

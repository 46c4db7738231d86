"""The notebook form of a result (``_repr_html_``): the summary's header as text, then the
random-effect parameters and the coefficients as HTML tables. Not public API."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd


def _table(df: pd.DataFrame, caption: str) -> str:
    shown = df.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = [("" if not np.isfinite(v) else f"{v:.4g}")
                        for v in shown[c].to_numpy(dtype=float)]
    body = shown.to_html(na_rep="", border=0, escape=True)
    return f"<p><b>{html.escape(caption)}</b></p>{body}"


def result_html(result) -> str:
    """HTML for a fitted model: the summary up to its first table as preformatted text,
    then ``varcorr`` (if any) and ``coef_table()`` as tables, then the rest of the summary's
    notes."""
    text = str(result)
    cut = text.find("Random effects:")
    if cut < 0:
        cut = text.find("Fixed effects:")
    if cut < 0:
        cut = text.find("Coefficients:")
    head = text if cut < 0 else text[:cut].rstrip()
    parts = [f"<pre>{html.escape(head)}</pre>"]
    varcorr = getattr(result, "varcorr", None)
    if isinstance(varcorr, pd.DataFrame) and len(varcorr):
        parts.append(_table(varcorr, "Random effects"))
    try:
        coefs = result.coef_table()
    except Exception:   # (a result without one: the text says it all)
        coefs = None
    if isinstance(coefs, pd.DataFrame) and len(coefs):
        parts.append(_table(coefs, "Fixed effects"))
    notes = [ln for ln in text.splitlines()
             if ln.startswith(("boundary", "Note", "note", "Warning", "convergence"))]
    if notes:
        parts.append(f"<pre>{html.escape(chr(10).join(notes))}</pre>")
    return "<div class=\"glamm-result\">" + "".join(parts) + "</div>"

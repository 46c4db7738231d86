"""Progress bars of the long inference loops (bootstrap replicates, profiled parameters):
tqdm's, shown when asked or, by default, when attached to a terminal or a notebook. Not
public API."""

from __future__ import annotations

from ..optim.trace import is_interactive


def progress_bar(total: int, progress: bool | None, desc: str, unit: str):
    """A tqdm bar of ``total`` steps when ``progress`` is true, or when it is ``None`` and
    standard error is a terminal or a notebook runs; ``None`` else (and without tqdm)."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:   # (tqdm is a dependency; a broken install just shows no bar)
        return None
    if progress is None and not is_interactive():
        return None
    return tqdm(total=total, desc=desc, unit=unit)

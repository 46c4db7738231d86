"""The switch for glamm's compiled kernels (numba): the families' per-row loops
(:mod:`glamm.families._kernels`), the small penalized least-squares solves of PIRLS
(:mod:`glamm.linalg._pls_kernels`), the refill of the cross-products
(:mod:`glamm.linalg._crossprod_kernels`) and the blocked factor's and one-term LMM's loops
(:mod:`glamm.linalg._pair_kernels`, :mod:`glamm.linalg._lmm_kernels`).

Each kernels module is imported on first use, so numba is only imported by a fit that needs
it. ``GLAMM_JIT=0`` (or ``false``, ``no``, ``off``) in the environment turns every kernel
off, as does a missing or broken numba: the NumPy code then runs, and it stays the
reference the tests compare the kernels with. Not public API.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: the environment's choice (``None``) or a forced one (:func:`use_kernels`)
_FORCED: list[bool | None] = [None]
#: the environment's ``GLAMM_JIT`` as read on first use
_ENV: list[bool] = []
#: module name -> the imported kernels module, or ``None`` where it could not be imported
_LOADED: dict[str, ModuleType | None] = {}


def enabled() -> bool:
    """Whether compiled kernels may be used (before trying to import numba). The environment
    is read once, on first use (this runs on every family evaluation)."""
    forced = _FORCED[0]
    if forced is not None:
        return forced
    if not _ENV:
        _ENV.append(os.environ.get("GLAMM_JIT", "1").strip().lower()
                    not in ("0", "false", "no", "off"))
    return _ENV[0]


def load(name: str) -> ModuleType | None:
    """The kernels module ``name`` (e.g. ``"glamm.families._kernels"``), imported once; ``None``
    when the kernels are switched off or the import fails (numba missing, or no writable
    cache directory, which numba reports when the kernels are defined)."""
    if not enabled():
        return None
    if name not in _LOADED:
        try:
            module: ModuleType | None = importlib.import_module(name)
        except Exception:
            module = None
        _LOADED[name] = module
    return _LOADED[name]


def use_kernels(flag: bool | None) -> None:
    """Force the kernels on (``True``, where numba is there), off (``False``) or back to the
    environment's choice (``None``); for tests and benchmarks."""
    _FORCED[0] = flag

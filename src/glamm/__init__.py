"""glamm: mixed-effects models: LMMs, GLMMs (Laplace and adaptive quadrature), smooth terms
(GAMMs), factor loadings (GALAMMs) and response families beyond the exponential family.

Public names: :func:`lmer`, :func:`glmer`, :func:`glm`, :func:`gls`, :func:`galamm`,
:func:`clmm`, :func:`estimate_lmm_cost` (the exact LMM fit's memory and time, predicted),
:func:`anova`, :func:`marginal_coefs`, the plots (:func:`plot_smooth`,
:func:`plot_ranef`, :func:`plot_residuals`, :func:`plot_qq`, :func:`plot_fitted`,
:func:`plot_profile`, :func:`plot_bootstrap`), :mod:`datasets`, the result types
(:class:`LmerResult`, :class:`GlmerResult`, :class:`GlmResult`, :class:`GlsResult`,
:class:`GalammResult`, :class:`ClmmResult`), and the error and warning types of
:mod:`glamm.errors`.

The fitting functions and result types are imported on first use (module ``__getattr__``), so
``import glamm`` (and every ``glamm`` command) does not pay for SciPy, formulaic, nlopt or
matplotlib until a model is fitted.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from .errors import (
    ApproximateFitWarning,
    ArgumentError,
    ConvergenceWarning,
    DataError,
    FormulaError,
    GlammError,
    MemoryEstimateError,
    SingularFitWarning,
)

if TYPE_CHECKING:  # pragma: no cover
    from . import datasets
    from .clmm_api import clmm
    from .galamm_api import galamm
    from .glm_api import GlmResult, glm
    from .glmer_api import glmer
    from .gls_api import gls
    from .inference.anova import anova
    from .inference.marginal import marginal_coefs
    from .lmer_api import lmer
    from .lmm.method import estimate_lmm_cost
    from .plotting import (
        plot_bootstrap,
        plot_fitted,
        plot_profile,
        plot_qq,
        plot_ranef,
        plot_residuals,
        plot_smooth,
    )
    from .results.clmm_result import ClmmResult
    from .results.galamm_result import GalammResult
    from .results.glmer_result import GlmerResult
    from .results.gls_result import GlsResult
    from .results.lmer_result import LmerResult

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "lmer": "glamm.lmer_api",
    "estimate_lmm_cost": "glamm.lmm.method",
    "glmer": "glamm.glmer_api",
    "glm": "glamm.glm_api",
    "anova": "glamm.inference.anova",
    "marginal_coefs": "glamm.inference.marginal",
    "plot_smooth": "glamm.plotting",
    "plot_ranef": "glamm.plotting",
    "plot_residuals": "glamm.plotting",
    "plot_qq": "glamm.plotting",
    "plot_fitted": "glamm.plotting",
    "plot_profile": "glamm.plotting",
    "plot_bootstrap": "glamm.plotting",
    "LmerResult": "glamm.results.lmer_result",
    "GlmerResult": "glamm.results.glmer_result",
    "GlmResult": "glamm.glm_api",
    "gls": "glamm.gls_api",
    "GlsResult": "glamm.results.gls_result",
    "galamm": "glamm.galamm_api",
    "GalammResult": "glamm.results.galamm_result",
    "clmm": "glamm.clmm_api",
    "ClmmResult": "glamm.results.clmm_result",
}

__all__ = [
    "lmer",
    "estimate_lmm_cost",
    "glmer",
    "glm",
    "gls",
    "galamm",
    "anova",
    "marginal_coefs",
    "plot_smooth",
    "plot_ranef",
    "plot_residuals",
    "plot_qq",
    "plot_fitted",
    "plot_profile",
    "plot_bootstrap",
    "datasets",
    "LmerResult",
    "GlmerResult",
    "GlmResult",
    "GlsResult",
    "GalammResult",
    "clmm",
    "ClmmResult",
    "GlammError",
    "FormulaError",
    "DataError",
    "ArgumentError",
    "ConvergenceWarning",
    "SingularFitWarning",
    "MemoryEstimateError",
    "ApproximateFitWarning",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a public function or result type, :mod:`datasets` or (for code that reaches
    into them) an internal module on first access."""
    if name in _LAZY:
        value: Any = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"glamm.{name}") is not None:
        value = importlib.import_module(f"glamm.{name}")   # datasets, or an internal module
    else:
        raise AttributeError(f"module 'glamm' has no attribute {name!r}")
    globals()[name] = value   # later accesses skip this function
    return value


def __dir__() -> list[str]:
    """The public names only (tab completion), not the internal subpackages."""
    return sorted(__all__)

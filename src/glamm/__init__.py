"""glamm: mixed-effects models (LMMs now; GLMMs, quadrature, smooths and factor loadings next).

Public names: :func:`lmer`, :func:`anova`, :mod:`datasets`, the result type
:class:`LmerResult` and the error types in :mod:`glamm.errors`.
"""

from . import datasets
from .api import lmer
from .errors import ConvergenceWarning, DataError, FormulaError, GlammError, SingularFitWarning
from .inference.anova import anova
from .results.lmer_result import LmerResult

__all__ = [
    "lmer",
    "anova",
    "datasets",
    "LmerResult",
    "GlammError",
    "FormulaError",
    "DataError",
    "ConvergenceWarning",
    "SingularFitWarning",
]
__version__ = "0.1.0"

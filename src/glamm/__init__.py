"""glamm: mixed-effects models: LMMs, GLMMs (Laplace and adaptive quadrature) and smooth terms
(GAMMs); factor loadings next.

Public names: :func:`lmer`, :func:`glmer`, :func:`glm`, :func:`anova`, :func:`marginal_coefs`,
:func:`plot_smooth`, :mod:`datasets`, the result type :class:`LmerResult` and the error types
in :mod:`glamm.errors`.
"""

from . import datasets
from .api import glmer, lmer
from .glm_api import glm
from .errors import ConvergenceWarning, DataError, FormulaError, GlammError, SingularFitWarning
from .inference.anova import anova
from .inference.marginal import marginal_coefs
from .plotting import plot_smooth
from .results.lmer_result import LmerResult

__all__ = [
    "lmer",
    "glmer",
    "glm",
    "anova",
    "marginal_coefs",
    "plot_smooth",
    "datasets",
    "LmerResult",
    "GlammError",
    "FormulaError",
    "DataError",
    "ConvergenceWarning",
    "SingularFitWarning",
]
__version__ = "0.1.0"

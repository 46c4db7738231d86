"""glamm.inference: comparisons and tests on fitted models.

:func:`anova` compares nested models by likelihood ratio tests; :func:`refit_ml` refits a
REML fit by maximum likelihood.
"""

from .anova import anova, refit_ml

__all__ = ["anova", "refit_ml"]

"""Exception and warning types raised by glamm.

Every error that comes from a user's input derives from :class:`GlammError` (itself a
``ValueError``), so callers can catch one type; the message names the offending formula part,
column, level or row count.
"""

from __future__ import annotations


class GlammError(ValueError):
    """Base class for errors caused by the model specification or the data."""


class FormulaError(GlammError):
    """The model formula cannot be parsed or refers to something that does not exist."""


class DataError(GlammError):
    """The data cannot support the requested model (missing columns, bad values, too few levels)."""


class PirlsError(ArithmeticError):
    """PIRLS could not find the conditional modes (non-finite deviance after step-halving).

    Internal: the GLMM objectives catch it and report an infinite deviance, so a user sees it
    only inside a :class:`GlammError` that says what to change."""


class ConvergenceWarning(UserWarning):
    """The optimizer stopped without meeting its convergence criteria."""


class SingularFitWarning(UserWarning):
    """The estimated random-effects covariance is singular (on the boundary)."""


class ArgumentError(GlammError, TypeError):
    """A fitting function was called with an argument it does not take, or with a value of
    the wrong type (also a ``TypeError``, which Python raises for unknown keywords)."""


class MemoryEstimateError(GlammError):
    """The exact fit would need more memory than allowed (predicted before it starts, by
    :func:`glamm.estimate_lmm_cost`)."""


class ApproximateFitWarning(UserWarning):
    """A fit uses an approximation (``lmer(method="auto")`` chose the approximate method)."""

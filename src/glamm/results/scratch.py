"""Working copies of a fitted model, so that results never change the model they hold.

A result computes some quantities lazily (a Hessian for standard errors, smooth-term tests,
accuracy checks with more quadrature points) by evaluating the objective away from the
estimates, which moves the model's state (factor, conditional modes). They do it on a working
copy made here: a model built afresh on the same model frame (the data are shared), carrying
the fitted model's parameters and conditional modes. (A ``copy.deepcopy`` would not do: the
factor's kernels hold NumPy views of its blocks, and a deep copy breaks that aliasing.)
Not public API.
"""

from __future__ import annotations

from typing import Any


def working_copy(model: Any, quadrature: Any = None) -> tuple[Any, Any]:
    """``(model copy, quadrature copy)``: ``model.working_copy()`` and, if given, an
    :class:`~glamm.glmm.agq.AdaptiveQuadrature` with the same points on the copy (it reuses the
    nodes of the original's last evaluation, which depend only on the parameters)."""
    new = model.working_copy()
    if quadrature is None:
        return new, None
    from ..glmm.agq import AdaptiveQuadrature

    quad = AdaptiveQuadrature(new, quadrature.nagq)
    quad.last = quadrature.last
    return new, quad

"""PIRLS's penalized least-squares step for a model with one scalar random-effects term
(``(1 | g)``, ``(0 + x | g)``: the commonest GLMM), in one compiled pass.

Each PIRLS iteration solves, for new weights ``W`` and working response ``z``,

    [lam^2 Z'WZ + I   lam Z'WX] [u   ]   [lam Z'W z]
    [lam X'WZ         X'WX    ] [beta] = [X'W z    ]

The blocked Cholesky factor (:mod:`glamm.linalg.factor`) does this for any structure, refilling
the cross-products and factoring block by block; at a few hundred rows its dozens of NumPy
calls cost more than the arithmetic. With one scalar term ``Z'WZ`` is diagonal and the
system reduces to the ``p x p`` Schur complement in ``beta``, which
:func:`glamm.linalg._pls_kernels.scalar_term_pls` accumulates and solves in one loop over the
rows. The blocked factor stays the reference (the tests compare the two) and still factors
the system at the mode, where the log-determinant and the gradients read it.

Used only when the compiled kernels are on (:mod:`glamm.jit`). Not public API.
"""

from __future__ import annotations

import numpy as np

from .. import jit

_MODULE = "glamm.linalg._pls_kernels"


class ScalarTermPLS:
    """The iteration solve of :meth:`~glamm.glmm.model.GeneralizedLinearMixedModel.pirls` for
    one scalar term.

    Parameters
    ----------
    design : RandomDesign
        The model's random-effects design (its one term's values are read at every solve:
        factor loadings may change them).
    """

    def __init__(self, design):
        term = design.terms[0]
        self.design = design
        self.refs = np.ascontiguousarray(term.refs, dtype=np.int64)
        self.nlevels = term.nlevels
        self._no_x = np.zeros((term.refs.shape[0], 0))

    @staticmethod
    def applies(design) -> bool:
        """Whether the design is one scalar term (the structure this solve is for)."""
        return len(design.terms) == 1 and design.terms[0].p == 1

    @staticmethod
    def available() -> bool:
        """Whether the compiled kernels are on (imports numba on first call)."""
        return jit.load(_MODULE) is not None

    def solve(self, w: np.ndarray, zwork: np.ndarray, lam: float, X: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
        """``(u, beta)`` solving the system above for weights ``w``, working response
        ``zwork`` and the ``(n, p)`` fixed-effects matrix ``X`` (``None``: ``beta`` is held
        and ``zwork`` must already be net of ``X beta``; ``u`` alone, ``beta`` empty).
        Raises ``LinAlgError`` where the system is not positive definite (in the random
        effects or in ``beta``), as the blocked factor does."""
        k = jit.load(_MODULE)
        assert k is not None, "ScalarTermPLS needs the compiled kernels"
        if X is None:
            X = self._no_x
        u = np.empty(self.nlevels)
        beta = np.empty(X.shape[1])
        z = self.design.z[0].reshape(-1)
        status = k.scalar_term_pls(self.refs, z, X, np.ascontiguousarray(w, dtype=float),
                                   np.ascontiguousarray(zwork, dtype=float), float(lam),
                                   self.nlevels, u, beta)
        if status:
            raise np.linalg.LinAlgError(
                "the penalized least-squares system is not positive definite in the "
                + ("random effects" if status == 1 else "fixed effects"))
        return u, beta

    def diagonal(self, w: np.ndarray, lam: float) -> np.ndarray:
        """The diagonal of ``G = lam^2 Z'WZ + I`` for weights ``w``."""
        z = self.design.z[0].reshape(-1)
        return lam * lam * np.bincount(self.refs, weights=w * (z * z),
                                       minlength=self.nlevels) + 1.0

    def logdet(self, w: np.ndarray, lam: float) -> float | None:
        """``log det(lam^2 Z'WZ + I)`` (lme4's ``ldL2``) for weights ``w``; ``None`` where
        the matrix is not positive definite (negative observed information)."""
        d = self.diagonal(w, lam)
        if not np.all(d > 0.0):
            return None
        return float(np.sum(np.log(d)))

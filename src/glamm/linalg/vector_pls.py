"""PIRLS's penalized least-squares step for a model with one random-effects term with several
columns per level (``(1 + x | g)``, ``(x || g)`` as one term), in one compiled pass; the
vector-valued sibling of :mod:`glamm.linalg.scalar_pls`.

Each PIRLS iteration solves, for new weights ``W`` and working response ``z``,

    [Lambda'Z'WZ Lambda + I   Lambda'Z'WX] [u   ]   [Lambda'Z'W z]
    [X'WZ Lambda              X'WX       ] [beta] = [X'W z       ]

With one term ``Z'WZ`` is block diagonal (one ``P x P`` block per level), so the system
reduces to the ``p x p`` Schur complement in ``beta``;
:func:`glamm.linalg._pls_kernels.vector_term_pls` accumulates the blocks, factors them and
solves in one loop over the rows, and
:func:`~glamm.linalg._pls_kernels.vector_term_logdet` gives the Laplace log-determinant at the
mode the same way. At a few hundred rows the blocked factor's NumPy calls (refill, scale,
factor and divide per block type) cost far more than this arithmetic. The blocked factor
stays the reference (the tests compare the two) and still factors the system at the mode
when the gradients or the conditional variances need it.

Used only when the compiled kernels are on (:mod:`glamm.jit`). Not public API.
"""

from __future__ import annotations

import numpy as np

from .. import jit

_MODULE = "glamm.linalg._pls_kernels"


class VectorTermPLS:
    """The iteration solve of :meth:`~glamm.glmm.model.GeneralizedLinearMixedModel.pirls`
    for one term with ``P > 1`` columns per level.

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
        """Whether the design is one term with several columns per level."""
        return len(design.terms) == 1 and design.terms[0].p > 1

    @staticmethod
    def available() -> bool:
        """Whether the compiled kernels are on (imports numba on first call)."""
        return jit.load(_MODULE) is not None

    def _z(self) -> np.ndarray:
        return np.ascontiguousarray(self.design.z[0], dtype=float)

    def solve(self, w: np.ndarray, zwork: np.ndarray, lam: np.ndarray, X: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
        """``(u, beta)`` solving the system above for weights ``w``, working response
        ``zwork``, the term's ``P x P`` factor ``lam`` and the ``(n, p)`` fixed-effects
        matrix ``X`` (``None``: ``beta`` is held and ``zwork`` must already be net of
        ``X beta``; ``u`` alone, ``beta`` empty). Raises ``LinAlgError`` where the system is
        not positive definite (in the random effects or in ``beta``), as the blocked factor
        does."""
        k = jit.load(_MODULE)
        assert k is not None, "VectorTermPLS needs the compiled kernels"
        if X is None:
            X = self._no_x
        Z = self._z()
        u = np.empty(self.nlevels * Z.shape[1])
        beta = np.empty(X.shape[1])
        status = k.vector_term_pls(self.refs, Z, np.ascontiguousarray(X, dtype=float),
                                   np.ascontiguousarray(w, dtype=float),
                                   np.ascontiguousarray(zwork, dtype=float),
                                   np.ascontiguousarray(lam, dtype=float), self.nlevels,
                                   u, beta)
        if status:
            raise np.linalg.LinAlgError(
                "the penalized least-squares system is not positive definite in the "
                + ("random effects" if status == 1 else "fixed effects"))
        return u, beta

    def logdet(self, w: np.ndarray, lam: np.ndarray) -> float | None:
        """``log det(Lambda'Z'WZ Lambda + I)`` (lme4's ``ldL2``) for weights ``w``; ``None``
        where a level's block is not positive definite (negative observed information)."""
        k = jit.load(_MODULE)
        assert k is not None, "VectorTermPLS needs the compiled kernels"
        value = k.vector_term_logdet(self.refs, self._z(), np.ascontiguousarray(w, dtype=float),
                                     np.ascontiguousarray(lam, dtype=float), self.nlevels)
        return None if not np.isfinite(value) else float(value)

    def inverse(self, w: np.ndarray, lam: np.ndarray) -> BlockDiagonalInverse:
        """``G^{-1}`` for ``G = Lambda'Z'WZ Lambda + I`` at weights ``w``: block diagonal,
        one ``P x P`` inverse per level (what the Laplace gradient reads, without the blocked
        factor)."""
        Z = self.design.z[0]
        P = Z.shape[1]
        A = np.empty((self.nlevels, P, P))
        for a in range(P):
            wza = w * Z[:, a]
            for b in range(a + 1):
                A[:, a, b] = np.bincount(self.refs, weights=wza * Z[:, b],
                                         minlength=self.nlevels)
                A[:, b, a] = A[:, a, b]
        G = lam.T @ A @ lam + np.eye(P)
        return BlockDiagonalInverse(np.linalg.inv(G))


class BlockDiagonalInverse:
    """``G^{-1}`` of a block-diagonal ``G`` (one random-effects term: one ``P x P`` block per
    level), from the blocks' inverses ``(m, P, P)``; the interface of
    :class:`glamm.linalg.selinv.SelectedInverse` (``entries``, ``solve``)."""

    def __init__(self, blocks: np.ndarray):
        self.blocks = blocks
        self.P = blocks.shape[1]

    def entries(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``G^{-1}[i, j]`` elementwise (0 between different levels)."""
        i, j = np.broadcast_arrays(np.asarray(i), np.asarray(j))
        P = self.P
        level, a = np.divmod(i, P)
        same = level == j // P
        out = np.zeros(i.shape)
        out[same] = self.blocks[level[same], a[same], j[same] % P]
        return out

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``G^{-1} rhs`` (a vector or a matrix of columns)."""
        m, P = self.blocks.shape[:2]
        R = rhs.reshape(m, P, -1)
        return np.matmul(self.blocks, R).reshape(rhs.shape)

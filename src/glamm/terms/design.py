"""The random-effects design ``Z`` of a model, owned in one place.

``Z`` is never formed. Term ``k`` contributes, for observation ``i``, the ``p_k`` values
``z_k[i]`` to the columns of level ``refs_k[i]`` (MixedModels.jl's ``ReMat``), so every row of
``Z`` (and of ``Z Lambda``) has ``P = sum_k p_k`` nonzeros at columns known from the level codes.
:class:`RandomDesign` holds those values and answers every question about ``Z``:

- the nonzeros of ``Z Lambda`` row by row (:meth:`RandomDesign.rows`), products with them
  (:meth:`RandomDesign.matvec`, :meth:`RandomDesign.t_matvec`) and their columns
  (:attr:`RandomDesign.cols`), as the analytic gradients and the quadrature need them;
- the random effects ``b_k = (I kron lambda_k) u_k`` and the random part of the linear
  predictor ``Z b`` (:meth:`RandomDesign.random_effects`, :meth:`RandomDesign.eta_re`), for
  the fitted rows or for new data (:meth:`RandomDesign.new_data`);
- the cross-products ``A = [Z X y]' W [Z X y]`` built from it
  (:meth:`RandomDesign.crossproducts`), which it keeps in step when a term's values change
  (:meth:`RandomDesign.set_z`).

The level codes (and so the sparsity pattern of ``Z``, of ``A`` and of the Cholesky factor) are
fixed; the values ``z_k`` may change after the model is built (factor loadings will rescale
them). The terms' own ``z`` (:class:`~glamm.terms.reterm.ReTerm`) stay the data as parsed.
"""

from __future__ import annotations

import weakref
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError
from ..formula.evaluate import row_labels

if TYPE_CHECKING:  # pragma: no cover
    from ..linalg.crossprod import CrossProducts
    from .reterm import ReTerm


class RandomDesign:
    """The random-effects terms of a model with the current values of their ``z``.

    Parameters
    ----------
    reterms : list of ReTerm
        The model's terms, in the order of ``u`` (lme4's: by decreasing number of levels,
        smooths last).

    Attributes
    ----------
    terms : list of ReTerm
        The terms (level codes ``refs``, levels, column names, covariance).
    z : list of ndarray
        The current ``(n, p_k)`` values of each term (the terms' own ``z`` until
        :meth:`set_z` replaces one).
    offsets : ndarray
        Start of each term's random effects in ``u`` (``K + 1`` entries, the last is ``q``).
    q : int
        Number of random effects (columns of ``Z``).
    P : int
        Nonzeros per row of ``Z``, ``sum_k p_k``.
    term_slices : list of slice
        Each term's positions among the ``P`` nonzeros of a row.
    """

    def __init__(self, reterms: list[ReTerm]):
        self.terms = list(reterms)
        self.z = [t.z for t in self.terms]
        self.offsets = np.cumsum([0] + [t.q for t in self.terms])
        self.q = int(self.offsets[-1])
        self.term_slices: list[slice] = []
        start = 0
        for t in self.terms:
            self.term_slices.append(slice(start, start + t.p))
            start += t.p
        self.P = start
        #: the cross-product objects made from this design, by weak reference (each holds the
        #: design: strong references both ways would make a cycle that keeps a discarded
        #: model's per-row arrays alive until the cyclic garbage collector runs)
        self._crossproducts: list[weakref.ref[CrossProducts]] = []
        #: per term: a scalar term whose values are all 1 (a random intercept), for which
        #: ``Z b`` is a lookup
        self._unit_z = [self._is_unit(zk) for zk in self.z]
        #: ``Z Lambda`` and its transpose as sparse matrices sharing their values
        #: (:meth:`z_lambda`)
        self._z_lambda: tuple[sp.csr_matrix, sp.csc_matrix] | None = None
        self._z_all: np.ndarray | None = None

    def __getstate__(self) -> dict:
        # (weak references do not pickle: the live cross-products go by value, as pickle
        # keeps the cycle through their ``design``; the Z Lambda cache is not shipped: its
        # two matrices share one array of values, which a copy need not keep shared)
        state = self.__dict__.copy()
        state["_crossproducts"] = [cp for cp in (r() for r in self._crossproducts)
                                   if cp is not None]
        state["_z_lambda"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state["_crossproducts"] = [weakref.ref(cp) for cp in state["_crossproducts"]]
        self.__dict__.update(state)

    @staticmethod
    def _is_unit(z: np.ndarray) -> bool:
        return z.shape[1] == 1 and bool(np.all(z == 1.0))

    @cached_property
    def _index(self) -> _TermsIndex:
        return _terms_index(self.terms, self.offsets)

    @property
    def cols(self) -> np.ndarray:
        """``(n, P)`` column of every nonzero of ``Z`` (and of ``Z Lambda``), grouped by term
        (built on first use, shared by the designs on the same terms). Do not modify."""
        return self._index.cols

    @property
    def col_patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct rows of :attr:`cols` (``(u, P)``: the combinations of levels that
        occur) and, per row, the index of its pattern: quantities that depend on a row only
        through its columns (entries of ``G^-1`` on the row's pattern) are computed once per
        pattern (built on first use, shared as :attr:`cols`)."""
        return self._index.col_patterns

    # ------------------------------------------------------------------ Z Lambda
    def rows(self, lams: list[np.ndarray], z: list[np.ndarray] | None = None) -> np.ndarray:
        """Nonzeros of ``Z Lambda`` row by row, ``(n, P)``: ``z_k[i] lambda_k`` for each term
        (``z``: other values of the terms, e.g. for new data, default the model's)."""
        zs = self.z if z is None else z
        return np.hstack([zk @ lam for zk, lam in zip(zs, lams)])

    def z_all(self) -> np.ndarray:
        """The current values of all terms side by side, ``(n, P)`` (C-ordered; made once
        and shared by the cross-products until :meth:`set_z`). Do not modify."""
        if self._z_all is None:
            self._z_all = np.ascontiguousarray(np.hstack(self.z), dtype=float)
        return self._z_all

    def release_z_all(self) -> None:
        """Drop :meth:`z_all`'s array (made again on its next use)."""
        self._z_all = None

    def z_rows(self, z: list[np.ndarray] | None = None) -> np.ndarray:
        """Nonzeros of ``Z`` row by row, ``(n, P)`` (``z`` as in :meth:`rows`)."""
        return np.hstack(self.z if z is None else z)

    def lambda_block(self, lams: list[np.ndarray]) -> np.ndarray:
        """``blockdiag_k(lambda_k)``, ``(P, P)``: the factor acting on one row's nonzeros."""
        L = np.zeros((self.P, self.P))
        for sl, lam in zip(self.term_slices, lams):
            L[sl, sl] = lam
        return L

    def t_matvec(self, V: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``(Z Lambda)' v`` for the nonzeros ``V`` (:meth:`rows`)."""
        C = self.cols
        out = np.zeros(self.q)
        for a in range(V.shape[1]):
            out += np.bincount(C[:, a], weights=V[:, a] * v, minlength=self.q)
        return out

    def z_lambda(self, V: np.ndarray) -> tuple[sp.csr_matrix, sp.csc_matrix]:
        """``Z Lambda`` and its transpose as sparse matrices (``n x q`` and ``q x n``) with the
        nonzeros ``V`` (:meth:`rows`, for this design's rows), for products with several
        vectors at once: ``transpose @ M`` adds, for each column, the rows' terms in row order
        as :meth:`t_matvec` does (each column of ``Z`` is reached through one position of a
        row only), so the two give the same numbers. The two matrices are made once and
        share one array of values, which each call overwrites: they hold ``V`` until the next
        call. (A copy of the design, e.g. one pickled to a Dask worker, may hold the two
        with values of their own: they are then made again.)"""
        cached = self._z_lambda
        if cached is None or not np.shares_memory(cached[0].data, cached[1].data):
            indices, indptr = self._index.csr_structure
            mat = sp.csr_matrix((np.array(V, dtype=float).reshape(-1), indices, indptr),
                                shape=(V.shape[0], self.q))
            cached = self._z_lambda = (mat, mat.T)
        else:
            np.copyto(cached[0].data, V.reshape(-1))
        return cached

    def matvec(self, V: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``(Z Lambda) x`` for the nonzeros ``V`` (:meth:`rows`)."""
        return np.einsum("ia,ia->i", V, x[self.cols])

    # ------------------------------------------------------------------ u, b and Z b
    def split_u(self, u: np.ndarray) -> list[np.ndarray]:
        """The spherical random effects ``u`` (length ``q``) as one view per term."""
        return [u[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def random_effects(self, lams: list[np.ndarray], u_parts: list[np.ndarray]
                       ) -> list[np.ndarray]:
        """``b_k = (I kron lambda_k) u_k`` as ``(levels_k, p_k)`` arrays, from ``u`` split by
        term (:meth:`split_u`)."""
        return [uk.reshape(t.nlevels, t.p) @ lam.T
                for uk, t, lam in zip(u_parts, self.terms, lams)]

    def effects_by_row(self, U: np.ndarray, lams: list[np.ndarray]) -> np.ndarray:
        """Random effects ``b`` for rows ``U`` of spherical effects laid out like one row of
        ``Z`` (``(m, P)``, e.g. one row per cluster): each term's columns times
        ``lambda_k'``."""
        return np.hstack([U[:, sl] @ lam.T for sl, lam in zip(self.term_slices, lams)])

    def eta_re(self, b: list[np.ndarray], refs: list[np.ndarray] | None = None,
               z: list[np.ndarray] | None = None, terms: list[int] | None = None
               ) -> np.ndarray | float:
        """``Z b``, the random part of the linear predictor, without forming ``Z``.

        Parameters
        ----------
        b : list of ndarray
            ``(levels_k, p_k)`` random effects of each term.
        refs, z : list of ndarray, optional
            Level codes and values of each term for other rows (:meth:`new_data`); default
            the model's own. Level code ``-1`` (a level not seen in fitting) contributes 0.
        terms : list of int, optional
            Sum over these terms only (default all).

        Returns
        -------
        ndarray or float
            ``(n,)``, or ``0.0`` when no term is summed.
        """
        total = None
        for k in (range(len(self.terms)) if terms is None else terms):
            bk = b[k]
            if refs is None and z is None:
                # the fitted rows (every level code valid): PIRLS asks this every step
                r = self.terms[k].refs
                contrib = bk[r, 0] if self._unit_z[k] else np.einsum("ij,ij->i", self.z[k],
                                                                      bk[r])
            else:
                r = self.terms[k].refs if refs is None else refs[k]
                zz = self.z[k] if z is None else z[k]
                safe = np.where(r >= 0, r, 0)
                contrib = np.einsum("ij,ij->i", zz, bk[safe]) * (r >= 0)
            total = contrib if total is None else total + contrib
        return total if total is not None else 0.0

    # ------------------------------------------------------------------ new data
    def new_z(self, newdata: pd.DataFrame) -> list[np.ndarray]:
        """Each term's values for the rows of ``newdata``."""
        return [t.new_z(newdata) for t in self.terms]

    def new_data(self, newdata: pd.DataFrame, allow_new_levels: bool
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Level codes and values of every term for the rows of ``newdata`` (for
        :meth:`eta_re`). A grouped term's unseen levels get code ``-1`` if
        ``allow_new_levels``, else a :class:`~glamm.errors.DataError`; a smooth's one level is
        every row's."""
        refs, zs = [], []
        for t in self.terms:
            if not t.is_grouped:   # one level: e.g. the penalized columns of a smooth
                refs.append(np.zeros(len(newdata), dtype=np.int64))
                zs.append(t.new_z(newdata))
                continue
            missing = [f for f in t.factors if f not in newdata.columns]
            if missing:
                raise DataError(
                    f"newdata lacks grouping column(s) {missing} of term ({t.expr} | {t.group})")
            refs.append(_codes_for(newdata, t, allow_new_levels))
            zs.append(t.new_z(newdata))
        return refs, zs

    # ------------------------------------------------------------------ cross-products
    def crossproducts(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> CrossProducts:
        """The blocks of ``A = [Z X y]' W [Z X y]`` for this design (filled for ``w`` and
        ``y``); kept in step by :meth:`set_z`."""
        from ..linalg.crossprod import CrossProducts

        cp = CrossProducts(self, X, y, w)
        self._crossproducts = [r for r in self._crossproducts if r() is not None]
        self._crossproducts.append(weakref.ref(cp))
        return cp

    def set_z(self, k: int, z: np.ndarray, refill: bool = True) -> None:
        """Replace the values of term ``k`` (same shape ``(n, p_k)``; the level codes stay).

        Every cross-product object made by :meth:`crossproducts` refills the blocks that
        involve term ``k`` at once (with its last weights and response). The Cholesky factors
        built on them must then be told: call their ``refresh()`` before the next ``update``
        (the models' ``set_z`` do both). ``refill=False`` only re-indexes the values, for a
        caller that refills every block with new weights before reading them (PIRLS)."""
        z = np.asarray(z, dtype=float)
        expected = self.z[k].shape
        if z.shape != expected:
            raise ValueError(f"term {k} ({self.terms[k].group}) needs z of shape {expected}, "
                             f"got {z.shape}")
        self.z[k] = z
        self._z_all = None
        self._unit_z[k] = self._is_unit(z)
        for ref in self._crossproducts:
            cp = ref()
            if cp is not None:
                cp.refill_term(k, refill)


class _TermsIndex:
    """What a design reads from its terms' level codes alone, made on first use and shared
    by every design on the same terms (a GLMM and a result's working copy of it): the
    columns of the rows' nonzeros, their distinct patterns and the CSR structure of
    ``Z Lambda``. Nobody modifies the arrays."""

    def __init__(self, terms: list[ReTerm], offsets: np.ndarray):
        self.terms = list(terms)
        self.offsets = offsets
        self.q = int(offsets[-1])

    def matches(self, terms: list[ReTerm]) -> bool:
        return len(terms) == len(self.terms) and all(
            a.refs is b.refs and a.p == b.p and a.nlevels == b.nlevels
            for a, b in zip(terms, self.terms))

    @cached_property
    def cols(self) -> np.ndarray:
        blocks = [off + t.refs[:, None] * t.p + np.arange(t.p)[None, :]
                  for t, off in zip(self.terms, self.offsets[:-1])]
        return np.hstack(blocks)

    @cached_property
    def col_patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """(:attr:`RandomDesign.col_patterns`.) Patterns are in lexicographic order (as
        ``np.unique(cols, axis=0)``): each row is coded as one integer in base ``q`` when
        that fits in 64 bits (a 1-d sort, many times faster than sorting rows)."""
        C = self.cols
        if C.shape[1] == 0 or float(self.q) ** C.shape[1] >= 2.0 ** 62:
            patterns, index = np.unique(C, axis=0, return_inverse=True)
            return patterns, index.reshape(-1)
        key = np.zeros(C.shape[0], dtype=np.int64)
        for a in range(C.shape[1]):   # most significant first: lexicographic order
            key = key * self.q + C[:, a]
        _, first, index = np.unique(key, return_index=True, return_inverse=True)
        return C[first], index.reshape(-1)

    @cached_property
    def csr_structure(self) -> tuple[np.ndarray, np.ndarray]:
        """``indices`` and ``indptr`` of ``Z Lambda`` as an ``n x q`` CSR matrix."""
        n, P = self.cols.shape
        indices = np.ascontiguousarray(self.cols.reshape(-1), dtype=np.int32)
        indptr = np.arange(0, n * P + 1, P, dtype=np.int32)
        return indices, indptr


#: the terms' indexes in use, by the identities of the terms' level-code arrays (an entry
#: lives while a design holds it; it holds the terms, so the keys stay valid)
_TERMS_INDEXES: weakref.WeakValueDictionary[tuple, _TermsIndex] = \
    weakref.WeakValueDictionary()


def _terms_index(terms: list[ReTerm], offsets: np.ndarray) -> _TermsIndex:
    key = tuple((id(t.refs), t.p, t.nlevels) for t in terms)
    hit = _TERMS_INDEXES.get(key)
    if hit is not None and hit.matches(terms):
        return hit
    index = _TermsIndex(terms, offsets)
    _TERMS_INDEXES[key] = index
    return index


def _codes_for(newdata: pd.DataFrame, term: ReTerm, allow_new_levels: bool) -> np.ndarray:
    """Level codes of ``term``'s grouping factor in ``newdata`` (``-1`` for unseen levels)."""
    labels = row_labels(newdata, term.factors)
    index = term.level_index()
    codes = np.array([index.get(lab, -1) for lab in labels], dtype=np.int64)
    if not allow_new_levels and np.any(codes < 0):
        new = sorted(set(labels[codes < 0].tolist()))
        raise DataError(
            f"newdata has level(s) {new[:5]} of grouping factor {term.group!r} not seen in "
            "fitting; "
            "pass allow_new_levels=True to predict them with random effects of zero"
        )
    return codes

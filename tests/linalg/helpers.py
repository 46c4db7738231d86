"""Small random mixed models and their dense linear algebra, written independently of
glamm.linalg: dense ``Z`` built from each term's ``refs`` and ``z``, ``Lambda`` as
``blockdiag(I_m kron lambda_k)``, and the penalized cross-product matrix

    M = [[Lambda'Z'WZ Lambda + I, Lambda'Z'W[X y]], [[X y]'WZ Lambda, [X y]'W[X y]]]

whose lower Cholesky factor the blocked factor must reproduce (Bates et al. 2015)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glamm.linalg.crossprod import CrossProducts
from glamm.linalg.factor import BlockedCholesky
from glamm.terms.reterm import ReTerm


def make_term(refs: np.ndarray, z: np.ndarray, nlevels: int, name: str = "g") -> ReTerm:
    """A random-effects term with level codes ``refs`` and model matrix ``z``."""
    return ReTerm(group=name, levels=tuple(str(i) for i in range(nlevels)),
                  refs=np.asarray(refs, dtype=np.int64), z=np.asarray(z, dtype=float),
                  cnames=tuple(f"c{a}" for a in range(z.shape[1])), covariance=None)


def term_z(rng: np.random.Generator, n: int, p: int, ones: bool) -> np.ndarray:
    """``z`` of a term: a column of ones (intercept-only) or ``p`` columns, the first one an
    intercept when ``p > 1`` (``(1 + x | g)``) and a covariate when ``p == 1`` (``(0 + x | g)``)."""
    if ones:
        return np.ones((n, 1))
    z = rng.normal(size=(n, p))
    if p > 1:
        z[:, 0] = 1.0
    return z


@dataclass
class Model:
    """Terms, fixed effects, response, weights and iso flags of one small model."""

    terms: list
    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    iso: list

    @property
    def ps(self) -> list[int]:
        return [t.p for t in self.terms]


def build_model(rng: np.random.Generator, refs_list, ps, ones=None, iso=None, n_fixed: int = 2
                ) -> Model:
    """A model with one term per entry of ``refs_list`` (``(refs, nlevels)`` pairs)."""
    n = refs_list[0][0].shape[0]
    ones = ones or [False] * len(ps)
    terms = [make_term(refs, term_z(rng, n, p, one), m, f"g{k}")
             for k, ((refs, m), p, one) in enumerate(zip(refs_list, ps, ones))]
    X = np.column_stack([np.ones(n), rng.normal(size=(n, max(n_fixed - 1, 0)))])[:, :n_fixed]
    y = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    return Model(terms, X, y, w, list(iso) if iso else [False] * len(ps))


def covering_refs(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """Random level codes in ``0..m-1`` that use every level."""
    refs = rng.integers(0, m, size=n)
    refs[:m] = np.arange(m)
    return rng.permutation(refs)


def random_lambdas(rng: np.random.Generator, model: Model) -> list[np.ndarray]:
    """A full (not lower-triangular) ``lambda_k`` per term; ``theta I`` for iso terms."""
    out = []
    for p, iso in zip(model.ps, model.iso):
        if iso:
            out.append(rng.uniform(0.3, 2.0) * np.eye(p))
        else:
            out.append(rng.normal(size=(p, p)) + 1.5 * np.eye(p))
    return out


# --------------------------------------------------------------------------- dense algebra
def dense_z(term) -> np.ndarray:
    """The term's columns of ``Z`` (``n x levels * p``, level-major)."""
    n, p = term.z.shape
    Z = np.zeros((n, term.nlevels * p))
    for a in range(p):
        Z[np.arange(n), term.refs * p + a] = term.z[:, a]
    return Z


def dense_lambda(model: Model, lams) -> np.ndarray:
    blocks = [np.kron(np.eye(t.nlevels), lam) for t, lam in zip(model.terms, lams)]
    q = sum(b.shape[0] for b in blocks)
    out = np.zeros((q, q))
    start = 0
    for b in blocks:
        out[start:start + b.shape[0], start:start + b.shape[0]] = b
        start += b.shape[0]
    return out


def dense_zxy(model: Model) -> np.ndarray:
    return np.column_stack([dense_z(t) for t in model.terms] + [model.X, model.y])


def dense_A(model: Model) -> np.ndarray:
    """``[Z X y]' W [Z X y]``."""
    M = dense_zxy(model)
    return M.T @ (M * model.w[:, None])


def dense_M(model: Model, lams) -> np.ndarray:
    """The penalized cross-product matrix (see the module docstring)."""
    A = dense_A(model)
    q = sum(t.q for t in model.terms)
    T = np.eye(A.shape[0])
    T[:q, :q] = dense_lambda(model, lams)
    M = T.T @ A @ T
    M[:q, :q] += np.eye(q)
    return M


def offsets(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def block_sizes(model: Model) -> list[int]:
    return [t.q for t in model.terms] + [model.X.shape[1] + 1]


def factor_dense(fac: BlockedCholesky, sizes) -> np.ndarray:
    """All blocks of the blocked factor as one dense lower-triangular matrix."""
    off = offsets(sizes)
    out = np.zeros((off[-1], off[-1]))
    for i, row in enumerate(fac.L):
        for j, block in enumerate(row):
            dense = block if isinstance(block, np.ndarray) else block.to_dense()
            if i == j:
                dense = np.tril(dense)
            out[off[i]:off[i + 1], off[j]:off[j + 1]] = dense
    return out


def make_factor(model: Model) -> tuple[CrossProducts, BlockedCholesky]:
    cp = CrossProducts(model.terms, model.X, model.y, model.w)
    return cp, BlockedCholesky(cp.A, model.ps, iso=model.iso)


# --------------------------------------------------------------------------- the catalogue
def _one(seed, m, p, ones=False, iso=False, n=40, n_fixed=2):
    rng = np.random.default_rng(seed)
    return build_model(rng, [(covering_refs(rng, n, m), m)], [p], [ones], [iso], n_fixed)


def _crossed(seed, ms, ps, ones, reps=2, n_fixed=2):
    """Fully crossed grouping factors, every combination ``reps`` times."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(m) for m in ms], indexing="ij")
    refs = [np.tile(g.ravel(), reps) for g in grids]
    return build_model(rng, [(r, m) for r, m in zip(refs, ms)], ps, ones, None, n_fixed)


def _sparse_crossed(seed, ps, ones, n=30, ms=(20, 8), n_fixed=2, iso=None):
    """Grouping factors paired at random: few level pairs (sparse off-diagonal blocks)."""
    rng = np.random.default_rng(seed)
    refs = [(covering_refs(rng, n, m), m) for m in ms]
    return build_model(rng, refs, ps, ones, iso, n_fixed)


def _nested(seed, ps, ones=None, n=50, iso=None):
    """Three nested grouping factors with 20, 10 and 5 levels (finest first, as lme4 orders)."""
    rng = np.random.default_rng(seed)
    r0 = covering_refs(rng, n, 20)
    return build_model(rng, [(r0, 20), (r0 // 2, 10), (r0 // 4, 5)], ps, ones, iso)


def _smooth(seed, first_p, iso_ps, n=40, m=10):
    """Grouped terms then smooths' penalized parts (one level, ``p`` columns, ``theta I``)."""
    rng = np.random.default_rng(seed)
    refs = ([(covering_refs(rng, n, m), m)] if first_p else []) + \
        [(np.zeros(n, dtype=np.int64), 1) for _ in iso_ps]
    ps = ([first_p] if first_p else []) + list(iso_ps)
    iso = ([False] if first_p else []) + [True] * len(iso_ps)
    ones = ([first_p == 1] if first_p else []) + [False] * len(iso_ps)
    return build_model(rng, refs, ps, ones, iso)


#: name -> model factory (seeded); together they reach every kernel of the factor
MODELS = {
    "scalar_intercept": lambda: _one(1, 12, 1, ones=True),
    "scalar_slope": lambda: _one(2, 9, 1),
    "vector": lambda: _one(3, 10, 2),
    "vector3": lambda: _one(4, 6, 3, n=30),
    "crossed_dense": lambda: _crossed(5, (8, 6), (1, 1), (True, True)),
    "crossed_dense_slope": lambda: _crossed(6, (7, 4), (1, 2), (False, False)),
    "crossed_sparse": lambda: _sparse_crossed(7, (1, 2), (True, False)),
    "crossed_sparse_vector_first": lambda: _sparse_crossed(8, (2, 1), (False, True)),
    "crossed_sparse_scalars": lambda: _sparse_crossed(9, (1, 1), (True, True)),
    "nested": lambda: _nested(10, (1, 1, 1), (True, True, True)),
    "nested_vector_first": lambda: _nested(11, (2, 1, 2)),
    "nested_scalar_first": lambda: _nested(12, (1, 2, 2), (True, False, False)),
    "nested_slopes": lambda: _nested(13, (1, 1, 1)),
    "crossed3": lambda: _crossed(14, (7, 5, 4), (1, 1, 1), (True, True, True), reps=1),
    "crossed3_vector": lambda: _crossed(15, (6, 5, 3), (1, 2, 1), (True, False, True), reps=1),
    "smooth": lambda: _smooth(16, 1, (4,)),
    "smooth_only": lambda: _smooth(17, 0, (5,)),
    "smooth_vector": lambda: _smooth(18, 2, (3, 2)),
    # L[1][0] dense (3 levels meet most of the 20) and L[2][0] sparse: mixed products
    "mixed_sparse_dense": lambda: _sparse_crossed(21, (1, 1, 1), (True, True, True),
                                                  ms=(20, 3, 8)),
    "mixed_sparse_dense_vector": lambda: _sparse_crossed(22, (1, 2, 2), (True, False, False),
                                                         ms=(20, 3, 8)),
    # iso terms (lambda = theta I) with several levels, through the sparse kernels
    "crossed_sparse_iso": lambda: _sparse_crossed(23, (1, 3), (True, False),
                                                  iso=(False, True)),
    "nested_iso": lambda: _nested(24, (1, 2, 2), (True, False, False), iso=(False, True, True)),
    "nested_iso_vector_first": lambda: _nested(25, (2, 2, 1), iso=(True, False, True)),
    "no_fixed_effects": lambda: _one(19, 7, 2, n_fixed=0),
    "crossed_no_fixed_effects": lambda: _sparse_crossed(20, (1, 2), (True, False), n_fixed=0),
}

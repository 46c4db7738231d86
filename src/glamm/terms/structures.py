"""Structured covariances of a random-effects term (glmmTMB's ``diag``, ``cs``, ``homcs``,
``ar1``, ``toep``, ``ou``, ``exp``, ``gau``, ``mat``, ``rr`` and ``propto``), behind the
:class:`~glamm.terms.covariance.Covariance` protocol.

Each structure gives the covariance of one level's ``p`` effects relative to the residual
variance, ``Sigma / sigma^2 = lambda lambda'``, with ``lambda = D C``: ``D`` the diagonal of
relative standard deviations and ``C`` a square root (Cholesky factor) of the correlation
matrix. Standard deviations are bounded below by 0; every other parameter is free, mapped to
its natural range as glmmTMB does (a correlation ``rho = a / sqrt(1 + a^2)``, a range
``exp(a)``), so the optimizers need only lower bounds, and every value is a valid
(positive semi-definite) covariance: ``toep`` is parametrized by partial autocorrelations,
``cs`` by glmmTMB's map into ``(-1 / (p - 1), 1)``.

The natural parameters (correlations, ranges, loadings) are reported by
:meth:`StructuredCovariance.natural` and printed by :meth:`StructuredCovariance.describe`;
the implied covariance goes into the variance-component table like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from .covariance import Covariance, SummaryRow

#: relative step of the numerical Jacobian of the correlation factor
_JAC_STEP = 1e-6
#: above this many effects per level the variance table lists the first effect's variance
#: only (a spatial term has one effect per site)
MAX_LISTED = 12


def _rho(a: np.ndarray) -> np.ndarray:
    """glmmTMB's map from a free parameter to a correlation, ``a / sqrt(1 + a^2)``."""
    a = np.asarray(a, dtype=float)
    return a / np.sqrt(1.0 + a * a)


def _chol(R: np.ndarray) -> np.ndarray:
    """A square root ``C`` of a correlation matrix (``C C' = R``): the lower Cholesky factor,
    or, where that fails because ``R`` is positive semi-definite to rounding (a Gaussian
    kernel over nearby sites), the symmetric root with the tiny negative eigenvalues set to 0.
    Every structure here is positive semi-definite by construction, so this never changes
    the model; the objectives depend on ``C C'`` only."""
    try:
        return np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(0.5 * (R + R.T))
        if w.min() < -1e-8 * max(1.0, float(w.max())):
            raise np.linalg.LinAlgError("the correlation matrix is not positive "
                                        "semi-definite") from None
        return V * np.sqrt(np.clip(w, 0.0, None))


@dataclass(frozen=True)
class StructuredCovariance(Covariance):
    """Base of the structures: ``theta = [sds, shape parameters]``, ``lambda = D C``.

    Subclasses set ``n_sd`` (1: one SD shared by all effects; ``p``: one per effect), the
    number and names of the shape parameters, and :meth:`correlation` (the correlation matrix
    of the shape parameters).
    """

    p: int
    #: the structure's name as written in the formula
    kind: str = field(default="", init=False)
    structured = True

    # ----------------------------------------------------------- what subclasses provide
    @property
    def n_sd(self) -> int:
        return self.p

    @property
    def n_shape(self) -> int:
        return 0

    def shape_names(self) -> list[str]:
        return []

    def shape_initial(self) -> np.ndarray:
        return np.zeros(self.n_shape)

    def correlation(self, shape: np.ndarray) -> np.ndarray:
        """The ``p x p`` correlation matrix at the shape parameters."""
        return np.eye(self.p)

    def natural(self, theta: np.ndarray, sigma: float = 1.0) -> dict[str, float | list]:
        """The parameters as the structure's users know them (SDs on the data's scale with
        the residual SD ``sigma``)."""
        sd = self._sds(theta) * sigma
        return {"sd": float(sd[0]) if self.n_sd == 1 else sd.tolist()}

    def shape_natural(self, theta: np.ndarray) -> dict[str, float]:
        """The shape parameters on their natural scale (a correlation, a range), each a
        scalar function of ``theta`` (for standard errors by the delta method)."""
        return {}

    def describe(self, theta: np.ndarray, sigma: float = 1.0) -> str:
        """One line for the summary: the structure and its natural parameters."""
        parts = []
        for key, value in self.natural(theta, sigma).items():
            if isinstance(value, list):
                if len(value) > MAX_LISTED:
                    continue
                parts.append(f"{key} " + " ".join(f"{v:.4g}" for v in value))
            else:
                parts.append(f"{key} {value:.4g}")
        return f"{self.kind}: " + ", ".join(parts)

    # ----------------------------------------------------------------- the protocol
    @property
    def n_theta(self) -> int:
        return self.n_sd + self.n_shape

    def lower(self) -> np.ndarray:
        return np.concatenate([np.zeros(self.n_sd), np.full(self.n_shape, -np.inf)])

    def initial(self) -> np.ndarray:
        return np.concatenate([np.ones(self.n_sd), self.shape_initial()])

    def _sds(self, theta: np.ndarray) -> np.ndarray:
        sd = np.asarray(theta, dtype=float)[:self.n_sd]
        return np.broadcast_to(sd, (self.p,)) if self.n_sd == 1 else sd

    def _factor(self, theta: np.ndarray) -> np.ndarray:
        """``C``, the Cholesky factor of the correlation matrix."""
        shape = np.asarray(theta, dtype=float)[self.n_sd:]
        return _chol(self.correlation(shape))

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return self._sds(theta)[:, None] * self._factor(theta)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=float)
        C = self._factor(theta)
        sd = self._sds(theta)
        out = np.zeros((self.n_theta, self.p, self.p))
        if self.n_sd == 1:
            out[0] = C
        else:
            for i in range(self.p):
                out[i, i, :] = C[i, :]
        for r in range(self.n_sd, self.n_theta):
            h = _JAC_STEP * max(1.0, abs(theta[r]))
            up, down = theta.copy(), theta.copy()
            up[r] += h
            down[r] -= h
            dC = (self._factor(up) - self._factor(down)) / (2.0 * h)
            out[r] = sd[:, None] * dC
        return out

    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        sds = ["sd"] if self.n_sd == 1 else [f"sd.{c}" for c in cnames]
        return sds + self.shape_names()

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        return bool(np.any(np.asarray(theta, dtype=float)[:self.n_sd] < tol))

    def summary_rows(self, S: np.ndarray, names: tuple[str, ...]) -> list[SummaryRow]:
        """Variances and all correlations for small ``p``; only the first effect's variance
        beyond :data:`MAX_LISTED` effects (the structure's line says the rest)."""
        if self.p > MAX_LISTED:
            return [(names[0], None, S[0, 0], math.sqrt(S[0, 0]))]
        return super().summary_rows(S, names)


# --------------------------------------------------------------------------- the structures
@dataclass(frozen=True)
class Diagonal(StructuredCovariance):
    """glmmTMB's ``diag``: independent effects, one SD each (``lambda`` diagonal)."""

    kind: str = field(default="diag", init=False)
    jacobian_is_constant = True

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return np.diag(np.asarray(theta, dtype=float))

    def summary_rows(self, S: np.ndarray, names: tuple[str, ...]) -> list[SummaryRow]:
        return [(nm, None, S[i, i], math.sqrt(S[i, i])) for i, nm in enumerate(names)]


@dataclass(frozen=True)
class CompoundSymmetry(StructuredCovariance):
    """glmmTMB's ``cs`` (one SD per effect, one common correlation) or, with
    ``homogeneous``, ``homcs`` (one SD): ``rho = logistic(a) (1 + 1 / (p - 1)) - 1 / (p - 1)``
    (glmmTMB's map), which keeps ``rho`` in ``(-1 / (p - 1), 1)`` where the matrix is
    positive definite."""

    homogeneous: bool = False
    kind: str = field(default="cs", init=False)

    def __post_init__(self) -> None:
        if self.homogeneous:
            object.__setattr__(self, "kind", "homcs")

    @property
    def n_sd(self) -> int:
        return 1 if self.homogeneous else self.p

    @property
    def n_shape(self) -> int:
        return 1 if self.p > 1 else 0

    def shape_names(self) -> list[str]:
        return ["rho"] if self.p > 1 else []

    def _cs_rho(self, a: float) -> float:
        low = 1.0 / (self.p - 1)
        return float(special.expit(a) * (1.0 + low) - low)

    def correlation(self, shape: np.ndarray) -> np.ndarray:
        if self.p == 1:
            return np.eye(1)
        r = self._cs_rho(float(shape[0]))
        return (1.0 - r) * np.eye(self.p) + r

    def shape_natural(self, theta: np.ndarray) -> dict[str, float]:
        return {"rho": self._cs_rho(float(theta[self.n_sd]))} if self.p > 1 else {}

    def natural(self, theta: np.ndarray, sigma: float = 1.0) -> dict[str, float | list]:
        return {**super().natural(theta, sigma), **self.shape_natural(theta)}


@dataclass(frozen=True)
class AR1(StructuredCovariance):
    """glmmTMB's ``ar1``: one SD, correlation ``rho^|i - j|`` between effects ``i`` and ``j``
    (the columns in order, equally spaced), ``rho = a / sqrt(1 + a^2)``."""

    kind: str = field(default="ar1", init=False)

    @property
    def n_sd(self) -> int:
        return 1

    @property
    def n_shape(self) -> int:
        return 1

    def shape_names(self) -> list[str]:
        return ["rho"]

    def correlation(self, shape: np.ndarray) -> np.ndarray:
        r = float(_rho(shape[0]))
        lag = np.abs(np.arange(self.p)[:, None] - np.arange(self.p)[None, :])
        return r ** lag

    def shape_natural(self, theta: np.ndarray) -> dict[str, float]:
        return {"rho": float(_rho(theta[1]))}

    def natural(self, theta: np.ndarray, sigma: float = 1.0) -> dict[str, float | list]:
        return {**super().natural(theta, sigma), **self.shape_natural(theta)}

    def summary_rows(self, S: np.ndarray, names: tuple[str, ...]) -> list[SummaryRow]:
        k = len(names) if self.p <= MAX_LISTED else 1
        return [(names[i], None, S[i, i], math.sqrt(S[i, i])) for i in range(k)]


def lag_correlations(partial: np.ndarray) -> np.ndarray:
    """The autocorrelations ``rho_1 .. rho_m`` of the partial autocorrelations
    ``phi_11 .. phi_mm`` (each in ``(-1, 1)``), by the Durbin-Levinson recursion: every such
    sequence gives a positive-definite Toeplitz correlation matrix, and every one arises."""
    m = partial.size
    rho = np.zeros(m)
    phi = np.zeros(0)
    for k in range(m):
        pk = float(partial[k])
        if k == 0:
            rho[0] = pk
            phi = np.array([pk])
            continue
        rho[k] = float(phi @ rho[k - 1::-1]) + pk * (1.0 - float(phi @ rho[:k]))
        phi = np.concatenate([phi - pk * phi[::-1], [pk]])
    return rho


@dataclass(frozen=True)
class Toeplitz(StructuredCovariance):
    """glmmTMB's ``toep``: one SD per effect and a correlation per lag. glamm's parameters
    are the partial autocorrelations ``a_k / sqrt(1 + a_k^2)`` (Durbin-Levinson gives the lag
    correlations), so every value is a positive-definite matrix and the optimizer never meets
    an invalid one; the same model as glmmTMB's, which maps the lag correlations directly.
    The summary reports the lag correlations."""

    kind: str = field(default="toep", init=False)

    @property
    def n_shape(self) -> int:
        return self.p - 1

    def shape_names(self) -> list[str]:
        return [f"pacf.lag{k}" for k in range(1, self.p)]

    def correlation(self, shape: np.ndarray) -> np.ndarray:
        r = np.concatenate([[1.0], lag_correlations(_rho(shape))])
        lag = np.abs(np.arange(self.p)[:, None] - np.arange(self.p)[None, :])
        return r[lag]

    def shape_natural(self, theta: np.ndarray) -> dict[str, float]:
        r = lag_correlations(_rho(theta[self.n_sd:]))
        return {f"rho.lag{k + 1}": float(v) for k, v in enumerate(r)}

    def natural(self, theta: np.ndarray, sigma: float = 1.0) -> dict[str, float | list]:
        out = super().natural(theta, sigma)
        out["lag correlations"] = lag_correlations(_rho(theta[self.n_sd:])).tolist()
        return out


@dataclass(frozen=True)
class Spatial(StructuredCovariance):
    """Correlation as a function of the distance between the effects' coordinates, one SD:
    glmmTMB's ``exp`` (``exp(-d / phi)``), ``gau`` (``exp(-d^2 / phi^2)``), ``ou``
    (``exp(-d / phi)`` on one time axis; glmmTMB writes ``exp(-exp(a) d)``, the same
    with ``phi = exp(-a)``) and ``mat`` (Matérn with range ``phi`` and smoothness
    ``kappa``, estimated or fixed), ``phi = exp(a)``.

    Parameters
    ----------
    p : int
        Number of effects (sites).
    coords : tuple of tuples
        Each effect's coordinates (``p`` rows of equal length).
    function : str
        ``"exp"``, ``"gau"``, ``"ou"`` or ``"mat"``.
    kappa : float or None
        The Matérn smoothness when fixed (``None``: estimated, on the log scale).
    """

    coords: tuple = ()
    function: str = "exp"
    kappa: float | None = None
    kind: str = field(default="exp", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", self.function)

    @property
    def n_sd(self) -> int:
        return 1

    @property
    def n_shape(self) -> int:
        return 2 if self.function == "mat" and self.kappa is None else 1

    def shape_names(self) -> list[str]:
        names = ["log(range)"]
        return names + ["log(kappa)"] if self.n_shape == 2 else names

    def distances(self) -> np.ndarray:
        X = np.asarray(self.coords, dtype=float)
        diff = X[:, None, :] - X[None, :, :]
        return np.sqrt(np.sum(diff * diff, axis=-1))

    def shape_initial(self) -> np.ndarray:
        d = self.distances()
        positive = d[d > 0]
        scale = float(np.median(positive)) if positive.size else 1.0
        start = [math.log(scale)]
        return np.array(start + [0.0] if self.n_shape == 2 else start)

    def correlation(self, shape: np.ndarray) -> np.ndarray:
        d = self.distances()
        phi = math.exp(float(shape[0]))
        if self.function in ("exp", "ou"):
            return np.exp(-d / phi)
        if self.function == "gau":
            return np.exp(-(d / phi) ** 2)
        kappa = self.kappa if self.kappa is not None else self._free_kappa(float(shape[1]))
        return matern(d, phi, kappa)

    @staticmethod
    def _free_kappa(a: float) -> float:
        """An estimated smoothness, ``exp(a)`` held at most :data:`MAX_KAPPA` (beyond it the
        Matérn function is a Gaussian kernel to any practical precision, and Bessel
        functions of such order overflow)."""
        return min(math.exp(a), MAX_KAPPA)

    def shape_natural(self, theta: np.ndarray) -> dict[str, float]:
        out = {"range": math.exp(float(theta[1]))}
        if self.function == "mat" and self.kappa is None:
            out["kappa"] = self._free_kappa(float(theta[2]))
        return out

    def natural(self, theta: np.ndarray, sigma: float = 1.0) -> dict[str, float | list]:
        out = {**super().natural(theta, sigma), **self.shape_natural(theta)}
        if self.function == "mat" and self.kappa is not None:
            out["kappa"] = self.kappa
        return out

    def summary_rows(self, S: np.ndarray, names: tuple[str, ...]) -> list[SummaryRow]:
        k = len(names) if self.p <= MAX_LISTED else 1
        return [(names[i], None, S[i, i], math.sqrt(S[i, i])) for i in range(k)]


#: the largest Matérn smoothness estimated (see :meth:`Spatial._free_kappa`)
MAX_KAPPA = 50.0


def matern(d: np.ndarray, phi: float, kappa: float) -> np.ndarray:
    """The Matérn correlation ``2^(1-kappa) / Gamma(kappa) (d/phi)^kappa K_kappa(d/phi)``
    (1 at distance 0; glmmTMB's ``mat`` with range ``phi`` and smoothness ``kappa``)."""
    u = np.asarray(d, dtype=float) / phi
    out = np.ones_like(u)
    pos = u > 0
    up = u[pos]
    # on the log scale: Gamma(kappa) and u^kappa overflow separately for large kappa
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        log_k = np.log(special.kve(kappa, up)) - up
        val = np.exp((1.0 - kappa) * math.log(2.0) - special.gammaln(kappa)
                     + kappa * np.log(up) + log_k)
    out[pos] = np.where(np.isfinite(val), np.minimum(val, 1.0), 1.0)
    return out


@dataclass(frozen=True)
class ReducedRank(StructuredCovariance):
    """glmmTMB's ``rr(..., d)``: ``Sigma / sigma^2 = L L'`` with ``L`` a ``p x d`` matrix of
    loadings, zero above its diagonal (``theta`` holds ``L`` by columns, lower trapezoid);
    ``lambda = [L 0]``. The loadings are identified up to sign (and rotation for ``d > 1``):
    compare the implied covariance."""

    d: int = 1
    kind: str = field(default="rr", init=False)
    jacobian_is_constant = True

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        rows = [i for j in range(self.d) for i in range(j, self.p)]
        cols = [j for j in range(self.d) for _ in range(j, self.p)]
        return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)

    @property
    def n_sd(self) -> int:
        return 0

    @property
    def n_theta(self) -> int:
        return sum(self.p - j for j in range(self.d))

    def lower(self) -> np.ndarray:
        return np.full(self.n_theta, -np.inf)

    def initial(self) -> np.ndarray:
        rows, cols = self._index()
        return np.where(rows == cols, 1.0, 0.0)

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        lam = np.zeros((self.p, self.p))
        rows, cols = self._index()
        lam[rows, cols] = theta
        return lam

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        rows, cols = self._index()
        out = np.zeros((self.n_theta, self.p, self.p))
        out[np.arange(self.n_theta), rows, cols] = 1.0
        return out

    def theta_names(self, cnames: tuple[str, ...]) -> list[str]:
        rows, cols = self._index()
        return [f"loading{j + 1}.{cnames[i]}" for i, j in zip(rows, cols)]

    def is_singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        lam = self.lambda_(theta)[:, :self.d]
        return bool(np.linalg.svd(lam, compute_uv=False)[-1] < tol)

    def natural(self, theta: np.ndarray, sigma: float = 1.0) -> dict[str, float | list]:
        lam = self.lambda_(theta)[:, :self.d] * sigma
        return {f"loadings{j + 1}": lam[:, j].tolist() for j in range(self.d)}

    def describe(self, theta: np.ndarray, sigma: float = 1.0) -> str:
        return f"rr (d = {self.d}): " + "; ".join(
            f"{k} " + " ".join(f"{v:.4g}" for v in np.atleast_1d(vals))
            for k, vals in self.natural(theta, sigma).items())


@dataclass(frozen=True)
class Proportional(StructuredCovariance):
    """glmmTMB's ``propto``: ``Sigma = sd^2 K`` for a known positive-definite ``K`` (a
    relationship or phylogenetic matrix), one parameter; ``lambda = sd chol(K)``."""

    K: tuple = ()
    kind: str = field(default="propto", init=False)
    jacobian_is_constant = True

    @property
    def n_sd(self) -> int:
        return 1

    def _factor(self, theta: np.ndarray) -> np.ndarray:
        return _chol(np.asarray(self.K, dtype=float))

    def lambda_(self, theta: np.ndarray) -> np.ndarray:
        return float(np.asarray(theta).ravel()[0]) * self._factor(theta)

    def summary_rows(self, S: np.ndarray, names: tuple[str, ...]) -> list[SummaryRow]:
        k = len(names) if self.p <= MAX_LISTED else 1
        return [(names[i], None, S[i, i], math.sqrt(S[i, i])) for i in range(k)]


#: the structures by the name used in formulas (``us`` is lme4's unstructured default)
STRUCTURES = ("us", "diag", "cs", "homcs", "ar1", "toep", "ou", "exp", "gau", "mat", "rr",
              "propto")

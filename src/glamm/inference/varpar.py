"""The variance parameters of a linear mixed model on the standard-deviation / correlation
scale (lme4's ``profile`` and ``confint`` parameters) and their names.

Each random-effects term with an unstructured covariance (``(x | g)``, also the scalar terms
``(1 | g)`` and those ``||`` splits into) contributes, in the order of its ``theta`` (the lower
triangle of ``lambda`` by columns), a standard deviation for each diagonal position and a
correlation for each position below it; the residual SD ``sigma`` follows. lme4 names them
``.sig01``, ``.sig02``, ..., ``.sigma``; the clearer aliases say what each is:
``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma``.

:class:`SdCorMap` converts between this vector and ``(theta, sigma)``: the covariance of a
term is ``Sigma = D R D`` (``D`` the SDs, ``R`` the correlations) and ``lambda`` its Cholesky
factor divided by ``sigma``. Not public API.
"""

from __future__ import annotations

import numpy as np

from ..errors import GlammError
from ..terms.covariance import ScaledIdentity, Unstructured, _tril
from ..terms.reterm import group_labels


def psd_cholesky(S: np.ndarray, tol: float = 1e-12) -> np.ndarray | None:
    """Lower Cholesky factor of a positive semi-definite ``S`` (a zero column where a pivot
    vanishes, as at a zero variance or a correlation of +-1); ``None`` if ``S`` is not
    positive semi-definite."""
    p = S.shape[0]
    L = np.zeros_like(S, dtype=float)
    scale = max(float(np.max(np.abs(np.diag(S)))), 1e-300)
    for j in range(p):
        d = S[j, j] - float(L[j, :j] @ L[j, :j])
        if d < -tol * scale:
            return None
        if d <= tol * scale:
            # a vanishing pivot: what remains of this column must vanish too
            rest = S[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-8 * scale):
                return None
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (S[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


class SdCorMap:
    """The standard-deviation / correlation parameters of an LMM's terms and residual.

    Parameters
    ----------
    reterms : list of ReTerm
        The model's terms; each must have an unstructured covariance (or be a smooth's
        scaled identity, one SD).
    with_sigma : bool
        Whether the vector ends with the residual SD (LMMs: yes).
    """

    def __init__(self, reterms, with_sigma: bool = True):
        self.reterms = list(reterms)
        self.with_sigma = with_sigma
        for t in self.reterms:
            if not isinstance(t.covariance, Unstructured | ScaledIdentity):
                raise GlammError(
                    f"profiles and intervals on the SD / correlation scale need unstructured "
                    f"covariances (x | g) or scalar terms; the term ({t.expr} | {t.group}) has "
                    f"a {type(t.covariance).__name__} structure")
        self.n_theta = sum(t.n_theta for t in self.reterms)
        self.size = self.n_theta + (1 if with_sigma else 0)
        kinds, aliases = [], []
        labels = group_labels(self.reterms)
        for t, label in zip(self.reterms, labels):
            names = t.summary_names
            if isinstance(t.covariance, ScaledIdentity):
                kinds.append("sd")
                aliases.append(f"sd_{names[0]}|{label}")
                continue
            rows, cols = _tril(t.p)
            for i, j in zip(rows, cols):
                if i == j:
                    kinds.append("sd")
                    aliases.append(f"sd_{names[i]}|{label}")
                else:
                    kinds.append("cor")
                    aliases.append(f"cor_{names[i]}.{names[j]}|{label}")
        if with_sigma:
            kinds.append("sigma")
            aliases.append("sigma")
        #: "sd", "cor" or "sigma" for each position
        self.kinds = kinds
        #: lme4's names: .sig01, .sig02, ..., .sigma
        self.names = [f".sig{k + 1:02d}" for k in range(self.n_theta)] + (
            [".sigma"] if with_sigma else [])
        #: the descriptive names (lme4's ``oldNames = FALSE``)
        self.aliases = aliases

    def lower(self) -> np.ndarray:
        """0 for SDs, -1 for correlations."""
        return np.array([-1.0 if k == "cor" else 0.0 for k in self.kinds])

    def upper(self) -> np.ndarray:
        """1 for correlations, infinity else."""
        return np.array([1.0 if k == "cor" else np.inf for k in self.kinds])

    def from_theta(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """The SD / correlation vector of ``theta`` and the residual SD."""
        out: list[float] = []
        k = 0
        for t in self.reterms:
            m = t.n_theta
            lam = t.covariance.lambda_(np.asarray(theta[k:k + m], dtype=float))
            k += m
            if isinstance(t.covariance, ScaledIdentity):
                out.append(sigma * float(lam[0, 0]))
                continue
            S = sigma**2 * (lam @ lam.T)
            sd = np.sqrt(np.maximum(np.diag(S), 0.0))
            rows, cols = _tril(t.p)
            for i, j in zip(rows, cols):
                if i == j:
                    out.append(float(sd[i]))
                else:
                    den = sd[i] * sd[j]
                    out.append(float(S[i, j] / den) if den > 0 else 0.0)
        if self.with_sigma:
            out.append(float(sigma))
        return np.array(out)

    def to_theta(self, v: np.ndarray, sigma: float | None = None) -> np.ndarray | None:
        """``theta`` for the SD / correlation vector ``v`` (the residual SD from ``v`` itself,
        or ``sigma`` when the vector has none); ``None`` where the correlations do not form a
        positive semi-definite matrix or the residual SD is not positive."""
        v = np.asarray(v, dtype=float)
        s = float(v[-1]) if self.with_sigma else float(sigma if sigma is not None else 1.0)
        if not s > 0:
            return None
        out: list[np.ndarray] = []
        k = 0
        for t in self.reterms:
            m = t.n_theta
            part = v[k:k + m]
            k += m
            if isinstance(t.covariance, ScaledIdentity):
                out.append(np.array([part[0] / s]))
                continue
            rows, cols = _tril(t.p)
            sd = np.zeros(t.p)
            R = np.eye(t.p)
            for val, i, j in zip(part, rows, cols):
                if i == j:
                    sd[i] = val
                else:
                    R[i, j] = R[j, i] = val
            L = psd_cholesky(sd[:, None] * R * sd[None, :])
            if L is None:
                return None
            out.append(L[rows, cols] / s)
        return np.concatenate(out) if out else np.zeros(0)


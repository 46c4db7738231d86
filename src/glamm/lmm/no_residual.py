"""Linear mixed models without a residual (``dispformula="~ 0"``): the random-effects
structure carries all the variance, as glmmTMB's ``dispformula = ~0`` with an ``us``,
``ar1`` or ``toep`` covariance over repeated measures.

With one random-effects term and no residual, the observations of group ``g`` are
``N(X_g beta, sigma^2 M_g)`` with ``M_g = Z_g lambda lambda' Z_g'`` (``Z_g`` the term's rows
of the group): a generalized least-squares problem. Its profiled deviance (ML) or REML
criterion is computed exactly, group by group (groups of equal size in one batched
Cholesky), instead of through the penalized system, whose residual weights would be
infinite. ``M_g`` must be positive definite: each group's rows must be linearly independent
in ``Z_g`` (e.g. no two observations of one subject at the same time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, FormulaError
from ..formula.design import ModelFrame
from ..terms.layout import ThetaLayout

_LOG2PI = float(np.log(2.0 * np.pi))


@dataclass
class ExactFit:
    """The estimates of a model without a residual at its ``theta``: ``beta``, its
    covariance, the scale ``sigma`` (``Sigma = sigma^2 lambda lambda'``), the criterion
    (``-2 log L`` or the REML criterion), the ML deviance and the random effects (one
    ``(levels, p)`` array)."""

    beta: np.ndarray
    vcov: np.ndarray
    sigma: float
    objective: float
    deviance: float
    b: list[np.ndarray]
    #: the model whose criterion this is (standard errors differentiate it)
    marginal: object = None


class MarginalModel:
    """The exact marginal likelihood of a one-term LMM without a residual.

    Parameters
    ----------
    frame : ModelFrame
        The model (one grouped random-effects term).
    reml : bool
        REML criterion (default) or the ML deviance.

    Raises
    ------
    FormulaError
        Not exactly one random-effects term.
    """

    def __init__(self, frame: ModelFrame, reml: bool = True):
        if len(frame.reterms) != 1:
            raise FormulaError("dispformula='~ 0' (no residual) needs exactly one "
                               "random-effects term, whose structure carries all the variance")
        self.frame = frame
        self.reml = reml
        self.term = frame.reterms[0]
        w = np.asarray(frame.weights, dtype=float)
        if not np.allclose(w, 1.0):
            raise DataError("dispformula='~ 0' (no residual) does not take prior weights")
        y = frame.y - frame.offset
        X = frame.X
        refs = self.term.refs
        order = np.argsort(refs, kind="stable")
        counts = np.bincount(refs, minlength=self.term.nlevels)
        starts = np.concatenate([[0], np.cumsum(counts)])
        # groups of equal size are batched: size -> (levels, row indices (levels x size))
        self.batches: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for size in np.unique(counts[counts > 0]):
            levels = np.flatnonzero(counts == size)
            rows = np.stack([order[starts[g]:starts[g] + size] for g in levels])
            self.batches[int(size)] = (levels, rows)
        self.y, self.X, self.z = y, X, self.term.z
        self.n, self.p = X.shape
        self.layout = ThetaLayout(frame.reterms)
        self.theta: np.ndarray | None = None

    # the parts of LinearMixedModel's interface that glamm.lmm.fit.optimize_theta uses
    def theta_lower(self) -> np.ndarray:
        return self.layout.lower()

    def theta_initial(self) -> np.ndarray:
        """lme4's start, or for an unstructured covariance of indicator columns (``us(0 + f
        | g)``, the usual model without a residual) the Cholesky factor of the empirical
        covariance of the least-squares residuals, which is close to the optimum."""
        from ..terms.covariance import Unstructured

        default = self.layout.initial()
        z = self.z
        if not isinstance(self.term.covariance, Unstructured) or not (
                np.all((z == 0) | (z == 1)) and np.all(z.sum(axis=1) == 1)):
            return default
        beta = np.linalg.lstsq(self.X, self.y, rcond=None)[0] if self.p else np.zeros(0)
        r = self.y - self.X @ beta
        P = np.zeros((self.term.nlevels, z.shape[1]))
        seen = np.zeros_like(P)
        col = np.argmax(z, axis=1)
        P[self.term.refs, col] = r
        seen[self.term.refs, col] = 1.0
        counts = seen.T @ seen
        if np.any(counts < 2):
            return default
        S = (P.T @ P) / counts
        try:
            L = np.linalg.cholesky(S / np.mean(np.diag(S)))
        except np.linalg.LinAlgError:
            return default
        return np.concatenate([L[j:, j] for j in range(L.shape[0])])

    def set_theta(self, theta: np.ndarray) -> None:
        self.theta = np.asarray(theta, dtype=float).copy()

    def _pieces(self, lam: np.ndarray):
        """Per batch: Cholesky factors of ``M_g`` and the whitened ``X``, ``y``; the sum of
        the log-determinants."""
        S = lam @ lam.T
        out = []
        logdet = 0.0
        for levels, rows in self.batches.values():
            Zg = self.z[rows]                                   # G x size x p
            M = np.einsum("gip,pq,gjq->gij", Zg, S, Zg)
            try:
                L = np.linalg.cholesky(M)
            except np.linalg.LinAlgError:
                raise np.linalg.LinAlgError("a group's covariance is singular") from None
            logdet += 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
            Xy = np.concatenate([self.X[rows], self.y[rows][:, :, None]], axis=2)
            W = _solve_lower(L, Xy)                             # whitened [X y]
            out.append((levels, rows, L, W[:, :, :-1], W[:, :, -1]))
        return out, logdet

    def _gls(self, pieces) -> tuple[np.ndarray, np.ndarray, float, float]:
        p = self.p
        XtX = np.zeros((p, p))
        Xty = np.zeros(p)
        yty = 0.0
        for _, _, _, Xw, yw in pieces:
            XtX += np.einsum("gia,gib->ab", Xw, Xw)
            Xty += np.einsum("gia,gi->a", Xw, yw)
            yty += float(np.sum(yw * yw))
        if p:
            C = np.linalg.cholesky(XtX)
            beta = np.linalg.solve(XtX, Xty)
            logdet_x = 2.0 * float(np.sum(np.log(np.diag(C))))
        else:
            beta, logdet_x = np.zeros(0), 0.0
        rss = yty - float(Xty @ beta)
        return beta, XtX, max(rss, 0.0), logdet_x

    def objective(self, theta: np.ndarray) -> float:
        """The ML deviance or REML criterion at ``theta`` (``inf`` where a group's
        covariance is singular)."""
        try:
            return self._evaluate(theta)[0]
        except np.linalg.LinAlgError:
            return float("inf")

    def _evaluate(self, theta: np.ndarray, reml: bool | None = None):
        reml = self.reml if reml is None else reml
        lam = self.term.covariance.lambda_(np.asarray(theta, dtype=float))
        pieces, logdet = self._pieces(lam)
        beta, XtX, rss, logdet_x = self._gls(pieces)
        if not rss > 0:
            return float("inf"), pieces, beta, XtX, rss
        if reml:
            nmp = self.n - self.p
            val = logdet + logdet_x + nmp * (1.0 + _LOG2PI + np.log(rss / nmp))
        else:
            val = logdet + self.n * (1.0 + _LOG2PI + np.log(rss / self.n))
        return float(val), pieces, beta, XtX, rss

    def fit_at(self, theta: np.ndarray) -> ExactFit:
        """The estimates at ``theta`` (the optimum)."""
        value, pieces, beta, XtX, rss = self._evaluate(theta)
        deviance = self._evaluate(theta, reml=False)[0]
        denom = self.n - self.p if self.reml else self.n
        sigma2 = rss / denom
        vcov = sigma2 * np.linalg.inv(XtX) if self.p else np.zeros((0, 0))
        lam = self.term.covariance.lambda_(np.asarray(theta, dtype=float))
        S = lam @ lam.T
        t = self.term
        b = np.zeros((t.nlevels, t.p))
        r_all = self.y - self.X @ beta
        for levels, rows, L, _, _ in pieces:
            Zg = self.z[rows]
            rw = _solve_lower(L, r_all[rows][:, :, None])            # L^-1 r
            Mr = _solve_upper(L, rw)[:, :, 0]                          # M^-1 r
            b[levels] = np.einsum("pq,giq,gi->gp", S, Zg, Mr)
        return ExactFit(beta=beta, vcov=vcov, sigma=float(np.sqrt(sigma2)), objective=value,
                        deviance=deviance, b=[b], marginal=self)


def _solve_lower(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``L^-1 B`` for a stack of lower-triangular ``L`` (G x n x n) and ``B`` (G x n x k)."""
    return np.linalg.solve(L, B)


def _solve_upper(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``L'^-1 B`` for a stack of lower-triangular ``L``."""
    return np.linalg.solve(np.swapaxes(L, 1, 2), B)

"""One partition's rows of a GLMM fitted on partitioned data: the sums each PIRLS iteration
needs, computed where the rows are.

A GLMM's penalized least-squares step needs ``A = [Z X z]' W [Z X z]`` for the working
weights ``W`` and working response ``z`` at the current modes, and its step-halving the
log-likelihood there. Both are sums over rows, so :class:`PartitionRows` (one partition's
numeric frame, coded against the whole data's levels) turns a :class:`PassRequest` (``beta``,
the random effects ``b`` per level, the response parameters) into a :class:`PassResult`
(the log-likelihood and, if asked, the blocks of ``A``), and :func:`merge_results` adds
them. The IRLS of the starting GLM is the same with ``Z`` left out (:class:`GlmSums`). No Dask
here: :mod:`glamm.scale.dask_glmm` ships these objects to the workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..formula.design import ModelFrame
from ..glmm.pirls import newton_weights
from ..glmm.response import ResponseModel
from ..linalg.blocks import copy_blocks
from ..linalg.crossprod import CrossProducts
from ..terms.design import RandomDesign
from .metadata import ModelColumns, kept_rows
from .partials import FrameArgs, _add_block

#: the weights a pass fills ``A`` with: Fisher's (scoring steps, lme4's Laplace
#: log-determinant) or those of :func:`glamm.glmm.pirls.newton_weights` (``"newton"`` and
#: ``"positive"``: Newton steps for non-canonical links; ``"safeguarded"``: after a step
#: overshot; ``"observed"``: the exact Laplace log-determinant)
WEIGHTS = ("fisher", "newton", "positive", "safeguarded", "observed")


@dataclass(frozen=True)
class PassRequest:
    """What one pass over the partitions evaluates.

    Attributes
    ----------
    beta : ndarray
        Fixed effects (with ``b``, the linear predictor ``X beta + Z b + offset``).
    b : list of ndarray or None
        Random effects per term, ``(levels, p)``; ``None``: the family's starting means
        (PIRLS's cold start; ``beta`` then only enters the working response when held).
    parameters : ndarray
        The response parameters (log dispersion), as ``ResponseModel.set_parameters``.
    weights : str or None
        Fill ``A`` with these weights (:data:`WEIGHTS`), or ``None``: the log-likelihood only.
    held : bool
        ``beta`` is held: ``A`` is ``[Z z]' W [Z z]`` with ``z`` net of ``X beta``; otherwise
        ``[Z X z]' W [Z X z]`` (``beta`` moves with the modes).
    re_only : bool
        Only the random-effects blocks of ``A`` (the Laplace log-determinant at a mode).
    """

    beta: np.ndarray
    b: list[np.ndarray] | None
    parameters: np.ndarray
    weights: str | None = "fisher"
    held: bool = False
    re_only: bool = False


@dataclass
class PassResult:
    """Sums of one pass over some partitions: the log-likelihood (all constants) and the
    blocks of ``A`` (``None`` when not asked), the number of rows and whether every row's
    linear predictor is in the link's domain."""

    loglik: float
    A: list[list] | None
    n: int
    valid: bool = True


def merge_results(a: PassResult | None, b: PassResult | None) -> PassResult | None:
    """The :class:`PassResult` of the rows of ``a`` and ``b`` together."""
    if a is None or b is None:
        return a if b is None else b
    A = None
    if a.A is not None and b.A is not None:
        A = [[_add_block(x, y) for x, y in zip(ra, rb)] for ra, rb in zip(a.A, b.A)]
    return PassResult(loglik=a.loglik + b.loglik, A=A, n=a.n + b.n, valid=a.valid and b.valid)


@dataclass
class GlmSums:
    """Sums of one IRLS pass of the starting GLM: ``X'WX``, ``X'Wz``, the deviance, the
    Pearson statistic ``sum wt (y - mu)^2 / V(mu)`` and the rows (``ok`` false where a weight
    or working response was not finite: no valid start)."""

    XtWX: np.ndarray
    XtWz: np.ndarray
    deviance: float
    pearson: float
    n: int
    ok: bool = True


def merge_glm(a: GlmSums | None, b: GlmSums | None) -> GlmSums | None:
    """The :class:`GlmSums` of the rows of ``a`` and ``b`` together."""
    if a is None or b is None:
        return a if b is None else b
    return GlmSums(a.XtWX + b.XtWX, a.XtWz + b.XtWz, a.deviance + b.deviance,
                   a.pearson + b.pearson, a.n + b.n, a.ok and b.ok)


@dataclass
class PartitionRows:
    """One partition's numeric GLMM frame and its working cross-products.

    Attributes
    ----------
    frame : ModelFrame
        The partition's frame (``glm_response``), aliased fixed-effects columns dropped.
    response : ResponseModel
        The family on these rows (its parameters are set from each request).
    design : RandomDesign
        The partition's random-effects design (level codes of the whole data).
    """

    frame: ModelFrame
    response: ResponseModel
    design: RandomDesign
    #: the working cross-products ``[Z X z]' W [Z X z]``, built on first use and refilled
    #: in place afterwards
    _cp: CrossProducts | None = field(default=None, repr=False)

    @classmethod
    def build(cls, part: Any, args: FrameArgs, columns: ModelColumns,
              x_keep: np.ndarray | None, family: Any) -> PartitionRows | None:
        """The rows of one partition that the model keeps (``columns``: those with a missing
        value are dropped; ``None`` when none is left), aliased columns (``x_keep`` false)
        dropped."""
        mask, _, _ = kept_rows(part, columns)
        if not mask.any():
            return None
        frame = args.frame(part)
        if x_keep is not None and not x_keep.all():
            frame = dataclasses.replace(frame, X=frame.X[:, x_keep])
        wt = frame.weights * (frame.trials if frame.trials is not None else 1.0)
        return cls(frame, ResponseModel(frame.y, wt, family), RandomDesign(frame.reterms))

    @property
    def n(self) -> int:
        return self.frame.n

    def _eta(self, beta: np.ndarray, b: list[np.ndarray]) -> np.ndarray:
        return np.asarray(self.frame.X @ beta + self.frame.offset + self.design.eta_re(b),
                          dtype=float)

    def evaluate(self, req: PassRequest) -> PassResult:
        """The log-likelihood at the request's linear predictor (the family's starting means
        for ``b = None``: then ``-inf``, as PIRLS's cold start has no deviance) and, if asked,
        the blocks of ``A`` with the request's weights and the working response there."""
        resp, fr = self.response, self.frame
        if req.parameters.size:
            resp.set_parameters(req.parameters)
        link = resp.family.link
        if req.b is None:
            mu = resp.family.mustart(fr.y, resp.wt)
            eta = link.link(mu)
            loglik = -np.inf
        else:
            eta = self._eta(req.beta, req.b)
            with np.errstate(all="ignore"):
                mu = link.inverse(eta)
                loglik = float(resp.loglik(mu))
        valid = bool(link.valid_eta(eta))
        if req.weights is None:
            return PassResult(loglik=loglik, A=None, n=self.n, valid=valid)
        with np.errstate(all="ignore"):
            w, mu_eta = resp.fisher_weights(eta, mu)
            zwork = eta - fr.offset + resp.working_residual(eta, mu, w, mu_eta)
            if req.weights != "fisher":
                w, zwork = newton_weights(resp, fr.offset, eta, mu, w, zwork, req.weights)
        if req.held:
            zwork = zwork - fr.X @ req.beta
        if self._cp is None:
            self._cp = self.design.crossproducts(fr.X, zwork, w)
        else:
            self._cp.update(w, zwork, re_only=req.re_only)
        A = self._cp.A
        if req.held:   # [Z z]: the X rows left out (one set of cross-products serves both)
            K = len(A) - 1
            A = A[:K] + [[blk[-1:] for blk in A[K][:K]] + [A[K][K][-1:, -1:]]]
        return PassResult(loglik=loglik, A=copy_blocks(A), n=self.n, valid=valid)

    def gradient_sums(self, req: Any) -> Any:
        """This partition's sums of the Laplace gradient
        (:func:`glamm.scale.glmm_gradient.gradient_sums`)."""
        from .glmm_gradient import gradient_sums

        return gradient_sums(self, req)

    def glm_pass(self, beta: np.ndarray | None) -> GlmSums:
        """One IRLS pass of the GLM without random effects at ``beta`` (``None``: the
        family's starting means)."""
        resp, fr = self.response, self.frame
        fam, link = resp.family, resp.family.link
        with np.errstate(all="ignore"):
            if beta is None:
                mu = fam.mustart(fr.y, resp.wt)
                eta = link.link(mu)
            else:
                eta = fr.X @ beta + fr.offset
                mu = link.inverse(eta)
            mu_eta = link.mu_eta(eta)
            w, _ = fam.fisher_weights(eta, mu, resp.wt, 1.0, mu_eta=mu_eta)
            resid = fam.working_residual(fr.y, mu, eta, resp.wt, 1.0, w, mu_eta)
            z = eta - fr.offset + resid
            dev = float(np.sum(fam.deviance_residuals(fr.y, mu, resp.wt)))
            pearson = float(np.sum(resp.wt * (fr.y - mu) ** 2 / fam.variance(mu)))
        ok = bool(np.all(np.isfinite(w)) and np.all(w >= 0) and np.all(np.isfinite(z)))
        Xw = fr.X * w[:, None]
        return GlmSums(XtWX=fr.X.T @ Xw, XtWz=Xw.T @ z, deviance=dev, pearson=pearson,
                       n=self.n, ok=ok)


"""The linear mixed model as a function of ``theta``: the profiled deviance (ML and REML).

For fixed ``theta`` the model ``y = X beta + Z Lambda u + e``, ``u ~ N(0, s2 I)``,
``e ~ N(0, s2 W^{-1})`` reduces to a penalized least-squares problem whose solution, log
determinants and penalized residual sum of squares are read off the blocked Cholesky factor
(Bates et al. 2015, eqs. 34 and 41):

    ML:    d(theta)  = ldL2 - sum(log w) + n (1 + log(2 pi pwrss / n))
    REML:  dR(theta) = ldL2 + ldRX2 - sum(log w) + (n - p) (1 + log(2 pi pwrss / (n - p)))

The objective reads as three steps: :meth:`LinearMixedModel.set_theta` (per-term ``lambda``),
``factor.update`` and :meth:`LinearMixedModel.objective_from_factor`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GlammError
from ..formula.design import ModelFrame
from ..linalg.blocks import copy_blocks
from ..linalg.factor import BlockedCholesky
from ..linalg.one_term import OneTermDeviance
from ..terms.design import RandomDesign
from ..terms.layout import ThetaLayout

if TYPE_CHECKING:  # pragma: no cover
    from .gradient import ProfiledGradient

_LOG2PI = float(np.log(2.0 * np.pi))
#: from this many rows the model drops its cross-products' per-row refill arrays once ``A``
#: is filled (``CrossProducts.compact``: about 70 bytes a row); a new response or new values
#: of ``z`` make them again (smaller models keep them: their refits stay as fast as they are)
COMPACT_ROWS = 100_000


class LinearMixedModel:
    """Profiled-deviance objective of an LMM; holds the random-effects design, the
    cross-products ``A`` (``cp``, kept so that :meth:`set_z` can refill them) and the factor
    ``L``.

    Parameters
    ----------
    frame : ModelFrame
        The numeric model (:class:`~glamm.formula.design.ModelFrame`).
    reml : bool
        REML criterion if true, ML otherwise.
    """

    def __init__(self, frame: ModelFrame, reml: bool = True):
        if frame.y.shape[0] != frame.n:
            # (a PartitionedFrame: glamm.scale; copies go through copy_with)
            raise GlammError("this needs the rows of the data: the model frame of a fit on "
                             "partitioned (Dask) data keeps only their cross-products; fit "
                             "the model on a pandas DataFrame for it")
        design = RandomDesign(frame.reterms)
        # (without an offset the response itself: y - 0 is y, bit for bit)
        y = frame.y - frame.offset if frame.offset.any() or frame.y.dtype != np.float64 \
            else frame.y
        self.cp = design.crossproducts(frame.X, y, frame.weights)
        if frame.n >= COMPACT_ROWS:
            self.cp.compact()
        self._setup(frame, design, self.cp.A, reml, float(np.log(frame.weights).sum()),
                    frame.n)

    def _setup(self, frame: ModelFrame, design: RandomDesign, A: list[list], reml: bool,
               sum_log_w: float, n: int) -> None:
        """Everything but the cross-products: the factor on ``A``, the ``theta`` layout and
        the constants of the deviance (also the set-up of a model whose ``A`` was summed over
        the partitions of a data set, :mod:`glamm.scale.model`)."""
        self.frame = frame
        self.reml = bool(reml)
        self.reterms = frame.reterms
        self.design = design
        self.A = A
        self.factor = self._make_factor()
        self.layout = ThetaLayout(self.reterms)
        self.theta_slices = self.layout.slices
        self.n_theta = self.layout.n_theta
        self.sum_log_w = sum_log_w
        self.n = n
        self.p = frame.X.shape[1]
        self.theta: np.ndarray | None = None
        #: one random-effects term: the optimizers' evaluations in one compiled pass
        #: (:meth:`objective_value`), the blocked factor for everything else
        self._one_term = OneTermDeviance(self.A) if OneTermDeviance.applies(self.A) else None
        self._gradient: ProfiledGradient | None = None   # made on first use

    def copy_with(self, reml: bool | None = None) -> LinearMixedModel:
        """A fresh model on the same data (its own cross-products and factor, no ``theta``
        set), by REML or ML (default: this model's criterion)."""
        return LinearMixedModel(self.frame, reml=self.reml if reml is None else reml)

    def single_term_model(self, k: int) -> LinearMixedModel:
        """The model with term ``k`` alone (and the fixed effects), for warm starts: its
        cross-products are copies of this model's blocks ``A[k][k]``, ``A[K][k]`` and
        ``A[K][K]`` (the same sums, in the same order, as a fill from the rows), so it makes
        no pass over the rows and holds no per-row arrays. It has no ``cp``: it evaluates
        the objective only (no new response or values of ``z``)."""
        K = len(self.A) - 1
        sub = LinearMixedModel.__new__(LinearMixedModel)
        sub.cp = None   # type: ignore[assignment]
        term = self.reterms[k]
        sub._setup(dataclasses.replace(self.frame, reterms=[term]), RandomDesign([term]),
                   copy_blocks([[self.A[k][k]], [self.A[K][k], self.A[K][K]]]), self.reml,
                   self.sum_log_w, self.n)
        return sub

    def _make_factor(self):
        """The factor of the penalized system (a subclass may use another, e.g. the
        approximate method's :class:`~glamm.lmm.approximate.KrylovFactor`)."""
        return BlockedCholesky(self.A, [t.p for t in self.reterms],
                               iso=[t.covariance.is_scaled_identity for t in self.reterms])

    # ------------------------------------------------------------------ theta layout
    def theta_lower(self) -> np.ndarray:
        return self.layout.lower()

    def theta_initial(self) -> np.ndarray:
        return self.layout.initial()

    def theta_names(self) -> list[str]:
        return self.layout.names()

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        return self.layout.lambdas(theta)

    def set_z(self, k: int, z: np.ndarray) -> None:
        """Replace the values of term ``k``'s ``z`` (same shape): the design refills ``A``
        and the factor is refreshed, so the objective is that of the model built with ``z``."""
        self.design.set_z(k, z)
        self.factor.refresh()
        self.theta = None

    def set_response(self, y: np.ndarray) -> None:
        """Replace the response (same rows; the frame's offset is still subtracted): the
        cross-products are refilled and the factor refreshed, with no symbolic work, so the
        objective is that of the model built with ``y`` (profiles of fixed effects, parametric
        bootstrap)."""
        y = np.asarray(y, dtype=float)
        if y.shape != (self.n,):
            raise GlammError(f"the response must have {self.n} rows, got shape {y.shape}")
        self.cp.update(self.frame.weights, y - self.frame.offset)
        self.factor.refresh()
        self.theta = None

    # ------------------------------------------------------------------ objective
    def set_theta(self, theta: np.ndarray) -> None:
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (self.n_theta,):
            raise GlammError(f"theta must have length {self.n_theta}, got {theta.shape}")
        self.factor.update(self.lambdas(theta))
        self.theta = theta.copy()

    def objective_from_factor(self, reml: bool | None = None) -> float:
        reml = self.reml if reml is None else reml
        f = self.factor
        n, p = self.n, self.p
        pwrss = f.pwrss()
        if reml:
            nmp = n - p
            return f.logdet_re() + f.logdet_fixed() - self.sum_log_w + nmp * (
                1.0 + _LOG2PI + np.log(pwrss / nmp))
        return f.logdet_re() - self.sum_log_w + n * (1.0 + _LOG2PI + np.log(pwrss / n))

    def deviance_at(self, sigma: float, reml: bool | None = None) -> float:
        """The deviance (ML) or REML criterion at the factor's ``theta`` with the residual SD
        ``sigma`` given rather than profiled out (``beta`` still is): ``ldL2 [+ ldRX2] -
        sum(log w) + pwrss / sigma^2 + n' log(2 pi sigma^2)``, ``n' = n`` (ML) or ``n - p``
        (REML). At ``sigma^2 = pwrss / n'`` it equals :meth:`objective_from_factor`. For the
        profiles and the Satterthwaite degrees of freedom, which treat ``sigma`` as a
        parameter."""
        reml = self.reml if reml is None else reml
        f = self.factor
        s2 = float(sigma) ** 2
        df = self.n - self.p if reml else self.n
        val = f.logdet_re() - self.sum_log_w + f.pwrss() / s2 + df * (_LOG2PI + np.log(s2))
        return float(val + f.logdet_fixed()) if reml else float(val)

    def objective(self, theta: np.ndarray) -> float:
        """The profiled deviance (ML) or REML criterion at ``theta``; ``inf`` where the factor
        does not exist (this can only happen for a degenerate ``[X y]`` block)."""
        try:
            self.set_theta(theta)
        except np.linalg.LinAlgError:
            return float("inf")
        val = self.objective_from_factor()
        return float(val) if np.isfinite(val) else float("inf")

    def objective_value(self, theta: np.ndarray) -> float:
        """:meth:`objective` without leaving the factor at ``theta`` (the optimizers need only
        the value): for one random-effects term in one compiled pass, else the same as
        :meth:`objective`."""
        one = self._one_term
        if one is None or not one.available():
            return self.objective(theta)
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (self.n_theta,):
            raise GlammError(f"theta must have length {self.n_theta}, got {theta.shape}")
        got = one.pieces(self.lambdas(theta)[0])
        if got is None:
            return float("inf")
        ldl2, ldrx2, pwrss = got
        n, p = self.n, self.p
        if self.reml:
            nmp = n - p
            val = ldl2 + ldrx2 - self.sum_log_w + nmp * (1.0 + _LOG2PI + np.log(pwrss / nmp))
        else:
            val = ldl2 - self.sum_log_w + n * (1.0 + _LOG2PI + np.log(pwrss / n))
        return float(val) if np.isfinite(val) else float("inf")

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its gradient in ``theta`` (:mod:`glamm.lmm.gradient`): for one
        random-effects term in one compiled pass without filling the blocked factor, else
        :meth:`objective` and :class:`~glamm.lmm.gradient.ProfiledGradient`. ``inf`` (and a
        zero gradient) where the factor does not exist."""
        theta = np.asarray(theta, dtype=float)
        one = self._one_term
        if one is None or not one.available():
            if self._gradient is None:
                from .gradient import ProfiledGradient as Gradient
                self._gradient = Gradient(self)
            val = self.objective(theta)
            if not np.isfinite(val):
                return float("inf"), np.zeros(self.n_theta)
            return val, self._gradient(theta)
        if theta.shape != (self.n_theta,):
            raise GlammError(f"theta must have length {self.n_theta}, got {theta.shape}")
        term = self.reterms[0]
        got = one.pieces_and_gradients(term.lambda_(theta), term.covariance.jacobian(theta),
                                       self.reml)
        if got is None:
            return float("inf"), np.zeros(self.n_theta)
        ldl2, ldrx2, pwrss, g_ld, g_pw = got
        n_eff = self.n - self.p if self.reml else self.n
        val = (ldl2 + (ldrx2 if self.reml else 0.0) - self.sum_log_w
               + n_eff * (1.0 + _LOG2PI + np.log(pwrss / n_eff)))
        if not np.isfinite(val):
            return float("inf"), np.zeros(self.n_theta)
        return float(val), g_ld + (n_eff / pwrss) * g_pw

    def working_copy(self) -> LinearMixedModel:
        """A model on the same data whose evaluations leave this one untouched (its factor
        is built afresh and set to this model's ``theta``)."""
        new = self.copy_with()
        if self.theta is not None:
            new.set_theta(self.theta)
        return new

    # ------------------------------------------------------------------ estimates at theta
    def sigma(self) -> float:
        denom = self.n - self.p if self.reml else self.n
        return float(np.sqrt(self.factor.pwrss() / denom))

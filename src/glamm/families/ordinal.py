"""Cumulative link models for ordinal responses (R's ``ordinal::clm`` / ``clmm``) as a family.

The response is a category ``y in {1, ..., K}``; with thresholds ``theta_1 < ... < theta_{K-1}``
(``theta_0 = -inf``, ``theta_K = inf``) and a linear predictor ``eta`` without an intercept,

    P(y <= k | eta) = F(theta_k - eta),
    log p(y | eta) = log(F(theta_y - eta) - F(theta_{y-1} - eta))

with ``F`` the logistic, normal or Gumbel-min (``cloglog``: ``1 - exp(-exp(x))``) distribution
function, as ordinal defines them. The family sees ``eta`` directly (its "link" is the identity,
``mu = eta``); the cumulative link is :attr:`Ordinal.cumulative`. The thresholds are the family's
own free parameters (:meth:`Ordinal.extra_names`), optimized unconstrained as ``theta_1`` and the
logs of the increments ``theta_k - theta_{k-1}``. PIRLS needs weights and a working response:
the weights are the information in ``eta`` (positive, as ``F`` has a log-concave density) and
the working residual is score / weight (:meth:`Ordinal.working_residual`).
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from ..errors import DataError
from .base import Family
from .links import get_link
from .numeric import _arr

#: the cumulative links: distribution function, its upper tail, density and its derivative
CUMULATIVE_LINKS = ("logit", "probit", "cloglog")


#: where the densities are 0 to double precision: arguments are clipped to these bounds, so
#: that the tails (and the infinite thresholds theta_0, theta_K) need no special cases
_PROBIT_CAP = 40.0
_CLOGLOG_CAP = (-745.0, 700.0)
#: the Gumbel density and its derivatives are 0 beyond 40 (``exp(40 - exp(40))``), and
#: ``exp(x)^2`` stays finite below it
_CLOGLOG_DENSITY_CAP = (-745.0, 40.0)


def cdf(link: str, x: np.ndarray) -> np.ndarray:
    """``F(x)`` of the cumulative link (unclipped: ordinal's ``plogis``, ``pnorm`` and
    ``1 - exp(-exp(x))``)."""
    if link == "logit":
        return special.expit(x)
    if link == "probit":
        return special.ndtr(x)
    return -np.expm1(-np.exp(np.minimum(x, _CLOGLOG_CAP[1])))


def sf(link: str, x: np.ndarray) -> np.ndarray:
    """``1 - F(x)``, accurate in the upper tail."""
    if link == "logit":
        return special.expit(-x)
    if link == "probit":
        return special.ndtr(-x)
    return np.exp(-np.exp(np.minimum(x, _CLOGLOG_CAP[1])))


def pdf(link: str, x: np.ndarray) -> np.ndarray:
    """``f(x) = F'(x)`` (0 at ``+-inf``)."""
    if link == "logit":
        e = np.exp(-np.abs(x))
        return e / (1.0 + e) ** 2
    if link == "probit":
        x = np.clip(x, -_PROBIT_CAP, _PROBIT_CAP)
        return np.exp(-0.5 * x * x) * _INV_SQRT_2PI
    x = np.clip(x, *_CLOGLOG_DENSITY_CAP)
    return np.exp(x - np.exp(x))


def dpdf(link: str, x: np.ndarray) -> np.ndarray:
    """``f'(x)`` (0 at ``+-inf``)."""
    if link == "logit":
        return -pdf(link, x) * np.tanh(0.5 * x)   # f (1 - 2F)
    if link == "probit":
        x = np.clip(x, -_PROBIT_CAP, _PROBIT_CAP)
        return -x * pdf(link, x)
    x = np.clip(x, *_CLOGLOG_DENSITY_CAP)
    return pdf(link, x) * (1.0 - np.exp(x))


def d2pdf(link: str, x: np.ndarray) -> np.ndarray:
    """``f''(x)`` (0 at ``+-inf``)."""
    if link == "logit":
        f = pdf(link, x)
        t = np.tanh(0.5 * x)   # 2F - 1
        return f * t * t - 2.0 * f * f
    if link == "probit":
        x = np.clip(x, -_PROBIT_CAP, _PROBIT_CAP)
        return (x * x - 1.0) * pdf(link, x)
    x = np.clip(x, *_CLOGLOG_DENSITY_CAP)
    e = np.exp(x)
    return pdf(link, x) * ((1.0 - e) ** 2 - e)


_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


class Ordinal(Family):
    """Cumulative link family for an ordered categorical response coded ``1, ..., K``.

    Parameters
    ----------
    link : str, optional
        the cumulative link: ``"logit"`` (default, proportional odds), ``"probit"`` or
        ``"cloglog"``.
    levels : sequence of str
        the response's categories in order (``K >= 2``); the thresholds are named
        ``"1|2"``, ... after them, as ordinal names them.
    thresholds : array_like, optional
        increasing thresholds ``theta_1 < ... < theta_{K-1}`` (default: those of equal
        category probabilities at ``eta = 0``).

    Raises
    ------
    DataError
        an unknown link, fewer than two levels or thresholds that are not increasing.
    """

    name = "ordinal"
    r_name = "cumulative"
    canonical_link = "identity"
    valid_links = ("identity",)
    analytic_extra_gradient = True
    newton_pirls = True
    concave_loglik = True   # F has a log-concave density: log p is concave in eta
    #: the GLMM fit starts from the cumulative link model without random effects, the
    #: thresholds fitted with the fixed effects (as ordinal's clmm starts from clm), and its
    #: first search holds them there and moves theta
    refine_glm_start = True
    hold_start_in_search = True

    def __init__(self, link: str = "logit", levels=("1", "2"), thresholds=None) -> None:
        name = get_link(link).name if not isinstance(link, str) or link not in CUMULATIVE_LINKS \
            else link
        if name not in CUMULATIVE_LINKS:
            raise DataError(f"ordinal family: link {name!r} is not available; use one of "
                            + ", ".join(CUMULATIVE_LINKS))
        super().__init__(None)
        #: the cumulative link's name (``F``'s family)
        self.cumulative = name
        self.levels = [str(v) for v in levels]
        if len(self.levels) < 2:
            raise DataError("ordinal family: the response needs at least two levels")
        k = len(self.levels) - 1
        if thresholds is None:
            probs = np.arange(1, k + 1) / (k + 1)
            thresholds = self._quantile(probs)
        self.thresholds = self._checked(np.asarray(thresholds, dtype=float), k)

    @staticmethod
    def _checked(theta: np.ndarray, k: int) -> np.ndarray:
        if theta.shape != (k,) or not np.all(np.isfinite(theta)) or np.any(np.diff(theta) <= 0):
            raise DataError(f"ordinal family: need {k} finite increasing thresholds, got {theta}")
        return theta

    def _quantile(self, p: np.ndarray) -> np.ndarray:
        """``F^{-1}(p)``."""
        if self.cumulative == "logit":
            return special.logit(p)
        if self.cumulative == "probit":
            return special.ndtri(p)
        return np.log(-np.log1p(-p))

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def threshold_names(self) -> list[str]:
        """ordinal's names: ``"1|2"``, ``"2|3"``, ... from the levels."""
        return [f"{a}|{b}" for a, b in zip(self.levels[:-1], self.levels[1:], strict=True)]

    @property
    def link_name(self) -> str:
        return self.cumulative

    @property
    def link_is_canonical(self) -> bool:
        # the observed and expected information in eta differ for every cumulative link
        return False

    def _params(self) -> tuple:
        return (type(self), self.cumulative, tuple(self.levels), tuple(self.thresholds))

    def __repr__(self) -> str:
        return f"Ordinal(link={self.cumulative!r}, levels={self.levels!r})"

    # ------------------------------------------------------- the thresholds as parameters
    def extra_names(self) -> list[str]:
        names = self.threshold_names
        return [names[0]] + [f"log({b} - {a})" for a, b in zip(names[:-1], names[1:],
                                                                 strict=True)]

    def extra_values(self) -> np.ndarray:
        return threshold_parameters(self.thresholds)

    def with_extra(self, values: np.ndarray) -> Ordinal:
        new = copy.copy(self)
        new.thresholds = thresholds_from_parameters(np.asarray(values, dtype=float))
        return new

    def extra_start(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """The thresholds of the marginal cumulative proportions (``F^{-1}`` of them, as
        ordinal starts), shifted by the mean linear predictor ``mu`` of the start."""
        counts = np.bincount(np.round(y).astype(int), weights=wt,
                             minlength=self.n_levels + 1)[1:]
        cum = np.cumsum(counts)[:-1] / max(float(np.sum(counts)), 1e-300)
        cum = np.clip(cum, 1e-4, 1 - 1e-4)
        theta = self._quantile(cum) + float(np.average(mu, weights=wt)) if np.sum(wt) > 0 \
            else self._quantile(cum)
        # empty categories: keep the thresholds increasing
        theta = np.maximum.accumulate(theta) + 1e-3 * np.arange(theta.size)
        return threshold_parameters(theta)

    def extra_derivatives(self, y, eta, wt, observed: bool):
        """Per row, the derivatives in the unconstrained threshold parameters at fixed
        ``eta`` of the log-density, the score and the observed information (``n x (K-1)``
        each; each row depends on ``theta_y`` and ``theta_{y-1}`` only); ``None`` for the
        expected information (the response model then takes differences)."""
        if not observed:
            return None
        y, wt = self._prep(y, wt)
        link = self.cumulative
        a, b = self._bounds(y, _arr(eta))
        p = self._prob(a, b)
        fa, fb = pdf(link, a), pdf(link, b)
        ga, gb = dpdf(link, a), dpdf(link, b)
        ha, hb = d2pdf(link, a), d2pdf(link, b)
        d1, d2 = fa - fb, ga - gb
        s = -d1 / p
        # derivatives in theta_y (through a) and theta_{y-1} (through b)
        ds_a = -ga / p + d1 * fa / p**2
        ds_b = gb / p - d1 * fb / p**2
        parts = {
            "l": (fa / p, -fb / p),
            "s": (ds_a, ds_b),
            "w": (2.0 * s * ds_a - ha / p + d2 * fa / p**2,
                  2.0 * s * ds_b + hb / p - d2 * fb / p**2),
        }
        k = _codes(y)
        m = self.n_levels - 1
        rows = np.arange(k.size)
        J = self._threshold_jacobian()
        out = []
        for key in ("l", "s", "w"):
            upper, lower = parts[key]
            M = np.zeros((k.size, m + 2))
            M[rows, k] += upper
            M[rows, k - 1] += lower
            out.append((wt[:, None] * M[:, 1:-1]) @ J)
        dlp, ds, dw = out
        return dlp, ds, dw

    def _threshold_jacobian(self) -> np.ndarray:
        """``d theta / d p`` for the unconstrained parameters ``p``."""
        inc = np.diff(self.thresholds)
        J = np.tril(np.ones((inc.size + 1, inc.size + 1)))
        J[:, 1:] *= inc[None, :]
        return J

    # ------------------------------------------------------------------ the distribution
    @property
    def thresholds(self) -> np.ndarray:
        """``theta_1, ..., theta_{K-1}``."""
        return self._ext[1:-1]

    @thresholds.setter
    def thresholds(self, theta: np.ndarray) -> None:
        self._ext = np.concatenate([[-np.inf], np.asarray(theta, dtype=float), [np.inf]])
        self._last = None

    def _bounds(self, y: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``a = theta_y - eta`` and ``b = theta_{y-1} - eta``."""
        ext = self._ext
        k = _codes(y)
        return ext[k] - eta, ext[k - 1] - eta

    def _prob(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``F(a) - F(b)`` for ``a > b``, from the upper tails where both are positive."""
        link = self.cumulative
        upper = b > 0
        return np.where(upper, sf(link, b) - sf(link, a), cdf(link, a) - cdf(link, b))

    def _derivatives(self, y, eta):
        """``p``, ``dp/deta`` and ``d2p/deta2`` per row (the last answer is kept: PIRLS asks
        for the score and the curvature at the same ``eta``)."""
        eta = _arr(eta)
        last = self._last
        if last is not None and last[0] is y and last[1].shape == eta.shape \
                and np.array_equal(last[1], eta):
            return last[2]
        a, b = self._bounds(y, eta)
        link = self.cumulative
        p = self._prob(a, b)
        out = (p, -(pdf(link, a) - pdf(link, b)), dpdf(link, a) - dpdf(link, b))
        self._last = (y, eta.copy(), out)
        return out

    def probabilities(self, eta) -> np.ndarray:
        """Category probabilities ``P(y = k | eta)``, ``(n, K)``."""
        eta = _arr(eta).reshape(-1, 1)
        ext = self._ext
        return self._prob(ext[None, 1:] - eta, ext[None, :-1] - eta)

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:
        a, b = self._bounds(y, mu)
        return wt * np.log(self._prob(a, b))

    def unit_deviance(self, y, mu) -> np.ndarray:
        """``-2 log p(y | eta)`` (the saturated model of an ordinal response has likelihood
        1 per row, so this is ordinal's deviance)."""
        a, b = self._bounds(y, _arr(mu))
        return -2.0 * np.log(self._prob(a, b))

    def variance(self, mu) -> np.ndarray:
        # no GLM variance function: the weights come from fisher_weights below
        return np.ones_like(_arr(mu))

    def variance_deriv(self, mu) -> np.ndarray:
        return np.zeros_like(_arr(mu))

    def mustart(self, y, wt=None) -> np.ndarray:
        """Starting linear predictor 0 (the thresholds carry the location)."""
        return np.zeros_like(_arr(y))

    def _validate_support(self, y: np.ndarray, wt: np.ndarray) -> None:
        k = np.round(y)
        self._fail_if((np.abs(y - k) > 0) | (k < 1) | (k > self.n_levels),
                      f"the response must be a category code 1..{self.n_levels}")

    # --------------------------------------------------------------- derivatives in eta
    def dloglik_deta(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        p, dp, _ = self._derivatives(y, eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            return wt * dp / p

    def d2loglik_deta2(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        y, wt = self._prep(y, wt)
        p, dp, d2p = self._derivatives(y, eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = dp / p
            return wt * (d2p / p - s * s)

    def fisher_weights(self, eta, mu, wt, dispersion=1.0,
                       mu_eta=None) -> tuple[np.ndarray, np.ndarray]:
        """Expected information in ``eta``: ``sum_k (f(theta_k - eta) - f(theta_{k-1} -
        eta))^2 / p_k`` over the categories (``mu_eta`` is 1: ``mu = eta``)."""
        eta = _arr(eta)
        e = eta.reshape(-1, 1)
        ext = self._ext
        a, b = ext[None, 1:] - e, ext[None, :-1] - e
        link = self.cumulative
        dp = pdf(link, a) - pdf(link, b)
        p = self._prob(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            info = np.sum(np.where(p > 0, dp * dp / p, 0.0), axis=1).reshape(eta.shape)
        return _arr(wt) * info, np.ones_like(eta)

    def fisher_weights_deta(self, eta, mu, wt, dispersion=1.0) -> np.ndarray:
        """``d w / d eta`` of :meth:`fisher_weights` by central differences."""
        eta = _arr(eta)
        h = 1e-4 * np.maximum(1.0, np.abs(eta))
        up = self.fisher_weights(eta + h, eta + h, wt)[0]
        down = self.fisher_weights(eta - h, eta - h, wt)[0]
        return (up - down) / (2.0 * h)

    def working_residual(self, y, mu, eta, wt, dispersion, w, mu_eta) -> np.ndarray:
        """Score over weight: the working response ``eta + s / w`` makes a weighted least
        squares step a scoring (or Newton) step in ``eta``."""
        s = self.dloglik_deta(y, mu, eta, wt)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(w > 0, s / w, 0.0)

    def sample(self, mu, wt, dispersion, rng):
        """Categories ``1, ..., K`` with the cumulative link's probabilities at ``eta``."""
        prob = self.probabilities(mu)
        cdf = np.cumsum(prob, axis=1)
        u = rng.random(prob.shape[0]) * cdf[:, -1]
        return (np.argmax(cdf >= u[:, None], axis=1) + 1).astype(float)


_CODES: list = []


def _codes(y) -> np.ndarray:
    """Integer category codes of ``y`` (kept for the last few arrays: PIRLS and quadrature
    pass the same response array hundreds of times)."""
    for arr, codes in _CODES:
        if arr is y:
            return codes
    codes = np.round(_arr(y)).astype(int)
    if isinstance(y, np.ndarray):
        _CODES.insert(0, (y, codes))
        del _CODES[4:]
    return codes


def threshold_parameters(theta: np.ndarray) -> np.ndarray:
    """The unconstrained parameters of increasing thresholds: ``theta_1`` and
    ``log(theta_k - theta_{k-1})``."""
    theta = np.asarray(theta, dtype=float)
    return np.concatenate([theta[:1], np.log(np.diff(theta))])


def thresholds_from_parameters(values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`threshold_parameters`."""
    values = np.asarray(values, dtype=float)
    return np.cumsum(np.concatenate([values[:1], np.exp(values[1:])]))

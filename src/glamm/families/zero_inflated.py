"""Zero-inflated and hurdle count models (glmmTMB's ``ziformula``), as a family with a second
linear predictor.

With ``pi_i = logistic(Z_i gamma)`` (``Z`` the design of ``ziformula``) and ``f`` the count
family (Poisson or negative binomial, mean ``mu = exp(eta)``):

- zero inflation: ``p(0) = pi + (1 - pi) f(0)``, ``p(y) = (1 - pi) f(y)`` for ``y > 0``;
- hurdle (glmmTMB's ``truncated_*`` families): ``p(0) = pi``, ``p(y) = (1 - pi) f(y) / (1 -
  f(0))`` for ``y > 0`` (a zero-truncated count part).

:class:`ZeroInflated` is a :class:`~glamm.families.Family` bound to the model's rows (``Z`` has
one row per observation). Its own parameters (:meth:`extra_names`) are the count family's
(a negative binomial's size) and ``gamma``, estimated with the rest of the model; the
linear predictor ``eta`` is the count part's, so PIRLS, the Laplace approximation and
quadrature see one predictor. The log-density and its first two derivatives in ``eta`` are
written from the count family's (with all constants); PIRLS works with the score and a
positive weight (:meth:`working_residual`, :meth:`pirls_weights`).
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from ..errors import DataError
from . import compiled
from .base import Family
from .links import Link
from .numeric import _arr
from .sampling import sample_by_inversion

#: the count families a zero part can be added to (glmmTMB's names: nbinom2 is
#: ``negative_binomial`` here)
COUNT_FAMILIES = ("poisson", "negative_binomial", "nbinom1", "genpois", "compois")


#: evaluations kept per family object (:meth:`ZeroInflated._evaluate`): the mode's must
#: survive the gradient's evaluations at eta +- a step
_MEMO_SIZE = 4


def _shown(name: str) -> str:
    return "nbinom2" if name == "negative_binomial" else name


#: the smallest PIRLS weight, relative to the count family's Fisher weight (where the
#: log-density is concave in eta PIRLS takes Newton steps, the observed information)
_MIN_WEIGHT = 1e-3


class ZeroInflated(Family):
    """A count family with a zero-inflation or hurdle part.

    Parameters
    ----------
    base : Family
        The count family (Poisson or negative binomial, log link).
    Z : ndarray
        ``(n, k)`` design of the zero part (``k = 0``: no zero part, only for a hurdle,
        which is then a zero-truncated model).
    names : list of str
        Names of ``Z``'s columns.
    hurdle : bool
        A hurdle (``truncated_*``) rather than zero inflation.
    """

    def __init__(self, base: Family, Z: np.ndarray, names: list[str], hurdle: bool = False,
                 zi_spec=None):
        if base.name not in COUNT_FAMILIES:
            raise DataError("zero inflation and hurdles are for count families ("
                            + ", ".join(_shown(n) for n in COUNT_FAMILIES)
                            + f"); got {base.name}")
        self.base = base
        self.Z = np.asarray(Z, dtype=float)
        self.zi_names = list(names)
        self.hurdle = bool(hurdle)
        self.gamma = np.zeros(self.Z.shape[1])
        #: formulaic's spec of the zero part's columns (new data), or None
        self.zi_spec = zi_spec
        self.link: Link = base.link
        self.name = ("truncated_" if hurdle else "zi_") + _shown(base.name)

    # ------------------------------------------------------------------ description
    has_dispersion = False
    can_separate = False
    #: the Laplace gradient differentiates the own parameters (a negative binomial's size
    #: and the zero part's coefficients) row by row at fixed eta (glmm.gradient)
    analytic_extra_gradient = True
    @property
    def refine_glm_start(self) -> bool:  # type: ignore[override]
        """Under zero inflation the GLMM fit starts from the GLM fitted jointly in the fixed
        effects, the zero part and the count family's own parameters
        (glmm.glm.fit_glm_own_parameters). Not for a hurdle: its zero part's start is
        already its estimate (:meth:`extra_start`), and without the random effects a
        zero-truncated negative binomial can prefer a size near zero, where the GLMM's
        stages cannot start."""
        return not self.hurdle

    @property
    def hold_start_in_search(self) -> bool:  # type: ignore[override]
        """The GLMM fit's first search holds the own parameters where they start when that
        start is a fit: zero inflation (:attr:`refine_glm_start`) and a hurdle whose count
        family has no parameters of its own (the zero part's start is exact). A hurdle's
        negative binomial size starts at a rough guess that the search must move."""
        return not self.hurdle or not self.base.extra_names()

    @property
    def has_shape(self) -> bool:  # type: ignore[override]
        return False

    @property
    def shape(self) -> float | None:
        return getattr(self.base, "shape", None)

    @property
    def link_is_canonical(self) -> bool:
        return False

    @property
    def start_family(self) -> Family:
        """The family of the GLM that starts the fit (the count part alone)."""
        return self.base

    def _params(self) -> tuple:
        return (type(self), self.base._params(), self.hurdle, self.gamma.tobytes())

    def __repr__(self) -> str:
        return f"ZeroInflated({self.base!r}, hurdle={self.hurdle})"

    # ----------------------------------------------------------------- parameters
    def extra_names(self) -> list[str]:
        return self.base.extra_names() + [f"zi~{n}" for n in self.zi_names]

    def extra_values(self) -> np.ndarray:
        return np.concatenate([self.base.extra_values(), self.gamma])

    def with_extra(self, values: np.ndarray) -> ZeroInflated:
        nb = len(self.base.extra_names())
        new = copy.copy(self)
        new.__dict__["_memo"] = []
        new.__dict__.pop("_pi_of", None)
        own = np.array(values[:nb], dtype=float)
        held = self.__dict__.get("_base_values")
        if nb and not (held is not None and np.array_equal(held, own)):
            # (a new count family only for new own parameters: it rebuilds its cached
            # constants, and the zero part's coefficients change far more often)
            new.base = self.base.with_extra(own)
        new.__dict__["_base_values"] = own
        new.gamma = np.asarray(values[nb:], dtype=float).copy()
        return new

    def extra_start(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """The count family's start, and ``gamma`` from a logistic regression of the zeros
        (the hurdle's exact estimate without random effects in the zero part; for zero
        inflation a start)."""
        base = self.base.extra_start(y, mu, wt)
        k = self.Z.shape[1]
        if k == 0:
            return base
        zero = (np.asarray(y) == 0).astype(float)
        if not self.hurdle:   # zeros beyond the count family's own
            p0 = np.exp(self.base.loglik(np.zeros_like(mu), mu, wt, 1.0))
            zero = np.clip((zero - p0) / np.maximum(1.0 - p0, 1e-3), 0.02, 0.98)
        gamma = _logistic_fit(self.Z, zero)
        return np.concatenate([base, gamma])

    @property
    def pi(self) -> np.ndarray:
        """Each row's probability of the zero part (0 without one; kept for the current
        coefficients)."""
        held = self.__dict__.get("_pi_of")
        key = self.gamma.tobytes()
        if held is not None and held[0] == key:
            return held[1]
        pi = (np.zeros(self.Z.shape[0]) if self.Z.shape[1] == 0
              else special.expit(self.Z @ self.gamma))
        self.__dict__["_pi_of"] = (key, pi)
        return pi

    def _pi_like(self, eta) -> np.ndarray:
        pi = self.pi
        return pi.reshape(pi.shape + (1,) * (np.ndim(eta) - 1))

    # ------------------------------------------------------------------ densities
    def _zeros(self, y: np.ndarray) -> np.ndarray:
        """Zeros of ``y``'s shape, the same array for the same ``y`` (the count family keeps
        its log-factorials per response array, by identity: a new array per call would
        recompute them and push the true responses' out of its small cache)."""
        held = self.__dict__.get("_zeros_of")
        if held is None or held[0] is not y:
            held = (y, np.zeros(np.shape(y)))
            self.__dict__["_zeros_of"] = held
        return held[1]

    def _parts(self, y, mu, eta, wt, phi) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray, np.ndarray, np.ndarray]:
        """``log f(y)``, ``log f(0)`` and their first two derivatives in ``eta``."""
        b = self.base
        lf, d1, d2 = b.eta_derivatives(y, mu, eta, wt, phi)
        g, g1, g2 = b.eta_derivatives(self._zeros(y), mu, eta, wt, phi)
        return lf, g, d1, d2, g1, g2

    def loglik(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        if np.ndim(mu) == 1 and np.shape(y) == np.shape(mu):
            # one value per row (PIRLS, the Laplace value): with the derivatives PIRLS asks
            # for next at the same means
            return self._evaluate(y, mu, None, wt, dispersion)[0]
        y, wt = self._prep(y, wt)
        mu = np.asarray(mu, dtype=float)
        pi = self._pi_like(mu)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lf = self.base.loglik(y, mu, wt, dispersion)
            g = self.base.loglik(self._zeros(y), mu, wt, dispersion)
            out = self._mixture(y == 0, pi, np.log(pi), np.log1p(-pi), lf, g)["l"]
        return np.where(self.base.mu_in_range(mu), out, -np.inf)

    def _mixture(self, zero, pi, log_pi, log_1m_pi, lf, g, d1=None, d2=None, g1=None,
                 g2=None, zeta_terms: bool = False) -> dict[str, np.ndarray]:
        """The zero part combined with the count part's ``log f(y)`` (``lf``), ``log f(0)``
        (``g``) and their ``eta``-derivatives (``d1``, ``d2``, ``g1``, ``g2``; omitted: the
        log-density ``l`` alone): ``l``, ``l_e``, ``l_ee`` and, with ``zeta_terms``, the
        derivatives in the zero part's log-odds ``zeta``: ``l_z``, ``l_ez``, ``l_zz`` and
        ``l_eez`` (``d l_ee / d zeta``). Under zero inflation a zero has probability
        ``pi + (1 - pi) f(0)`` and ``r = (1 - pi) f(0) / p(0)`` is the count part's share of
        it (``dr / dzeta = -r (1 - r)``); a hurdle's positive count is
        ``log(1 - pi) + log f - log(1 - f(0))`` with ``q = f(0) / (1 - f(0))``,
        ``d log(1 - f(0)) = -q g'`` and ``d2 log(1 - f(0)) = -(q g'' + q (1 + q) g'^2)``."""
        out: dict[str, np.ndarray] = {}
        if self.hurdle:
            log_pos0 = _log1mexp(g)
            out["l"] = np.where(zero, log_pi, log_1m_pi + lf - log_pos0)
            if d1 is not None:
                q = np.exp(g - log_pos0)
                out["l_e"] = np.where(zero, 0.0, d1 + q * g1)
                out["l_ee"] = np.where(zero, 0.0, d2 + q * g2 + q * (1.0 + q) * g1 * g1)
            if zeta_terms:
                out["l_z"] = np.where(zero, 1.0 - pi, -pi)
                out["l_ez"] = out["l_eez"] = np.zeros(np.shape(out["l"]))
                out["l_zz"] = -pi * (1.0 - pi)
            return out
        a = np.logaddexp(log_pi, log_1m_pi + g)
        out["l"] = np.where(zero, a, log_1m_pi + lf)
        if d1 is not None:
            r = np.exp(log_1m_pi + g - a)
            rr = r * (1.0 - r)
            out["l_e"] = np.where(zero, r * g1, d1)
            out["l_ee"] = np.where(zero, r * g2 + rr * g1 * g1, d2)
            if zeta_terms:
                out["l_z"] = np.where(zero, (1.0 - r) - pi, -pi)
                out["l_ez"] = np.where(zero, -rr * g1, 0.0)
                out["l_zz"] = np.where(zero, rr, 0.0) - pi * (1.0 - pi)
                out["l_eez"] = np.where(zero, -rr * (g2 + (1.0 - 2.0 * r) * g1 * g1), 0.0)
        return out

    def loglik_eta(self, y, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self.loglik(y, self.link.inverse(eta), wt, dispersion)

    def _derivatives(self, y, mu, eta, wt, dispersion):
        return self._evaluate(y, mu, eta, wt, dispersion)[1:3]

    def _evaluate(self, y, mu, eta, wt, dispersion):
        """Per row the log-density, its score and its second derivative in ``eta`` (then the
        count part's pieces, :meth:`_parts`, and ``eta``), kept for the last few means
        (PIRLS asks for the value at a step's means and then for the score and the weights
        there; the gradient for the pieces at the mode; the link is fixed, so the means
        identify ``eta``)."""
        disp = id(dispersion) if np.ndim(dispersion) else float(dispersion)
        held = self.__dict__.setdefault("_memo", [])
        for e_y, e_mu, e_wt, e_disp, out in held:
            if e_y is y and e_mu is mu and e_wt is wt and e_disp == disp:
                return out
        out = self._evaluate_now(y, mu, eta, wt, dispersion)
        held.insert(0, (y, mu, wt, disp, out))
        del held[_MEMO_SIZE:]
        return out

    def _evaluate_now(self, y, mu, eta, wt, dispersion):
        y, wt = self._prep(y, wt)
        mu = np.asarray(mu, dtype=float)
        if eta is None:
            eta = self.link.link(mu)
        fused = self._evaluate_compiled(y, mu, wt)
        if fused is not None:
            return (*fused, eta)
        pi = self._pi_like(mu)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            parts = self._parts(y, mu, eta, wt, dispersion)
            out = self._mixture(y == 0, pi, np.log(pi), np.log1p(-pi), *parts)
        ll = np.where(self.base.mu_in_range(mu), out["l"], -np.inf)
        return ll, out["l_e"], out["l_ee"], parts, eta

    def _log_pi(self) -> tuple[np.ndarray, np.ndarray]:
        """``log(pi)`` and ``log(1 - pi)`` per row (kept with :attr:`pi`)."""
        held = self.__dict__.get("_log_pi_of")
        pi = self.pi
        if held is not None and held[0] is pi:
            return held[1]
        with np.errstate(divide="ignore"):
            logs = (np.log(pi), np.log1p(-pi))
        self.__dict__["_log_pi_of"] = (pi, logs)
        return logs

    def _kernel_inputs(self, y, mu, wt):
        """``(kernels, const, shape, poisson, log_pi, log_1m_pi)`` for the compiled two-part
        kernels (a Poisson or negative binomial count part at the log link, one-dimensional
        rows), or ``None``."""
        k = compiled.kernels()
        if k is None or not compiled.rows_ok(y, mu, wt):
            return None
        args = self.base.count_kernel_args(y, wt)
        if args is None:
            return None
        return (k, *args, *self._log_pi())

    def _evaluate_compiled(self, y, mu, wt):
        """:meth:`_evaluate_now`'s values by the compiled kernel
        (:func:`glamm.families._kernels.two_part`); ``None`` where there is none."""
        out = self._run_two_part("two_part", 9, y, mu, wt)
        return None if out is None else (out[0], out[1], out[2], tuple(out[3:9]))

    def _run_two_part(self, name: str, rows: int, y, mu, wt) -> np.ndarray | None:
        """The compiled kernel ``name`` of :mod:`glamm.families._kernels` on the rows (its
        ``rows x n`` output), or ``None`` without kernels."""
        inputs = self._kernel_inputs(y, mu, wt)
        if inputs is None:
            return None
        k, const, shape, poisson, log_pi, log_1m_pi = inputs
        out = np.empty((rows, y.shape[0]))
        getattr(k, name)(y, mu, wt, const, shape, poisson, log_pi, log_1m_pi, self.hurdle,
                         out)
        return out

    def joint_derivatives(self, y: np.ndarray, eta: np.ndarray, zeta: np.ndarray,
                          wt: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """The log-density as a function of both linear predictors, the count part's ``eta``
        and the zero part's log-odds ``zeta`` (for random effects in the zero part, where
        ``zeta`` is not ``Z gamma`` alone): per row ``(l, l_eta, l_zeta, l_eta_eta,
        l_eta_zeta, l_zeta_zeta)``. ``eta`` and ``zeta`` broadcast against ``y``;
        ``wt`` (unit prior weights, optional) is there for its identity: passing the same
        ``y`` and ``wt`` arrays on every call lets the count family keep its log-factorials.

        With ``pi = logistic(zeta)``, ``g = log f(0)`` and for a zero under zero inflation
        ``ll = logaddexp(zeta, g) - log(1 + exp(zeta))``; ``r`` below is the count part's share
        of that zero's probability."""
        y = np.asarray(y, dtype=float)
        eta, zeta = np.broadcast_arrays(np.asarray(eta, dtype=float),
                                        np.asarray(zeta, dtype=float))
        if y.shape == eta.shape:
            yb = y
        else:
            yb = np.broadcast_to(y.reshape(y.shape + (1,) * (eta.ndim - y.ndim)), eta.shape)
        mu = self.link.inverse(eta)
        if wt is None or np.shape(wt) != eta.shape:
            wt = np.ones(eta.shape)
        k = compiled.kernels()
        if k is not None and compiled.rows_ok(yb, mu, wt, zeta):
            args = self.base.count_kernel_args(yb, wt)
            if args is not None:   # (one pass: joint rows by the compiled kernel)
                out6 = np.empty((6, yb.shape[0]))
                k.two_part_joint(yb, mu, wt, args[0], args[1], args[2], zeta, self.hurdle,
                                 out6)
                return tuple(out6)
        pi = special.expit(zeta)
        log_pi, log_1m_pi = -np.logaddexp(0.0, -zeta), -np.logaddexp(0.0, zeta)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            parts = self._parts(yb, mu, eta, wt, 1.0)
            out = self._mixture(yb == 0, pi, log_pi, log_1m_pi, *parts, zeta_terms=True)
        ll = np.where(self.base.mu_in_range(mu), out["l"], -np.inf)
        l_e, l_z, l_ee, l_ez, l_zz = (out[k] for k in ("l_e", "l_z", "l_ee", "l_ez", "l_zz"))
        return ll, l_e, l_z, l_ee, l_ez, l_zz

    def extra_derivatives(self, y, eta, wt, observed: bool):
        """Per row, the derivatives at fixed ``eta`` of the log-density, the score and the
        observed information in :meth:`extra_names`' parameters (``n x m`` each), for the
        analytic Laplace gradient. The zero part's coefficients in closed form: each row's
        derivatives in its log-odds ``zeta`` times the row of ``Z`` (for a zero under zero
        inflation ``d w / d zeta = r (1 - r) (g'' + (1 - 2 r) g'^2)``, with ``r`` the count
        part's share of the zero's probability and ``g = log f(0)``; the other rows' score
        and weight do not depend on ``zeta``); a negative binomial's log(size) in closed form
        with the compiled kernels (:meth:`_log_shape_compiled`), else, as the count family's
        other parameters, by central differences. ``None`` for the expected information."""
        if not observed:
            return None
        y, wt = self._prep(y, wt)
        eta = np.asarray(eta, dtype=float)
        mu = self.link.inverse(eta)
        cols: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        values = self.extra_values()
        nb = len(self.base.extra_names())
        eps = 1e-5
        shape_cols = self._log_shape_compiled(y, mu, wt) if nb else None
        if shape_cols is not None:   # a negative binomial's log(size), in closed form
            cols.append(shape_cols)
            nb = 0
        for j in range(nb):   # the count family's own parameters
            step = np.zeros(values.size)
            step[j] = eps
            up, down = self.with_extra(values + step), self.with_extra(values - step)
            pair = [(f.loglik(y, mu, wt), f.dloglik_deta(y, mu, eta, wt),
                     -f.d2loglik_deta2(y, mu, eta, wt)) for f in (up, down)]
            cols.append(tuple((a - b) / (2.0 * eps)
                              for a, b in zip(pair[0], pair[1], strict=True)))
        k = self.Z.shape[1]
        n = y.shape[0]
        zeta = self._zeta_compiled(y, mu, wt) if k else None
        if zeta is not None:
            l_z, l_ez, l_eez, _ = zeta
            cols.append((l_z[:, None] * self.Z, l_ez[:, None] * self.Z,
                         -l_eez[:, None] * self.Z))
        elif k:
            # (the count part's pieces at the mode, as PIRLS left them)
            parts: tuple[np.ndarray, ...] | None = next(
                (out[3] for e_y, _, e_wt, _, out in self.__dict__.get("_memo", [])
                 if e_y is y and e_wt is wt and out[4] is eta), None)
            pi = self.pi
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                if parts is None:
                    parts = self._parts(y, mu, eta, wt, 1.0)
                lf, g, d1, d2, g1, g2 = parts
                z = self._mixture(y == 0, pi, np.log(pi), np.log1p(-pi), lf, g, d1, d2, g1,
                                  g2, zeta_terms=True)
            cols.append((z["l_z"][:, None] * self.Z, z["l_ez"][:, None] * self.Z,
                         -z["l_eez"][:, None] * self.Z))
        if not cols:
            return np.zeros((n, 0)), np.zeros((n, 0)), np.zeros((n, 0))
        dlp, ds, dw = (np.column_stack([c[i] for c in cols]) for i in range(3))
        return dlp, ds, dw

    def _zeta_compiled(self, y, mu, wt):
        """The rows ``l_z``, ``l_ez``, ``l_eez``, ``l_zz`` of :meth:`_mixture`'s ``zeta``
        terms by the compiled kernel (:func:`glamm.families._kernels.two_part_zeta`); ``None``
        without it."""
        out = self._run_two_part("two_part_zeta", 4, y, mu, wt)
        return None if out is None else (out[0], out[1], out[2], out[3])

    def _log_shape_compiled(self, y, mu, wt):
        """:meth:`extra_derivatives`' column for a negative binomial count part's log(size)
        by the compiled closed form (:func:`glamm.families._kernels.two_part_log_shape`);
        ``None`` without it (the caller then takes central differences)."""
        inputs = self._kernel_inputs(y, mu, wt)
        if inputs is None or inputs[3]:   # (Poisson has no size)
            return None
        k, const, shape, _, log_pi, log_1m_pi = inputs
        psi_diff = special.digamma(y + shape) - special.digamma(shape)
        out = np.empty((3, y.shape[0]))
        k.two_part_log_shape(y, mu, wt, const, psi_diff, shape, log_pi, log_1m_pi,
                             self.hurdle, out)
        return out[0], out[1], out[2]

    def extra_hessian(self, y, eta, wt) -> np.ndarray:
        """The Hessian of the summed log-density in :meth:`extra_values` at fixed ``eta``,
        where known in closed form: the zero part's coefficients' block ``Z' diag(l_zz) Z``;
        the count family's own parameters' rows and columns are NaN (the caller takes
        differences there)."""
        y, wt = self._prep(y, wt)
        eta = np.asarray(eta, dtype=float)
        mu = self.link.inverse(eta)
        nb, k = len(self.base.extra_names()), self.Z.shape[1]
        H = np.full((nb + k, nb + k), np.nan)
        if k:
            zeta = self._zeta_compiled(y, mu, wt)
            if zeta is not None:
                l_zz = zeta[3]
            else:
                pi = self.pi
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    parts = self._parts(y, mu, eta, wt, 1.0)
                    l_zz = self._mixture(y == 0, pi, np.log(pi), np.log1p(-pi), *parts,
                                         zeta_terms=True)["l_zz"]
            H[nb:, nb:] = self.Z.T @ (l_zz[:, None] * self.Z)
        return H

    def dloglik_deta(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._derivatives(y, mu, eta, wt, dispersion)[0]

    def d2loglik_deta2(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._derivatives(y, mu, eta, wt, dispersion)[1]

    def fisher_weights(self, eta, mu, wt, dispersion=1.0,
                       mu_eta=None) -> tuple[np.ndarray, np.ndarray]:
        """PIRLS weights: the observed information, held at least :data:`_MIN_WEIGHT` times
        the count family's Fisher weight (the zero-inflated log-density need not be concave
        in ``eta``); PIRLS's working response is ``eta + score / w``."""
        raise NotImplementedError("ZeroInflated needs the responses: use pirls_weights")

    def working_residual(self, y, mu, eta, wt, dispersion, w, mu_eta) -> np.ndarray:
        """PIRLS's working residual ``score / w`` (the score is not ``w (y - mu) /
        mu_eta`` here)."""
        s = self.dloglik_deta(y, mu, eta, wt, dispersion)
        return np.divide(s, w, out=np.zeros_like(s), where=w > 0)

    def pirls_weights(self, y, eta, mu, wt, dispersion=1.0) -> np.ndarray:
        """The PIRLS weights of :meth:`fisher_weights` (they need the responses)."""
        h = self._derivatives(y, mu, eta, wt, dispersion)[1]
        wb, _ = self.base.fisher_weights(eta, mu, self._prep(y, wt)[1], dispersion)
        return np.maximum(-h, _MIN_WEIGHT * wb)

    # ------------------------------------------------------------------ the rest
    def variance(self, mu) -> np.ndarray:
        """The response variance of the mixture (zero inflation) or of the hurdle model."""
        mu = np.asarray(mu, dtype=float)
        pi = self._pi_like(mu)
        vb = self.base.variance(mu)
        if self.hurdle:
            p0 = np.exp(self.base.loglik(np.zeros_like(mu), mu, None, 1.0))
            m1 = mu / (1.0 - p0)               # E(y | y > 0)
            m2 = (vb + mu * mu) / (1.0 - p0)   # E(y^2 | y > 0)
            mean = (1.0 - pi) * m1
            return (1.0 - pi) * m2 - mean * mean
        return (1.0 - pi) * (vb + pi * mu * mu)

    def variance_deriv(self, mu) -> np.ndarray:   # pragma: no cover - not used for this family
        raise NotImplementedError

    def unit_deviance(self, y, mu) -> np.ndarray:
        """``2 (l_saturated - l)`` per row is not defined for mixtures: minus twice the
        log-density (the deviance glmmTMB reports)."""
        return -2.0 * self.loglik(y, mu)

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:   # pragma: no cover - loglik overrides
        return self.loglik(y, mu, wt, phi)

    def zero_probability(self, newdata=None) -> np.ndarray:
        """``pi``: the probability of the zero part (an extra zero, or for a hurdle the
        probability of 0), for the model's rows or ``newdata``."""
        if newdata is None:
            return self.pi.copy()
        if self.Z.shape[1] == 0:
            return np.zeros(len(newdata))
        from ..formula.evaluate import formula_context

        Z = np.asarray(self.zi_spec.get_model_matrix(newdata, na_action="ignore",
                                                     context=formula_context()), dtype=float)
        return special.expit(Z @ self.gamma)

    def mean(self, mu, newdata=None) -> np.ndarray:
        """``E(y)``: ``(1 - pi) mu`` (zero inflation) or ``(1 - pi) mu / (1 - f(0))``
        (``pi`` of ``newdata`` when given)."""
        mu = np.asarray(mu, dtype=float)
        pi = self._pi_like(mu) if newdata is None else self.zero_probability(newdata)
        if self.hurdle:
            p0 = np.exp(self.base.loglik(np.zeros_like(mu), mu, None, 1.0))
            return (1.0 - pi) * mu / (1.0 - p0)
        return (1.0 - pi) * mu

    def mu_in_range(self, mu) -> np.ndarray:
        return self.base.mu_in_range(mu)

    def _validate_support(self, y, wt) -> None:
        self.base._validate_support(y, wt)
        if self.hurdle and self.Z.shape[1] == 0 and np.any(y == 0):
            raise DataError(f"{self.name} without a ziformula is a zero-truncated model, but "
                            f"the response has {int(np.sum(y == 0))} zeros; give the zero "
                            "part, e.g. ziformula='~ 1'")

    def mustart(self, y, wt=None) -> np.ndarray:
        return self.base.mustart(y, wt)

    def sample(self, mu, wt, dispersion, rng):
        """Zero inflation: a structural zero with probability ``pi``, else a draw from the
        count family; a hurdle: zero with probability ``pi``, else a zero-truncated draw."""
        mu = _arr(mu)
        pi = self.pi
        if pi.shape != mu.shape:
            raise DataError("simulating from a zero-inflated or hurdle model works on the "
                            "fitted rows only (the zero part's design is theirs)")
        zero = rng.random(mu.shape) < pi
        if not self.hurdle:
            out = self.base.sample(mu, wt, dispersion, rng)
            out[zero] = 0.0
            return out
        out = np.zeros(mu.shape)
        rows = np.flatnonzero(~zero)
        out[rows] = sample_by_inversion(self.base, mu[rows], rng, lower=1)
        return out


def _log1mexp(g: np.ndarray) -> np.ndarray:
    """``log(1 - exp(g))`` for ``g < 0``, accurately."""
    g = np.asarray(g, dtype=float)
    return np.where(g > -0.693, np.log(-np.expm1(g)), np.log1p(-np.exp(g)))


def _logistic_fit(Z: np.ndarray, p: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Coefficients of a logistic regression of (fractional) responses ``p`` on ``Z``
    (Newton; a small ridge keeps separated designs finite)."""
    k = Z.shape[1]
    gamma = np.zeros(k)
    for _ in range(iterations):
        pr = special.expit(Z @ gamma)
        w = pr * (1.0 - pr)
        H = Z.T @ (w[:, None] * Z) + 1e-6 * np.eye(k)
        step = np.linalg.solve(H, Z.T @ (p - pr) - 1e-6 * gamma)
        gamma += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return gamma

"""Link functions for generalized linear (mixed) models.

A link ``g`` maps the mean ``mu`` to the linear predictor ``eta = g(mu)``. Every link here
provides, vectorized over numpy arrays:

* ``link(mu)``         ``eta = g(mu)``
* ``inverse(eta)``     ``mu = g^{-1}(eta)``
* ``mu_eta(eta)``      ``d mu / d eta``
* ``d2mu_deta2(eta)``  ``d^2 mu / d eta^2`` (for exact Laplace Hessians)
* ``valid_eta(eta)``   whether ``eta`` is inside the link's domain (R's ``valideta``)

Numerical safeguards follow R's ``make.link`` / ``binomial()`` where R has them:

* logit: ``inverse`` keeps ``mu`` in ``[eps, 1 - eps]`` (``eps = .Machine$double.eps``);
  ``mu_eta`` is floored at ``eps``. R's C code switches to the constants ``eps/(1+eps)`` and
  ``1/(1+eps)`` once ``|eta| > 30``; here the clamp is applied to ``expit(eta)`` itself, so
  the inverse stays continuous (it differs from R only for ``-36 < eta < -30``, where R
  returns ``2.2e-16`` and this returns ``expit(eta)``, a value below ``1e-13``).
* probit, cauchit: ``eta`` is clamped to ``+-thresh`` with ``thresh = -Q(eps)`` before the
  CDF; ``mu_eta`` is the density floored at ``eps``.
* cloglog: ``mu`` is clamped to ``[eps, 1 - eps]``; ``mu_eta`` uses ``min(eta, 700)`` and is
  floored at ``eps``.
* log: ``mu = max(exp(eta), eps)`` and ``mu_eta`` likewise; ``eta`` is also capped at 700
  so that ``exp`` cannot overflow to ``inf``.

``d2mu_deta2`` is the exact derivative of the unclamped formula (at the clamped ``eta``
where the inverse clamps ``eta``), so it agrees with finite differences of ``mu_eta``
wherever no clamp is active.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..errors import DataError

__all__ = [
    "Link",
    "Logit",
    "Probit",
    "Cauchit",
    "CLogLog",
    "Log",
    "Identity",
    "Inverse",
    "Sqrt",
    "InverseSquared",
    "LINKS",
    "get_link",
]

#: R's ``.Machine$double.eps``
EPS = float(np.finfo(float).eps)
#: ``exp`` arguments are capped here (``exp(700) ~ 1e304`` is still finite)
EXP_CAP = 700.0
#: probit clamp, R's ``-qnorm(.Machine$double.eps)`` (about 8.125)
PROBIT_THRESH = float(-special.ndtri(EPS))
#: cauchit clamp, R's ``-qcauchy(.Machine$double.eps)``
CAUCHIT_THRESH = float(-math.tan(math.pi * (EPS - 0.5)))
#: ``|eta|`` cap inside the probit density (it underflows to 0 long before)
TAIL_CAP = 50.0
#: ``|eta|`` cap inside the Cauchy density (``eta^2`` must not overflow)
CAUCHIT_CAP = 1e100


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


class Link:
    """Base class of link functions ``eta = g(mu)``.

    Subclasses set ``name`` (glamm's name), ``r_name`` (R's name, as printed by
    ``family()$link``) and implement the four transformations. Instances are stateless and
    compare equal when their names match.
    """

    name: str = ""
    r_name: str = ""

    def link(self, mu) -> np.ndarray:
        """``eta = g(mu)``.

        Parameters
        ----------
        mu : array_like
            means (array-like).
        """
        raise NotImplementedError

    def inverse(self, eta) -> np.ndarray:
        """``mu = g^{-1}(eta)``, clamped inside the open support where R clamps.

        Parameters
        ----------
        eta : array_like
            linear predictor values (array-like).
        """
        raise NotImplementedError

    def mu_eta(self, eta) -> np.ndarray:
        """``d mu / d eta`` at ``eta``.

        Parameters
        ----------
        eta : array_like
            linear predictor values (array-like).
        """
        raise NotImplementedError

    def mu_eta_at(self, eta, mu) -> np.ndarray:
        """``d mu / d eta`` when ``mu = inverse(eta)`` is already known (links whose derivative
        is a cheap function of ``mu`` override this; PIRLS calls it every iteration)."""
        return self.mu_eta(eta)

    def d2mu_deta2(self, eta) -> np.ndarray:
        """``d^2 mu / d eta^2`` at ``eta``.

        Parameters
        ----------
        eta : array_like
            linear predictor values (array-like).
        """
        raise NotImplementedError

    def valid_eta(self, eta) -> bool:
        """True if every ``eta`` is finite and inside the link's domain (R's ``valideta``).

        Parameters
        ----------
        eta : array_like
            linear predictor values (array-like).
        """
        return bool(np.all(np.isfinite(_arr(eta))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Link", self.name))


class Logit(Link):
    """``eta = log(mu / (1 - mu))``; canonical for the binomial."""

    name = "logit"
    r_name = "logit"

    def link(self, mu) -> np.ndarray:
        return special.logit(_arr(mu))

    def inverse(self, eta) -> np.ndarray:
        return np.clip(special.expit(_arr(eta)), EPS, 1.0 - EPS)

    def mu_eta(self, eta) -> np.ndarray:
        eta = _arr(eta)
        return np.maximum(special.expit(eta) * special.expit(-eta), EPS)

    def mu_eta_at(self, eta, mu) -> np.ndarray:
        # mu is clamped to [eps, 1 - eps], so mu (1 - mu) >= eps (1 - eps) ~ the floor above
        return np.maximum(mu * (1.0 - mu), EPS)

    def d2mu_deta2(self, eta) -> np.ndarray:
        eta = _arr(eta)
        # mu (1 - mu) (1 - 2 mu), with 1 - 2 mu = -tanh(eta / 2) (no cancellation)
        return special.expit(eta) * special.expit(-eta) * -np.tanh(0.5 * eta)


class Probit(Link):
    """``eta = Phi^{-1}(mu)`` (standard normal quantile)."""

    name = "probit"
    r_name = "probit"

    def link(self, mu) -> np.ndarray:
        return special.ndtri(_arr(mu))

    def inverse(self, eta) -> np.ndarray:
        return special.ndtr(np.clip(_arr(eta), -PROBIT_THRESH, PROBIT_THRESH))

    def mu_eta(self, eta) -> np.ndarray:
        eta = np.clip(_arr(eta), -TAIL_CAP, TAIL_CAP)  # the density is 0 there anyway
        return np.maximum(np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi), EPS)

    def d2mu_deta2(self, eta) -> np.ndarray:
        eta = np.clip(_arr(eta), -TAIL_CAP, TAIL_CAP)
        return -eta * np.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi)


class Cauchit(Link):
    """``eta = tan(pi (mu - 1/2))`` (standard Cauchy quantile)."""

    name = "cauchit"
    r_name = "cauchit"

    def link(self, mu) -> np.ndarray:
        return np.tan(np.pi * (_arr(mu) - 0.5))

    def inverse(self, eta) -> np.ndarray:
        eta = np.clip(_arr(eta), -CAUCHIT_THRESH, CAUCHIT_THRESH)
        return np.clip(0.5 + np.arctan(eta) / np.pi, EPS, 1.0 - EPS)

    def mu_eta(self, eta) -> np.ndarray:
        eta = np.clip(_arr(eta), -CAUCHIT_CAP, CAUCHIT_CAP)  # avoids overflow in eta^2
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), EPS)

    def d2mu_deta2(self, eta) -> np.ndarray:
        eta = np.clip(_arr(eta), -CAUCHIT_CAP, CAUCHIT_CAP)
        q = 1.0 / (1.0 + eta * eta)
        return -2.0 / np.pi * eta * q * q


class CLogLog(Link):
    """``eta = log(-log(1 - mu))`` (complementary log-log)."""

    name = "cloglog"
    r_name = "cloglog"

    def link(self, mu) -> np.ndarray:
        return np.log(-np.log1p(-_arr(mu)))

    def inverse(self, eta) -> np.ndarray:
        eta = np.minimum(_arr(eta), EXP_CAP)
        return np.clip(-np.expm1(-np.exp(eta)), EPS, 1.0 - EPS)

    def mu_eta(self, eta) -> np.ndarray:
        eta = np.minimum(_arr(eta), EXP_CAP)
        return np.maximum(np.exp(eta - np.exp(eta)), EPS)

    def d2mu_deta2(self, eta) -> np.ndarray:
        eta = np.minimum(_arr(eta), EXP_CAP)
        e = np.exp(eta)
        return np.exp(eta - e) * (1.0 - e)


class Log(Link):
    """``eta = log(mu)``; canonical for the Poisson."""

    name = "log"
    r_name = "log"

    def link(self, mu) -> np.ndarray:
        return np.log(_arr(mu))

    def inverse(self, eta) -> np.ndarray:
        return np.maximum(np.exp(np.minimum(_arr(eta), EXP_CAP)), EPS)

    def mu_eta(self, eta) -> np.ndarray:
        return np.maximum(np.exp(np.minimum(_arr(eta), EXP_CAP)), EPS)

    def mu_eta_at(self, eta, mu) -> np.ndarray:
        return mu

    def d2mu_deta2(self, eta) -> np.ndarray:
        return np.exp(np.minimum(_arr(eta), EXP_CAP))


class Identity(Link):
    """``eta = mu``; canonical for the Gaussian."""

    name = "identity"
    r_name = "identity"

    def link(self, mu) -> np.ndarray:
        return _arr(mu).copy()

    def inverse(self, eta) -> np.ndarray:
        return _arr(eta).copy()

    def mu_eta(self, eta) -> np.ndarray:
        return np.ones_like(_arr(eta))

    def d2mu_deta2(self, eta) -> np.ndarray:
        return np.zeros_like(_arr(eta))


class Inverse(Link):
    """``eta = 1 / mu``; canonical for the Gamma (R's ``"inverse"``)."""

    name = "inverse"
    r_name = "inverse"

    def link(self, mu) -> np.ndarray:
        return 1.0 / _arr(mu)

    def inverse(self, eta) -> np.ndarray:
        return 1.0 / _arr(eta)

    def mu_eta(self, eta) -> np.ndarray:
        eta = _arr(eta)
        return -1.0 / (eta * eta)

    def d2mu_deta2(self, eta) -> np.ndarray:
        eta = _arr(eta)
        return 2.0 / (eta * eta * eta)

    def valid_eta(self, eta) -> bool:
        eta = _arr(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))


class Sqrt(Link):
    """``eta = sqrt(mu)``."""

    name = "sqrt"
    r_name = "sqrt"

    def link(self, mu) -> np.ndarray:
        return np.sqrt(_arr(mu))

    def inverse(self, eta) -> np.ndarray:
        eta = _arr(eta)
        return eta * eta

    def mu_eta(self, eta) -> np.ndarray:
        return 2.0 * _arr(eta)

    def d2mu_deta2(self, eta) -> np.ndarray:
        return np.full_like(_arr(eta), 2.0)

    def valid_eta(self, eta) -> bool:
        eta = _arr(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))


class InverseSquared(Link):
    """``eta = 1 / mu^2``; canonical for the inverse Gaussian (R's ``"1/mu^2"``)."""

    name = "inverse_squared"
    r_name = "1/mu^2"

    def link(self, mu) -> np.ndarray:
        mu = _arr(mu)
        return 1.0 / (mu * mu)

    def inverse(self, eta) -> np.ndarray:
        return 1.0 / np.sqrt(_arr(eta))

    def mu_eta(self, eta) -> np.ndarray:
        return -0.5 * _arr(eta) ** -1.5

    def d2mu_deta2(self, eta) -> np.ndarray:
        return 0.75 * _arr(eta) ** -2.5

    def valid_eta(self, eta) -> bool:
        eta = _arr(eta)
        return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))


#: glamm's link names -> classes
LINKS: dict[str, type[Link]] = {
    cls.name: cls
    for cls in (Logit, Probit, Cauchit, CLogLog, Log, Identity, Inverse, Sqrt, InverseSquared)
}

_ALIASES: dict[str, str] = {
    "1/mu^2": "inverse_squared",
    "1/mu**2": "inverse_squared",
    "inverse_square": "inverse_squared",
    "inverse.squared": "inverse_squared",
    "1/mu": "inverse",
    "reciprocal": "inverse",
    "complementary_log_log": "cloglog",
}


def canonical_link_name(name: str) -> str:
    """glamm's name for a link given by glamm's or R's name (case-insensitive).

    Parameters
    ----------
    name : str
        a link name such as ``"logit"``, ``"inverse"``, ``"1/mu^2"`` or
        ``"inverse_squared"``.

    Raises
    ------
    DataError
        the name is not a known link.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LINKS:
        known = ", ".join(sorted(LINKS)) + ', "1/mu^2"'
        raise DataError(f"unknown link {name!r}; known links: {known}")
    return key


def get_link(name_or_obj: str | Link | type[Link]) -> Link:
    """A :class:`Link` instance from a name, a ``Link`` instance or a ``Link`` subclass.

    Parameters
    ----------
    name_or_obj : str or Link or type[Link]
        glamm's or R's link name (``"logit"``, ``"probit"``, ``"cloglog"``,
        ``"cauchit"``, ``"log"``, ``"identity"``, ``"inverse"``, ``"sqrt"``,
        ``"inverse_squared"`` / ``"1/mu^2"``), a ``Link`` instance (returned as is) or a
        ``Link`` subclass (instantiated).

    Raises
    ------
    DataError
        unknown name.
    """
    if isinstance(name_or_obj, Link):
        return name_or_obj
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, Link):
        return name_or_obj()
    if isinstance(name_or_obj, str):
        return LINKS[canonical_link_name(name_or_obj)]()
    raise DataError(f"a link must be a name or a Link object, not {type(name_or_obj).__name__}")

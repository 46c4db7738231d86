"""The families by name: glamm's names and R's, glmmTMB's and GLMMadaptive's spellings,
mapped to the family classes (:data:`FAMILIES`), and :func:`get_family`, which takes a name,
a class or an instance."""

from __future__ import annotations

from ..errors import DataError
from .base import Family
from .compois import ConwayMaxwellPoisson
from .distributions import (
    Binomial,
    Gamma,
    Gaussian,
    InverseGaussian,
    NegativeBinomial,
    Poisson,
)
from .extra import Beta, BetaBinomial, StudentT
from .extra_counts import GeneralizedPoisson, NegativeBinomial1
from .links import Link
from .tweedie import Tweedie

#: glamm's family names -> classes
FAMILIES: dict[str, type[Family]] = {
    cls.name: cls for cls in (Binomial, Poisson, Gaussian, Gamma, InverseGaussian, NegativeBinomial,
                              NegativeBinomial1, Beta, BetaBinomial, StudentT,
                              GeneralizedPoisson, Tweedie, ConwayMaxwellPoisson)
}

_FAMILY_ALIASES: dict[str, str] = {
    "normal": "gaussian",
    "inverse_gaussian": "inverse_gaussian",
    "inversegaussian": "inverse_gaussian",
    "negative_binomial": "negative_binomial",
    "negativebinomial": "negative_binomial",
    "nbinom2": "negative_binomial",
    "nbinom": "negative_binomial",
    "negbin": "negative_binomial",
    "nb2": "negative_binomial",
    # glmmTMB's and GLMMadaptive's spellings of the families outside the exponential family
    "nbinom1": "nbinom1",
    "nb1": "nbinom1",
    "beta_family": "beta",
    "beta_fam": "beta",
    "betabinomial": "betabinomial",
    "beta_binomial": "betabinomial",
    "betabinom": "betabinomial",
    "students_t": "t",
    "student_t": "t",
    "student": "t",
    "t_family": "t",
    "generalized_poisson": "genpois",
    "gen_poisson": "genpois",
    "conway_maxwell_poisson": "compois",
    "cmp": "compois",
    "com_poisson": "compois",
}


def _family_key(name: str) -> str:
    key = str(name).strip().lower().replace(".", "_").replace(" ", "_").replace("-", "_")
    key = _FAMILY_ALIASES.get(key, key)
    if key not in FAMILIES:
        raise DataError(f"unknown family {name!r}; known families: " + ", ".join(FAMILIES)
                        + ' (also "Gamma", "inverse.gaussian", "nbinom2", "negbin", "beta_family", '
                        '"students.t")')
    return key


def from_name(name: str, link: str | Link | type[Link] | None = None, **kw) -> Family:
    """A family from its name.

    Parameters
    ----------
    name : str
        ``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"Gamma"``/``"gamma"``,
        ``"inverse_gaussian"``/``"inverse.gaussian"`` or
        ``"negative_binomial"``/``"nbinom2"``/``"negbin"`` (case-insensitive).
    link : str or Link or type[Link], optional
        link name or object (default ``None``: the canonical link).
    **kw
        further constructor arguments (``shape`` for the negative binomial).

    Raises
    ------
    DataError
        unknown family, invalid link or invalid arguments.
    """
    cls = FAMILIES[_family_key(name)]
    try:
        return cls(link=link, **kw)
    except TypeError as exc:
        raise DataError(f"{cls.name} family: {exc}") from None


def get_family(name_or_obj: str | Family | type[Family],
               link: str | Link | type[Link] | None = None, **kw) -> Family:
    """A family from a name, a :class:`Family` instance or a ``Family`` subclass.

    Parameters
    ----------
    name_or_obj : str or Family or type[Family]
        a family name (see :func:`from_name`), a ``Family`` instance (returned
        as is unless ``link`` or ``kw`` ask for changes) or a ``Family`` subclass
        (instantiated).
    link : str or Link or type[Link], optional
        link name or object (default ``None``: an instance keeps its link, names and
        classes get the canonical link).
    **kw
        constructor arguments for names and classes (``shape``); for an instance only
        ``shape`` is accepted (applied with ``with_shape``).

    Raises
    ------
    DataError
        unknown family, invalid link or arguments.
    """
    if isinstance(name_or_obj, Family):
        fam = name_or_obj
        if link is not None:
            fam = fam.with_link(link)
        if kw:
            extra = set(kw) - {"shape"}
            if extra:
                raise DataError(f"{fam.name} family: unexpected arguments {sorted(extra)}")
            fam = fam.with_shape(kw["shape"])
        return fam
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, Family):
        try:
            return name_or_obj(link=link, **kw)
        except TypeError as exc:
            raise DataError(f"{name_or_obj.__name__}: {exc}") from None
    if isinstance(name_or_obj, str):
        return from_name(name_or_obj, link=link, **kw)
    raise DataError("a family must be a name or a Family object, not "
                    f"{type(name_or_obj).__name__}")

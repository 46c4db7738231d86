"""Response distributions and link functions for generalized linear mixed models (glmer).

Self-contained: depends on numpy, scipy and :class:`glamm.errors.DataError` only.

>>> from glamm.families import get_family
>>> fam = get_family("binomial", link="probit")
>>> fam.name, fam.link.name
('binomial', 'probit')
"""

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
from .links import (
    LINKS,
    Cauchit,
    CLogLog,
    Identity,
    Inverse,
    InverseSquared,
    Link,
    Log,
    Logit,
    Probit,
    Sqrt,
    get_link,
)
from .registry import FAMILIES, from_name, get_family
from .tweedie import Tweedie

__all__ = [
    "Family",
    "Binomial",
    "Poisson",
    "Gaussian",
    "Gamma",
    "InverseGaussian",
    "NegativeBinomial",
    "NegativeBinomial1",
    "Beta",
    "BetaBinomial",
    "StudentT",
    "GeneralizedPoisson",
    "ConwayMaxwellPoisson",
    "Tweedie",
    "FAMILIES",
    "from_name",
    "get_family",
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

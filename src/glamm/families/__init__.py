"""Response distributions and link functions for generalized linear mixed models (glmer).

Self-contained: depends on numpy, scipy and :class:`glamm.errors.DataError` only.

>>> from glamm.families import get_family
>>> fam = get_family("binomial", link="probit")
>>> fam.name, fam.link.name
('binomial', 'probit')
"""

from .distributions import (
    FAMILIES,
    Beta,
    BetaBinomial,
    Binomial,
    ConwayMaxwellPoisson,
    Family,
    Gamma,
    Gaussian,
    GeneralizedPoisson,
    InverseGaussian,
    NegativeBinomial,
    NegativeBinomial1,
    Poisson,
    StudentT,
    Tweedie,
    from_name,
    get_family,
)
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

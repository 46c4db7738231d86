"""The fitted cumulative link mixed model returned by :func:`glamm.clmm`."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GlammError
from .glmer_result import GlmerResult
from .wald import wald_table


class ClmmResult(GlmerResult):
    """A cumulative link mixed model (ordinal's ``clmm``).

    Attributes
    ----------
    thresholds : Series
        The thresholds ``theta_k`` named ``"1|2"``, ``"2|3"``, ... after the levels.
    fixef, stderr, vcov
        The regression coefficients (no intercept) with standard errors and covariance.
    link : str
        The cumulative link (``"logit"``, ``"probit"``, ``"cloglog"``).
    levels : list of str
        The response's categories in order.
    loglik : float
        The log-likelihood (Laplace or adaptive quadrature), as ordinal's ``logLik``.

    Other attributes (``varcorr``, ``ranef``, ``theta``, ``aic``, ...) are those of
    :class:`~glamm.results.glmer_result.GlmerResult`.
    """

    def __init__(self, model, record, base_family):
        super().__init__(model, record, base_family)
        fam = model.family
        self.link = fam.cumulative
        self.levels = list(fam.levels)
        self.thresholds = pd.Series(fam.thresholds.copy(), index=fam.threshold_names,
                                    name="Estimate")

    # ------------------------------------------------------------------ inference
    def _threshold_jacobian(self) -> np.ndarray:
        """``d theta / d p`` for the unconstrained parameters ``p`` (``theta_1``, log
        increments): ``theta_k = p_1 + sum_{j <= k} exp(p_j)``."""
        p = self._response_parameters
        J = np.tril(np.ones((p.size, p.size)))
        J[:, 1:] *= np.exp(p[1:])[None, :]
        return J

    @cached_property
    def threshold_vcov(self) -> pd.DataFrame:
        """Covariance of the thresholds (delta method from the unconstrained parameters)."""
        sl = self.model.parameters.slice("response")
        J = self._threshold_jacobian()
        V = J @ self.parameter_covariance()[sl, sl] @ J.T
        names = list(self.thresholds.index)
        return pd.DataFrame(V, index=names, columns=names)

    @cached_property
    def threshold_stderr(self) -> pd.Series:
        """Standard errors of the thresholds."""
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(self.threshold_vcov.to_numpy()))
        return pd.Series(se, index=self.thresholds.index, name="Std. Error")

    def threshold_table(self) -> pd.DataFrame:
        """Thresholds with standard errors and z values (ordinal's "Threshold
        coefficients")."""
        se = self.threshold_stderr
        return pd.DataFrame({"Estimate": self.thresholds, "Std. Error": se,
                             "z value": self.thresholds / se})

    # ------------------------------------------------------------------ predictions
    def predict(self, newdata: pd.DataFrame | None = None, type: str = "prob", re: bool = True,
                allow_new_levels: bool = False, new_from_responses: bool = False):
        """Category probabilities (``type="prob"``, a DataFrame with one column per level),
        the linear predictor ``X beta (+ Z b)`` (``"link"``) or the most probable category
        (``"class"``).

        Parameters
        ----------
        newdata : DataFrame, optional
            data with the model's covariates (``None``: the fitted rows).
        type : str, optional
            ``"prob"`` (default), ``"link"`` or ``"class"``.
        re : bool, optional
            include the random effects (``False``: population level, ``b = 0``).
        allow_new_levels : bool, optional
            unseen levels get random effects of zero.
        new_from_responses : bool, optional
            as :meth:`GlmerResult.predict`.
        """
        if type not in ("prob", "link", "class"):
            raise GlammError(f"type must be 'prob', 'link' or 'class', got {type!r}")
        eta = super().predict(newdata, type="link", re=re, allow_new_levels=allow_new_levels,
                              new_from_responses=new_from_responses)
        if type == "link":
            return eta
        probs = self.model.family.probabilities(eta)
        index = newdata.index if newdata is not None else self.frame.row_index
        table = pd.DataFrame(probs, index=index, columns=self.levels)
        if type == "class":
            return pd.Series(pd.Categorical(table.idxmax(axis=1), categories=self.levels,
                                            ordered=True), index=index)
        return table

    def fitted(self, type: str = "response") -> np.ndarray:
        """The fitted probability of each row's observed category (``"response"``, with the
        random effects; ordinal's ``fitted``) or the linear predictor (``"link"``)."""
        if type == "link":
            return self._eta.copy()
        if type != "response":
            raise GlammError(f"type must be 'response' or 'link', got {type!r}")
        fam = self.model.family
        return np.exp(fam.loglik(self.model.y, self._eta))

    def residuals(self, type: str = "deviance") -> np.ndarray:
        raise GlammError("residuals are not defined for an ordinal response; see "
                         "predict(type='prob') and fitted()")

    @property
    def method(self) -> str:
        if self.nagq > 1:
            return ("the adaptive Gauss-Hermite quadrature approximation with "
                    f"{self.nagq} quadrature points")
        return "the Laplace approximation"

    def _format(self) -> str:
        return format_clmm(self)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(family="ordinal", link=self.link, levels=list(self.levels),
                   thresholds={k: float(v) for k, v in self.thresholds.items()},
                   threshold_stderr={k: float(v) for k, v in self.threshold_stderr.items()})
        out.pop("shape", None)
        out.pop("dispersion", None)
        return out


def _table(df: pd.DataFrame, digits: int = 4) -> str:
    return df.to_string(float_format=lambda v: f"{v:.{digits}g}")


def format_clmm(r: ClmmResult) -> str:
    """ordinal's ``summary(clmm)`` layout."""
    lines = [f"Cumulative Link Mixed Model fitted with {r.method}", "",
             f"formula: {r.formula}", ""]
    head = pd.DataFrame({"link": [r.link], "threshold": ["flexible"], "nobs": [r.nobs],
                         "logLik": [f"{r.loglik:.2f}"], "AIC": [f"{r.aic:.2f}"]})
    lines += [head.to_string(index=False), "", "Random effects:"]
    vc = r.varcorr
    re_rows = vc[vc["var2"].isna()] if "var2" in vc else vc
    shown = pd.DataFrame({"Groups": re_rows["group"], "Name": re_rows["var1"],
                          "Variance": re_rows["vcov"], "Std.Dev.": re_rows["sdcor"]})
    lines += [_table(shown.set_index("Groups")),
              "Number of groups:  " + "  ".join(f"{g} {n}" for g, n in r.ngroups.items()), ""]
    if len(r.fixef):
        lines += ["Coefficients:", _table(wald_table(r.fixef, r.stderr)), ""]
    lines += ["Threshold coefficients:", _table(r.threshold_table())]
    if r.notes:
        lines += ["", *[f"Note: {n}" for n in r.notes]]
    return "\n".join(lines)

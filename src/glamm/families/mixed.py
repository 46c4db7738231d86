"""Per-row response families (galamm's mixed response types): one model whose rows follow
different distributions, e.g. a Gaussian test score and a binary item measuring one ability.

:class:`MixedFamily` is a :class:`~glamm.families.Family` whose every method splits its
arguments by row, hands each part to the row's own family (with its own link, variance,
dispersion and normalizing constants) and puts the answers back in row order, so PIRLS, the
Laplace approximation, quadrature and the gradients use it unchanged. Its link,
:class:`RowwiseLink`, does the same for the link functions. Arrays passed to it have the
model's rows on their first axis (quadrature passes ``n x K`` arrays, one column per node);
the dispersion may be a scalar or one value per row (a family without a dispersion ignores
its part). The log-likelihood is the sum over rows of each row's own log-density.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .base import Family
from .links import Link
from .numeric import _arr


class MixedFamily(Family):
    """Families chosen row by row.

    Parameters
    ----------
    families : sequence of Family
        The component families (each with its link).
    index : array of int
        For each row of the model, the 0-based position of its family in ``families``.
    labels : sequence of str, optional
        A label per family for names and printing (default ``"1"``, ``"2"``, ...: galamm's
        1-based family indices).
    allow_empty : bool, optional
        Accept families without rows (new data); default ``False``.

    Raises
    ------
    DataError
        An index outside ``0 .. len(families) - 1``, fewer than two families, or a family
        without rows.
    """

    name = "mixed"
    r_name = "mixed"

    def __init__(self, families: Sequence[Family], index, labels: Sequence[str] | None = None,
                 allow_empty: bool = False):
        families = list(families)
        if len(families) < 2:
            raise DataError("a mixed response needs at least two families")
        index = np.asarray(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise DataError("the family index must be one integer per row")
        bad = (index < 0) | (index >= len(families))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"family index {int(index[i]) + 1} (row {i}) is outside 1.."
                            f"{len(families)}, the families given")
        self.families = families
        self.labels = [str(s) for s in labels] if labels is not None else \
            [str(k + 1) for k in range(len(families))]
        self.index = index.astype(np.intp)
        self.n = int(index.size)
        self.rows = [np.flatnonzero(self.index == k) for k in range(len(families))]
        empty = [self.labels[k] for k, r in enumerate(self.rows) if r.size == 0]
        if empty and not allow_empty:
            raise DataError(f"family {', '.join(empty)} has no rows in the model's data; "
                            "every family given needs at least one row")
        self.link: Link = RowwiseLink(self)
        self._kept: list[tuple[np.ndarray, list]] = []

    # ------------------------------------------------------------------ description
    @property
    def has_dispersion(self) -> bool:  # type: ignore[override]
        return any(f.has_dispersion for f in self.families)

    @property
    def has_shape(self) -> bool:  # type: ignore[override]
        return any(f.has_shape for f in self.families)

    #: separation checks look at all rows as binary outcomes; with other families' rows
    #: sharing the coefficients they do not apply
    can_separate = False

    @property
    def link_is_canonical(self) -> bool:
        return all(f.link_is_canonical for f in self.families)

    def describe(self) -> str:
        """``gaussian(identity) [1], binomial(logit) [2]``: each family with its label."""
        return ", ".join(f"{f.name}({f.link.name}) [{lab}]"
                         for f, lab in zip(self.families, self.labels, strict=True))

    def _params(self) -> tuple:
        return (type(self), tuple(f._params() for f in self.families), self.index.tobytes())

    def __repr__(self) -> str:
        return f"MixedFamily({self.describe()})"

    def with_families(self, families: Sequence[Family]) -> MixedFamily:
        """The same rows with other component families (e.g. a negative binomial's new
        shape)."""
        new = MixedFamily(families, self.index, self.labels, allow_empty=True)
        new.column, new.by_label = self.column, self.by_label
        new._kept = self._kept   # shared: the same rows
        return new

    def at_rows(self, index) -> MixedFamily:
        """The same families for other rows (``index``: 0-based codes), e.g. new data."""
        new = MixedFamily(self.families, index, self.labels, allow_empty=True)
        new.column, new.by_label = self.column, self.by_label
        return new

    #: the data column that chose each row's family (``None``: given as an array) and whether
    #: it holds labels (``family_by``) rather than 1-based positions (``family_index``)
    column: str | None = None
    by_label: bool = False

    def codes_in(self, data) -> np.ndarray:
        """Each row's family (0-based) in another data frame, read from :attr:`column`.

        Raises
        ------
        DataError
            The family was given as an array, the column is missing, or a value names no
            family.
        """
        if self.column is None:
            raise DataError("the per-row families were given as an array; to predict on new "
                            "data give family_index (or family_by) as a column name")
        if self.column not in data.columns:
            raise DataError(f"new data need the column {self.column!r} that chooses each "
                            "row's family")
        values = data[self.column].to_numpy()
        if self.by_label:
            text = [str(v) for v in values]
            unknown = [v for v in text if v not in self.labels]
            if unknown:
                raise DataError(f"{self.column!r} values {sorted(set(unknown))} name no family "
                                f"({self.labels})")
            return np.array([self.labels.index(v) for v in text], dtype=np.intp)
        num = np.asarray(values, dtype=float)
        bad = ~np.isin(num, np.arange(1, len(self.families) + 1))
        if bad.any():
            raise DataError(f"{self.column!r} must hold 1..{len(self.families)} in new data; "
                            f"row {int(np.flatnonzero(bad)[0])} does not")
        return num.astype(np.intp) - 1

    def with_link(self, link) -> Family:
        raise DataError("a mixed response takes each family's link from the family "
                        "(e.g. get_family('binomial', link='probit')), not one link for all")

    # ------------------------------------------------------------------ dispatch
    def _split(self, x) -> list:
        if x is None or np.ndim(x) == 0:
            return [x] * len(self.families)
        # the responses and weights are the same arrays call after call: their parts are
        # kept (by identity) so each family's cached constants (log-factorials) stay valid
        for arr, parts in self._kept:
            if arr is x:
                return parts
        x = np.asarray(x)
        if x.shape[0] != self.n:
            raise DataError(f"a mixed response's values must have one row per observation "
                            f"({self.n}), got {x.shape[0]}")
        return [x[r] for r in self.rows]

    #: how many split arrays are kept (a model and its working copies each bring theirs)
    KEEP = 12

    def keep_parts(self, *arrays) -> None:
        """Split ``arrays`` (the responses, the prior weights and their column forms) once
        and reuse the parts whenever the same array objects come back (the most recent
        :attr:`KEEP` arrays are kept)."""
        new = [(a, [np.asarray(a)[r] for r in self.rows]) for a in arrays
               if not any(a is kept for kept, _ in self._kept)]
        self._kept[:0] = new
        del self._kept[self.KEEP:]

    def _gather(self, parts: list) -> np.ndarray:
        parts = [np.asarray(p) for p in parts]
        trailing = max((p.shape[1:] for p in parts), key=len)
        dtype = np.result_type(*parts)
        out = np.empty((self.n, *trailing), dtype=dtype)
        for r, p in zip(self.rows, parts, strict=True):
            out[r] = p
        return out

    def _map(self, method: str, *args, **kwargs) -> np.ndarray:
        split_args = [self._split(a) for a in args]
        split_kw = {k: self._split(v) for k, v in kwargs.items()}
        parts = []
        for k, fam in enumerate(self.families):
            parts.append(getattr(fam, method)(*(a[k] for a in split_args),
                                              **{n: v[k] for n, v in split_kw.items()}))
        return self._gather(parts)

    def _map2(self, method: str, *args, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        split_args = [self._split(a) for a in args]
        split_kw = {k: self._split(v) for k, v in kwargs.items()}
        firsts, seconds = [], []
        for k, fam in enumerate(self.families):
            a, b = getattr(fam, method)(*(s[k] for s in split_args),
                                        **{n: v[k] for n, v in split_kw.items()})
            firsts.append(a)
            seconds.append(b)
        return self._gather(firsts), self._gather(seconds)

    # ------------------------------------------------------------------ Family methods
    def variance(self, mu) -> np.ndarray:
        return self._map("variance", mu)

    def variance_deriv(self, mu) -> np.ndarray:
        return self._map("variance_deriv", mu)

    def unit_deviance(self, y, mu) -> np.ndarray:
        return self._map("unit_deviance", y, mu)

    def deviance_residuals(self, y, mu, wt=None) -> np.ndarray:
        return self._map("deviance_residuals", y, mu, wt)

    def _loglik(self, y, mu, wt, phi) -> np.ndarray:   # pragma: no cover - loglik dispatches
        return self._map("_loglik", y, mu, wt, phi)

    def loglik(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        return self._map("loglik", y, mu, wt, dispersion)

    def loglik_eta(self, y, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._map("loglik_eta", y, eta, wt, dispersion)

    def mu_in_range(self, mu) -> np.ndarray:
        return self._map("mu_in_range", mu)

    def valid_mu(self, mu) -> bool:
        return bool(np.all(self.mu_in_range(mu)))

    def validate(self, y, wt=None) -> None:
        for k, (fam, yk, wk) in enumerate(zip(self.families, self._split(y), self._split(wt),
                                              strict=True)):
            try:
                fam.validate(yk, wk)
            except DataError as exc:
                raise DataError(f"rows of family {self.labels[k]} ({fam.name}): {exc} "
                                "(index within that family's rows)") from None

    def mustart(self, y, wt=None) -> np.ndarray:
        return self._map("mustart", y, wt)

    def weights_and_working(self, y, mu, eta, wt=None) -> tuple[np.ndarray, np.ndarray]:
        return self._map2("weights_and_working", y, mu, eta, wt)

    def fisher_weights(self, eta, mu, wt, dispersion=1.0,
                       mu_eta=None) -> tuple[np.ndarray, np.ndarray]:
        return self._map2("fisher_weights", eta, mu, wt, dispersion, mu_eta=mu_eta)

    def fisher_weights_deta(self, eta, mu, wt, dispersion=1.0) -> np.ndarray:
        return self._map("fisher_weights_deta", eta, mu, wt, dispersion)

    def dloglik_dmu(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        return self._map("dloglik_dmu", y, mu, wt, dispersion)

    def d2loglik_dmu2(self, y, mu, wt=None, dispersion=1.0) -> np.ndarray:
        return self._map("d2loglik_dmu2", y, mu, wt, dispersion)

    def dloglik_deta(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._map("dloglik_deta", y, mu, eta, wt, dispersion)

    def d2loglik_deta2(self, y, mu, eta, wt=None, dispersion=1.0) -> np.ndarray:
        return self._map("d2loglik_deta2", y, mu, eta, wt, dispersion)

    def sample(self, mu, wt, dispersion, rng):
        """Each row from its own family (its dispersion: the scalar or the row's)."""
        mu = _arr(mu)
        wt = np.broadcast_to(_arr(wt), mu.shape)
        disp = np.broadcast_to(_arr(dispersion), mu.shape)
        out = np.zeros(mu.shape)
        for fam, rows in zip(self.families, self.rows, strict=True):
            if rows.size:
                out[rows] = fam.sample(mu[rows], wt[rows], disp[rows], rng)
        return out


class RowwiseLink(Link):
    """The link of a :class:`MixedFamily`: each row through its own family's link."""

    name = "mixed"
    r_name = "mixed"

    def __init__(self, family: MixedFamily) -> None:
        self._family = family

    def _map(self, method: str, *args) -> np.ndarray:
        fam = self._family
        split = [fam._split(a) for a in args]
        return fam._gather([getattr(f.link, method)(*(s[k] for s in split))
                            for k, f in enumerate(fam.families)])

    def link(self, mu) -> np.ndarray:
        return self._map("link", mu)

    def inverse(self, eta) -> np.ndarray:
        return self._map("inverse", eta)

    def mu_eta(self, eta) -> np.ndarray:
        return self._map("mu_eta", eta)

    def mu_eta_at(self, eta, mu) -> np.ndarray:
        return self._map("mu_eta_at", eta, mu)

    def d2mu_deta2(self, eta) -> np.ndarray:
        return self._map("d2mu_deta2", eta)

    def valid_eta(self, eta) -> bool:
        fam = self._family
        return all(f.link.valid_eta(part) for f, part in zip(fam.families, fam._split(eta),
                                                              strict=True))

    def __repr__(self) -> str:
        return f"RowwiseLink({', '.join(f.link.name for f in self._family.families)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowwiseLink) and other._family == self._family

    def __hash__(self) -> int:
        return hash(("RowwiseLink", self._family))

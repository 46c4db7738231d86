"""The ``family`` argument of :func:`glamm.glmer` and :func:`glamm.galamm`, resolved against
the data: one family for every row, or per-row families (galamm's mixed response types).

Per-row families are given as a list with ``family_index`` (a column, or an array, of
1-based positions in the list, as galamm's response matrix) or as a dict from labels to
families with ``family_by`` (a column whose values are the labels). Binomial rows of a mixed
response may count successes out of ``trials`` (a column): the row's response is then the
proportion and its weight the number of trials. :func:`family_for_frame` turns the spec into
the model's family once the frame's rows are known (rows with missing values are dropped
there).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, GlammError


@dataclass
class FamilySpec:
    """Families and, for per-row families, each data row's family (0-based)."""

    families: list
    labels: list[str]
    codes: np.ndarray | None = None
    #: the binomial rows' numbers of trials per data row (``trials=``), else None
    trials: np.ndarray | None = None
    #: the column that chose the families (None: an array) and whether it holds labels
    column: str | None = None
    by_label: bool = False

    @property
    def mixed(self) -> bool:
        return self.codes is not None


def _one_family(entry: Any, link: Any = None):
    from .families import get_family

    if isinstance(entry, tuple):
        if len(entry) != 2:
            raise GlammError(f"a family given as a tuple is (name, link), got {entry!r}")
        return get_family(entry[0], entry[1])
    return get_family(entry, link)


def _column(data: pd.DataFrame, arg: Any, what: str) -> np.ndarray:
    if isinstance(arg, str):
        if arg not in data.columns:
            raise DataError(f"{what}: unknown column {arg!r}")
        return data[arg].to_numpy()
    values = np.asarray(arg)
    if values.ndim != 1 or values.shape[0] != len(data):
        raise DataError(f"{what} has {values.shape[0] if values.ndim else 1} values; the data "
                        f"have {len(data)} rows")
    return values


def family_spec(family: Any, link: Any, data: pd.DataFrame, family_index: Any = None,
                family_by: Any = None, trials: Any = None) -> FamilySpec:
    """Resolve ``family`` (a name, a Family, a list or a dict) against ``data``.

    Raises
    ------
    GlammError
        A list without ``family_index``, a dict without ``family_by``, an index for a single
        family, or one link for several families.
    DataError
        Index values outside the list, labels not in the dict, missing values.
    """
    if isinstance(family, dict):
        if family_by is None:
            raise GlammError("a dict of families needs family_by=, the column whose values "
                             "are its keys")
        if family_index is not None:
            raise GlammError("give family_index= with a list of families, family_by= with a "
                             "dict; not both")
        labels = [str(k) for k in family]
        families = list(family.values())
        values = _column(data, family_by, "family_by")
        missing = pd.isna(values)
        if missing.any():
            raise DataError(f"family_by has {int(missing.sum())} missing value(s) (first at "
                            f"row {int(np.flatnonzero(missing)[0])}); every row needs a family")
        text = np.array([str(v) for v in values])
        unknown = sorted(str(v) for v in set(text) - set(labels))
        if unknown:
            raise DataError(f"family_by values {unknown} are not keys of the family dict "
                            f"({labels})")
        codes = np.array([labels.index(v) for v in text]) if len(labels) > 1 else None
    elif isinstance(family, list):
        if family_index is None and len(family) > 1:
            raise GlammError("a list of families needs family_index=, a column of 1-based "
                             "positions in the list (or give a dict with family_by=)")
        if family_by is not None:
            raise GlammError("family_by= goes with a dict of families; a list takes "
                             "family_index=")
        families = list(family)
        labels = [str(k + 1) for k in range(len(families))]
        codes = None
        if family_index is not None:
            values = _column(data, family_index, "family_index")
            num = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
            bad = ~np.isfinite(num) | (num != np.round(num))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"family_index must hold whole numbers 1..{len(families)}; "
                                f"row {i} has {values[i]!r}")
            outside = (num < 1) | (num > len(families))
            if outside.any():
                i = int(np.flatnonzero(outside)[0])
                raise DataError(f"family_index {int(num[i])} (row {i}) is outside "
                                f"1..{len(families)}, the families given")
            codes = num.astype(int) - 1
    else:
        if family_index is not None or family_by is not None:
            raise GlammError("family_index= and family_by= choose among several families; "
                             "give family as a list (with family_index) or a dict (with "
                             "family_by)")
        if trials is not None:
            raise GlammError("trials= is for binomial rows of a mixed response; for one "
                             "family write cbind(successes, failures) or weights=")
        return FamilySpec([_one_family(family, link)], [""])
    if not families:
        raise GlammError("the list of families is empty")
    if link is not None:
        raise GlammError("with several families give each its link, e.g. "
                         "('binomial', 'probit') or get_family('binomial', link='probit'), "
                         "not link=")
    fams = [_one_family(f) for f in families]
    if len(fams) == 1:
        codes = None
    chooser = family_by if isinstance(family, dict) else family_index
    spec = FamilySpec(fams, labels, codes, column=chooser if isinstance(chooser, str) else None,
                      by_label=isinstance(family, dict))
    if trials is not None:
        spec.trials = _trials(spec, data, trials)
    return spec


def _trials(spec: FamilySpec, data: pd.DataFrame, trials: Any) -> np.ndarray:
    values = pd.to_numeric(pd.Series(_column(data, trials, "trials")),
                           errors="coerce").to_numpy(dtype=float)
    binomial = np.zeros(len(data), dtype=bool)
    for k, fam in enumerate(spec.families):
        if fam.name == "binomial":
            binomial |= (spec.codes == k) if spec.codes is not None else True
    if not binomial.any():
        raise GlammError("trials= gives binomial numbers of trials, but no family is binomial")
    v = values[binomial]
    bad = ~np.isfinite(v) | (v < 0) | (v != np.round(v))
    if bad.any():
        i = int(np.flatnonzero(binomial)[np.flatnonzero(bad)[0]])
        raise DataError(f"trials must be whole numbers >= 0 on the binomial rows; row {i} "
                        f"has {values[i]!r}")
    return np.where(binomial, values, 1.0)


def family_for_frame(spec: FamilySpec, frame):
    """The model's family on the rows ``frame`` kept, and the frame with binomial counts
    turned into proportions (``trials=``). Checks each family's response (a constant
    response in one family's rows has no finite estimate)."""
    from .checks import check_glm_response
    from .families.mixed import MixedFamily

    if not spec.mixed:
        return spec.families[0], frame
    rows = frame.row_index.to_numpy()
    assert spec.codes is not None
    codes = spec.codes[rows]
    if frame.trials is not None:
        raise GlammError("cbind(successes, failures) gives every row trials; in a mixed "
                         "response give the binomial rows' trials with trials= instead")
    if spec.trials is not None:
        n = spec.trials[rows]
        y = frame.y
        binomial = np.isin(codes, [k for k, f in enumerate(spec.families)
                                   if f.name == "binomial"])
        over = binomial & ((y < 0) | (y > n) | (y != np.round(y)))
        if over.any():
            i = int(rows[np.flatnonzero(over)[0]])
            raise DataError(f"with trials=, the response of a binomial row counts successes "
                            f"(0..trials); data row {i} has {y[np.flatnonzero(over)[0]]!r} of "
                            f"{n[np.flatnonzero(over)[0]]!r}")
        prop = np.where(binomial & (n > 0), y / np.where(n > 0, n, 1.0), y)
        prop = np.where(binomial & (n == 0), 0.0, prop)
        frame = dataclasses.replace(frame, y=prop, trials=n)
    family = MixedFamily(spec.families, codes, spec.labels)
    family.column, family.by_label = spec.column, spec.by_label
    for k, fam in enumerate(spec.families):
        r = family.rows[k]
        sub = dataclasses.replace(
            frame, y=frame.y[r], weights=frame.weights[r],
            trials=None if frame.trials is None else frame.trials[r])
        try:
            check_glm_response(sub, fam)
        except DataError as exc:
            raise DataError(f"rows of family {spec.labels[k]} ({fam.name}): {exc}") from None
    return family, frame

"""Bundled example data sets, typed as R typed them.

Each data set is a CSV file in ``glamm/datasets/data/`` together with one
catalogue, ``datasets.json``, which records for every data set its provenance
(``source``), its shape (``nrow``, ``ncol``), an optional ``note`` and, per
column, the type (``numeric``, ``integer``, ``factor`` or ``ordered``), the
number of missing values (``n_missing``) and, for factors, the levels in R's
order. Level order matters: it fixes the reference level and therefore the
names of the fixed-effect coefficients, and it is often not alphabetical
(``sim_binary_longitudinal.sex`` is ``male``, ``female``; ``gamm4_sim1.fac`` is
``"1"`` .. ``"20"`` in numeric order).

Bundled data sets and where they come from:

==========================  =====================================================
name                        source
==========================  =====================================================
sleepstudy                  lme4 1.1-31
Dyestuff, Dyestuff2         lme4 1.1-31
Penicillin, Pastes          lme4 1.1-31
InstEval                    lme4 1.1-31 (73,421 rows)
cbpp, VerbAgg               lme4 1.1-31
sim_binary_longitudinal     simulated with the GLMMadaptive vignette code,
                            ``set.seed(1234)``
sim_poisson_longitudinal    simulated with the GLMMadaptive vignette code,
                            ``set.seed(1234)``
gamm4_sim1                  simulated as in ``?gamm4``: ``set.seed(0);
                            gamSim(1, n = 400, scale = 2)``, mgcv 1.8-41
IRTsim, KYPSsim             PLmixed 0.1.7 (the galamm vignettes' factor models);
                            ``item`` and ``time`` are bundled as factors (numeric
                            in R), as galamm uses them
latent_covariates           galamm 0.4.0; ``type`` (character in R) as a factor
cognition                   galamm 0.4.0 (14,400 rows)
Orthodont, Machines         nlme 3.1-162 (grouped data exported as plain frames)
Salamanders                 glmmTMB 1.1.5 (``mined``: ``yes`` is the reference)
wine                        ordinal 2022.11-16 (``rating`` an ordered factor)
epilep, mresp, hsced        galamm 0.4.0 (seizure counts; mixed Gaussian and
                            binary responses; residual SD by item)
sim_hetero,                 simulated for the reference fits (item-specific
sim_mixed_response,         residual SDs; Gaussian and binary rows sharing a
sim_families, sim_spatial   latent variable; beta, Gamma, Tweedie and t
                            responses; an exponential random field)
==========================  =====================================================

``describe(name)["source"]`` gives the exact provenance string.

Public functions
----------------
load(name)
    The data set as a fresh :class:`pandas.DataFrame`.
list()
    The names of the bundled data sets.
describe(name)
    The catalogue entry (source, nrow, ncol, note, columns).
read_csv(path, metadata)
    Read any CSV written in the same format, typed by a catalogue entry (used
    for reference data that is not bundled).

Column types map to pandas dtypes as follows: ``numeric`` -> ``float64``;
``integer`` -> ``int64`` (``Int64`` only when the column has missing values);
``factor`` -> unordered :class:`pandas.Categorical` whose categories are the
level labels as strings, in the catalogue's order; ``ordered`` -> ordered
:class:`pandas.Categorical`. Factor columns are read as text, so a label such
as ``"308"`` stays ``"308"``. The text ``NA`` marks a missing value.
"""

from __future__ import annotations

import builtins as _builtins
import copy as _copy
import difflib as _difflib
import functools as _functools
import importlib.resources as _resources
import json as _json
from typing import TYPE_CHECKING

from ..errors import ArgumentError as _ArgumentError
from ..errors import DataError as _DataError

if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, Any

    import pandas as pd

# pandas is imported where a table is built, so that `glamm datasets` and `glamm --help` start
# quickly

__all__ = ["DatasetNotFoundError", "describe", "list", "list_datasets", "load", "read_csv"]


def __dir__() -> _builtins.list[str]:
    """The public names only (tab completion)."""
    return sorted(__all__)

# Type alias bound before ``list`` is rebound at the bottom of this module, so
# annotations never see the public function in place of the builtin.
_Names = _builtins.list[str]

_CATALOGUE = "datasets.json"
_FACTOR_TYPES = ("factor", "ordered")
_KNOWN_TYPES = ("numeric", "integer", "factor", "ordered")


class DatasetNotFoundError(KeyError, _DataError):
    """No bundled data set has the requested name.

    Subclasses both :class:`KeyError` (a failed lookup by name) and
    :class:`glamm.errors.DataError` (so a ``ValueError`` too): any of those ``except`` clauses
    catches it.
    The message lists the available names.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would show the message in quotes; show it plainly.
        return str(self.args[0]) if self.args else ""


def _data_dir() -> Any:
    return _resources.files(__name__).joinpath("data")


@_functools.cache
def _catalogue() -> dict[str, dict[str, Any]]:
    """The parsed ``datasets.json``, keyed by canonical name (read once)."""
    with _data_dir().joinpath(_CATALOGUE).open("r", encoding="utf-8") as fh:
        entries = _json.load(fh)
    return dict(entries)


@_functools.cache
def _lowercase_index() -> dict[str, str]:
    return {name.lower(): name for name in _catalogue()}


def _resolve(name: str) -> str:
    """Map a name, in any letter case, to its canonical spelling."""
    if not isinstance(name, str):
        raise _ArgumentError(f"data set name must be a str, not {type(name).__name__}")
    canonical = _lowercase_index().get(name.strip().lower())
    if canonical is not None:
        return canonical
    available = _builtins.list(_catalogue())
    close = _difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise DatasetNotFoundError(
        f"unknown data set {name!r}.{hint} Available data sets: {', '.join(available)}."
    )


def list_datasets() -> _Names:
    """Names of the bundled data sets.

    Returns
    -------
    list of str
        Canonical names in catalogue order (the lme4 data sets first, then the
        simulated ones, then galamm's). Any of them can be passed to :func:`load` and
        :func:`describe`; letter case does not matter there.
    """
    return _builtins.list(_catalogue())


def describe(name: str) -> dict[str, Any]:
    """Catalogue entry of a bundled data set.

    Parameters
    ----------
    name : str
        Data set name, case-insensitive (``"sleepstudy"``, ``"InstEval"``, ...).

    Returns
    -------
    dict
        A copy of the entry in ``datasets.json`` with keys ``name``,
        ``source`` (provenance, e.g. ``"lme4 1.1.31"`` or the simulation
        call), ``file``, ``nrow``, ``ncol``, ``note`` (``None`` or a remark on
        how the data is used) and ``columns``: a list of dicts with ``name``,
        ``type``, ``n_missing`` and, for factors, ``levels`` in R's order.
        Changing the returned dict does not change the catalogue.

    Raises
    ------
    DatasetNotFoundError
        If no data set has that name; the message lists the available names.
    """
    return _copy.deepcopy(_catalogue()[_resolve(name)])


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set.

    Parameters
    ----------
    name : str
        Data set name, case-insensitive; see :func:`list` for the choices.

    Returns
    -------
    pandas.DataFrame
        A new frame on every call (the frames are not cached), with the
        columns in file order and typed from the catalogue: ``numeric`` as
        ``float64``, ``integer`` as ``int64`` (nullable ``Int64`` only if
        values are missing), ``factor`` as an unordered Categorical and
        ``ordered`` as an ordered Categorical, with categories equal to the
        level labels (strings) in R's level order.

    Raises
    ------
    DatasetNotFoundError
        If no data set has that name; the message lists the available names.
    ValueError
        If the bundled file does not match its catalogue entry (a packaging
        error).

    Notes
    -----
    The lme4 data sets come from lme4 1.1-31 and galamm's from PLmixed 0.1.7
    and galamm 0.4.0; the simulated ones record their generating code and seed
    in ``describe(name)["source"]`` and ``describe(name)["note"]``.

    Examples
    --------
    >>> from glamm import datasets
    >>> df = datasets.load("sleepstudy")
    >>> df.shape
    (180, 3)
    >>> df["Subject"].cat.categories[:2].tolist()
    ['308', '309']
    """
    entry = _catalogue()[_resolve(name)]
    with _data_dir().joinpath(entry["file"]).open("r", encoding="utf-8", newline="") as fh:
        return read_csv(fh, entry)


def read_csv(source: "str | IO[str] | Any", metadata: dict[str, Any]) -> pd.DataFrame:
    """Read a CSV in the bundled format, typed by a catalogue entry.

    The format is what R's ``write.csv(..., row.names = FALSE)`` writes: a
    header, no row names, factors as level labels and ``NA`` for missing
    values.

    Parameters
    ----------
    source : path or text file object
        Where to read the CSV from.
    metadata : dict
        An entry in the format of ``datasets.json`` (see :func:`describe`);
        ``columns`` is required, ``nrow`` and ``ncol`` are checked if given.

    Returns
    -------
    pandas.DataFrame
        Typed as described in :func:`load`.

    Raises
    ------
    ValueError
        If the header, the number of rows, a column type or a factor label
        disagrees with ``metadata``.
    """
    import pandas as pd

    columns = metadata["columns"]
    label = metadata.get("name", "data set")
    read_dtypes: dict[str, Any] = {}
    for col in columns:
        kind = col["type"]
        if kind not in _KNOWN_TYPES:
            raise _DataError(f"{label}: column {col['name']!r} has unknown type {kind!r}")
        if kind in _FACTOR_TYPES:
            read_dtypes[col["name"]] = str
        elif kind == "integer":
            read_dtypes[col["name"]] = "Int64"
        else:
            read_dtypes[col["name"]] = "float64"

    raw = pd.read_csv(
        source,
        dtype=read_dtypes,
        keep_default_na=False,
        na_values=["NA"],
    )

    expected = [col["name"] for col in columns]
    if raw.columns.tolist() != expected:
        raise _DataError(
            f"{label}: columns {raw.columns.tolist()} do not match the catalogue {expected}"
        )
    if "nrow" in metadata and len(raw) != metadata["nrow"]:
        raise _DataError(f"{label}: {len(raw)} rows, the catalogue says {metadata['nrow']}")
    if "ncol" in metadata and raw.shape[1] != metadata["ncol"]:
        raise _DataError(f"{label}: {raw.shape[1]} columns, the catalogue says {metadata['ncol']}")

    typed: dict[str, Any] = {}
    for col in columns:
        typed[col["name"]] = _convert(raw[col["name"]], col, label)
    return pd.DataFrame(typed, index=pd.RangeIndex(len(raw)))


def _convert(values: pd.Series, col: dict[str, Any], label: str) -> pd.Series:
    import pandas as pd

    kind = col["type"]
    if kind == "numeric":
        return values.astype("float64")
    if kind == "integer":
        return values if values.isna().any() else values.astype("int64")

    levels = [str(level) for level in col["levels"]]
    if len(set(levels)) != len(levels):
        raise _DataError(f"{label}: column {col['name']!r} has repeated levels")
    present = values.dropna()
    unknown = sorted(set(present) - set(levels))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise _DataError(
            f"{label}: column {col['name']!r} has labels not among its levels: {shown}"
        )
    categories = pd.Index(levels, dtype="str")
    factor = pd.Categorical(values, categories=categories, ordered=(kind == "ordered"))
    return pd.Series(factor, name=values.name, index=values.index)


# Public name ``list``, as in ``glamm.datasets.list()``. Bound last so nothing
# above it resolves ``list`` to this function; code in this module uses
# ``_builtins.list``.
list = list_datasets

"""The data a user passes, as glamm's internal table type (a pandas DataFrame): pandas as it
is, a dict of columns, polars and other Arrow tables, dataframe-interchange objects."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from ..errors import DataError

#: the types ``data`` may have, for error messages
ACCEPTED_DATA = ("a pandas DataFrame, a polars DataFrame, a dict of columns, or a table with "
                 "the Arrow PyCapsule (__arrow_c_stream__) or dataframe interchange "
                 "(__dataframe__) protocol, e.g. a pyarrow Table")


def as_pandas(data: Any) -> pd.DataFrame:
    """``data`` as a pandas DataFrame, glamm's internal table type.

    Parameters
    ----------
    data : pandas.DataFrame, dict, polars.DataFrame or Arrow-compatible table
        A pandas DataFrame is returned as it is; a dict of columns goes through
        ``pandas.DataFrame``; objects with ``__arrow_c_stream__`` (polars, pyarrow, ...) are
        read through pyarrow, others with ``__dataframe__`` through pandas' interchange
        protocol. Arrow dictionary columns become pandas Categoricals. Polars' categorical
        types become unordered Categoricals (treatment contrasts, as R's factors):
        ``Categorical`` with its categories sorted (polars compares them lexically; R sorts
        factor levels), ``Enum`` with its categories in the Enum's order.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        ``data`` is none of these, or pyarrow is needed and missing.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if is_dask_frame(data):
        raise DataError("a Dask DataFrame is fitted by glamm.lmer and glamm.glmer only (in "
                        "passes over its partitions); for other models load the data into "
                        "memory (ddf.compute())")
    if isinstance(data, dict):
        return pd.DataFrame(data)
    if hasattr(data, "__arrow_c_stream__"):
        return _from_arrow(data)
    if hasattr(data, "__dataframe__"):
        with warnings.catch_warnings():   # pandas 3 deprecates the protocol, not our use
            warnings.filterwarnings("ignore", message=".*Interchange Protocol is deprecated")
            return pd.api.interchange.from_dataframe(data, allow_copy=True)
    lazy = " (a lazy frame: call .collect() first)" if hasattr(data, "collect") else ""
    raise DataError(f"data must be {ACCEPTED_DATA}; got {type(data).__module__}."
                    f"{type(data).__qualname__}{lazy}")


def is_dask_frame(data: Any) -> bool:
    """Whether ``data`` is a ``dask.dataframe.DataFrame`` (without importing Dask)."""
    module = type(data).__module__
    return module.startswith(("dask.dataframe", "dask_expr")) and hasattr(data, "to_delayed")


def _from_arrow(data: Any) -> pd.DataFrame:
    """A table with the Arrow PyCapsule stream protocol, read through pyarrow."""
    try:
        import pyarrow as pa
    except ImportError:
        raise DataError(f"reading a {type(data).__name__} needs the pyarrow package "
                        "(pip install pyarrow), or pass a pandas DataFrame") from None
    df = pa.table(data).to_pandas()
    if type(data).__module__.split(".")[0] == "polars":
        for name, dtype in data.schema.items():
            kind = str(dtype)
            if kind.startswith("Categorical"):
                df[name] = df[name].cat.as_unordered().cat.reorder_categories(
                    sorted(df[name].cat.categories))
            elif kind.startswith("Enum"):
                df[name] = df[name].cat.as_unordered()
    return df

"""Shared helpers for the glamm test suite.

- ``load_reference(case)`` reads ``tests/reference/ref/<case>.json`` (fits made in R; R is
  never needed to run the tests).
- ``parse_r_call(call)`` turns the recorded R call of an ``lmer``/``lme`` reference into the
  formula, data set and REML flag glamm is given.
- ``load_data(name)`` loads a bundled data set (or a reference-only CSV) as a fresh frame.
- ``write_parquet_parts`` and ``local_cluster`` set up the Dask tests' data on disk and a
  2-process cluster.
- the session-scoped ``fit`` fixture fits ``glamm.lmer`` once per
  ``(dataset, formula, reml)`` and returns the cached result afterwards.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from functools import lru_cache
from pathlib import Path

import pytest

import glamm
from glamm import datasets
from glamm.errors import SingularFitWarning

REFERENCE_DIR = Path(__file__).parent / "reference"
REF_DIR = REFERENCE_DIR / "ref"
REF_DATA_DIR = REFERENCE_DIR / "data"


# --------------------------------------------------------------------------- references
@lru_cache(maxsize=None)
def _reference_text(case: str) -> str:
    path = REF_DIR / f"{case}.json"
    if not path.exists():
        raise FileNotFoundError(f"no reference fit {case!r} in {REF_DIR}")
    return path.read_text(encoding="utf-8")


def load_reference(case: str) -> dict:
    """The reference fit ``case`` (file name without ``.json``) as a fresh dict."""
    return json.loads(_reference_text(case))


def reference_cases(prefix: str) -> list[str]:
    """Names of the reference cases whose file name starts with ``prefix``, sorted."""
    return sorted(p.stem for p in REF_DIR.glob(f"{prefix}*.json"))


def _split_args(text: str) -> list[str]:
    """Split an R argument list at top-level commas (outside brackets and quotes)."""
    parts, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


_R_TRUE = {"TRUE": True, "T": True, "FALSE": False, "F": False}


def parse_r_call(call: str) -> dict:
    """``{"function", "formula", "dataset", "reml"}`` from an R call recorded in a reference.

    ``lmer(f, data = d, REML = TRUE)`` gives ``f`` as is (lme4's default ``REML`` is TRUE).
    ``lme(fixed, random = ~ e | g, data = d, method = "REML")`` gives the lmer formula
    ``fixed + (e | g)`` (nlme's default method is REML).
    """
    m = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", call, flags=re.S)
    if not m:
        raise ValueError(f"cannot parse R call {call!r}")
    fn, args = m.group(1), _split_args(m.group(2))
    positional, named = [], {}
    for a in args:
        kv = re.fullmatch(r"([A-Za-z.][\w.]*)\s*=(?!=)\s*(.*)", a, flags=re.S)
        if kv and "~" not in kv.group(1):
            named[kv.group(1)] = kv.group(2).strip()
        else:
            positional.append(a)
    if fn == "lmer":
        formula = named.pop("formula", None) or positional.pop(0)
        reml = _R_TRUE[named.get("REML", "TRUE")]
    elif fn == "lme":
        fixed = named.pop("fixed", None) or positional.pop(0)
        random = named["random"].strip()
        if not random.startswith("~"):
            raise ValueError(f"unsupported random argument in {call!r}")
        formula = f"{fixed.strip()} + ({random[1:].strip()})"
        reml = named.get("method", '"REML"').strip("\"'") == "REML"
    else:
        raise ValueError(f"unsupported R function {fn!r} in {call!r}")
    dataset = named.get("data") or positional.pop(0)
    return {"function": fn, "formula": " ".join(formula.split()), "dataset": dataset, "reml": reml}


# --------------------------------------------------------------------------- data
@lru_cache(maxsize=None)
def _reference_only_catalogue() -> dict:
    with open(REF_DATA_DIR / "datasets.json", encoding="utf-8") as fh:
        return json.load(fh)


def load_data(name: str):
    """A fresh data frame: a bundled data set, or one of the reference-only CSV files."""
    catalogue = _reference_only_catalogue()
    if name in catalogue:
        entry = catalogue[name]
        return datasets.read_csv(REF_DATA_DIR / entry["file"], entry)
    return datasets.load(name)


# --------------------------------------------------------------------------- fits
class FitCache:
    """``glamm.lmer`` fits keyed by ``(dataset, formula, reml)``, made once per session
    (optimizer ``control`` settings, when given, are part of the key).

    The data frame handed to ``lmer`` is a fresh copy each time a fit is made, so a test that
    mutates the frame it gets from ``load_data`` cannot change a cached fit. Singular-fit
    warnings are recorded (``warnings_for``) instead of being emitted once per test.
    """

    def __init__(self):
        self._fits: dict[tuple[str, str, bool], object] = {}
        self._warnings: dict[tuple[str, str, bool], list] = {}

    @staticmethod
    def _key(dataset, formula, reml, control):
        key = (dataset, formula, bool(reml))
        return key if not control else key + (tuple(sorted(control.items())),)

    def __call__(self, dataset: str, formula: str, reml: bool = True, control: dict | None = None):
        key = self._key(dataset, formula, reml, control)
        if key not in self._fits:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = glamm.lmer(formula, load_data(dataset), reml=bool(reml), control=control)
            self._warnings[key] = [w for w in caught]
            # anything but the documented singular-fit warning is re-emitted
            for w in caught:
                if not issubclass(w.category, SingularFitWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            self._fits[key] = res
        return self._fits[key]

    def warnings_for(self, dataset: str, formula: str, reml: bool = True,
                     control: dict | None = None) -> list:
        self(dataset, formula, reml, control)
        return list(self._warnings[self._key(dataset, formula, reml, control)])


@pytest.fixture(scope="session")
def fit() -> FitCache:
    """Session-wide cache: ``fit(dataset, formula, reml, control=None)`` -> ``LmerResult``."""
    return FitCache()


# --------------------------------------------------------------------------- extra reference sets
class ReferenceSet:
    """A directory of references made by a committed R script: ``data/`` (CSVs and their
    ``datasets.json``) and ``ref/`` (one JSON per case). Used by the ``*_extra`` tests."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.ref_dir = self.root / "ref"
        # per-instance caches (lru_cache on a method would keep every instance alive)
        self._catalogue: dict | None = None
        self._texts: dict[str, str] = {}

    def catalogue(self) -> dict:
        """``datasets.json``: column types and factor levels (R's order) per data set."""
        if self._catalogue is None:
            text = (self.data_dir / "datasets.json").read_text(encoding="utf-8")
            self._catalogue = json.loads(text)
        return self._catalogue

    def _text(self, case: str) -> str:
        if case not in self._texts:
            self._texts[case] = (self.ref_dir / f"{case}.json").read_text(encoding="utf-8")
        return self._texts[case]

    def reference(self, case: str) -> dict:
        """The reference ``case`` as a fresh dict."""
        return json.loads(self._text(case))

    def load(self, name: str):
        """Data set ``name`` typed by the catalogue, through the bundled data's loader (which
        checks shape and levels); also checks the missing-value counts."""
        entry = self.catalogue()[name]
        df = datasets.read_csv(self.data_dir / entry["file"], entry)
        for col in entry["columns"]:
            if "n_missing" in col:
                assert int(df[col["name"]].isna().sum()) == col["n_missing"], col["name"]
        return df


@pytest.fixture(scope="session")
def cognition_fit():
    """galamm's cognition model (domain 1, a smooth on the latent scale), fitted once for
    the galamm test files: ``(result, data)``."""
    import numpy as np

    cog = glamm.datasets.load("cognition")
    d = cog[cog["domain"].astype(str) == "1"].copy()
    d["item"] = d["item"].cat.remove_unused_categories()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glamm.galamm("y ~ 0 + item + sl(x, factor='loading') + (0 + loading | id/timepoint)",
                         d, load_var="item", factor="loading",
                         lambda_=[[1], [np.nan], [np.nan]])
    return m, d


@pytest.fixture(scope="session")
def binary_latent_smooth_fit():
    """A binomial model with a smooth on the latent scale (three items, loadings 1, 0.7, 1.3
    in the simulation), fitted once for the galamm test files."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(4)
    n_id = 60
    d = pd.DataFrame({"id": np.repeat(np.arange(n_id), 3).astype(str),
                      "item": pd.Categorical(np.tile(["a", "b", "c"], n_id)),
                      "x": np.repeat(rng.uniform(0, 1, n_id), 3)})
    eta = np.sin(3 * d["x"]) * d["item"].map({"a": 1.0, "b": 0.7, "c": 1.3}).astype(float)
    d["y"] = (rng.uniform(size=len(d)) < 1 / (1 + np.exp(-eta))).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glamm.galamm("y ~ 0 + item + sl(x, k=5, factor='f') + (0 + f | id)", d,
                            family="binomial", load_var="item", factor="f",
                            lambda_=[[1], [np.nan], [np.nan]])


@pytest.fixture(scope="module")
def sal():
    """Salamanders as the zero-inflation references read it (tests/reference/zero_inflation:
    the CSV with its column types; mined levels yes, no)."""
    import pandas as pd

    folder = Path(__file__).parent / "reference" / "zero_inflation"
    d = pd.read_csv(folder / "Salamanders.csv")
    for c in json.loads((folder / "Salamanders.json").read_text())["columns"]:
        if c.get("levels"):
            d[c["name"]] = pd.Categorical(d[c["name"]].astype(str),
                                          [str(v) for v in c["levels"]])
    return d


# --------------------------------------------------------------------------- Dask helpers
def write_parquet_parts(data, directory: Path, n_files: int) -> None:
    """``data`` as ``n_files`` parquet files (consecutive rows) in a new ``directory``."""
    import numpy as np

    pytest.importorskip("pyarrow")
    directory.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(data)), n_files)):
        data.iloc[rows].to_parquet(directory / f"part-{i:02d}.parquet")


@contextlib.contextmanager
def local_cluster():
    """A ``distributed.LocalCluster`` of 2 single-threaded worker processes (started by a
    fork server: half the start-up time of spawned ones) made Dask's scheduler for the
    block, over a module's own choice (skips without ``distributed``)."""
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", memory_limit="1GiB") as cluster, \
            distributed.Client(cluster) as client, dask.config.set(scheduler=client.get):
        yield client

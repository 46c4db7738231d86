"""The random-effects terms of a model frame: a term's grouping factor (with R's ``a:b``
interaction levels), its model matrix (formulaic) checked for the structure it declares,
``coords(...)`` columns for spatial structures, the covariance structure named in the term
(glmmTMB's ``diag``, ``ar1``, ``exp``, ... or a known matrix for ``propto``), and the
:class:`~glamm.terms.reterm.ReTerm` built from them. Used by :mod:`.design`."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..terms.covariance import Unstructured
from ..terms.reterm import ReTerm
from .bars import RandomTermSpec
from .evaluate import (
    column_names,
    factor_codes,
    model_matrix_checked,
)
from .levels import FixedLevels, interaction_key, interaction_labels
from .naming import lme4_names


def grouping_factor(data: pd.DataFrame, factors: tuple[str, ...],
                    levels: FixedLevels | None = None) -> tuple[np.ndarray, list[str]]:
    """Level codes and labels of the (interaction of the) grouping columns ``factors``.

    Interactions use R's ``a:b`` order: levels sorted by the first factor, then the second;
    only combinations present in the data are kept; labels are joined with ``:``. With
    ``levels`` (a partition of a larger data set) the codes and labels are those of the
    whole data's dictionaries.
    """
    if levels is not None:
        return _fixed_grouping_factor(data, factors, levels)
    parts = [factor_codes(data[f]) for f in factors]
    if len(parts) == 1:
        return parts[0]
    key = interaction_key([codes for codes, _ in parts], [len(lab) for _, lab in parts])
    uniq, inverse = np.unique(key, return_inverse=True)
    return inverse.ravel().astype(np.int64), interaction_labels(uniq, [lab for _, lab in parts])


def _fixed_grouping_factor(data: pd.DataFrame, factors: tuple[str, ...], levels: FixedLevels
                           ) -> tuple[np.ndarray, list[str]]:
    """:func:`grouping_factor` against the whole data's dictionaries."""
    codes = [levels.codes(data[f], f) for f in factors]
    labels = [levels.group_labels(f) for f in factors]
    if len(factors) == 1:
        refs, labs = codes[0], labels[0]
    else:
        keys = levels.interactions[tuple(factors)]
        key = interaction_key(codes, [len(lab) for lab in labels])
        refs = np.searchsorted(keys, key)
        found = (refs < keys.shape[0]) & (keys[np.minimum(refs, keys.shape[0] - 1)] == key)
        refs = np.where(found & np.all([c >= 0 for c in codes], axis=0), refs, -1)
        labs = interaction_labels(keys, labels)
    if np.any(refs < 0):
        raise DataError(f"grouping factor {':'.join(factors)!r} has a level that the pass "
                        "over all partitions did not see (the data changed between passes?)")
    return refs.astype(np.int64), labs


COORDS_TERM = re.compile(r"^\s*(?:0\s*\+\s*)?coords\s*\((.*)\)\s*(?:\+\s*0\s*)?$", re.S)


class CoordinateColumns:
    """The columns of ``coords(x, y)`` in a structured term: one indicator per distinct
    location (sorted), as glmmTMB's ``numFactor``; :meth:`get_model_matrix` rebuilds them for
    new data (a location not seen in the fit gets no column: its effect is 0). Not public
    API."""

    def __init__(self, columns: list[str], sites: np.ndarray):
        self.columns = columns
        self.sites = sites

    def values(self, data: pd.DataFrame, what: str) -> np.ndarray:
        cols = []
        for c in self.columns:
            if c not in data.columns:
                raise FormulaError(f"{what}: unknown coordinate column {c!r}")
            v = data[c]
            if not pd.api.types.is_numeric_dtype(v) or isinstance(v.dtype, pd.CategoricalDtype):
                raise DataError(f"{what}: coordinate column {c!r} must be numeric")
            cols.append(v.to_numpy(dtype=float))
        return np.column_stack(cols)

    def get_model_matrix(self, data, na_action=None, context=None) -> np.ndarray:
        X = self.values(data, "coords")
        z = np.zeros((len(data), len(self.sites)))
        index = {tuple(row): j for j, row in enumerate(self.sites.tolist())}
        for i, row in enumerate(X.tolist()):
            j = index.get(tuple(row))
            if j is not None:
                z[i, j] = 1.0
        return z


def _coordinate_term(spec: RandomTermSpec, inside: str, data: pd.DataFrame
                     ) -> tuple[np.ndarray, tuple[str, ...], CoordinateColumns]:
    """``z``, column names and column spec of ``coords(x, y, ...)``."""
    names = [c.strip().strip("`") for c in inside.split(",") if c.strip()]
    if not names:
        raise FormulaError(f"random-effects term {spec}: coords() needs at least one column")
    cc = CoordinateColumns(names, np.zeros((0, len(names))))
    X = cc.values(data, f"random-effects term {spec}")
    if not np.all(np.isfinite(X)):
        raise DataError(f"random-effects term {spec}: missing or infinite coordinates")
    sites, inverse = np.unique(X, axis=0, return_inverse=True)
    cc.sites = sites
    z = np.zeros((len(data), len(sites)))
    z[np.arange(len(data)), np.asarray(inverse).ravel()] = 1.0
    label = "pos" if len(names) > 1 else names[0]
    cnames = tuple(f"{label}(" + ",".join(f"{v:g}" for v in row) + ")" for row in sites)
    return z, cnames, cc


def _structure(spec: RandomTermSpec, cnames: tuple[str, ...], coords: np.ndarray | None,
               covariances: dict | None, levels_of_columns: tuple[str, ...]) -> Any:
    """The :class:`~glamm.terms.covariance.Covariance` a term's structure asks for."""
    from ..terms import structures as st

    p = len(cnames)
    name = spec.structure
    kw: dict[str, str] = {}
    positional: list[str] = []
    for a in spec.args:
        if "=" in a:
            k, _, v = a.partition("=")
            kw[k.strip()] = v.strip()
        else:
            positional.append(a)
    allowed = {"rr": {"d"}, "mat": {"kappa"}, "propto": set()}.get(name, set())
    unknown = [k for k in kw if k not in allowed] + (positional if name != "propto" else
                                                     positional[1:])
    if unknown:
        raise FormulaError(f"random-effects term {spec}: unknown argument(s) "
                           f"{', '.join(unknown)} for {name}")
    if name in ("", "us"):
        return Unstructured(p)
    if name == "diag":
        return st.Diagonal(p)
    if name in ("cs", "homcs"):
        return st.CompoundSymmetry(p, homogeneous=name == "homcs")
    if name == "ar1":
        return st.AR1(p)
    if name == "toep":
        return st.Toeplitz(p)
    if name in ("ou", "exp", "gau", "mat"):
        if coords is None:
            raise FormulaError(f"random-effects term {spec}: {name} needs the locations of the "
                               f"effects, e.g. {name}(0 + coords(x, y) | g)")
        if name == "ou" and coords.shape[1] != 1:
            raise FormulaError(f"random-effects term {spec}: ou is a process in time; give one "
                               "coordinate, coords(t)")
        kappa = None
        if "kappa" in kw:
            try:
                kappa = float(kw["kappa"])
            except ValueError:
                raise FormulaError(f"random-effects term {spec}: kappa must be a number, got "
                                   f"{kw['kappa']!r}") from None
            if not kappa > 0:
                raise FormulaError(f"random-effects term {spec}: kappa must be positive")
        return st.Spatial(p, coords=tuple(map(tuple, coords.tolist())), function=name,
                          kappa=kappa)
    if name == "rr":
        try:
            d = int(kw.get("d", "2"))
        except ValueError:
            raise FormulaError(f"random-effects term {spec}: d must be a whole number, got "
                               f"{kw['d']!r}") from None
        if not 1 <= d <= p:
            raise FormulaError(f"random-effects term {spec}: d must be between 1 and the "
                               f"number of effects ({p}), got {d}")
        return st.ReducedRank(p, d=d)
    if name == "propto":
        return st.Proportional(p, K=_known_matrix(spec, positional, covariances,
                                                  levels_of_columns))
    raise FormulaError(f"random-effects term {spec}: structure {name!r} is not available")


def _known_matrix(spec: RandomTermSpec, positional: list[str], covariances: dict | None,
                  names: tuple[str, ...]) -> tuple:
    """The matrix ``K`` of ``propto(e | g, K)`` from ``covariances``, ordered as the term's
    columns (a DataFrame is matched by its labels), checked symmetric positive definite."""
    if not positional:
        raise FormulaError(f"random-effects term {spec}: propto needs the name of a known "
                           "matrix, propto(0 + f | g, K), given as covariances={'K': K}")
    key = positional[0]
    if not covariances or key not in covariances:
        raise FormulaError(f"random-effects term {spec}: the matrix {key!r} is not in "
                           "covariances= (pass covariances={" + repr(key) + ": K})")
    K = covariances[key]
    p = len(names)
    if isinstance(K, pd.DataFrame):
        labels = [str(c) for c in K.columns]
        missing = [nm for nm in names if nm not in labels]
        if missing:
            raise DataError(f"covariance matrix {key!r}: no row/column for level(s) "
                            f"{missing[:5]} of the term's columns {list(names)[:5]}...")
        K = K.rename(index=str, columns=str).loc[list(names), list(names)].to_numpy(float)
    K = np.asarray(K, dtype=float)
    if K.shape != (p, p):
        raise DataError(f"covariance matrix {key!r} is {K.shape[0]} x {K.shape[1]}; the term "
                        f"has {p} columns")
    if not np.allclose(K, K.T, rtol=1e-10, atol=1e-12) or not np.all(np.isfinite(K)):
        raise DataError(f"covariance matrix {key!r} is not symmetric and finite")
    try:
        np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        raise DataError(f"covariance matrix {key!r} is not positive definite") from None
    return tuple(map(tuple, K.tolist()))


def _column_levels(mm) -> tuple[str, ...]:
    """The levels behind a factor's indicator columns (formulaic's ``f[a]`` -> ``a``), else
    the column names: how a known matrix's labels and ar1's times are read."""
    names = column_names(mm)
    found = [re.match(r"^.*\[(?:T\.)?(.*)\]$", c) for c in names]
    if all(f is not None for f in found):
        return tuple(f.group(1) for f in found if f is not None)
    return tuple(names)


def _check_ar1_columns(spec: RandomTermSpec, mm) -> None:
    """ar1 takes the term's columns as equally spaced, consecutive times: refuse columns that
    are not a factor's indicators, and numeric levels that are not equally spaced."""
    levels = _column_levels(mm)
    z = np.asarray(mm, dtype=float)
    if not (np.all((z == 0) | (z == 1)) and np.all(z.sum(axis=1) <= 1)):
        raise FormulaError(f"random-effects term {spec}: ar1 needs a factor's indicator "
                           "columns, e.g. ar1(0 + factor(time) | g); for a numeric time use "
                           "ou(0 + coords(time) | g)")
    try:
        values = np.array([float(v) for v in levels])
    except ValueError:
        return
    steps = np.diff(values)
    if values.size > 2 and not np.allclose(steps, steps[0], rtol=1e-8, atol=0.0):
        raise DataError(f"random-effects term {spec}: ar1 takes the levels {list(levels)} as "
                        "equally spaced times, and they are not; use ou(0 + coords(time) | g) "
                        "for unequal spacing")


def build_reterm(spec: RandomTermSpec, data: pd.DataFrame, n: int,
                  covariances: dict | None = None, levels: FixedLevels | None = None
                  ) -> ReTerm:
    for f in spec.factors:
        if f not in data.columns:
            raise FormulaError(
                f"unknown grouping column {f!r} in random-effects term {spec}; the data has "
                f"columns {', '.join(map(str, data.columns))}"
            )
    refs, labels = grouping_factor(data, spec.factors, levels)
    m = COORDS_TERM.match(spec.expr)
    if m is not None:
        if spec.structure not in ("ou", "exp", "gau", "mat"):
            raise FormulaError(f"random-effects term {spec}: coords() locates the effects of a "
                               "distance-based structure: ou, exp, gau or mat")
        z, cnames, cc = _coordinate_term(spec, m.group(1), data)
        return ReTerm(group=spec.group, levels=tuple(labels), refs=refs, z=z, cnames=cnames,
                      covariance=_structure(spec, cnames, cc.sites, covariances, cnames),
                      expr=spec.expr, factors=spec.factors, zspec=cc)
    if spec.structure in ("ou", "exp", "gau", "mat"):
        raise FormulaError(f"random-effects term {spec}: {spec.structure} needs the locations "
                           f"of the effects, e.g. {spec.structure}(0 + coords(x, y) | g)")
    if spec.expr.replace(" ", "") in ("1", "1+1") and not spec.structure:
        # intercept-only, the commonest term: no formulaic call needed (new data: ones)
        return ReTerm(group=spec.group, levels=tuple(labels), refs=refs, z=np.ones((n, 1)),
                      cnames=("(Intercept)",), covariance=Unstructured(1), expr=spec.expr,
                      factors=spec.factors, zspec=None)
    mm = model_matrix_checked(spec.expr, data, f"random-effects term {spec}")
    z = np.asarray(mm, dtype=float)
    if z.shape[1] == 0:
        raise FormulaError(f"random-effects term {spec} has no columns")
    cnames = tuple(lme4_names(column_names(mm)))
    if spec.structure == "ar1":
        _check_ar1_columns(spec, mm)
    return ReTerm(
        group=spec.group,
        levels=tuple(labels),
        refs=refs,
        z=z,
        cnames=cnames,
        covariance=_structure(spec, cnames, None, covariances, _column_levels(mm)),
        expr=spec.expr,
        factors=spec.factors,
        zspec=mm.model_spec,
    )

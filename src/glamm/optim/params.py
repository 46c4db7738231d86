"""The parameter vector an optimizer moves, as named blocks.

A model's parameters come in blocks: ``theta`` (random-effects covariance), ``beta`` (fixed
effects), ``response`` (a log dispersion or log shape), and later factor loadings or grouped
variance multipliers. :class:`ParameterLayout` is the one place that knows where each block
sits in the flat vector: code elsewhere asks for a block by name (:meth:`ParameterLayout.get`,
:meth:`ParameterLayout.split`), builds a vector from named parts
(:meth:`ParameterLayout.assemble`) or takes a sub-layout (:meth:`ParameterLayout.subset`, e.g.
the fast GLMM stage moves ``theta`` and ``response`` only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ParameterBlock:
    """One named block of a parameter vector.

    Parameters
    ----------
    name : str
        Block name (``"theta"``, ``"beta"``, ``"response"``, ...).
    names : tuple of str
        One name per parameter (shown in tables and optimizer records).
    lower, upper : ndarray
        Bounds (``-inf``/``+inf`` where there is none).
    log_scale : tuple of int
        Positions, within the block, of parameters the optimizers move on the log scale
        (the smooths' scales; see :func:`glamm.optim.backends.minimize`).
    """

    name: str
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    log_scale: tuple[int, ...] = field(default_factory=tuple)

    @classmethod
    def free(cls, name: str, names: Sequence[str], lower: np.ndarray | None = None,
             upper: np.ndarray | None = None, log_scale: Iterable[int] = ()) -> ParameterBlock:
        """A block with the given names; bounds default to none."""
        n = len(names)
        lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=float)
        hi = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=float)
        if lo.shape != (n,) or hi.shape != (n,):
            raise ValueError(f"block {name!r}: {n} names but bounds of shapes "
                             f"{lo.shape} and {hi.shape}")
        return cls(name, tuple(names), lo, hi, tuple(int(i) for i in log_scale))

    @property
    def size(self) -> int:
        return len(self.names)


class ParameterLayout:
    """An ordered list of :class:`ParameterBlock` and the flat vector they make.

    Parameters
    ----------
    blocks : sequence of ParameterBlock
        In the order of the flat vector; names must be unique.
    """

    def __init__(self, blocks: Sequence[ParameterBlock]) -> None:
        self.blocks: tuple[ParameterBlock, ...] = tuple(blocks)
        names = [b.name for b in self.blocks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate block names in {names}")
        self._slices: dict[str, slice] = {}
        start = 0
        for b in self.blocks:
            self._slices[b.name] = slice(start, start + b.size)
            start += b.size
        self.size = start

    # ------------------------------------------------------------------ structure
    def __contains__(self, name: str) -> bool:
        return name in self._slices

    def block(self, name: str) -> ParameterBlock:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"no parameter block {name!r}; blocks: {list(self._slices)}")

    def slice(self, name: str) -> slice:
        """Where block ``name`` sits in the flat vector."""
        try:
            return self._slices[name]
        except KeyError:
            raise KeyError(f"no parameter block {name!r}; blocks: {list(self._slices)}") \
                from None

    def size_of(self, name: str) -> int:
        """Number of parameters in block ``name`` (0 if the layout has no such block)."""
        return self.block(name).size if name in self else 0

    def index(self, name: str) -> np.ndarray:
        """Positions of block ``name`` in the flat vector."""
        s = self.slice(name)
        return np.arange(s.start, s.stop)

    def subset(self, names: Iterable[str]) -> ParameterLayout:
        """The layout of the named blocks only, in this layout's order."""
        wanted = set(names)
        return ParameterLayout([b for b in self.blocks if b.name in wanted])

    # ------------------------------------------------------------------ vectors
    def get(self, x: np.ndarray, name: str) -> np.ndarray:
        """Block ``name`` of ``x`` (a view)."""
        return x[self.slice(name)]

    def split(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``{block name: view of x}`` for every block."""
        x = np.asarray(x)
        if x.shape != (self.size,):
            raise ValueError(f"parameter vector of shape {x.shape}, layout has {self.size}")
        return {b.name: x[self._slices[b.name]] for b in self.blocks}

    def assemble(self, parts: Mapping[str, np.ndarray]) -> np.ndarray:
        """The flat vector from ``{block name: values}`` (every block must be given)."""
        missing = [b.name for b in self.blocks if b.name not in parts]
        if missing:
            raise KeyError(f"missing parameter blocks {missing}")
        out = np.empty(self.size)
        for b in self.blocks:
            v = np.asarray(parts[b.name], dtype=float).ravel()
            if v.size != b.size:
                raise ValueError(f"block {b.name!r} has {b.size} parameters, got {v.size}")
            out[self._slices[b.name]] = v
        return out

    def fill(self, value_by_block: Mapping[str, float]) -> np.ndarray:
        """A flat vector with one constant per block (e.g. initial step sizes)."""
        return self.assemble({b.name: np.full(b.size, float(value_by_block[b.name]))
                              for b in self.blocks})

    # ------------------------------------------------------------------ per-parameter facts
    def names(self) -> list[str]:
        return [nm for b in self.blocks for nm in b.names]

    def lower(self) -> np.ndarray:
        return np.concatenate([b.lower for b in self.blocks]) if self.blocks else np.zeros(0)

    def upper(self) -> np.ndarray:
        return np.concatenate([b.upper for b in self.blocks]) if self.blocks else np.zeros(0)

    def lower_of(self, name: str) -> np.ndarray:
        """Full-length lower bounds that keep only block ``name``'s (``-inf`` elsewhere)."""
        out = np.full(self.size, -np.inf)
        out[self.slice(name)] = self.block(name).lower
        return out

    def log_scale_index(self) -> np.ndarray:
        """Positions (in the flat vector) of the parameters optimized on the log scale."""
        return np.array([self._slices[b.name].start + i for b in self.blocks
                         for i in b.log_scale], dtype=int)

    def __repr__(self) -> str:
        parts = ", ".join(f"{b.name}[{b.size}]" for b in self.blocks)
        return f"ParameterLayout({parts})"

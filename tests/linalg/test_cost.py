"""The exact factor's cost predicted from the level codes (glamm.linalg.cost) against the
factor BlockedCholesky actually builds, and the memory checks of lmer's methods."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.errors import ApproximateFitWarning, GlammError, MemoryEstimateError
from glamm.formula.design import build_model_frame
from glamm.linalg.blocks import BlockDiag, BlockSparse
from glamm.linalg.kernels import _FirstTermUpdate, _PairUpdate
from glamm.lmm.approximate import ApproximateLinearMixedModel
from glamm.lmm.method import frame_cost
from glamm.lmm.model import LinearMixedModel


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 2500
    d = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                      "g1": rng.integers(0, 250, n), "g2": rng.integers(0, 30, n),
                      "g3": rng.integers(0, 4, n)})
    d["h"] = d["g1"] // 10          # nested in g1: its diagonal block stays diagonal
    d["pair"] = d["g1"] // 2        # two levels of g1 per level, also nested
    return d


FORMULAS = [
    "y ~ x + (1 | g1) + (1 | g2)",
    "y ~ x + (1 + x | g1) + (1 | g2)",
    "y ~ x + (1 | g1) + (1 + x | g2)",
    "y ~ x + (1 | g1) + (1 | h)",
    "y ~ x + (1 | g1) + (1 | pair) + (1 | h)",
    "y ~ x + (1 | g1) + (1 | h) + (1 | g2)",
    "y ~ x + (1 | g1) + (1 | g2) + (1 | g3)",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_predicted_blocks_are_the_factors(data, formula):
    frame = build_model_frame(formula, data)
    model = LinearMixedModel(frame)
    cost = frame_cost(frame, flop_rate=1e10)
    f = model.factor
    K = f.K
    predicted = {(b.row, b.col): b for b in cost.blocks
                 if b.kind in ("dense", "diagonal", "sparse") and b.row < K}
    for i in range(K):
        for j in range(i + 1):
            block, pred = f.L[i][j], predicted[(i, j)]
            kind = ("dense" if isinstance(block, np.ndarray) else
                    "diagonal" if isinstance(block, BlockDiag) else "sparse")
            assert kind == pred.kind, (i, j)
            assert block.shape == pred.shape
            if kind == "sparse":
                assert pred.nbytes == block.nb * (8 * block.p_row * block.p_col + 16)
            else:
                assert pred.nbytes == (block.nbytes if kind == "dense" else block.data.nbytes)
    # the pair lists of the sparse updates: as many entries as the factor's operations keep
    kept = sorted([int(op.M.nnz) for op in f.ops
                   if isinstance(op, _FirstTermUpdate) and op.kind == (True, True)]
                  + [int(op._pairs[3].shape[0]) for op in f.ops
                     if isinstance(op, _PairUpdate) and op._pairs is not None])
    listed = sorted(b.shape[0] for b in cost.blocks if b.kind == "pair list")
    assert kept == listed
    assert any(isinstance(b, BlockSparse) for row in f.L for b in row) == \
        any(b.kind == "sparse" for b in cost.blocks)
    assert cost.memory_bytes > 0 and cost.seconds_per_evaluation > 0


def test_dense_block_size_and_report(data):
    cost = glamm.estimate_lmm_cost("y ~ x + (1 | g1) + (1 | g2)", data, flop_rate=1e10)
    big = cost.largest_dense()
    assert big is not None and big.label == "g2" and big.shape == (30, 30)
    assert big.nbytes == 8 * 30 * 30
    text = str(cost)
    assert "dense" in text and "memory:" in text and "time per evaluation" in text
    table = cost.table()
    assert list(table.columns) == ["block", "kind", "rows", "cols", "MiB"]
    assert cost.dense_flops >= 30**3 / 3
    nested = glamm.estimate_lmm_cost("y ~ x + (1 | g1) + (1 | h)", data, flop_rate=1e10)
    assert nested.largest_dense() is None   # nested: no dense random-effects block


def test_exact_refuses_before_allocating(data):
    with pytest.raises(MemoryEstimateError, match=r"30 x 30.*'g2'.*method='approximate'"):
        glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", data, method="exact", max_memory=5_000)


def test_auto_switches_to_approximate(data):
    with pytest.warns(ApproximateFitWarning, match="approximate method"):
        m = glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", data, max_memory=5_000, reml=False,
                       approximation={"probes": 8, "final_probes": 8})
    assert isinstance(m.model, ApproximateLinearMixedModel)
    assert m.approximation is not None and m.approximation["probes"] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", ApproximateFitWarning)
        exact = glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", data, reml=False)
    assert exact.approximation is None
    assert not isinstance(exact.model, ApproximateLinearMixedModel)
    # the time limit too
    with pytest.warns(ApproximateFitWarning, match="max_time"):
        glamm.lmer("y ~ x + (1 | g1) + (1 | g2)", data, max_time=1e-9, reml=False,
                   approximation={"probes": 4, "final_probes": 4})


def test_auto_with_one_term_errors_when_nothing_fits(data):
    with pytest.raises(MemoryEstimateError, match="at least two random-effects terms"):
        glamm.lmer("y ~ x + (1 | g1)", data, max_memory=10)


def test_bad_method_arguments(data):
    f = "y ~ x + (1 | g1) + (1 | g2)"
    with pytest.raises(GlammError, match="method must be one of"):
        glamm.lmer(f, data, method="fast")
    with pytest.raises(GlammError, match="max_memory"):
        glamm.lmer(f, data, max_memory=-1)
    with pytest.raises(GlammError, match="approximation= settings"):
        glamm.lmer(f, data, method="exact", approximation={"probes": 5})
    with pytest.raises(GlammError, match="unknown approximation settings"):
        glamm.lmer(f, data, method="approximate", approximation={"probs": 5})
    with pytest.raises(GlammError, match="dispformula"):
        glamm.lmer(f, data, method="approximate", dispformula="~ x")
    with pytest.raises(GlammError, match="at least two random-effects terms"):
        glamm.lmer("y ~ x + (1 | g1)", data, method="approximate")


def test_small_models_skip_the_prediction(data):
    from glamm.lmm.method import _surely_small, make_lmm_model

    small = build_model_frame("y ~ x + (1 | g2) + (1 | g3)", data)
    assert _surely_small(small, 2**30, np.inf)
    model, cost = make_lmm_model(small, True)
    assert cost is None and type(model) is LinearMixedModel
    crossed = build_model_frame("y ~ x + (1 | g1) + (1 | g2)", data)
    assert _surely_small(crossed, 2**30, np.inf)
    assert not _surely_small(crossed, 5_000, np.inf)     # the bound exceeds the limit
    assert not _surely_small(crossed, 2**30, 1e-9)       # or the time allowed
    _, cost = make_lmm_model(crossed, True, method="exact", max_memory=2**30)
    assert cost is None

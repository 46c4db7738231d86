"""GLMMs on partitioned data (glamm.scale.glmm_model): each PIRLS iteration a map-reduce over
the partitions, against the same model on a pandas frame.

At fixed parameters the Laplace deviance agrees to rounding (the same sums in another order;
PIRLS converges to the same modes), and so does the analytic gradient. Fitted, the
log-likelihood agrees to 1e-10 and ``theta`` and the fixed effects to 1e-7: each fit's
Newton stage stops when its decrement is below 1e-13 of the deviance (a gradient of about
1e-9 of it), and the partitioned PIRLS takes other steps to the modes (a pass per
iteration), so the two optima differ at about 1e-9 (1e-8 with finite differences, where the
mode's and the log-determinant's weights differ; one such case holds 1e-6, see there). The
standard errors: 1e-5 (a finite-difference Hessian against one from analytic gradients in
that case).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import local_cluster, write_parquet_parts

import glamm
from glamm.errors import ArgumentError, GlammError
from glamm.formula.design import build_model_frame
from glamm.glmm.gradient import laplace_gradient
from glamm.glmm.model import GeneralizedLinearMixedModel
from glamm.optim.newton import FiniteDifferences
from glamm.scale import metadata, partials
from glamm.scale.glmm_gradient import partitioned_gradient
from glamm.scale.glmm_model import LocalPartitions, PartitionedGLMM
from glamm.scale.glmm_rows import PartitionRows

dd = pytest.importorskip("dask.dataframe")
dask = pytest.importorskip("dask")

#: theta and fixed effects of the fitted models (see the module docstring)
FIT_RTOL = 1e-8
#: standard errors (finite-difference against analytic-gradient Hessians)
SE_RTOL = 1e-5


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def count_data(seed: int = 3, n: int = 1500) -> pd.DataFrame:
    """Poisson counts on two crossed factors, a categorical covariate whose level ``d`` is in
    the last rows only (so in the last partition only), an offset and a few missing
    values."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 60, n)
    g2 = rng.integers(0, 15, n)
    f = np.where(np.arange(n) >= n - 80, "d", rng.choice(["a", "b", "c"], n))
    x = rng.normal(size=n)
    o = rng.uniform(0.5, 2.0, n)
    eff = {"a": 0.0, "b": 0.3, "c": -0.2, "d": 0.5}
    eta = 0.2 + 0.4 * x + np.array([eff[v] for v in f]) + np.log(o) \
        + rng.normal(0, 0.6, 60)[g1] + rng.normal(0, 0.3, 15)[g2]
    data = pd.DataFrame({"y": rng.poisson(np.exp(eta)).astype(float), "x": x, "f": f,
                         "g1": [f"s{v:02d}" for v in g1], "g2": g2, "o": o})
    data.loc[[i for i in (5, 77, 400) if i < n], "x"] = np.nan
    return data


def binomial_data(seed: int = 4, n: int = 900) -> pd.DataFrame:
    """Binomial counts of 1-6 trials on two crossed factors."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 45, n)
    g2 = rng.integers(0, 8, n)
    x = rng.normal(size=n)
    trials = rng.integers(1, 7, n)
    eta = -0.3 + 0.8 * x + rng.normal(0, 0.8, 45)[g1] + rng.normal(0, 0.4, 8)[g2]
    s = rng.binomial(trials, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"s": s.astype(float), "f": (trials - s).astype(float), "x": x,
                         "g1": g1.astype(str), "g2": g2.astype(str)})


def _fit_both(formula, data, npartitions, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glamm.glmer(formula, data, **kw)
        b = glamm.glmer(formula, dd.from_pandas(data, npartitions=npartitions, sort=False),
                        **kw)
    return a, b


def _assert_fit_close(a, b, rtol=FIT_RTOL):
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10, abs=0)
    assert b.nobs == a.nobs and b.npar == a.npar
    assert list(b.fixef.index) == list(a.fixef.index)
    assert b.n_dropped_na == a.n_dropped_na
    assert b.ngroups == a.ngroups
    np.testing.assert_allclose(b.theta, a.theta, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=rtol, atol=rtol * np.abs(a.fixef).max())
    np.testing.assert_allclose(b.stderr, a.stderr, rtol=SE_RTOL)


def _models(formula, data, npartitions, family, link=None, laplace="observed"):
    """The in-memory model and the partitioned one on ``npartitions`` pieces of ``data``,
    built without Dask (the passes by hand)."""
    fam = glamm.families.get_family(family, link) if isinstance(family, str) else family
    frame = build_model_frame(formula, data, glm_response=True)
    mem = GeneralizedLinearMixedModel(frame, fam, laplace=laplace)
    cols = metadata.model_columns(formula, data.dtypes, None, None)
    pieces = np.array_split(np.arange(len(data)), npartitions)
    meta = None
    for rows in pieces:
        meta = metadata.merge(meta, metadata.collect(data.iloc[rows], cols))
    levels = metadata.fixed_levels(meta, cols)
    args = partials.FrameArgs(formula, None, None, None, levels, glm_response=True)
    total = None
    for rows in pieces:
        total = partials.merge(total, partials.partial(data.iloc[rows], args))
    layout, _, _ = partials.finish(total, meta.n_na, 0, tuple(cols.used), family=fam)
    parts = LocalPartitions([PartitionRows.build(data.iloc[rows], args, cols,
                                                 layout.x_keep, fam) for rows in pieces])
    return mem, PartitionedGLMM(layout, fam, parts, laplace=laplace)


@pytest.mark.parametrize("family,link,laplace", [("poisson", None, "observed"),
                                                 ("binomial", "probit", "observed"),
                                                 ("binomial", "probit", "expected")])
def test_objective_at_fixed_parameters(family, link, laplace):
    """The Laplace deviance (beta held and beta inside PIRLS) and the modes at given
    parameters, partitioned and in memory."""
    if family == "poisson":
        data = count_data(n=700).dropna().drop(columns=["o"])
        formula = "y ~ x + f + (1 | g1) + (1 | g2)"
    else:
        data = binomial_data(n=500)
        formula = "cbind(s, f) ~ x + (1 | g1) + (x | g2)"
    mem, part = _models(formula, data, 3, family, link, laplace)
    theta = mem.layout.initial() * 0.7
    beta = np.linspace(-0.2, 0.3, mem.p)
    for m in (mem, part):
        m.glm_start(m.response.base_family)   # (both start from the GLM's state)
    assert part.objective(theta, beta) == pytest.approx(mem.objective(theta, beta), rel=1e-11)
    np.testing.assert_allclose(part.u, mem.u, rtol=1e-7, atol=1e-9)
    if laplace == "observed":   # the analytic gradient, one pass (expected + probit: none)
        g_mem = laplace_gradient(mem, theta, beta)
        np.testing.assert_allclose(partitioned_gradient(part, theta, beta), g_mem,
                                   rtol=1e-9, atol=1e-9 * np.abs(g_mem).max())
    else:
        assert isinstance(part.derivatives(lambda x: 0.0), FiniteDifferences)
    assert part.objective_fast(theta) == pytest.approx(mem.objective_fast(theta), rel=1e-11)
    np.testing.assert_allclose(part.beta, mem.beta, rtol=1e-7, atol=1e-9)
    # the starting GLM
    ga, gb = mem.glm_start(mem.family), part.glm_start(part.family)
    np.testing.assert_allclose(gb.beta, ga.beta, rtol=1e-9, atol=1e-12)
    assert gb.deviance == pytest.approx(ga.deviance, rel=1e-10)


def test_poisson_crossed_offset_missing_levels():
    data = count_data()
    a, b = _fit_both("y ~ x + f + offset(log(o)) + (1 | g1) + (1 | g2)", data, 4,
                     family="poisson")
    _assert_fit_close(a, b)
    assert b.n_dropped_na == 3
    np.testing.assert_allclose(b.ranef_condvar["g1"].to_numpy(),
                               a.ranef_condvar["g1"].to_numpy(), rtol=1e-6)
    # per-row values as lazy series, in the data's row order, missing rows left out
    fitted = b.fitted().compute()
    np.testing.assert_array_equal(fitted.index.to_numpy(), a.frame.row_index.to_numpy())
    np.testing.assert_allclose(fitted.to_numpy(), a.fitted(), rtol=1e-6)
    for kind in ("deviance", "pearson", "response"):
        np.testing.assert_allclose(b.residuals(kind).compute().to_numpy(), a.residuals(kind),
                                   rtol=1e-5, atol=1e-7)
    new = data.iloc[:50].dropna()
    np.testing.assert_allclose(b.predict(new, type="response"),
                               a.predict(new, type="response"), rtol=1e-6)
    lazy = b.predict(dd.from_pandas(new, npartitions=2), type="response").compute()
    np.testing.assert_allclose(lazy.to_numpy(), a.predict(new, type="response"), rtol=1e-6)
    text = b.summary().__str__()
    assert "Scaled residuals:" in text and "Number of obs: 1497" in text


def test_binomial_trials_probit_and_fast():
    data = binomial_data()
    a, b = _fit_both("cbind(s, f) ~ x + (1 | g1) + (x | g2)", data, 3, family="binomial",
                     link="probit")
    _assert_fit_close(a, b)
    # Fisher's weights in the log-determinant, Newton's in PIRLS: finite differences. Here
    # the in-memory fit's Newton stage stops at a gradient of 2e-4 (a decrement of 1e-13 of
    # the deviance) and the partitioned one's lower (1e-4, at a deviance 2.5e-11 lower):
    # their estimates differ by 5e-7 relative (7e-8 against a standard error of 0.1), the
    # precision the deviance's PIRLS noise (about 1e-12 of it) allows
    a, b = _fit_both("cbind(s, f) ~ x + (1 | g1) + (1 | g2)", data, 3, family="binomial",
                     link="probit", laplace="expected")
    _assert_fit_close(a, b, rtol=1e-6)
    a, b = _fit_both("cbind(s, f) ~ x + (1 | g1) + (1 | g2)", data, 3, family="binomial",
                     fast=True)
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10, abs=0)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-6)


def test_gamma_dispersion():
    """A family with a dispersion: its log is a parameter of the fast stage and of Newton."""
    rng = np.random.default_rng(2)
    n = 600
    g = rng.integers(0, 30, n)
    x = rng.normal(size=n)
    mu = np.exp(1.0 + 0.3 * x + rng.normal(0, 0.4, 30)[g])
    data = pd.DataFrame({"y": rng.gamma(4.0, mu / 4.0), "x": x, "g": g.astype(str)})
    a, b = _fit_both("y ~ x + (1 | g)", data, 3, family="Gamma", link="log")
    _assert_fit_close(a, b)
    assert b.dispersion == pytest.approx(a.dispersion, rel=FIT_RTOL)


def test_not_persisted_and_one_partition():
    from glamm.scale.dask_glmm import glmer_dask

    data = count_data(seed=9, n=400)
    formula = "y ~ x + (1 | g1) + (1 | g2)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glamm.glmer(formula, data, family="poisson")
        b = glmer_dask(formula, dd.from_pandas(data, npartitions=3, sort=False), "poisson",
                       persist=False)
        c = glamm.glmer(formula, dd.from_pandas(data, npartitions=1), family="poisson")
    _assert_fit_close(a, b)
    _assert_fit_close(a, c)


def test_errors_name_the_problem():
    data = count_data(n=300).dropna()
    ddf = dd.from_pandas(data, npartitions=2)
    with pytest.raises(ArgumentError, match="nagq"):
        glamm.glmer("y ~ x + (1 | g1)", ddf, family="poisson", nagq=5)
    with pytest.raises(ArgumentError, match="ziformula"):
        glamm.glmer("y ~ x + (1 | g1)", ddf, family="poisson", ziformula="~ 1")
    with pytest.raises(GlammError, match="negative_binomial"):
        glamm.glmer("y ~ x + (1 | g1)", ddf, family="negative_binomial")
    with pytest.raises(GlammError, match="per-row families"):
        glamm.glmer("y ~ x + (1 | g1)", ddf, family=["poisson", "gaussian"])
    with pytest.raises(GlammError, match="response 'f'.*numbers"):
        glamm.glmer("f ~ x + (1 | g1)", ddf, family="binomial")
    zero = data.assign(y=0.0)
    with pytest.raises(GlammError, match="counts that are all 0"):
        glamm.glmer("y ~ x + (1 | g1)", dd.from_pandas(zero, npartitions=2), family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = glamm.glmer("y ~ x + (1 | g1)", ddf, family="poisson")
    with pytest.raises(GlammError, match="Dask"):
        b.refit(data.y)


def test_local_cluster_parquet(tmp_path):
    """Two worker processes keep their partitions' rows and send back each iteration's
    sums."""
    data = count_data(seed=8, n=900)
    write_parquet_parts(data, tmp_path / "parts", 4)
    formula = "y ~ x + f + offset(log(o)) + (1 | g1) + (1 | g2)"
    with local_cluster():
        ddf = dd.read_parquet(str(tmp_path / "parts" / "*.parquet"))
        assert ddf.npartitions == 4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = glamm.glmer(formula, ddf, family="poisson")
        fitted = b.fitted().compute()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glamm.glmer(formula, data, family="poisson")
    _assert_fit_close(a, b)
    np.testing.assert_allclose(fitted.to_numpy(), a.fitted(), rtol=1e-6)


def test_design_copied_to_a_worker_keeps_z_lambda_in_step():
    """A design pickled after its ``Z Lambda`` cache was made (a partition moved between Dask
    workers) must not keep a transpose whose values no longer follow the matrix's: that gave
    stale gradients on some cluster runs."""
    import pickle

    data = count_data(n=200).dropna()
    frame = build_model_frame("y ~ x + (1 | g1) + (x | g2)", data, glm_response=True)
    from glamm.terms.design import RandomDesign

    design = RandomDesign(frame.reterms)
    rng = np.random.default_rng(0)
    design.z_lambda(rng.normal(size=(frame.n, 3)))
    copy = pickle.loads(pickle.dumps(design))
    V = rng.normal(size=(frame.n, 3))
    ZL, ZLt = copy.z_lambda(V)
    np.testing.assert_array_equal(ZLt.toarray(), ZL.toarray().T)
    np.testing.assert_array_equal(ZL.toarray(), design.z_lambda(V)[0].toarray())

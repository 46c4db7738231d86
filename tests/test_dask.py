"""LMMs on partitioned data (glamm.scale): the same model on a pandas frame and on a Dask
DataFrame of several partitions.

At a fixed ``theta`` the two objectives, fixed effects, standard errors and conditional modes
agree to rounding (the cross-products are the same sums in another order); with one partition
the whole fit is identical. Fitted on several partitions, the log-likelihood agrees to 1e-10
and ``theta``, the fixed effects and their standard errors to 1e-8 (the issue's requirement):
a change of summation order moves BOBYQA's stopping point by up to about 1e-6 in ``theta``,
and the Newton steps on the analytic gradient that end the fit (glamm.lmm.fit) remove it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import local_cluster, write_parquet_parts

import glamm
from glamm.errors import ArgumentError, DataError, FormulaError, GlammError
from glamm.formula.design import build_model_frame
from glamm.lmm.model import LinearMixedModel
from glamm.scale import metadata, partials
from glamm.scale.model import PartitionedLinearMixedModel

dd = pytest.importorskip("dask.dataframe")
dask = pytest.importorskip("dask")

#: theta, fixed effects, standard errors of the fitted models
FIT_RTOL = 1e-8
#: what is computed from the same theta (objective, beta, SEs, modes)
SAME_THETA_RTOL = 1e-10


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def crossed_data(seed: int = 3, n: int = 1200) -> pd.DataFrame:
    """Two crossed grouping factors, a categorical covariate whose level ``d`` occurs only in
    the last rows (so only in the last partition), prior weights, a few missing values and
    zero weights."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 40, n)
    g2 = rng.integers(0, 12, n)
    f = np.where(np.arange(n) >= n - 60, "d", rng.choice(["a", "b", "c"], n))
    x = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    eff = {"a": 0.0, "b": 0.5, "c": -0.3, "d": 1.0}
    y = 1.0 + 0.7 * x + np.array([eff[v] for v in f]) + rng.normal(0, 0.8, 40)[g1] \
        + rng.normal(0, 0.5, 12)[g2] + rng.normal(size=n) / np.sqrt(w)
    data = pd.DataFrame({"y": y, "x": x, "f": f, "g1": [f"s{v:02d}" for v in g1],
                         "g2": g2, "w": w, "o": rng.uniform(0.5, 1.5, n)})
    data.loc[[i for i in (5, 77, 400) if i < n], "x"] = np.nan
    data.loc[[i for i in (9, 500) if i < n], "w"] = 0.0
    return data


def _fit_both(formula, data, npartitions, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glamm.lmer(formula, data, **kw)
        b = glamm.lmer(formula, dd.from_pandas(data, npartitions=npartitions, sort=False),
                       **kw)
    return a, b


def _assert_fit_close(a, b, rtol=FIT_RTOL):
    assert b.loglik == pytest.approx(a.loglik, rel=1e-10, abs=0)
    assert b.nobs == a.nobs and b.npar == a.npar
    assert list(b.fixef.index) == list(a.fixef.index)
    assert b.dropped_columns == a.dropped_columns
    assert b.n_dropped_na == a.n_dropped_na
    assert b.ngroups == a.ngroups
    np.testing.assert_allclose(b.theta, a.theta, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=rtol, atol=rtol * np.abs(a.fixef).max())
    np.testing.assert_allclose(b.stderr, a.stderr, rtol=rtol)
    assert b.sigma == pytest.approx(a.sigma, rel=rtol)


def _assert_same_at_theta(a, b):
    """The models of two fits evaluated at the first fit's theta."""
    ma, mb = a.model.working_copy(), b.model.working_copy()
    theta = a.theta
    assert mb.objective(theta) == pytest.approx(ma.objective(theta), rel=SAME_THETA_RTOL)
    for reml in (True, False):
        assert mb.objective_from_factor(reml) == pytest.approx(ma.objective_from_factor(reml),
                                                               rel=SAME_THETA_RTOL)
    ua, ba = ma.factor.solve_u_beta()
    ub, bb = mb.factor.solve_u_beta()
    np.testing.assert_allclose(bb, ba, rtol=SAME_THETA_RTOL, atol=1e-12)
    ua, ub = np.concatenate(ua), np.concatenate(ub)
    np.testing.assert_allclose(ub, ua, rtol=1e-9, atol=1e-10 * np.abs(ua).max())
    from glamm.lmm.estimates import vcov_beta
    np.testing.assert_allclose(vcov_beta(mb, 1.0), vcov_beta(ma, 1.0), rtol=1e-9)


@pytest.mark.parametrize("reml", [True, False])
def test_sleepstudy_one_partition_is_identical(reml):
    data = glamm.datasets.load("sleepstudy")
    a, b = _fit_both("Reaction ~ Days + (Days | Subject)", data, 1, reml=reml)
    np.testing.assert_array_equal(b.theta, a.theta)
    assert b.loglik == a.loglik
    np.testing.assert_array_equal(b.stderr, a.stderr)
    assert b.summary().replace("DaskLmerResult", "LmerResult") == a.summary()


@pytest.mark.parametrize("reml", [True, False])
def test_sleepstudy_partitions(reml):
    data = glamm.datasets.load("sleepstudy")
    a, b = _fit_both("Reaction ~ Days + (Days | Subject)", data, 5, reml=reml)
    _assert_fit_close(a, b)
    _assert_same_at_theta(a, b)
    for k in a.ranef:
        np.testing.assert_allclose(b.ranef[k], a.ranef[k], rtol=1e-4, atol=1e-4)
    # inference read off the cross-products: Satterthwaite's df, Wald intervals
    pd.testing.assert_frame_equal(b.coef_table(ddf="Satterthwaite"),
                                  a.coef_table(ddf="Satterthwaite"), rtol=1e-4)
    pd.testing.assert_frame_equal(b.confint(method="Wald"), a.confint(method="Wald"),
                                  rtol=1e-5)
    pd.testing.assert_frame_equal(b.varcorr[["group", "var1", "var2"]],
                                  a.varcorr[["group", "var1", "var2"]])


def test_crossed_factor_missing_levels_weights():
    data = crossed_data()
    formula = "y ~ x + f + (1 | g1) + (1 | g2)"
    a, b = _fit_both(formula, data, 6, weights="w", offset="o")
    assert "fd" in list(b.fixef.index)
    assert b.n_dropped_na == 3 and b.frame.n_zero_weight == 2
    _assert_fit_close(a, b)
    _assert_same_at_theta(a, b)
    # lazy per-row values, in the input's labels
    for got, want in ((b.fitted(), a.fitted()), (b.residuals("pearson"), a.residuals("pearson")),
                      (b.predict(re=False), a.predict(re=False))):
        got = got.compute()
        assert list(got.index) == list(a.frame.row_index)
        np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-6, atol=1e-6)
    new = data.iloc[[0, 3, 1195]].assign(x=[0.1, -0.2, 0.3])
    np.testing.assert_allclose(b.predict(new), a.predict(new), rtol=1e-6, atol=1e-6)
    lazy = b.predict(dd.from_pandas(new, npartitions=2)).compute()
    np.testing.assert_allclose(lazy.to_numpy(), a.predict(new), rtol=1e-6, atol=1e-6)


def test_nested_interaction_and_aliased_column():
    data = glamm.datasets.load("Pastes").copy()
    data["x"] = np.arange(len(data)) % 7 - 3.0
    data["x2"] = 2.0 * data["x"]
    a, b = _fit_both("strength ~ x + x2 + (1 | batch/cask)", data, 4)
    assert a.dropped_columns == ["x2"]
    _assert_fit_close(a, b)
    _assert_same_at_theta(a, b)
    assert list(b.ranef["cask:batch"].index) == list(a.ranef["cask:batch"].index)


def test_partials_merge_without_dask():
    """The cross-products summed over hand-made chunks equal those of the whole frame, and
    the sparse blocks have the whole frame's pattern."""
    data = crossed_data(n=600)
    formula = "y ~ x + f + (1 | g1) + (1 | g2)"
    cols = metadata.model_columns(formula, data.dtypes, "w", None)
    chunks = [data.iloc[i:i + 120] for i in range(0, len(data), 120)]
    meta = None
    for c in chunks:
        meta = metadata.merge(meta, metadata.collect(c, cols))
    levels = metadata.fixed_levels(meta, cols)
    args = partials.FrameArgs(formula, "w", None, None, levels)
    total = None
    for c in chunks:
        total = partials.merge(total, partials.partial(c, args))
    frame, A, sum_log_w = partials.finish(total, meta.n_na, meta.n_zero_weight)
    whole = LinearMixedModel(build_model_frame(formula, data, weights="w"))
    assert frame.n == whole.n and sum_log_w == pytest.approx(whole.sum_log_w, rel=1e-13)
    sparse = A[1][0]
    np.testing.assert_array_equal(sparse.rows, whole.A[1][0].rows)
    np.testing.assert_array_equal(sparse.cols, whole.A[1][0].cols)
    np.testing.assert_allclose(sparse.data, whole.A[1][0].data, rtol=1e-13)
    np.testing.assert_allclose(A[2][2], whole.A[2][2], rtol=1e-12)
    model = PartitionedLinearMixedModel(frame, A, sum_log_w)
    theta = np.array([0.7, 0.4])
    assert model.objective(theta) == pytest.approx(whole.objective(theta), rel=1e-12)


def test_errors_name_the_problem():
    data = crossed_data(n=300)
    ddf = dd.from_pandas(data, npartitions=3)
    with pytest.raises(FormulaError, match="smooth"):
        glamm.lmer("y ~ s(x) + (1 | g1)", ddf)
    with pytest.raises(FormulaError, match="state is computed from all rows"):
        glamm.lmer("y ~ center(x) + (1 | g1)", ddf)
    with pytest.raises(GlammError, match="must name a column"):
        glamm.lmer("y ~ x + (1 | g1)", ddf, weights=np.ones(len(data)))
    with pytest.raises(ArgumentError, match="Dask"):
        glamm.lmer("y ~ x + (1 | g1)", ddf, dispformula="~ x")
    with pytest.raises(GlammError, match="negative_binomial family"):
        glamm.glmer("g2 ~ x + (1 | g1)", ddf, family="negative_binomial")
    with pytest.raises(DataError, match=r"no rows left .* \(y, x, g1\)"):
        glamm.lmer("y ~ x + (1 | g1)", dd.from_pandas(data.assign(x=np.nan), npartitions=3))
    with pytest.raises(DataError, match="is constant"):
        glamm.lmer("y ~ x + (1 | g1)", dd.from_pandas(data.assign(y=2.0), npartitions=3))
    with pytest.raises(DataError, match="exact linear function"):
        glamm.lmer("y ~ x + (1 | g1)", dd.from_pandas(data.dropna().assign(y=lambda d: 3 * d.x),
                                                      npartitions=3))
    with pytest.raises(DataError, match="different model columns"):
        glamm.lmer("y ~ C(g2) + (1 | g1)", dd.from_pandas(data.sort_values("g2"),
                                                          npartitions=3, sort=False))
    m = glamm.lmer("y ~ x + (1 | g1)", ddf)
    # a likelihood-ratio test refits the REML fits by ML on their cross-products
    full = data.dropna()
    ref = glamm.anova(glamm.lmer("y ~ 1 + (1 | g1)", full), glamm.lmer("y ~ x + (1 | g1)", full))
    got = glamm.anova(glamm.lmer("y ~ 1 + (1 | g1)", dd.from_pandas(full, npartitions=3)),
                      glamm.lmer("y ~ x + (1 | g1)", dd.from_pandas(full, npartitions=3)))
    np.testing.assert_allclose(got["Chisq"].iloc[1], ref["Chisq"].iloc[1], rtol=1e-6)
    for call in (lambda: m.refit(np.zeros(m.nobs)), lambda: m.simulate(),
                 lambda: m.bootstrap(n=2), lambda: m.coef_table(ddf="Kenward-Roger"),
                 lambda: m.confint(method="profile")):
        with pytest.raises(GlammError, match="cross-products"):
            call()


def test_local_cluster_parquet(tmp_path):
    """Two worker processes read the partitions from disk and send back their sums."""
    data = crossed_data(seed=8, n=900)
    write_parquet_parts(data, tmp_path / "parts", 4)
    with local_cluster():
        ddf = dd.read_parquet(str(tmp_path / "parts" / "*.parquet"))
        assert ddf.npartitions == 4
        b = glamm.lmer("y ~ x + f + offset(log(o)) + (1 | g1) + (1 | g2)", ddf, weights="w")
        fitted = b.fitted().compute()
    a = glamm.lmer("y ~ x + f + offset(log(o)) + (1 | g1) + (1 | g2)", data, weights="w")
    _assert_fit_close(a, b)
    np.testing.assert_allclose(fitted.to_numpy(), a.fitted(), rtol=0,
                               atol=1e-6 * np.abs(a.fitted()).max())


def test_cli_dask_parquet(tmp_path):
    from glamm.cli import main

    data = glamm.datasets.load("sleepstudy")
    write_parquet_parts(data, tmp_path / "sleep", 3)
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["fit", "Reaction ~ Days + (Days | Subject)", "--data",
                     str(tmp_path / "sleep" / "*.parquet"), "--dask", "--ml",
                     "--scheduler", "synchronous"])
    assert code == 0
    text = out.getvalue()
    ref = glamm.lmer("Reaction ~ Days + (Days | Subject)", data, reml=False)
    assert "Number of obs: 180, groups:  Subject, 18" in text
    assert f"{ref.loglik:.2f}" in text
    err = io.StringIO()
    from contextlib import redirect_stderr

    with redirect_stderr(err):
        assert main(["fit", "y ~ x + (1 | g)", "--data", str(tmp_path / "none*.parquet"),
                     "--dask"]) == 2
        assert main(["fit", "y ~ x + (1 | g)", "--data", str(tmp_path / "sleep" / "*.parquet"),
                     "--dask", "--family", "poisson", "--nagq", "3",
                     "--scheduler", "synchronous"]) == 2
    assert "matches no file" in err.getvalue() and "not available on a Dask" in err.getvalue()


def test_categories_differing_between_partitions():
    """Partitions whose categorical column has different categories (as parquet files
    written separately give): the levels are sorted, as pandas.concat of them (text) would."""
    data = crossed_data(seed=11, n=800)
    chunks = [data.iloc[i:i + 200].assign(f=lambda d: pd.Categorical(d.f)) for i in
              range(0, 800, 200)]
    assert len({tuple(c.f.cat.categories) for c in chunks}) > 1
    ddf = dd.from_map(lambda i: chunks[i], range(len(chunks)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = glamm.lmer("y ~ x + f + (1 | g1)", ddf, weights="w")
        a = glamm.lmer("y ~ x + f + (1 | g1)", data, weights="w")
    _assert_fit_close(a, b)


@pytest.mark.parametrize("n_bins", [7, 1 << 16])
def test_residual_quantiles_exact_in_passes(n_bins):
    """The summary's quantiles from bin counts equal numpy.quantile of all residuals (with 7
    bins many residuals share a bin; with 65536 almost none)."""
    data = crossed_data(seed=5, n=700)
    a, b = _fit_both("y ~ x + (1 | g1) + (1 | g2)", data, 4, weights="w")
    want = np.quantile(b.residuals("pearson").compute().to_numpy() / b.scale,
                       [0, 0.25, 0.5, 0.75, 1])
    _, got = b.scaled_residual_quantiles(n_bins=n_bins)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    ref = np.quantile(a.residuals("pearson") / a.scale, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)

"""The compiled family kernels (glamm.families._kernels, numba) against the NumPy code they
replace, row by row, including the edge cases (zero weights, means at 0 and infinity, no zero
part), and a fit that gives the same numbers either way."""

import numpy as np
import pytest

import glamm
from glamm.families import compiled, get_family
from glamm.families.zero_inflated import ZeroInflated

pytest.importorskip("numba")


@pytest.fixture
def kernels_off():
    """Run a block with the NumPy code, then restore the environment's choice."""
    compiled.use_kernels(False)
    yield
    compiled.use_kernels(None)


def _rows(seed=3, n=400):
    rng = np.random.default_rng(seed)
    y = rng.negative_binomial(2.0, 0.3, n).astype(float)
    y[: n // 3] = 0.0
    eta = rng.normal(0.5, 1.5, n)
    wt = np.ones(n)
    wt[5] = 0.0
    wt[7] = 2.5
    # edge means: underflow to 0, overflow to inf, huge
    eta[10], eta[11], eta[12], eta[13] = -800.0, 800.0, 60.0, -40.0
    y[10], y[11] = 0.0, 3.0
    return y, eta, wt


def _both(fn):
    """``fn()`` with the kernels and with NumPy."""
    compiled.use_kernels(True)
    assert compiled.kernels() is not None
    try:
        fast = fn()
        compiled.use_kernels(False)
        slow = fn()
    finally:
        compiled.use_kernels(None)
    return fast, slow


def _same(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.isinf(a) & (a > 0), np.isinf(b) & (b > 0))
    np.testing.assert_array_equal(np.isinf(a) & (a < 0), np.isinf(b) & (b < 0))
    ok = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(a[ok], b[ok], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,shape", [("poisson", None), ("negative_binomial", 0.7),
                                        ("negative_binomial", 250.0)])
def test_count_eta_derivatives(name, shape):
    fam = get_family(name) if shape is None else get_family(name).with_shape(shape)
    y, eta, wt = _rows()
    with np.errstate(over="ignore"):
        mu = fam.link.inverse(eta)
    fast, slow = _both(lambda: fam.eta_derivatives(y, mu, eta, wt))
    for a, b in zip(fast, slow):
        _same(a, b)


@pytest.mark.parametrize("hurdle", [False, True])
@pytest.mark.parametrize("name,shape", [("poisson", None), ("negative_binomial", 1.3)])
@pytest.mark.parametrize("k", [0, 2])
def test_two_part_evaluation(name, shape, hurdle, k):
    if k == 0 and not hurdle:
        pytest.skip("zero inflation needs a zero part")
    base = get_family(name) if shape is None else get_family(name).with_shape(shape)
    y, eta, wt = _rows(seed=11)
    n = y.size
    rng = np.random.default_rng(5)
    Z = np.column_stack([np.ones(n), rng.normal(size=n)])[:, :k]
    fam = ZeroInflated(base, Z, ["(Intercept)", "x"][:k], hurdle=hurdle)
    fam.gamma = np.array([-0.4, 1.7])[:k]
    with np.errstate(over="ignore"):
        mu = fam.link.inverse(eta)

    def run():
        with np.errstate(all="ignore"):
            ll, l_e, l_ee, parts, _ = fam._evaluate_now(y, mu, eta, wt, 1.0)
        return [ll, l_e, l_ee, *parts]

    fast, slow = _both(run)
    for a, b in zip(fast, slow):
        _same(a, b)


def test_only_rows_go_to_the_kernels():
    """Quadrature's ``(n, K)`` grids and other links stay with NumPy."""
    assert not compiled.rows_ok(np.zeros((3, 2)))
    assert not compiled.rows_ok(np.zeros(3), np.zeros(4))
    assert not compiled.rows_ok(np.zeros(3, dtype=int))
    assert compiled.rows_ok(np.zeros(3), np.ones(3))
    y = np.zeros(3)
    assert get_family("poisson", link="sqrt").count_kernel_args(y, y) is None
    assert get_family("nbinom1").count_kernel_args(y, y) is None


def test_fit_is_the_same_without_kernels(kernels_off):
    sal = glamm.datasets.load("Salamanders")
    slow = glamm.glmer("count ~ mined + (1 | site)", sal, family="nbinom2", ziformula="~ mined")
    compiled.use_kernels(True)
    fast = glamm.glmer("count ~ mined + (1 | site)", sal, family="nbinom2", ziformula="~ mined")
    # (rounding-level differences in the densities move the optimizer's last steps a little)
    assert fast.loglik == pytest.approx(slow.loglik, rel=1e-11)
    np.testing.assert_allclose(fast.fixef.to_numpy(), slow.fixef.to_numpy(), rtol=1e-6)
    # (the standard errors come from forward differences of gradients at steps of 1e-5
    # relative, which carry the modes' rounding: about 1e-4 relative, within the 1e-3 the
    # reference tests ask; both are that close to glmmTMB's)
    np.testing.assert_allclose(fast.stderr.to_numpy(), slow.stderr.to_numpy(), rtol=1e-3)


@pytest.mark.parametrize("hurdle", [False, True])
def test_log_size_column_against_differences(hurdle):
    """The closed-form derivatives in a negative binomial count part's log(size) against
    central differences of the NumPy mixture (what runs without the kernels)."""
    base = get_family("negative_binomial").with_shape(1.7)
    y, eta, wt = _rows(seed=2)
    keep = np.abs(eta) < 20   # (the edge rows have no finite derivative)
    y, eta, wt = y[keep], eta[keep], wt[keep]
    n = y.size
    rng = np.random.default_rng(8)
    Z = np.column_stack([np.ones(n), rng.normal(size=n)])
    fam = ZeroInflated(base, Z, ["(Intercept)", "x"], hurdle=hurdle)
    fam = fam.with_extra(np.array([np.log(1.7), -0.3, 0.8]))
    compiled.use_kernels(True)
    try:
        dlp, ds, dw = fam.extra_derivatives(y, eta, wt, observed=True)
    finally:
        compiled.use_kernels(None)
    compiled.use_kernels(False)
    try:
        ref = fam.extra_derivatives(y, eta, wt, observed=True)
    finally:
        compiled.use_kernels(None)
    for a, b in zip((dlp, ds, dw), ref):
        assert a.shape == b.shape == (n, 3)
        # the size's column: central differences are accurate to about 1e-9 here
        np.testing.assert_allclose(a[:, 0], b[:, 0], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(a[:, 1:], b[:, 1:], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("hurdle", [False, True])
@pytest.mark.parametrize("name,shape", [("poisson", None), ("negative_binomial", 0.9)])
def test_joint_derivatives(name, shape, hurdle):
    """Both predictors' derivatives (random effects in the zero part)."""
    base = get_family(name) if shape is None else get_family(name).with_shape(shape)
    y, eta, wt = _rows(seed=4)
    wt = np.ones(y.size)   # (the two-part model passes unit weights)
    zeta = np.random.default_rng(9).normal(-0.5, 2.0, y.size)
    zeta[3], zeta[4] = 40.0, -40.0
    fam = ZeroInflated(base, np.ones((y.size, 1)), ["(Intercept)"], hurdle=hurdle)

    def run():
        with np.errstate(all="ignore"):
            return fam.joint_derivatives(y, eta, zeta, wt)

    fast, slow = _both(run)
    assert len(fast) == len(slow) == 6
    for a, b in zip(fast, slow):
        _same(a, b)


def test_trigamma_kernel():
    from scipy import special

    from glamm.families.extra import trigamma

    x = np.concatenate([np.geomspace(1e-6, 1e8, 300), [0.5, 1.0, 9.99, 10.0, 10.01]])
    fast, slow = _both(lambda: trigamma(x.reshape(5, 61)))
    assert fast.shape == (5, 61)
    np.testing.assert_allclose(fast, slow, rtol=1e-13)
    np.testing.assert_allclose(fast.ravel(), special.polygamma(1, x), rtol=1e-13)


def test_nbinom1_kernel():
    """NB1's log-density and mu-derivatives: finite sums for small counts, the functions
    for large ones (one count above the sums' limit), against the NumPy code."""
    fam = get_family("nbinom1").with_values(phi=1.7)
    y, eta, wt = _rows(seed=6)
    keep = np.abs(eta) < 30
    y, eta, wt = y[keep], eta[keep], wt[keep]
    y[20], y[21] = 65.0, 400.0
    mu = np.exp(eta)
    mu[3] = 0.0

    def run():
        with np.errstate(all="ignore"):
            return (fam.loglik(y, mu, wt), fam.dloglik_dmu(y, mu, wt),
                    fam.d2loglik_dmu2(y, mu, wt))

    fast, slow = _both(run)
    rest = np.arange(y.size) != 3   # (row 3: a zero mean, outside the family's range)
    for a, b in zip(fast, slow):
        assert np.all(np.isfinite(a[rest]))
        np.testing.assert_allclose(a[rest], b[rest], rtol=1e-10, atol=1e-12)
    assert fast[0][3] == slow[0][3] == -np.inf


def _family_rows(name):
    """Responses, means and prior weights for a family's kernel test."""
    rng = np.random.default_rng(12)
    n = 300
    if name in ("beta",):
        mu = rng.uniform(0.02, 0.98, n)
        return rng.uniform(0.01, 0.99, n), mu, np.ones(n)
    if name == "betabinomial":
        trials = rng.integers(1, 90, n).astype(float)   # (some above the sums' limit)
        k = rng.binomial(trials.astype(int), 0.3).astype(float)
        return k / trials, rng.uniform(0.05, 0.95, n), trials
    if name == "t":
        return rng.standard_t(4, n) * 2.0, rng.normal(size=n), rng.uniform(0.5, 2.0, n)
    y = rng.negative_binomial(2.0, 0.3, n).astype(float)   # genpois
    return y, rng.uniform(0.2, 9.0, n), rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("name,values,disp", [
    ("beta", {"phi": 6.5}, 1.0), ("betabinomial", {"phi": 3.2}, 1.0),
    ("t", {"df": 4.5}, 1.7), ("genpois", {"phi": 2.1}, 1.0), ("genpois", {"phi": 0.6}, 1.0)])
def test_extra_family_kernels(name, values, disp):
    fam = get_family(name).with_values(**values)
    y, mu, wt = _family_rows(name)

    def run():
        with np.errstate(all="ignore"):
            return (fam.loglik(y, mu, wt, disp), fam.dloglik_dmu(y, mu, wt, disp),
                    fam.d2loglik_dmu2(y, mu, wt, disp))

    fast, slow = _both(run)
    # (the log-gamma differences are finite sums in the kernels: 1e-10 relative agreement)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
        ok = np.isfinite(b)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-10, atol=1e-11)
    np.testing.assert_array_equal(fast[0] == -np.inf, slow[0] == -np.inf)
    if name == "genpois" and values["phi"] < 1:
        assert np.any(fast[0] == -np.inf)   # (underdispersion: impossible counts occur)


@pytest.mark.parametrize("power", [1.01, 1.3, 1.6, 1.9, 1.995, 1.99995])
@pytest.mark.parametrize("phi", [0.05, 1.0, 25.0])
def test_tweedie_series_kernel(power, phi):
    from glamm.families.tweedie import _series

    rng = np.random.default_rng(6)
    y = np.concatenate([rng.gamma(0.5, 3.0, 200), [1e-9, 1e-3, 40.0, 900.0]])
    fast, slow = _both(lambda: _series(y, phi, power, derivatives=True))
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(b)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-10, atol=1e-12)
    if power > 1.9999:
        assert np.isnan(fast[0][-1])   # (a window beyond the term limit: NaN both ways)

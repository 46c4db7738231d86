"""MixedFamily: each row through its own family, in row order."""

import numpy as np
import pytest

from glamm.errors import DataError
from glamm.families import get_family
from glamm.families.mixed import MixedFamily

RNG = np.random.default_rng(7)
N = 40
INDEX = RNG.integers(0, 3, N)
FAMS = [get_family("gaussian"), get_family("binomial", "probit"), get_family("poisson")]


def _data():
    eta = RNG.normal(0.0, 0.7, N)
    y = np.empty(N)
    y[INDEX == 0] = RNG.normal(1.0, 1.0, (INDEX == 0).sum())
    y[INDEX == 1] = RNG.integers(0, 2, (INDEX == 1).sum())
    y[INDEX == 2] = RNG.poisson(2.0, (INDEX == 2).sum())
    wt = np.ones(N)
    disp = np.where(INDEX == 0, 1.7, 1.0)
    return eta, y, wt, disp


def _rowwise(method, *args):
    """The same computation row by row with each row's own family."""
    out = []
    for i in range(N):
        fam = FAMS[INDEX[i]]
        out.append(getattr(fam, method)(*(np.atleast_1d(a[i]) for a in args)))
    return out


def test_every_method_matches_the_rows_own_family():
    fam = MixedFamily(FAMS, INDEX)
    eta, y, wt, disp = _data()
    mu = fam.link.inverse(eta)
    assert np.allclose(mu, np.concatenate(
        [FAMS[INDEX[i]].link.inverse(eta[i:i + 1]) for i in range(N)]))
    for method, args in [("loglik", (y, mu, wt, disp)), ("variance", (mu,)),
                         ("unit_deviance", (y, mu)),
                         ("dloglik_deta", (y, mu, eta, wt, disp)),
                         ("d2loglik_deta2", (y, mu, eta, wt, disp)),
                         ("fisher_weights_deta", (eta, mu, wt, disp))]:
        got = getattr(fam, method)(*args)
        want = np.concatenate(_rowwise(method, *args))
        assert np.allclose(got, want), method
    w, me = fam.fisher_weights(eta, mu, wt, disp)
    rows = _rowwise("fisher_weights", eta, mu, wt, disp)
    assert np.allclose(w, np.concatenate([r[0] for r in rows]))
    assert np.allclose(me, np.concatenate([r[1] for r in rows]))


def test_quadrature_shaped_arrays_and_derivatives():
    fam = MixedFamily(FAMS, INDEX)
    eta, y, wt, disp = _data()
    E = eta[:, None] + np.linspace(-1, 1, 5)[None, :]
    ll = fam.loglik_eta(y[:, None], E, wt[:, None], disp[:, None])
    assert ll.shape == (N, 5)
    assert np.allclose(ll[:, 2], fam.loglik(y, fam.link.inverse(eta), wt, disp))
    # the score is the derivative of the log-density in eta
    h = 1e-6
    num = (fam.loglik_eta(y, eta + h, wt, disp) - fam.loglik_eta(y, eta - h, wt, disp)) / (2 * h)
    assert np.allclose(fam.dloglik_deta(y, fam.link.inverse(eta), eta, wt, disp), num,
                       atol=1e-6)


def test_bad_index_and_missing_family():
    with pytest.raises(DataError, match="outside 1..3"):
        MixedFamily(FAMS, np.array([0, 1, 3]))
    with pytest.raises(DataError, match="family 3 has no rows"):
        MixedFamily(FAMS, np.array([0, 1, 1]))
    with pytest.raises(DataError, match="at least two"):
        MixedFamily(FAMS[:1], np.array([0, 0]))
    fam = MixedFamily(FAMS, INDEX)
    with pytest.raises(DataError, match="one row per observation"):
        fam.variance(np.ones(N + 1))


def test_validate_names_the_family():
    fam = MixedFamily(FAMS[:2], np.array([0, 1, 1, 0]))
    with pytest.raises(DataError, match="family 2 .binomial."):
        fam.validate(np.array([0.3, 2.0, 1.0, 5.0]))

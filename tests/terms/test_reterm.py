"""Term roles (glamm.terms.reterm): what a term is and what it takes part in, and the order
the model frame gives the terms (grouped by decreasing levels, smooths last)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glamm
from glamm.formula.design import build_model_frame
from glamm.terms.covariance import ScaledIdentity, Unstructured
from glamm.terms.reterm import ReTerm, TermRole


def _term(**kw) -> ReTerm:
    base = dict(group="g", levels=("a", "b"), refs=np.array([0, 1, 1]), z=np.ones((3, 1)),
                cnames=("(Intercept)",), covariance=Unstructured(1))
    base.update(kw)
    return ReTerm(**base)


def test_a_grouped_term_by_default():
    t = _term()
    assert t.role is TermRole.GROUPED
    assert t.is_grouped and t.supports_quadrature
    assert not t.is_smooth and not t.population_level
    assert t.summary_names == ("(Intercept)",)


def test_a_term_with_a_smooth_is_a_smooth_term():
    t = _term(smooth=object(), covariance=ScaledIdentity(1))
    assert t.role is TermRole.SMOOTH
    assert t.is_smooth and t.population_level
    assert not t.is_grouped and not t.supports_quadrature
    assert t.summary_names == ("s",)


@pytest.mark.parametrize("role, smooth", [(TermRole.SMOOTH, None),
                                          (TermRole.GROUPED, object())])
def test_role_and_smooth_must_agree(role, smooth):
    with pytest.raises(ValueError, match="smooth"):
        _term(role=role, smooth=smooth)


def test_smooths_come_last_and_grouped_terms_by_decreasing_levels():
    data = glamm.datasets.load("gamm4_sim1")
    data["half"] = pd.Categorical(np.arange(len(data)) % 2)
    frame = build_model_frame("y ~ s(x0) + (1 | half) + s(x2) + (1 | fac)", data)
    assert [t.role for t in frame.reterms] == [TermRole.GROUPED, TermRole.GROUPED,
                                               TermRole.SMOOTH, TermRole.SMOOTH]
    assert [t.group for t in frame.reterms[:2]] == ["fac", "half"]
    assert all(t.covariance.log_scale and t.covariance.is_scaled_identity
               for t in frame.reterms[2:])

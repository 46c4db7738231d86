"""Every error a user can cause is a GlammError naming the problem (not a bare ValueError or
TypeError from deep inside)."""

from __future__ import annotations

import pytest

import glamm
from glamm.errors import GlammError


@pytest.fixture(scope="module")
def sleep():
    return glamm.datasets.load("sleepstudy")


def test_unknown_optimizer(sleep):
    with pytest.raises(GlammError, match="unknown optimizer 'foo'"):
        glamm.lmer("Reaction ~ Days + (1 | Subject)", sleep, optimizer="foo")


def test_wrong_start_length(sleep):
    with pytest.raises(GlammError, match="start must have length 3"):
        glamm.lmer("Reaction ~ Days + (Days | Subject)", sleep, start=[1.0])


def test_bad_laplace_option(sleep):
    with pytest.raises(GlammError, match="laplace must be"):
        glamm.glmer("Reaction ~ Days + (1 | Subject)", sleep, family="Gamma", laplace="x")


def test_bad_type_arguments_of_results(sleep):
    m = glamm.glmer("Reaction ~ Days + (1 | Subject)", sleep, family="Gamma", link="log")
    for call in (lambda: m.fitted("x"), lambda: m.residuals("x"), lambda: m.predict(type="x")):
        with pytest.raises(GlammError, match="type must be"):
            call()
    lm = glamm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(GlammError, match="type must be"):
        lm.residuals("x")


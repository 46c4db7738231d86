"""The everyday tables and tools on every result (issue 14): broom.mixed's ``tidy``, lme4's
``coef``, R's ``update`` and the notebook form ``_repr_html_``."""

from __future__ import annotations

import numpy as np
import pytest

import glamm
from glamm.errors import GlammError
from glamm.results.call import updated_formula


@pytest.fixture(scope="module")
def sleep():
    return glamm.lmer("Reaction ~ Days + (Days | Subject)", glamm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def cbpp_fit():
    return glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                       glamm.datasets.load("cbpp"), family="binomial")


def test_tidy_fixed_and_ran_pars(sleep):
    t = sleep.tidy()
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std.error",
                               "statistic", "p.value"]
    assert list(t["term"]) == ["(Intercept)", "Days", "sd__(Intercept)", "sd__Days",
                               "cor__(Intercept).Days", "sd__Observation"]
    fx = t[t["effect"] == "fixed"].set_index("term")
    np.testing.assert_allclose(fx["estimate"], sleep.fixef)
    np.testing.assert_allclose(fx["std.error"], sleep.stderr)
    rp = t[t["effect"] == "ran_pars"].set_index("term")
    assert rp.loc["sd__Observation", "estimate"] == pytest.approx(sleep.sigma)
    assert rp.loc["sd__Observation", "group"] == "Residual"
    np.testing.assert_allclose(rp.loc["sd__Days", "estimate"],
                               np.sqrt(sleep.term_covariances()[0][1, 1]))


def test_tidy_with_intervals_and_df(sleep):
    t = sleep.tidy(conf_int=True, conf_method="profile", ddf="Satterthwaite")
    ci = sleep.confint()
    fx = t[t["effect"] == "fixed"].set_index("term")
    np.testing.assert_allclose(fx["conf.low"], ci.loc[["(Intercept)", "Days"]].iloc[:, 0])
    assert np.all(fx["df"] > 16.9) and np.all(fx["p.value"] < 1e-4)
    rp = t[t["effect"] == "ran_pars"].set_index("term")
    assert rp.loc["cor__(Intercept).Days", "conf.low"] == pytest.approx(ci.loc[".sig02"].iloc[0])
    assert rp.loc["sd__Observation", "conf.high"] == pytest.approx(ci.loc[".sigma"].iloc[1])
    wald = sleep.tidy(effects="fixed", conf_int=True)
    assert np.all(wald["conf.low"] < wald["estimate"])


def test_tidy_ran_vals(sleep, cbpp_fit):
    rv = sleep.tidy(effects="ran_vals")
    assert len(rv) == 36 and set(rv["term"]) == {"(Intercept)", "Days"}
    row = rv[(rv["level"] == "309") & (rv["term"] == "Days")].iloc[0]
    assert row["estimate"] == pytest.approx(sleep.ranef["Subject"].loc["309", "Days"])
    assert row["std.error"] == pytest.approx(
        np.sqrt(sleep.ranef_condvar["Subject"].loc["309", "Days"]))
    g = cbpp_fit.tidy()
    assert list(g["term"])[-1] == "sd__(Intercept)"
    assert g["p.value"].iloc[:4].notna().all()   # z tests
    with pytest.raises(GlammError, match="effects must be"):
        sleep.tidy(effects="random")


def test_coef(sleep, cbpp_fit):
    c = sleep.coef()["Subject"]
    assert list(c.columns) == ["(Intercept)", "Days"]
    np.testing.assert_allclose(c["Days"], sleep.fixef["Days"] + sleep.ranef["Subject"]["Days"])
    cg = cbpp_fit.coef()["herd"]
    np.testing.assert_allclose(cg["period2"], cbpp_fit.fixef["period2"])
    np.testing.assert_allclose(cg["(Intercept)"], cbpp_fit.fixef["(Intercept)"]
                               + cbpp_fit.ranef["herd"]["(Intercept)"])


def test_update(sleep, cbpp_fit):
    ml = sleep.update(reml=False)
    assert not ml.reml
    direct = glamm.lmer("Reaction ~ Days + (Days | Subject)", glamm.datasets.load("sleepstudy"),
                        reml=False)
    assert ml.loglik == pytest.approx(direct.loglik, rel=1e-10)
    smaller = sleep.update("~ . - Days")
    assert smaller.formula == "Reaction ~ (Days | Subject)"
    probit = cbpp_fit.update(link="probit")
    assert probit.loglik != pytest.approx(cbpp_fit.loglik)
    assert updated_formula("y ~ x + (1|g)", ". ~ . + z") == "y ~ x + (1|g) + z"
    assert updated_formula("y ~ x + (1|g)", "~ . - 1") == "y ~ 0 + x + (1|g)"
    assert updated_formula("y ~ x + z + (1|g)", "log(y) ~ . - z") == "log(y) ~ x + (1|g)"
    d2 = glamm.datasets.load("sleepstudy").query("Days < 8")
    fewer = sleep.update(data=d2)
    assert fewer.nobs == len(d2)


def test_html(sleep, cbpp_fit):
    h = sleep._repr_html_()
    assert h.startswith("<div") and "<table" in h and "Fixed effects" in h
    assert "Random effects" in h and "REML criterion" in h
    assert "<table" in cbpp_fit._repr_html_()
    aov = glamm.anova(sleep)
    assert "<pre>" in aov._repr_html_()


def test_verbose_prints_the_trace(capsys):
    d = glamm.datasets.load("Dyestuff")
    m = glamm.lmer("Yield ~ 1 + (1 | Batch)", d, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == m.optsum.feval
    assert out[0].split(":")[0].strip().endswith("1")
    quiet = glamm.lmer("Yield ~ 1 + (1 | Batch)", d)
    assert capsys.readouterr().out == ""
    assert quiet.loglik == m.loglik
    glamm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                glamm.datasets.load("cbpp"), family="binomial", verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert any(ln.startswith("newton") and "[" in ln for ln in lines)


def test_refit(sleep, cbpp_fit):
    y = sleep.simulate(1, seed=4).iloc[:, 0].to_numpy()
    r = sleep.refit(y)
    fresh = glamm.lmer("Reaction ~ Days + (Days | Subject)",
                       glamm.datasets.load("sleepstudy").assign(Reaction=y))
    assert r.loglik == pytest.approx(fresh.loglik, rel=1e-10)
    np.testing.assert_allclose(r.fixef, fresh.fixef, rtol=1e-6)
    np.testing.assert_allclose(r.theta, fresh.theta, rtol=1e-5, atol=1e-8)
    assert sleep.loglik != r.loglik   # the original result is untouched
    assert r.update(reml=False).reml is False
    with pytest.raises(GlammError, match="180 values"):
        sleep.refit(y[:10])
    with pytest.raises(GlammError, match="missing"):
        sleep.refit(np.where(np.arange(180) == 3, np.nan, y))
    yy = cbpp_fit.simulate(1, seed=2).iloc[:, 0].to_numpy()
    g = cbpp_fit.refit(yy)
    cb = glamm.datasets.load("cbpp")
    inc = np.rint(yy * cb["size"].to_numpy()).astype(int)
    direct = glamm.glmer("cbind(inc, size - inc) ~ period + (1 | herd)", cb.assign(inc=inc),
                         family="binomial")
    assert g.loglik == pytest.approx(direct.loglik, rel=1e-8)


def test_progress_indicator_on_long_fits(monkeypatch, capsys):
    """A fit that runs past the delay shows a counter when enabled; off in tests (no
    terminal) by default."""
    from glamm.optim import trace

    d = glamm.datasets.load("sleepstudy")
    with trace.fit_progress():
        glamm.lmer("Reaction ~ Days + (Days | Subject)", d)
    assert capsys.readouterr().err == ""   # (not interactive here)
    monkeypatch.setattr(trace, "PROGRESS_DELAY", 0.0)
    with trace.fit_progress(True):
        glamm.lmer("Reaction ~ Days + (Days | Subject)", d)
    assert "evaluations" in capsys.readouterr().err

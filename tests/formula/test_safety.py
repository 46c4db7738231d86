"""Formulas are data: every expression in a formula passes a whitelist before anything is
evaluated (glamm.formula.safety), from the library and from the command line.

Each escape attempt would create a sentinel file if it ran; the tests check that it raises a
FormulaError naming the offending part and that the file does not exist afterwards.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from formulaic import model_matrix

import glamm
from glamm import cli
from glamm.errors import FormulaError, GlammError
from glamm.formula.safety import check_expression, checked_terms, formula_context


# --------------------------------------------------------------------------- data
def make_data() -> pd.DataFrame:
    """60 rows, 6 groups of 10 (``g``) crossed with ``g2``; a factor ``f``, an integer code
    ``k``, binomial counts ``s`` of ``size``, a positive covariate ``x`` and response ``y``."""
    rng = np.random.default_rng(20240611)
    n = 60
    d = pd.DataFrame({
        "g": np.repeat(list("abcdef"), 10),
        "g2": np.tile(list("uv"), 30),
        "x": rng.uniform(0.5, 2.0, n),
        "f": rng.choice(list("pqr"), n),
        "k": rng.integers(1, 4, n),
        "size": rng.integers(5, 15, n),
    })
    d["s"] = rng.binomial(d["size"], 0.4)
    d["y"] = 2 + d["x"] + np.repeat(rng.normal(0, 0.5, 6), 10) + rng.normal(0, 0.3, n)
    d["my x"] = d["x"]
    return d


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return make_data()


@pytest.fixture
def sentinel(tmp_path) -> Path:
    return tmp_path / "pwned"


# --------------------------------------------------------------------------- attacks
def attacks(path: Path) -> dict[str, str]:
    """Escape attempts; each creates ``path`` if it is ever evaluated."""
    p = repr(str(path))
    opener = f"open({p}, 'w')"
    return {
        "__import__": f"__import__('os').system('touch ' + {p})",
        "pathlib": f"__import__('pathlib').Path({p}).touch()",
        "open": opener,
        "eval": f"eval({opener!r})",
        "exec": f"exec({opener!r})",
        "getattr": f"getattr(__import__('builtins'), 'open')({p}, 'w')",
        "__builtins__": f"__builtins__['open']({p}, 'w')",
        "globals": f"globals()['__builtins__']['open']({p}, 'w')",
        "dunder chain": "().__class__.__bases__[0].__subclasses__()",
        "dunder of a column": "x.__class__.__init__.__globals__",
        "lambda": f"(lambda: {opener})()",
        "comprehension": f"[{opener} for _ in [0]]",
        "subscript": f"x[{opener}]",
        "format string": f"'{{0.__class__}}'.format(x, {opener})",
        "f-string": f"f'{{{opener}}}'",
        "numpy attribute": f"np.os.system('touch ' + {p})",
        "numpy submodule": f"numpy.lib.format.open_memmap({p}, mode='w+', shape=(1,))",
        "walrus": f"(z := {opener})",
        "starred": f"log(*[{opener}])",
        "double star": f"log(x, **{{'out': {opener}}})",
        "private keyword": f"scale(x, _state={opener})",
        "conditional": f"x if {opener} else x",
    }


#: where an expression can stand in a formula ({X}: the expression)
POSITIONS = {
    "response": "{X} ~ x + (1 | g)",
    "fixed part": "y ~ x + {X} + (1 | g)",
    "I()": "y ~ I({X}) + (1 | g)",
    "offset()": "y ~ x + offset({X}) + (1 | g)",
    "C()": "y ~ C({X}) + (1 | g)",
    "C() contrasts": "y ~ C(f, {X}) + (1 | g)",
    "np.log()": "y ~ np.log({X}) + (1 | g)",
    "formulaic braces": "y ~ {{{X}}} + (1 | g)",
    "s()": "y ~ s({X}) + (1 | g)",
    "s() argument": "y ~ s(x, k={X}) + (1 | g)",
    "s() by": "y ~ s(x, by={X}) + (1 | g)",
    "bar left side": "y ~ x + ({X} | g)",
    "bar left side I()": "y ~ x + (1 + I({X}) | g)",
    "uncorrelated bar": "y ~ x + (I({X}) || g)",
    "grouping factor": "y ~ x + (1 | {X})",
    "nested grouping factor": "y ~ x + (1 | g/{X})",
}
#: positions that exist only for a binomial GLMM
GLM_POSITIONS = {
    "cbind() successes": "cbind({X}, size - s) ~ x + (1 | g)",
    "cbind() failures": "cbind(s, {X}) ~ x + (1 | g)",
}


def _fit_rejected(fit, formula: str, data: pd.DataFrame, sentinel: Path, **kw) -> str:
    """``fit(formula, data)`` raises a FormulaError and creates nothing; returns the message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FormulaError) as info:
            fit(formula, data, **kw)
    assert not sentinel.exists(), f"{formula!r} was evaluated"
    return str(info.value)


@pytest.mark.parametrize("position", POSITIONS)
def test_lmer_rejects_every_attack_in_every_position(data, sentinel, position):
    for attack in attacks(sentinel).values():
        formula = POSITIONS[position].replace("{X}", attack)
        _fit_rejected(glamm.lmer, formula, data, sentinel)


@pytest.mark.parametrize("position", [*GLM_POSITIONS, "response", "I()", "offset()"])
def test_glmer_rejects_every_attack(data, sentinel, position):
    template = {**POSITIONS, **GLM_POSITIONS}[position]
    for attack in attacks(sentinel).values():
        _fit_rejected(glamm.glmer, template.replace("{X}", attack), data, sentinel,
                      family="binomial" if "cbind" in template else "gaussian")


@pytest.mark.parametrize("position", ["cbind() successes", "response", "I()", "offset()"])
def test_glm_rejects_every_attack(data, sentinel, position):
    template = {**POSITIONS, **GLM_POSITIONS}[position].replace(" + (1 | g)", "")
    for attack in attacks(sentinel).values():
        _fit_rejected(glamm.glm, template.replace("{X}", attack), data, sentinel,
                      family="binomial" if "cbind" in template else "gaussian")


@pytest.mark.parametrize("template,words", [
    ("{X} ~ x + (1 | g)", ["`__import__` is not an allowed function", "response"]),
    ("y ~ I({X}) + (1 | g)", ["`__import__` is not an allowed function", "fixed-effects"]),
    ("y ~ x + offset({X}) + (1 | g)", ["`__import__` is not an allowed function", "offset"]),
    ("y ~ C({X}) + (1 | g)", ["`__import__` is not an allowed function"]),
    ("y ~ x + (I({X}) | g)", ["`__import__` is not an allowed function", "random-effects"]),
    ("cbind({X}, s) ~ x + (1 | g)", ["`__import__` is not an allowed function", "response"]),
])
def test_message_names_the_offending_function(data, sentinel, template, words):
    attack = attacks(sentinel)["__import__"]
    fit = glamm.glmer if "cbind" in template else glamm.lmer
    kw = {"family": "binomial"} if "cbind" in template else {}
    msg = _fit_rejected(fit, template.replace("{X}", attack), data, sentinel, **kw)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    assert "allowed are I(), C()" in msg


def test_grouping_factor_must_be_a_column(data, sentinel):
    attack = attacks(sentinel)["__import__"]
    msg = _fit_rejected(glamm.lmer, f"y ~ x + (1 | {attack})", data, sentinel)
    assert "grouping" in msg and "__import__" in msg


# --------------------------------------------------------------------------- the check itself
COLUMNS = ["x", "y", "f", "g", "size", "my x", "x.a"]


@pytest.mark.parametrize("expr,words", [
    ("__import__('os').system('echo hacked')", ["`__import__` is not an allowed function"]),
    ("getattr(x, 'real')", ["`getattr` is not an allowed function"]),
    ("eval('1')", ["`eval` is not an allowed function"]),
    ("exec('1')", ["`exec` is not an allowed function"]),
    ("open('f')", ["`open` is not an allowed function"]),
    ("globals()", ["`globals` is not an allowed function"]),
    ("__builtins__", ["`__builtins__` is not allowed"]),
    ("I(__builtins__)", ["`__builtins__` is not allowed"]),
    ("().__class__.__bases__[0].__subclasses__()", ["subscripts"]),
    ("().__class__", ["attribute access", "().__class__"]),
    ("x.__class__", ["attribute access `x.__class__`"]),
    ("np.os", ["attribute access `np.os`"]),
    ("np.os.system('ls')", ["attribute access `np.os`"]),
    ("np.lib.npyio.DataSource()", ["attribute access `np.lib`"]),
    ("numpy.ctypeslib.load_library('x', '.')", ["attribute access `numpy.ctypeslib`"]),
    ("np.log", ["must be called"]),
    ("log", ["must be called"]),
    ("(lambda: 1)()", ["lambda"]),
    ("I(lambda: 1)", ["lambda"]),
    ("[v for v in x]", ["comprehensions"]),
    ("x[0]", ["subscripts"]),
    ("'{0.__class__}'.format(x)", ["format", "not an allowed function"]),
    ("I('abc')", ["strings"]),
    ("f'{x}'", ["f-strings"]),
    ("(z := x)", ["assignments"]),
    ("log(*x)", ["starred"]),
    ("log(x, **{'out': x})", ["**arguments"]),
    ("scale(x, _state=1)", ["keyword argument '_state'"]),
    ("x if y else f", ["conditional"]),
    ("x ^ 2", ["x**2"]),
    ("x @ y", ["operator"]),
    ("x is y", ["comparison"]),
    ("x in y", ["comparison"]),
    ("C(f, contr.helmert)", ["contrasts", "contr.sum"]),
    ("C(f, open)", ["contrasts"]),
    ("C(f, 'sum')", ["contrasts"]),
    ("cbind(x, y)", ["cbind() is only allowed as the whole response"]),
    ("offset(x)", ["offset() must be a term of its own"]),
    ("x.a + 1", ["attribute access", "backticks"]),
    ("nope", ["unknown column 'nope'"]),
    ("`nope` + 1", ["unknown column 'nope'"]),
    ("x +", ["cannot parse"]),
])
def test_check_expression_rejects(expr, words):
    with pytest.raises(FormulaError) as info:
        check_expression(expr, "response", COLUMNS)
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


@pytest.mark.parametrize("expr", [
    "y", "log(y)", "np.log(y)", "numpy.log1p(y)", "np.sqrt(abs(x))", "I(x**2)", "x / size",
    "exp(-x) * 2.5", "`my x` + 1", "x.a", "`x.a` * 2", "(x > 1) & (y <= 3) | ~(x == 2)",
    "x > 1 and not y", "scale(x, center=True, scale=False)", "center(x)", "poly(x, 2)",
    "poly(x, degree=3, raw=True)", "C(f)", "C(f, Sum)", "C(f, contr.poly)",
    "C(f, contrasts=contr.treatment)", "factor(g)", "log2(size) + log10(size)", "x // 2 % 3",
])
def test_check_expression_accepts(expr):
    check_expression(expr, "response", COLUMNS)


def test_cbind_only_where_asked():
    check_expression("cbind(size, size - x)", "response", COLUMNS, cbind=True)
    with pytest.raises(FormulaError, match="cbind"):
        check_expression("cbind(size, size - x)", "response", COLUMNS)
    with pytest.raises(FormulaError, match="__import__"):
        check_expression("cbind(__import__('os'), x)", "response", COLUMNS, cbind=True)


def test_checked_terms_checks_formulaic_factors():
    checked_terms("1 + x * f + I(x**2) + C(f, Sum) + `my x` + x.a", "fixed-effects part",
                  COLUMNS)
    with pytest.raises(FormulaError, match="unknown column 'Treatment'"):
        checked_terms("x * Treatment", "fixed-effects part", COLUMNS)
    with pytest.raises(FormulaError, match="__import__"):
        checked_terms("x + {__import__('os')}", "fixed-effects part", COLUMNS)


# --------------------------------------------------------------------------- the context
def test_context_cannot_reach_builtins(data, sentinel):
    """Defence in depth: an expression that skipped the check still cannot call open()."""
    p = repr(str(sentinel))
    for expr in (f"I(open({p}, 'w'))", f"I(__import__('os').system('touch ' + {p}))",
                 "I(eval('1'))", "I(getattr(x, 'real'))", "I(np.lib)", "I(hashed(x))"):
        with pytest.raises(Exception) as info:
            model_matrix(expr, data, context=formula_context())
        assert "not available in formulas" in str(info.value) or "attribute" in str(info.value)
        assert not sentinel.exists()


def test_context_is_read_only():
    ctx = formula_context()
    with pytest.raises(TypeError):
        ctx["open"] = open  # type: ignore[index]
    with pytest.raises(FormulaError, match="not available"):
        ctx["__import__"]("os")


# --------------------------------------------------------------------------- new data
def test_predict_does_not_evaluate_an_offset_column_name(data, sentinel):
    """An offset named by a column is read from the data; on new data without that column
    its name must not be evaluated as an expression."""
    name = attacks(sentinel)["__import__"]
    d = data.copy()
    d[name] = 0.1
    m = glamm.lmer("y ~ x + (1 | g)", d, offset=name)
    with pytest.raises(GlammError):
        m.predict(data.iloc[:5])
    assert not sentinel.exists()


def test_predict_with_transformed_terms_on_new_data(data):
    """New data go through the same restricted context: numpy functions, factor(), scale()
    and the random-effects columns are rebuilt and give the fitted values back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glamm.lmer("y ~ np.log(x) + factor(k) + scale(x) + offset(sqrt(size)) "
                       "+ (1 + log1p(x) | g)", data)
    np.testing.assert_allclose(m.predict(data.iloc[:8]), m.fitted()[:8], rtol=1e-10)


# --------------------------------------------------------------------------- legitimate formulas
@pytest.mark.parametrize("formula,names", [
    ("log(y) ~ x + (1 | g)", ["(Intercept)", "x"]),
    ("y ~ np.log(x) + (1 | g)", ["(Intercept)", "np.log(x)"]),
    ("y ~ x + I(x**2) + (1 | g)", ["(Intercept)", "x", "I(x ** 2)"]),
    ("y ~ x + offset(np.log(size)) + (1 | g)", ["(Intercept)", "x"]),
    ("y ~ C(f, Sum) + (1 | g)", ["(Intercept)", "C(f, Sum)1", "C(f, Sum)2"]),
    ("y ~ C(f, contr.poly) + (1 | g)", ["(Intercept)", "C(f, contr.poly).L",
                                        "C(f, contr.poly).Q"]),
    ("y ~ scale(x) + (1 | g)", ["(Intercept)", "scale(x)"]),
    ("y ~ poly(x, 2) + (1 | g)", ["(Intercept)", "poly(x, 2)1", "poly(x, 2)2"]),
    ("y ~ s(x, k=5, bs=\"cr\") + (1 | g)", ["(Intercept)", "s(x)Fx1"]),
    ("y ~ x + (1 + x | g)", ["(Intercept)", "x"]),
    ("y ~ x + (1 | g/g2)", ["(Intercept)", "x"]),
    ("y ~ x + (x || g)", ["(Intercept)", "x"]),
    ("y ~ f*x + (1 | g)", ["(Intercept)", "fq", "fr", "x", "fq:x", "fr:x"]),
    ("y ~ factor(k) + (1 | g)", ["(Intercept)", "factor(k)2", "factor(k)3"]),
    ("sqrt(y) ~ abs(x) + log1p(x) + (1 | g)", ["(Intercept)", "abs(x)", "log1p(x)"]),
    ("y ~ `my x` + I((x > 1) & (k < 3)) + (1 | g)", ["(Intercept)", "my x",
                                                     "I((x > 1) & (k < 3))"]),
])
def test_legitimate_formulas_still_fit(data, formula, names):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glamm.lmer(formula, data)
    assert list(m.fixef.index) == names


def test_legitimate_glmm_and_glm_formulas(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = glamm.glmer("cbind(s, size - s) ~ x + (1 | g)", data, family="binomial")
        g0 = glamm.glm("cbind(s, size - s) ~ np.log(x)", data, family="binomial")
        p0 = glamm.glm("s ~ x + offset(np.log(size))", data, family="poisson")
    assert list(gm.fixef.index) == ["(Intercept)", "x"]
    assert list(g0.fixef.index) == ["(Intercept)", "np.log(x)"]
    assert np.all(np.isfinite(p0.fixef.to_numpy()))


# --------------------------------------------------------------------------- command line
@pytest.fixture
def csv(tmp_path) -> str:
    path = tmp_path / "x.csv"
    make_data().to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("template,extra", [
    ("{X} ~ 1 + (1 | g)", []),
    ("y ~ I({X}) + (1 | g)", []),
    ("y ~ x + offset({X}) + (1 | g)", []),
    ("y ~ C(f, {X}) + (1 | g)", []),
    ("y ~ x + (1 + I({X}) | g)", []),
    ("cbind({X}, s) ~ x + (1 | g)", ["--family", "binomial"]),
])
def test_cli_rejects_code_in_formulas(capsys, csv, sentinel, template, extra):
    for attack in (attacks(sentinel)["__import__"], attacks(sentinel)["dunder chain"]):
        code = cli.main(["fit", template.replace("{X}", attack), "--data", csv, *extra])
        out, err = capsys.readouterr()
        assert code != 0
        assert err.startswith("error: formula: "), err
        assert re.search(r"not an allowed function|not allowed|not available", err), err
        assert "Traceback" not in err and out == ""
        assert not sentinel.exists()


def test_cli_accepts_transformed_terms(capsys, csv):
    code = cli.main(["fit", "log(y) ~ np.log(x) + I(x**2) + (1 + x | g)", "--data", csv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "np.log(x)" in out and "I(x ** 2)" in out


def test_cli_subprocess_prints_no_hacked(csv):
    """The report's own example, run as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "glamm", "fit",
         "__import__('os').system('echo hacked') ~ 1 + (1|g)", "--data", csv],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "hacked" not in proc.stdout
    assert proc.stderr.startswith("error: ")
    assert "`__import__` is not an allowed function" in proc.stderr

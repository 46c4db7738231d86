"""The ``glamm`` command (glamm.cli.main), run in-process with captured output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import glamm
from glamm import cli

SLOPE = "Reaction ~ Days + (Days | Subject)"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_fit_prints_summary(capsys):
    code, out, err = run(capsys, "fit", SLOPE, "--data", "sleepstudy", "--ml")
    assert code == 0, err
    assert out.startswith("Linear mixed model fit by maximum likelihood")
    assert "-875.97" in out
    assert "Number of obs: 180, groups:  Subject, 18" in out
    assert err == ""


def test_fit_defaults_to_reml(capsys):
    code, out, _ = run(capsys, "fit", SLOPE, "--data", "sleepstudy")
    assert code == 0
    assert out.startswith("Linear mixed model fit by REML")
    code, out2, _ = run(capsys, "fit", SLOPE, "--data", "sleepstudy", "--reml")
    assert out2 == out


def test_ml_and_reml_are_exclusive(capsys):
    code, _, err = run(capsys, "fit", SLOPE, "--data", "sleepstudy", "--ml", "--reml")
    assert code == 2
    assert "not allowed with" in err


def test_json_output(capsys):
    code, out, _ = run(capsys, "fit", SLOPE, "--data", "sleepstudy", "--ml", "--json")
    assert code == 0
    d = json.loads(out)
    assert set(d["fixef"]) == {"(Intercept)", "Days"}
    assert d["fixef"]["Days"] == pytest.approx(10.4673, abs=1e-4)
    assert d["method"] == "ML"
    assert d["nobs"] == 180
    assert d["loglik"] == pytest.approx(-875.9697, abs=1e-4)


def test_csv_path(capsys, tmp_path):
    path = tmp_path / "sleep.csv"
    glamm.datasets.load("sleepstudy").to_csv(path, index=False)
    code, out, err = run(capsys, "fit", SLOPE, "--data", str(path), "--ml", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["loglik"] == pytest.approx(-875.9697, abs=1e-4)
    assert d["ngroups"] == {"Subject": 18}


def test_parquet_path(capsys, tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "sleep.parquet"
    glamm.datasets.load("sleepstudy").to_parquet(path)
    code, out, err = run(capsys, "fit", SLOPE, "--data", str(path), "--ml")
    assert code == 0, err
    assert "-875.97" in out


def test_parquet_without_pyarrow(capsys, tmp_path, monkeypatch):
    path = tmp_path / "sleep.parquet"
    path.write_bytes(b"not really parquet")
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    code, out, err = run(capsys, "fit", SLOPE, "--data", str(path))
    assert code == 2
    assert err.startswith("error: ") and "pyarrow" in err
    assert out == ""


def test_unknown_column(capsys):
    code, out, err = run(capsys, "fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy")
    assert code == 2
    assert err.startswith("error: ")
    assert "'Dayz'" in err
    assert "Traceback" not in err
    assert out == ""


def test_unknown_weights_column(capsys):
    code, _, err = run(capsys, "fit", SLOPE, "--data", "sleepstudy", "--weights", "w")
    assert code == 2
    assert "'w'" in err


def test_weights_and_offset_columns(capsys, tmp_path):
    data = glamm.datasets.load("sleepstudy")
    data["w"] = 1.0
    data["off"] = 0.0
    path = tmp_path / "sleep.csv"
    data.to_csv(path, index=False)
    code, out, err = run(capsys, "fit", SLOPE, "--data", str(path), "--ml", "--json",
                         "--weights", "w", "--offset", "off")
    assert code == 0, err
    assert json.loads(out)["loglik"] == pytest.approx(-875.9697, abs=1e-4)


def test_unknown_dataset_and_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "fit", SLOPE, "--data", "sleepstudyy")
    assert code == 2
    assert "sleepstudy" in err  # the message lists the available names
    code, _, err = run(capsys, "fit", SLOPE, "--data", str(tmp_path / "absent.csv"))
    assert code == 2
    assert "does not exist" in err


def test_singular_fit_in_text_mode(capsys):
    code, out, err = run(capsys, "fit", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff2", "--ml")
    assert code == 0
    assert "boundary (singular) fit" in out
    assert err == ""  # the note is in the summary, not repeated as a warning
    code, out, err = run(capsys, "fit", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff2", "--ml",
                         "--json")
    assert json.loads(out)["is_singular"] is True
    assert err.startswith("warning: ")


def test_datasets_command(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    names = out.split()
    assert "sleepstudy" in names and "Dyestuff2" in names
    assert names == glamm.datasets.list()


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2
    assert "usage:" in err


def test_python_dash_m_glamm():
    proc = subprocess.run([sys.executable, "-m", "glamm", "datasets"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sleepstudy" in proc.stdout.split()


def test_cli_quadrature(capsys):
    from glamm.cli import main

    code = main(["fit", "y ~ sex * time + (1 | id)", "--data", "sim_binary_longitudinal",
                 "--family", "binomial", "--nagq", "11", "--json"])
    assert code == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["method"].startswith("Adaptive Gauss-Hermite Quadrature, nAGQ = 11")
    assert abs(out["loglik"] - (-374.5197065)) < 1e-6
    assert main(["fit", "y ~ sex * time + (1 | id)", "--data", "sim_binary_longitudinal",
                 "--nagq", "11"]) == 2


def test_galamm_command(capsys):
    code = cli.main(["galamm", "y ~ type + x:response + (0 + loading | id)", "--data",
                 "latent_covariates", "--load-var", "type", "--factor", "loading",
                 "--lambda", "1;NA;NA", "--factor-interactions", "~1;~1;~x", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["factor_loadings"]["rows"] == ["measurement1", "measurement2", "response",
                                              "response:x"]
    assert out["loglik"] == pytest.approx(-60.1554976, abs=1e-6)


def test_galamm_command_bad_loading_matrix(capsys):
    code = cli.main(["galamm", "y ~ type + (0 + loading | id)", "--data", "latent_covariates",
                 "--load-var", "type", "--factor", "loading", "--lambda", "1;NA"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: lambda_ has 2 rows")
    code = cli.main(["galamm", "y ~ type + (0 + loading | id)", "--data", "latent_covariates",
                 "--load-var", "type", "--factor", "loading", "--lambda", "1;x;NA"])
    assert code == 2 and "numbers or NA" in capsys.readouterr().err


REF_DATA = Path(__file__).parent / "reference" / "data"


def test_dispformula_and_per_row_families(capsys):
    """--dispformula on an LMM (the variance function in the JSON) and per-row families from
    a labelled --family with --family-by (each with its link)."""
    code, out, _ = run(capsys, "fit", "y ~ x + (1 | id)", "--data", str(REF_DATA / "hsced.csv"),
                       "--ml", "--dispformula", "~ (1 | item)", "--json")
    assert code == 0
    fit = json.loads(out)
    assert fit["dispformula"] == "~ (1 | item)"
    assert fit["variance_function"]["2"]["variance ratio"] == pytest.approx(1.99478, rel=1e-4)
    code, out, _ = run(capsys, "fit", "y ~ x + (1 | id)", "--data", str(REF_DATA / "mresp.csv"),
                       "--family", "a=gaussian,b=binomial:probit", "--family-by", "itemgroup",
                       "--json")
    assert code == 0
    fit = json.loads(out)
    assert fit["families"] == {"a": "gaussian(identity)", "b": "binomial(probit)"}
    code, out, err = run(capsys, "fit", "y ~ x + (1 | id)", "--data", str(REF_DATA / "mresp.csv"),
                         "--family", "gaussian,binomial")
    assert code == 2 and "needs family_index" in err
    code, out, err = run(capsys, "fit", "y ~ x + (1 | id)", "--data", str(REF_DATA / "mresp.csv"),
                         "--family", "a=gaussian,binomial", "--family-by", "itemgroup")
    assert code == 2 and "label=family" in err


def test_gls_and_lme_correlation(capsys):
    code, out, err = run(capsys, "gls", "Reaction ~ Days", "--data", "sleepstudy", "--ml",
                         "--correlation", "ar1(Days | Subject)")
    assert code == 0, err
    assert out.startswith("Generalized least squares fit by maximum likelihood")
    code, out, err = run(capsys, "fit", "Reaction ~ Days + (1 | Subject)", "--data",
                         "sleepstudy", "--ml", "--correlation", "ar1(Days | Subject)",
                         "--json")
    assert code == 0, err
    fit = json.loads(out)
    assert fit["loglik"] == pytest.approx(-872.41504484, abs=1e-6)
    code, out, err = run(capsys, "fit", "r ~ Days + (1 | Subject)", "--data", "sleepstudy",
                         "--family", "poisson", "--correlation", "ar1(Days | Subject)")
    assert code == 2 and "--correlation applies to linear mixed models" in err


def test_ziformula_option(capsys, tmp_path):
    sal = Path(__file__).parent / "reference" / "zero_inflation" / "Salamanders.csv"
    code, out, err = run(capsys, "fit", "count ~ mined + (1 | site)", "--data", str(sal),
                         "--family", "poisson", "--ziformula", "~ mined", "--json")
    assert code == 0, err
    fit = json.loads(out)
    # (the CSV has no level order: "no" sorts first, so the column is minedyes)
    assert fit["loglik"] < 0 and set(fit["zero_inflation"]) == {"(Intercept)", "minedyes"}
    code, out, err = run(capsys, "fit", "count ~ mined + (1 | site)", "--data", str(sal),
                         "--ziformula", "~ mined")
    assert code == 2 and "--ziformula needs a count --family" in err


def test_clmm_command(capsys):
    wine = Path(__file__).parent / "reference" / "clmm_extra" / "wine.csv"
    code, out, err = run(capsys, "clmm", "rating ~ temp + contact + (1 | judge)", "--data",
                         str(wine), "--json")
    assert code == 0, err
    assert json.loads(out)["loglik"] == pytest.approx(-81.5654, abs=1e-3)

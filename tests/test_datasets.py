"""Tests for glamm.datasets: shapes, types, level order and missing values.

The expectations come from two places: the catalogue (``describe``), which is
checked against the CSV read independently with the standard ``csv`` module,
and a few facts written out here by hand so that a corrupted catalogue cannot
pass by agreeing with itself.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glamm import datasets

REFERENCE_DATA = Path(__file__).parent / "reference" / "data"

BUNDLED = [
    "sleepstudy",
    "Dyestuff",
    "Dyestuff2",
    "Penicillin",
    "Pastes",
    "InstEval",
    "cbpp",
    "VerbAgg",
    "sim_binary_longitudinal",
    "sim_poisson_longitudinal",
    "gamm4_sim1",
    "IRTsim",
    "KYPSsim",
    "latent_covariates",
    "cognition",
    "Orthodont",
    "Machines",
    "Salamanders",
    "wine",
    "epilep",
    "mresp",
    "hsced",
    "sim_hetero",
    "sim_mixed_response",
    "sim_families",
    "sim_spatial",
]

# (nrow, ncol) as published by the source packages, independent of the catalogue.
KNOWN_SHAPES = {
    "sleepstudy": (180, 3),
    "Dyestuff": (30, 2),
    "Dyestuff2": (30, 2),
    "Penicillin": (144, 3),
    "Pastes": (60, 4),
    "InstEval": (73421, 7),
    "cbpp": (56, 4),
    "VerbAgg": (7584, 9),
    "sim_binary_longitudinal": (800, 4),
    "sim_poisson_longitudinal": (800, 4),
    "gamm4_sim1": (400, 11),
    "IRTsim": (2500, 4),
    "KYPSsim": (11494, 5),
    "latent_covariates": (600, 5),
    "cognition": (14400, 8),
    "Orthodont": (108, 4),
    "Machines": (54, 3),
    "Salamanders": (644, 9),
    "wine": (72, 6),
    "epilep": (236, 7),
    "mresp": (4000, 5),
    "hsced": (1200, 5),
    "sim_hetero": (1200, 4),
    "sim_mixed_response": (1200, 5),
    "sim_families": (600, 6),
    "sim_spatial": (100, 6),
}


@pytest.fixture(scope="module")
def frames():
    """Each bundled data set loaded once for the read-only checks."""
    return {name: datasets.load(name) for name in BUNDLED}


def _raw_rows(path_or_text):
    """Header and rows of a CSV read with the csv module (no pandas)."""
    if isinstance(path_or_text, Path):
        text = path_or_text.read_text(encoding="utf-8")
    else:
        text = path_or_text
    rows = [row for row in csv.reader(text.splitlines())]
    return rows[0], rows[1:]


def _bundled_csv_text(name):
    import importlib.resources

    entry = datasets.describe(name)
    ref = importlib.resources.files("glamm.datasets").joinpath("data", entry["file"])
    return ref.read_text(encoding="utf-8")


def _check_against_catalogue(df, entry, header, rows):
    assert df.shape == (entry["nrow"], entry["ncol"])
    assert len(rows) == entry["nrow"]
    assert header == [col["name"] for col in entry["columns"]]
    assert df.columns.tolist() == header
    for j, col in enumerate(entry["columns"]):
        s = df[col["name"]]
        raw = [row[j] for row in rows]
        raw_missing = [v == "NA" for v in raw]
        assert int(s.isna().sum()) == col["n_missing"] == sum(raw_missing), col["name"]
        kind = col["type"]
        if kind in ("factor", "ordered"):
            assert isinstance(s.dtype, pd.CategoricalDtype), col["name"]
            assert s.cat.ordered is (kind == "ordered"), col["name"]
            cats = s.cat.categories.tolist()
            assert cats == col["levels"], col["name"]
            assert all(isinstance(c, str) for c in cats), col["name"]
            # every value keeps its label (checks the label -> code mapping)
            got = [None if pd.isna(v) else v for v in s.tolist()]
            want = [None if m else v for v, m in zip(raw, raw_missing)]
            assert got == want, col["name"]
        elif kind == "integer":
            want_dtype = "Int64" if col["n_missing"] else "int64"
            assert str(s.dtype) == want_dtype, col["name"]
            want = [None if m else int(v) for v, m in zip(raw, raw_missing)]
            got = [None if pd.isna(v) else int(v) for v in s.tolist()]
            assert got == want, col["name"]
        else:
            assert s.dtype == np.float64, col["name"]
            want = np.array([np.nan if m else float(v) for v, m in zip(raw, raw_missing)])
            np.testing.assert_array_equal(s.to_numpy(), want, err_msg=col["name"])


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_matches_catalogue_and_file(name, frames):
    entry = datasets.describe(name)
    header, rows = _raw_rows(_bundled_csv_text(name))
    _check_against_catalogue(frames[name], entry, header, rows)


@pytest.mark.parametrize("name", BUNDLED)
def test_known_shapes(name, frames):
    assert frames[name].shape == KNOWN_SHAPES[name]
    entry = datasets.describe(name)
    assert (entry["nrow"], entry["ncol"]) == KNOWN_SHAPES[name]


@pytest.mark.parametrize("name", BUNDLED)
def test_no_missing_values(name, frames):
    # None of the bundled data sets has missing values in R.
    assert not frames[name].isna().any().any()


def test_list_names():
    names = datasets.list()
    assert isinstance(names, list)
    assert names == datasets.list_datasets()
    assert set(names) == set(BUNDLED)
    assert len(names) == len(set(names))


def test_sleepstudy_levels_in_r_order(frames):
    df = frames["sleepstudy"]
    levels = df["Subject"].cat.categories.tolist()
    assert levels[:2] == ["308", "309"]
    assert levels[-1] == "372"
    assert len(levels) == 18
    # Subject is stored as numbers in the CSV but must stay a factor of labels
    assert df["Subject"].iloc[0] == "308"
    assert df["Days"].dtype == np.float64
    assert df["Reaction"].iloc[0] == pytest.approx(249.56)


def test_sex_level_order_is_not_alphabetical(frames):
    for name in ("sim_binary_longitudinal", "sim_poisson_longitudinal"):
        sex = frames[name]["sex"]
        assert sex.cat.categories.tolist() == ["male", "female"]
        assert not sex.cat.ordered


def test_gamm4_fac_numeric_level_order(frames):
    fac = frames["gamm4_sim1"]["fac"]
    assert fac.cat.categories.tolist() == [str(i) for i in range(1, 21)]


def test_ordered_factors(frames):
    inst = frames["InstEval"]
    assert inst["studage"].cat.ordered
    assert inst["studage"].cat.categories.tolist() == ["2", "4", "6", "8"]
    assert inst["lectage"].cat.ordered
    assert inst["service"].cat.categories.tolist() == ["0", "1"]
    assert not inst["service"].cat.ordered
    resp = frames["VerbAgg"]["resp"]
    assert resp.cat.ordered
    assert resp.cat.categories.tolist() == ["no", "perhaps", "yes"]
    assert frames["VerbAgg"]["r2"].cat.categories.tolist() == ["N", "Y"]


def test_cbpp_types(frames):
    cbpp = frames["cbpp"]
    assert cbpp["herd"].cat.categories.tolist() == [str(i) for i in range(1, 16)]
    assert cbpp["period"].cat.categories.tolist() == ["1", "2", "3", "4"]
    assert int(cbpp["incidence"].sum()) == 99  # R: sum(cbpp$incidence)
    assert int(cbpp["size"].sum()) == 842


def test_irtsim_item_is_a_factor_of_five_items(frames):
    # numeric in R, bundled as galamm's factor(item): one loading per item (load_var="item")
    irt = frames["IRTsim"]
    item = irt["item"]
    assert isinstance(item.dtype, pd.CategoricalDtype)
    assert not item.cat.ordered
    assert item.cat.categories.tolist() == ["1", "2", "3", "4", "5"]
    assert item.value_counts(sort=False).tolist() == [500] * 5
    assert irt["sid"].dtype == np.int64 and irt["sid"].nunique() == 500
    assert irt["school"].nunique() == 26
    assert set(irt["y"].unique()) == {0.0, 1.0}
    assert "factor" in datasets.describe("IRTsim")["note"]


def test_kypssim_time_is_a_factor_of_four_times(frames):
    # numeric in R, bundled as galamm's factor(time): `esteem ~ time` gives time2..time4
    kyps = frames["KYPSsim"]
    time = kyps["time"]
    assert isinstance(time.dtype, pd.CategoricalDtype)
    assert not time.cat.ordered
    assert time.cat.categories.tolist() == ["1", "2", "3", "4"]
    assert time.value_counts(sort=False).tolist() == [2924, 2830, 2924, 2816]
    assert kyps["sid"].nunique() == 2924
    for column in ("mid", "hid", "sid"):
        assert kyps[column].dtype == np.int64, column
    assert "factor" in datasets.describe("KYPSsim")["note"]


def test_latent_covariates_and_cognition_factors(frames):
    lc = frames["latent_covariates"]
    # character in R; R's factor() sorts the labels
    assert lc["type"].cat.categories.tolist() == ["measurement1", "measurement2", "response"]
    assert lc["type"].value_counts(sort=False).tolist() == [200, 200, 200]
    assert (lc["response"] == (lc["type"] == "response")).all()
    cog = frames["cognition"]
    assert cog["domain"].cat.categories.tolist() == ["1", "2", "3"]
    assert cog["timepoint"].cat.categories.tolist() == [str(t) for t in range(1, 9)]
    assert cog["item"].cat.categories.tolist() == ["11", "12", "13", "21", "22", "31", "32",
                                                   "33", "34"]
    d1 = cog.query("domain == '1'")  # the issue 10 README example's subset
    assert len(d1) == 200 * 8 * 3
    assert set(d1["item"]) == {"11", "12", "13"}
    # domain 2 is the binomial one (family_index 2)
    assert (cog["family_index"] == np.where(cog["domain"] == "2", 2, 1)).all()


def test_galamm_data_provenance():
    for name in ("IRTsim", "KYPSsim"):
        assert datasets.describe(name)["source"].startswith("PLmixed 0.1.7")
    for name in ("latent_covariates", "cognition"):
        assert datasets.describe(name)["source"].startswith("galamm 0.4.0")


def test_lookup_is_case_insensitive():
    a = datasets.load("SleepStudy")
    b = datasets.load("sleepstudy")
    pd.testing.assert_frame_equal(a, b)
    assert datasets.describe("instEVAL")["name"] == "InstEval"


def test_unknown_name_message_lists_available():
    with pytest.raises(KeyError) as info:
        datasets.load("sleepstudyy")
    message = str(info.value)
    assert "sleepstudyy" in message
    assert "Did you mean 'sleepstudy'" in message
    for name in BUNDLED:
        assert name in message
    assert not message.startswith('"')  # plain text, not KeyError's repr
    with pytest.raises(ValueError, match="Available data sets"):
        datasets.describe("no_such_data")
    assert issubclass(datasets.DatasetNotFoundError, KeyError)
    assert issubclass(datasets.DatasetNotFoundError, ValueError)


def test_name_must_be_string():
    with pytest.raises(TypeError):
        datasets.load(3)


def test_each_load_returns_a_fresh_frame():
    first = datasets.load("Dyestuff")
    first.loc[0, "Yield"] = -1.0
    first["extra"] = 1
    second = datasets.load("Dyestuff")
    assert second.loc[0, "Yield"] == 1545.0
    assert "extra" not in second.columns
    assert first is not second


def test_describe_returns_a_copy_with_provenance():
    entry = datasets.describe("sleepstudy")
    assert entry["source"].startswith("lme4 1.1")
    assert set(entry) >= {"name", "source", "nrow", "ncol", "columns"}
    entry["columns"][2]["levels"].clear()
    entry["nrow"] = 0
    again = datasets.describe("sleepstudy")
    assert again["nrow"] == 180
    assert again["columns"][2]["levels"][:2] == ["308", "309"]
    assert "GLMMadaptive" in datasets.describe("sim_binary_longitudinal")["source"]


# --- reference data that is not bundled: read with the same typing rules ---

with open(REFERENCE_DATA / "datasets.json", encoding="utf-8") as _fh:
    TEST_ONLY = json.load(_fh)


@pytest.mark.parametrize("name", sorted(TEST_ONLY))
def test_reference_only_data(name):
    entry = TEST_ONLY[name]
    path = REFERENCE_DATA / entry["file"]
    df = datasets.read_csv(path, entry)
    header, rows = _raw_rows(path)
    _check_against_catalogue(df, entry, header, rows)


def test_read_csv_nullable_integer_and_missing(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text('"g","n","x"\n"b",1,0.5\nNA,NA,NA\n"a",3,2\n', encoding="utf-8")
    entry = {
        "name": "small",
        "nrow": 3,
        "ncol": 3,
        "columns": [
            {"name": "g", "type": "factor", "levels": ["b", "a"], "n_missing": 1},
            {"name": "n", "type": "integer", "n_missing": 1},
            {"name": "x", "type": "numeric", "n_missing": 1},
        ],
    }
    df = datasets.read_csv(path, entry)
    assert df["g"].cat.categories.tolist() == ["b", "a"]
    assert df["g"].cat.codes.tolist() == [0, -1, 1]
    assert str(df["n"].dtype) == "Int64"
    assert df["n"].isna().tolist() == [False, True, False]
    assert np.isnan(df["x"].iloc[1])


def test_read_csv_rejects_label_outside_levels(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('"g"\n"a"\n"c"\n', encoding="utf-8")
    entry = {"name": "bad", "columns": [{"name": "g", "type": "factor", "levels": ["a", "b"]}]}
    with pytest.raises(ValueError, match="not among its levels"):
        datasets.read_csv(path, entry)


def test_read_csv_rejects_wrong_header_or_rows(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text('"x","y"\n1,2\n', encoding="utf-8")
    cols = [{"name": "y", "type": "numeric"}, {"name": "x", "type": "numeric"}]
    with pytest.raises(ValueError, match="do not match"):
        datasets.read_csv(path, {"columns": cols})
    cols = [{"name": "x", "type": "numeric"}, {"name": "y", "type": "numeric"}]
    with pytest.raises(ValueError, match="rows"):
        datasets.read_csv(path, {"columns": cols, "nrow": 2})


# --- the reference-only data of the galamm cases, read through conftest.load_data ---


def test_load_data_reads_reference_only_galamm_data():
    from conftest import load_data

    gauss = load_data("sim_factor_gaussian")
    assert gauss.shape == (900, 3)
    assert gauss["item"].cat.categories.tolist() == ["i1", "i2", "i3"]
    binom = load_data("sim_factor_binomial")
    assert binom.shape == (2000, 3)
    assert binom["item"].cat.categories.tolist() == ["i1", "i2", "i3", "i4", "i5"]
    assert set(binom["y"].unique()) == {0, 1}
    epilep = load_data("epilep")
    assert epilep.shape == (236, 7)
    assert epilep["subj"].nunique() == 59


def test_irtsim_sub300_rows_come_from_irtsim():
    from conftest import load_data

    sub = load_data("IRTsim_sub300")
    assert sub.shape == (300, 5)
    assert set(sub["item"]) == {1, 2, 3}  # integer as in R; the galamm call uses as.factor(item)
    irt = datasets.load("IRTsim")
    rows = irt.iloc[sub["row_in_IRTsim"].to_numpy() - 1].reset_index(drop=True)
    np.testing.assert_array_equal(rows["sid"].to_numpy(), sub["sid"].to_numpy())
    np.testing.assert_array_equal(rows["school"].to_numpy(), sub["school"].to_numpy())
    np.testing.assert_array_equal(rows["y"].to_numpy(), sub["y"].to_numpy())
    assert rows["item"].astype(int).tolist() == sub["item"].tolist()


def test_every_galamm_reference_names_available_data():
    # each galamm_ / tmb_rr_ reference's `data` starts with the name of its data set
    # ("KYPSsim (time as factor, + time12, time34)"); that data set must be loadable here
    ref_dir = Path(__file__).parent / "reference" / "ref"
    available = set(datasets.list()) | set(TEST_ONLY)
    cases = sorted(ref_dir.glob("galamm_*.json")) + sorted(ref_dir.glob("tmb_rr_*.json"))
    assert len(cases) >= 25
    for path in cases:
        name = json.loads(path.read_text(encoding="utf-8"))["data"].split(" ")[0]
        assert name in available, (path.name, name)

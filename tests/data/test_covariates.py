"""Declared covariates: encoding, declared types, the Preprocessor with covariates, and a run with them.

The covariate_spec.v1 rules are in test_covariate_spec.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import Cli

from splineforecast.config import Config
from splineforecast.data.covariates import (
    Covariate,
    CovariateEncoder,
    check_static,
    declared_covariates,
)
from splineforecast.data.preprocess import Preprocessor
from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode

Compose = Callable[[list[str]], Config]

SPEC = "covariate_spec.v1"


def _cov(name: str, type_: str, role: str = "dynamic") -> Covariate:
    return Covariate(name, role, type_)


def _spec_error(excinfo: pytest.ExceptionInfo[ContractError]) -> str:
    assert excinfo.value.code is ErrorCode.ARTIFACT_CONTRACT_ERROR and excinfo.value.exit_code == 22
    return excinfo.value.message


# --- CovariateEncoder ---------------------------------------------------------------------------


def test_numeric_passes_through() -> None:
    frame = pd.DataFrame({"x": [1.5, np.nan, -3.25, 0.0]})
    enc = CovariateEncoder([_cov("x", "numeric")]).fit(frame)
    out = enc.transform(frame)
    assert list(out.columns) == ["x"] and out["x"].dtype == np.float64
    np.testing.assert_array_equal(out["x"].to_numpy(), frame["x"].to_numpy())
    assert out.index.equals(frame.index)


def test_boolean_tokens_any_case_and_missing_kept() -> None:
    cells = ["true", "FALSE", "1", "0", "Yes", "nO", " TRUE ", np.nan, None, pd.NA, "yes"]
    frame = pd.DataFrame({"flag": pd.Series(cells, dtype=object)})
    out = CovariateEncoder([_cov("flag", "boolean")]).fit(frame).transform(frame)
    expected = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, np.nan, np.nan, np.nan, 1.0]
    np.testing.assert_array_equal(out["flag"].to_numpy(), expected)


def test_boolean_from_numbers() -> None:
    frame = pd.DataFrame({"flag": [1.0, 0.0, np.nan, 1.0]})
    out = CovariateEncoder([_cov("flag", "boolean")]).fit(frame).transform(frame)
    np.testing.assert_array_equal(out["flag"].to_numpy(), [1.0, 0.0, np.nan, 1.0])


def test_boolean_float32_missing_is_kept() -> None:
    frame = pd.DataFrame({"flag": np.array([1.0, np.nan, 0.0], dtype=np.float32)})
    out = CovariateEncoder([_cov("flag", "boolean")]).fit(frame).transform(frame)
    np.testing.assert_array_equal(out["flag"].to_numpy(), [1.0, np.nan, 0.0])


@pytest.mark.parametrize("token", ["maybe", "2", "truthy", ""])
def test_boolean_bad_token_is_a_schema_error_naming_the_column(token: str) -> None:
    frame = pd.DataFrame({"holiday": ["yes", token, "no"]})
    enc = CovariateEncoder([_cov("holiday", "boolean")]).fit(frame.iloc[:1])
    with pytest.raises(ContractError) as info:
        enc.transform(frame)
    assert info.value.code is ErrorCode.DATA_SCHEMA_ERROR and info.value.exit_code == 28
    assert "holiday" in info.value.message and repr(token) in info.value.message


def test_categorical_one_hot_learns_sorted_categories_from_train_only() -> None:
    train = pd.DataFrame({"c": ["mid", "lo", np.nan, "hi", "lo"]})
    later = pd.DataFrame({"c": ["hi", "NEW", np.nan, "mid"]})
    enc = CovariateEncoder([_cov("c", "categorical")]).fit(train)
    assert enc.categories_ == {"c": ["hi", "lo", "mid"]}
    assert enc.feature_names == ["c=hi", "c=lo", "c=mid"]
    out = enc.transform(later)
    assert list(out.columns) == ["c=hi", "c=lo", "c=mid"]
    expected = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],  # unseen in train: all zeros
            [np.nan, np.nan, np.nan],  # missing: NaN in every one-hot column
            [0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_array_equal(out.to_numpy(), expected)
    # the train frame encodes with exactly one 1 per observed row
    train_out = enc.transform(train).to_numpy()
    seen = train["c"].notna().to_numpy()
    np.testing.assert_array_equal(train_out[seen].sum(axis=1), np.ones(seen.sum()))
    assert np.isnan(train_out[~seen]).all()


def test_categorical_numbers_are_categories_as_text() -> None:
    train = pd.DataFrame({"zone": [3, 1, 2, 1]})
    enc = CovariateEncoder([_cov("zone", "categorical")]).fit(train)
    assert enc.feature_names == ["zone=1", "zone=2", "zone=3"]
    np.testing.assert_array_equal(enc.transform(pd.DataFrame({"zone": [2]})).to_numpy(), [[0.0, 1.0, 0.0]])


def _mixed_encoder() -> tuple[CovariateEncoder, pd.DataFrame]:
    covariates = [
        _cov("x", "numeric"),
        _cov("c", "categorical"),
        _cov("b", "boolean"),
        _cov("site", "categorical", "static"),
    ]
    frame = pd.DataFrame(
        {
            "x": [0.5, np.nan, 2.0, 3.5, 4.0],
            "c": ["b", "a", np.nan, "c", "zz"],
            "b": ["yes", "no", "1", np.nan, "False"],
            "site": ["A", "A", "A", "A", "A"],
        }
    )
    return CovariateEncoder(covariates).fit(frame.iloc[:4]), frame


def test_feature_names_and_step_features() -> None:
    enc, _ = _mixed_encoder()
    assert enc.feature_names == ["x", "c=a", "c=b", "c=c", "b", "site=A"]
    assert enc.step_features == ["c=a", "c=b", "c=c", "b", "site=A"]  # numeric features are spline-filled
    assert CovariateEncoder([]).fit(pd.DataFrame()).feature_names == []


def test_json_round_trip_gives_identical_output() -> None:
    enc, frame = _mixed_encoder()
    again = CovariateEncoder.from_json(json.loads(json.dumps(enc.to_json())))
    assert again.feature_names == enc.feature_names and again.step_features == enc.step_features
    assert again.categories_ == enc.categories_
    pd.testing.assert_frame_equal(again.transform(frame), enc.transform(frame))


# --- declared_covariates / check_static ---------------------------------------------------------


def test_declared_type_precedence_spec_then_types_then_numeric() -> None:
    out = declared_covariates(
        ["a", "b", "c"],
        ["s"],
        types={"a": "boolean", "b": "categorical", "s": "boolean"},
        spec_types={"a": "categorical", "s": "categorical"},
    )
    assert out == [
        Covariate("a", "dynamic", "categorical"),  # spec over the config (covariate.categorical/boolean)
        Covariate("b", "dynamic", "categorical"),  # the config
        Covariate("c", "dynamic", "numeric"),  # default
        Covariate("s", "static", "categorical"),
    ]
    assert declared_covariates(["a"], [], {"a": "boolean"}, None) == [Covariate("a", "dynamic", "boolean")]


def test_declared_type_outside_the_types_is_a_config_error() -> None:
    with pytest.raises(ContractError) as info:
        declared_covariates(["a"], [], {"a": "text"}, None)
    assert info.value.code is ErrorCode.CONFIG_ERROR and "a" in info.value.message


def test_check_static() -> None:
    frame = pd.DataFrame({"site": ["A", "A", np.nan, "A"], "zone": ["n", "s", "n", "n"]})
    check_static(frame, ["site"])  # one value (missing cells aside)
    with pytest.raises(ContractError) as info:
        check_static(frame, ["site", "zone"])
    assert info.value.code is ErrorCode.DATA_SCHEMA_ERROR and info.value.exit_code == 28
    assert "zone" in info.value.message and "covariate.dynamic" in info.value.message


# --- Preprocessor with covariates ---------------------------------------------------------------

SPLIT = Split(train=(0, 12), val=(12, 18), test=(18, 24))


def _covariate_frame() -> pd.DataFrame:
    n = 24
    t = np.arange(n, dtype=np.float64)
    y = 10.0 + t + np.sin(t)
    x = 100.0 - 2.0 * t
    c = np.array(["lo", "hi", "mid"] * 8, dtype=object)
    b = np.array(["yes", "no", "no", "yes"] * 6, dtype=object)
    y[[3, 14]] = np.nan
    x[[5, 6, 15, 20]] = np.nan
    c[[7, 8, 13]] = np.nan  # 7-8 hold "lo" of row 6, 13 holds "lo" of row 12 (val part)
    b[[2, 19]] = np.nan
    c[20] = "new"  # unseen in train
    index = pd.date_range("2024-01-01", periods=n, freq="D", name="date")
    return pd.DataFrame({"y": y, "x": x, "c": c, "b": b}, index=index)


COVARIATES = [
    {"name": "x", "role": "dynamic", "type": "numeric"},
    {"name": "c", "role": "dynamic", "type": "categorical"},
    {"name": "b", "role": "dynamic", "type": "boolean"},
]
SPLINE = {"kind": "linear", "max_gap": 5, "lam": None, "smooth_observed": False}


def test_preprocessor_feature_order_fill_and_mask() -> None:
    frame = _covariate_frame()
    pre = Preprocessor("y", COVARIATES, SPLINE, "D", "cov").fit(frame, SPLIT)
    out = pre.transform(frame, SPLIT)
    names = ["y", "x", "c=hi", "c=lo", "c=mid", "b"]
    assert pre.feature_names == names and pre.target_index == 0
    assert out.values.shape == out.observed_mask.shape == (24, len(names))
    unscaled = out.values.astype(np.float64) * pre.scaler_.scale_ + pre.scaler_.mean_

    # observed mask: False exactly where the raw cell was missing (all one-hot columns of a missing category)
    expected_mask = np.ones((24, len(names)), dtype=bool)
    expected_mask[[3, 14], 0] = False
    expected_mask[[5, 6, 15, 20], 1] = False
    expected_mask[np.ix_([7, 8, 13], [2, 3, 4])] = False
    expected_mask[[2, 19], 5] = False
    np.testing.assert_array_equal(out.observed_mask, expected_mask)
    assert out.n_imputed == {"y": 2, "x": 4, "c=hi": 3, "c=lo": 3, "c=mid": 3, "b": 2}

    # numeric gaps: the (linear) spline of each part on its own
    for col, name in ((0, "y"), (1, "x")):
        series = frame[name].to_numpy(dtype=np.float64)
        for a, b in SPLIT.parts().values():
            part = series[a:b]
            seen = ~np.isnan(part)
            expected = np.interp(np.arange(b - a), np.flatnonzero(seen), part[seen])
            np.testing.assert_allclose(unscaled[a:b, col], expected, rtol=1e-6, atol=1e-4)

    # one-hot and boolean gaps hold the previous state
    def state(row: int) -> list[float]:
        return unscaled[row, 2:5].round(6).tolist()

    assert state(6) == [0.0, 1.0, 0.0]  # lo
    assert state(7) == state(8) == [0.0, 1.0, 0.0]  # held from row 6
    assert state(12) == [0.0, 1.0, 0.0] and state(13) == [0.0, 1.0, 0.0]
    assert state(20) == [0.0, 0.0, 0.0]  # unseen category
    b = unscaled[:, 5].round(6)
    assert b[1] == 0.0 and b[2] == 0.0  # "no" held
    assert b[18] == 0.0 and b[19] == 0.0  # row 18 is "no"
    assert set(np.unique(b)) == {0.0, 1.0}
    assert set(np.unique(unscaled[:, 2:5].round(6))) == {0.0, 1.0}  # never a spline value between states


def test_preprocessor_with_covariates_round_trips_through_json() -> None:
    frame = _covariate_frame()
    pre = Preprocessor("y", COVARIATES, SPLINE, "D", "cov").fit(frame, SPLIT)
    again = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert again.feature_names == pre.feature_names
    first, second = pre.transform(frame, SPLIT), again.transform(frame, SPLIT)
    np.testing.assert_array_equal(first.values, second.values)
    np.testing.assert_array_equal(first.observed_mask, second.observed_mask)


# --- end to end ---------------------------------------------------------------------------------

DYNAMIC = ["x", "c", "b"]
STATIC = ["site"]
FEATURES = ["y", "x", "c=hi", "c=lo", "c=mid", "b", "site=A"]


def _write_csv(path: Path, n: int = 300) -> Path:
    rng = np.random.default_rng(3)
    t = np.arange(n, dtype=np.float64)
    y = 50.0 + 0.02 * t + 4.0 * np.sin(2 * np.pi * t / 7) + rng.normal(0.0, 0.3, n)
    x = np.cos(2 * np.pi * t / 7) + rng.normal(0.0, 0.1, n)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2022-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "y": y.round(4).astype(str),
            "x": x.round(4).astype(str),
            "c": np.array(["lo", "mid", "hi"], dtype=object)[(t % 3).astype(int)],
            "b": np.where(t % 7 >= 5, "Yes", "no"),
            "site": "A",
            "unused": "z",
        }
    )
    frame.loc[[20, 21, 22, 240], "y"] = ""
    frame.loc[[50, 51, 260], "x"] = ""
    frame.loc[[60, 61], "c"] = ""
    frame.loc[[70], "b"] = ""
    frame.to_csv(path, index=False)
    return path


def _item(name: str, type_: str, required: bool = False) -> dict[str, object]:
    return {"name": name, "type": type_, "required": required}


def _write_spec(path: Path, dynamic: list[tuple[str, str]], static: list[tuple[str, str]]) -> Path:
    spec = {
        "schema_version": SPEC,
        "dynamic_covariates": [_item(n, t, required=True) for n, t in dynamic],
        "static_covariates": [_item(n, t) for n, t in static],
        "imputation_policy": {"numeric": "spline", "categorical": "previous"},
    }
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def _data_overrides(csv: Path, spec: Path) -> list[str]:
    return [
        f"data.path={csv}",
        "data.name=synthetic",
        "data.target=y",
        "data.time_column=date",
        "data.freq=D",
        "data.lookback=14",
        "data.horizon=3",
        "data.season_length=7",
        "data.batch_size=32",
        f"covariate.dynamic=[{','.join(DYNAMIC)}]",
        f"covariate.static=[{','.join(STATIC)}]",
        f"covariate.spec={spec}",
        "covariate.categorical=[site]",
        "trainer=smoke",
    ]


@pytest.mark.slow
def test_run_with_covariates_end_to_end(
    tmp_path: Path, isolated: list[str], compose: Compose, migrated_store: Path
) -> None:
    Cli(tmp_path).seed_store(migrated_store)
    from splineforecast import pipeline
    from splineforecast.artifacts import RunPaths

    csv = _write_csv(tmp_path / "synthetic.csv")
    spec = _write_spec(
        tmp_path / "spec.json", [("x", "numeric"), ("c", "categorical"), ("b", "boolean")], [("site", "categorical")]
    )
    overrides = [*_data_overrides(csv, spec), "run_id=cov", *isolated]
    result = pipeline.run(compose(overrides), overrides=overrides)
    paths = RunPaths(tmp_path / "artifacts", "cov")

    meta = json.loads(paths.meta_json.read_text(encoding="utf-8"))
    covariates = meta["covariates"]
    assert (covariates["dynamic"], covariates["static"]) == (DYNAMIC, STATIC)
    assert covariates["types"] == {"x": "numeric", "c": "categorical", "b": "boolean", "site": "categorical"}
    assert covariates["spec"] == str(spec)
    assert meta["feature_names"] == FEATURES
    with np.load(paths.processed_npz, allow_pickle=False) as npz:
        assert npz["feature_names"].tolist() == FEATURES
        assert npz["values"].shape == (300, len(FEATURES))
        mask = npz["observed_mask"]
    assert (~mask).sum(axis=0).tolist() == [4, 3, 2, 2, 2, 1, 0]

    params = mlflow.MlflowClient(result.tracking_uri).get_run(result.mlflow_run_id).data.params
    assert params["covariate.dynamic"] == str(DYNAMIC)
    assert params["covariate.static"] == str(STATIC)
    assert params["covariate.spec"] == str(spec)
    assert params["covariate.categorical"] == str(STATIC)

    metrics = json.loads(paths.metrics_json.read_text(encoding="utf-8"))
    assert np.isfinite(metrics["metrics"]["mae"]) and metrics["n_points"] > 0


def test_cli_refuses_a_spec_without_a_declared_covariate(cli: Cli) -> None:
    csv = _write_csv(cli.root / "synthetic.csv")
    spec = _write_spec(cli.root / "spec.json", [("x", "numeric"), ("c", "categorical")], [("site", "categorical")])
    proc = cli(*_data_overrides(csv, spec), "run_id=refused", timeout=120)
    assert proc.returncode == 22, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    payload = json.loads(lines[0])
    assert payload["ok"] is False and payload["exit_code"] == 22
    assert payload["error"]["code"] == "ARTIFACT_CONTRACT_ERROR"
    message = payload["error"]["message"]
    assert "['b']" in message and "not in the spec" in message
    for word in ("declared", "spec", "available"):
        assert word in message
    for name in ["date", "y", *DYNAMIC, *STATIC, "unused"]:  # `unused` is only an available column
        assert name in message
    assert not cli.artifacts.exists()
    assert not (cli.root / "mlruns").exists()

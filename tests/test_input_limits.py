"""The checks at the door, one function at a time: text sniffing, JSON depth, the bounds of the config, the
rows a season needs, what a run's metrics need, and a checkpoint a resume can read.

The same refusals through the real command are in ``test_input_limits_cli.py``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from splineforecast.bounds import (
    BOUNDS,
    MAX_TRAIN_BYTES,
    NetSize,
    check_bounds,
    check_overrides,
    check_train_memory,
    override_depth,
    train_bytes,
)
from splineforecast.data.covariates import json_depth, read_spec
from splineforecast.data.io import ReadLimits, check_file, read_csv, text_problem
from splineforecast.data.splits import Split, time_splits
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.limits import check_resumable, check_scorable, rows_needed

# bytes that can never appear in UTF-8 text, and a continuation byte with nothing to continue
INVALID = st.sampled_from([b"\xff", b"\xfe", b"\xc0", b"\x80"])


def _cut(text: str, at: int) -> tuple[bytes, bytes]:
    """``text`` encoded and cut at character ``at``: (before, after)."""
    return text[:at].encode(), text[at:].encode()


@given(st.text().filter(lambda t: "\0" not in t))
def test_utf8_text_without_nul_is_text(text: str) -> None:
    assert text_problem(text.encode()) is None


@given(st.text(min_size=1).filter(lambda t: "\0" not in t), st.data())
def test_a_block_cut_inside_a_character_is_text_while_more_follows(text: str, data: st.DataObject) -> None:
    raw = text.encode()
    cut = data.draw(st.integers(0, len(raw)))
    assert text_problem(raw[:cut], final=False) is None
    if raw[:cut].decode("utf-8", errors="ignore").encode() != raw[:cut]:  # cut inside a character
        line, reason = text_problem(raw[:cut], final=True) or (0, "")
        assert line == raw[:cut].count(b"\n") + 1 and "not valid UTF-8" in reason


@given(st.text().filter(lambda t: "\0" not in t), st.data())
def test_a_nul_byte_is_named_by_its_line(text: str, data: st.DataObject) -> None:
    before, after = _cut(text, data.draw(st.integers(0, len(text))))
    assert text_problem(before + b"\0" + after) == (
        before.count(b"\n") + 1,
        f"holds a NUL byte (at offset {len(before)})",
    )


@given(st.text().filter(lambda t: "\0" not in t), st.data(), INVALID)
def test_invalid_utf8_is_named_by_its_line(text: str, data: st.DataObject, bad: bytes) -> None:
    before, after = _cut(text, data.draw(st.integers(0, len(text))))
    line, reason = text_problem(before + bad + after) or (0, "")
    assert line == before.count(b"\n") + 1
    assert reason.startswith("is not valid UTF-8") and f"at offset {len(before)}" in reason


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,: \n'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\ab'), inner, max_size=3),
    max_leaves=20,
)


def _depth(node: Any) -> int:
    if isinstance(node, list):
        return 1 + max((_depth(v) for v in node), default=0)
    if isinstance(node, dict):
        return 1 + max((_depth(v) for v in node.values()), default=0)
    return 0


@given(JSON, st.booleans())
def test_json_depth_is_the_nesting_of_arrays_and_objects(node: Any, ascii_only: bool) -> None:
    """Brackets and escaped quotes inside strings are not nesting."""
    assert json_depth(json.dumps(node, ensure_ascii=ascii_only).encode()) == _depth(node)


BRACKETY = st.text(alphabet="ab[]{}() ,=", max_size=6)  # quoted, so no nesting
OVERRIDE_VALUES = st.recursive(
    st.integers() | BRACKETY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(BRACKETY, inner, max_size=3),
    max_leaves=20,
)


@given(OVERRIDE_VALUES)
def test_override_depth_is_the_nesting_of_lists_and_dicts_outside_quotes(value: Any) -> None:
    """Python's repr of a value is Hydra's override grammar for it here (single-quoted strings)."""
    assert override_depth(f"covariate.dynamic={value!r}") == _depth(value)


def test_an_override_nested_past_the_bound_is_a_config_error_naming_its_key() -> None:
    check_overrides(["data=tiny", "covariate.dynamic=" + "[" * 32 + "]" * 32])
    with pytest.raises(ContractError) as err:
        check_overrides(["data=tiny", "covariate.dynamic=" + "[" * 33 + "]" * 33])
    assert err.value.code is ErrorCode.CONFIG_ERROR
    assert "`covariate.dynamic=...` nests 33 levels deep, above the bound of 32" in err.value.message


def test_a_deep_spec_is_refused_before_parsing_and_a_large_one_before_reading(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ContractError) as err:
        read_spec(str(deep))
    assert err.value.code is ErrorCode.ARTIFACT_CONTRACT_ERROR
    assert "nests 100000 levels deep, above the bound of 32" in err.value.message
    large = tmp_path / "large.json"
    large.write_text(json.dumps({"schema_version": "covariate_spec.v1", "pad": "x" * (1 << 20)}))
    with pytest.raises(ContractError) as err:
        read_spec(str(large))
    assert err.value.code is ErrorCode.ARTIFACT_CONTRACT_ERROR
    assert f"is {large.stat().st_size} bytes" in err.value.message and "1048576 bytes (1.0 MiB)" in err.value.message


@pytest.mark.parametrize("key", list(BOUNDS))
def test_every_bound_refuses_one_past_each_end_naming_key_value_and_bound(key: str) -> None:
    bound = BOUNDS[key]
    check_bounds({key: bound.low})
    check_bounds({key: bound.high})
    for value, side in ((bound.high + 1, f"<= {bound.high}"), (bound.low - 1, f">= {bound.low}")):
        with pytest.raises(ContractError) as err:
            check_bounds({key: value})
        assert err.value.code is ErrorCode.CONFIG_ERROR
        assert f"({value}) must be {side}" in err.value.message and key in err.value.message
    assert bound.low <= bound.api_high <= bound.high


def test_training_memory_estimate_refuses_what_no_machine_holds() -> None:
    default = NetSize(4, 1, 1, hidden_size=64, num_layers=2, lookback=104, horizon=13, batch_size=64)
    assert 1 << 20 < train_bytes(default) < 1 << 30  # a default LSTM: megabytes
    check_train_memory(default, {"model.hidden_size": 64})
    huge = NetSize(4, 1, 1, hidden_size=4096, num_layers=16, lookback=10_000, horizon=4, batch_size=4096)
    assert train_bytes(huge) > MAX_TRAIN_BYTES
    with pytest.raises(ContractError) as err:
        check_train_memory(huge, {"model.hidden_size": 4096, "data.batch_size": 4096})
    assert err.value.code is ErrorCode.CONFIG_ERROR
    assert "model.hidden_size=4096, data.batch_size=4096" in err.value.message
    assert f"{MAX_TRAIN_BYTES} bytes (256.0 GiB)" in err.value.message


@given(st.integers(1, 500), st.sampled_from([(0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.5, 0.1, 0.1), (0.6, 0.2, 10.0)]))
def test_rows_needed_is_the_fewest_rows_whose_split_holds_a_season_before_test(
    season: int, sizes: tuple[float, float, float]
) -> None:
    need = rows_needed(season, sizes)
    assert need is not None
    assert time_splits(need, *sizes).test[0] >= season
    try:
        fewer = time_splits(need - 1, *sizes).test[0]
    except ContractError:
        fewer = -1
    assert fewer < season


def test_rows_needed_is_none_when_train_and_val_are_row_counts() -> None:
    assert rows_needed(52, (20.0, 5.0, 5.0)) is None
    assert rows_needed(25, (20.0, 5.0, 5.0)) == 30


SPLIT = Split(train=(0, 60), val=(60, 80), test=(80, 100))


def _scorable(target: np.ndarray, season: int = 7) -> None:
    check_scorable(target, ~np.isnan(target), SPLIT, season, (0.6, 0.2, 0.2))


def test_a_scorable_series_passes() -> None:
    _scorable(np.sin(np.arange(100.0)))


def test_a_season_longer_than_the_rows_before_test_is_a_config_error_naming_the_rows_needed() -> None:
    with pytest.raises(ContractError) as err:
        _scorable(np.sin(np.arange(100.0)), season=81)
    message = err.value.message
    assert err.value.code is ErrorCode.CONFIG_ERROR
    assert "`data.season_length` (81) needs 81 rows before the test part, and data.split leaves 80" in message
    assert f"at least {rows_needed(81, (0.6, 0.2, 0.2))} rows (it has 100)" in message


@pytest.mark.parametrize(
    ("test_part", "what"),
    [(np.nan, "no observed target value"), (3.5, "one observed target value only (3.5)")],
    ids=["unobserved", "constant"],
)
def test_a_test_part_with_nothing_to_score_is_insufficient_data(test_part: float, what: str) -> None:
    target = np.sin(np.arange(100.0))
    target[80:] = test_part
    with pytest.raises(ContractError) as err:
        _scorable(target)
    assert err.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR and f"rows 80..99) holds {what}" in err.value.message


def test_a_train_part_without_an_observed_pair_a_lag_apart_gives_mase_no_scale() -> None:
    target = np.sin(np.arange(100.0))
    target[:60:2] = np.nan  # every other train point: no pair 1 apart (60 < 2 x 31: lag 1)
    with pytest.raises(ContractError) as err:
        _scorable(target, season=31)
    assert err.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR and "MASE has no scale" in err.value.message


def test_a_truncated_or_foreign_checkpoint_is_an_artifact_error_naming_it(tmp_path: Path) -> None:
    import torch

    good = tmp_path / "good.ckpt"
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(64, 64)}}, good)
    check_resumable(good, load=True)
    cut = tmp_path / "last.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.ckpt"
    with zipfile.ZipFile(foreign, "w") as archive:  # a whole zip that torch cannot read
        archive.writestr("x/data.pkl", b"not a pickle")
    check_resumable(foreign)  # a whole archive: the startup check passes it
    for path, load, why in ((cut, False, "not a whole zip archive"), (foreign, True, "torch.load(weights_only=True)")):
        with pytest.raises(ContractError) as err:
            check_resumable(path, load=load)
        assert err.value.code is ErrorCode.ARTIFACT_CONTRACT_ERROR
        assert f"`{path}`" in err.value.message and why in err.value.message
        assert f"rm '{path}'" in err.value.message and "overwrite=true" in err.value.message


def _csv(path: Path, n_rows: int, n_columns: int = 2) -> Path:
    header = ",".join(["date", *(f"c{i}" for i in range(1, n_columns))])
    rows = [",".join([f"2020-01-{1 + i % 28:02d}", *(["1"] * (n_columns - 1))]) for i in range(n_rows)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_read_csv_reads_up_to_the_caps_and_refuses_one_past(tmp_path: Path) -> None:
    path = _csv(tmp_path / "t.csv", 100, 10)
    size = path.stat().st_size
    assert read_csv(path, limits=ReadLimits(size, 100, 10)).shape == (100, 10)
    for limits, message in (
        (ReadLimits(size - 1, 100, 10), f"is {size} bytes ("),
        (ReadLimits(size, 99, 10), "more than data.max_rows (99) rows"),
        (ReadLimits(size, 100, 9), "has 10 columns, above data.max_columns (9)"),
    ):
        with pytest.raises(ContractError) as err:
            read_csv(path, limits=limits)
        assert err.value.code is ErrorCode.INPUT_SHAPE_ERROR and message in err.value.message


def test_a_header_wider_than_the_first_block_is_refused_once_parsed(tmp_path: Path) -> None:
    path = _csv(tmp_path / "wide.csv", 2, 20_000)  # the header alone is longer than the sniffed block
    check_file(path, ReadLimits(max_columns=20_000))
    with pytest.raises(ContractError) as err:
        read_csv(path, limits=ReadLimits(max_columns=19_999))
    assert "has 20000 columns, above data.max_columns (19999)" in err.value.message


API_KEYS = {
    "hidden_size": "model.hidden_size",
    "num_layers": "model.num_layers",
    "lookback": "data.lookback",
    "horizon": "data.horizon",
    "epochs": "trainer.max_epochs",
}


@pytest.mark.parametrize("field", list(API_KEYS))
def test_the_api_accepts_its_bound_from_the_bounds_module_and_refuses_one_past(field: str) -> None:
    from pydantic import ValidationError

    from splineforecast.api.jobs import TrainRequest

    bound = BOUNDS[API_KEYS[field]]
    assert bound.api_high < bound.high  # the API's bound is the tighter one
    for value in (bound.low, bound.api_high):
        assert getattr(TrainRequest(**{field: value}), field) == value
    for value in (bound.low - 1, bound.api_high + 1):
        with pytest.raises(ValidationError):
            TrainRequest(**{field: value})

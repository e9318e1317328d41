"""A success never carries NaN metrics: the scorability rule (``limits.check_scorable``) against the
evaluation's own scores, a panel's series checked by the same rule at startup (the unscorable ones left
out and named; none scorable refused with the series rule's code), and the guard on the scores a run
records (``limits.check_metrics``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose_config
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from splineforecast import evaluation
from splineforecast.contracts import PanelRawInputs
from splineforecast.data.panel import from_end_split
from splineforecast.data.splits import Split
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.evaluation import BASELINES, METRICS, score, score_test, train_scale
from splineforecast.limits import check_metrics, check_scorable, result_values, rows_needed
from splineforecast.panel_checks import check_panel_raw
from splineforecast.panel_eval import panel_scores, score_series
from splineforecast.records import EvalResult, PanelScores, Scores, TrainingSummary
from splineforecast.records_panel import PanelSplitContract

SPLIT = Split(train=(0, 60), val=(60, 80), test=(80, 100))
SIZES = (0.6, 0.2, 0.2)
values = st.floats(-100, 100, allow_nan=False, allow_subnormal=False).map(lambda v: round(v, 3))


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float64, 60, elements=values) | values.map(lambda v: np.full(60, v)),  # a flat train part too
    arrays(np.float64, 40, elements=values),
    arrays(bool, 100, elements=st.booleans()),
    st.sampled_from([1, 7, 12, 31, 52]),
)
def test_a_series_the_rule_passes_gets_finite_scores_from_the_evaluation(
    train: np.ndarray, rest: np.ndarray, observed: np.ndarray, season: int
) -> None:
    """What check_scorable lets through, the evaluation scores (on the test part's observed points, against
    the train part's scale) without a NaN; what it refuses is 25 or 26."""
    target = np.concatenate([train, rest])
    try:
        check_scorable(target, observed, SPLIT, season, SIZES)
    except ContractError as exc:
        assert exc.code in (ErrorCode.CONFIG_ERROR, ErrorCode.INSUFFICIENT_DATA_ERROR)
        return
    a, b = SPLIT.train
    scale = train_scale(target[a:b], observed[a:b], season)
    seen = observed[80:]
    y = target[80:][seen]
    got = score(y, y + 1.0, scale)  # any finite forecast
    assert all(math.isfinite(v) for v in got.values()), got


def test_a_train_part_whose_seasonal_differences_are_all_zero_gives_mase_no_scale() -> None:
    target = np.sin(np.arange(100.0))
    target[:60] = np.tile(np.arange(7.0), 9)[:60]  # periodic at the season: every lag-7 difference is 0
    with pytest.raises(ContractError) as err:
        check_scorable(target, np.ones(100, dtype=bool), SPLIT, 7, SIZES)
    assert err.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR
    assert "seasonal-naive MAE, MASE's scale, is 0" in err.value.message
    target[59] = 100.0  # one lag-7 pair differs: a scale
    check_scorable(target, np.ones(100, dtype=bool), SPLIT, 7, SIZES)


@given(st.integers(1, 40), st.integers(1, 30), st.integers(2, 60))
def test_rows_needed_counts_from_the_start_of_a_panel_series_train_part(n_train: int, n_val: int, season: int) -> None:
    """Row-count sizes in a panel: train is at most n_train rows before val, so the rows from train's start to
    test top out at n_train + n_val; rows_needed finds the fewest rows, or None."""
    sizes = SplitSizes(float(n_train), float(n_val), 5.0)

    def cut(n: int) -> Split:
        return from_end_split(n, sizes)[0]

    need = rows_needed(season, (sizes.train, sizes.val, sizes.test), cut)
    if n_train + n_val < season:
        assert need is None
        return
    assert need is not None
    assert cut(need).test[0] - cut(need).train[0] >= season
    assert cut(need - 1).test[0] - cut(need - 1).train[0] < season


class SplitSizes:
    def __init__(self, train: float, val: float, test: float) -> None:
        self.train, self.val, self.test = train, val, test
        self.val_start: str | None = None
        self.test_start: str | None = None


# --- a panel's startup check: data=tiny (lookback 16, horizon 4, season 52, split 0.6/0.2/0.2) ---------------


def _panel(path: Path, series: dict[str, np.ndarray]) -> Path:
    """A long table (id, date, y): each series weekly from 2000-01-01."""
    parts = [
        pd.DataFrame({"id": sid, "date": pd.date_range("2000-01-01", periods=len(y), freq="W-SAT"), "y": y})
        for sid, y in series.items()
    ]
    pd.concat(parts).to_csv(path, index=False, date_format="%Y-%m-%d")
    return path


def _check(path: Path, *more: str) -> PanelRawInputs:
    cfg = compose_config(["data=tiny", f"data.path={path}", "data.series_column=id", "data.target=y", *more])
    return check_panel_raw(cfg)


def _wave(n: int, shift: float = 0.0) -> np.ndarray:
    return 10.0 + shift + np.sin(np.arange(n) * 2 * np.pi / 52) + 0.01 * np.arange(n)


def test_a_series_the_rule_refuses_is_left_out_named_with_the_reason_and_the_rest_go_on(tmp_path: Path) -> None:
    flat = _wave(100)
    flat[80:] = 3.0  # its test part holds one value
    path = _panel(tmp_path / "p.csv", {"a": _wave(100), "b": _wave(60, 5.0), "c": flat, "d": _wave(120, 1.0)})
    got = _check(path).table
    assert got.ids == ["a", "d"]
    assert sorted(got.left_out) == ["b", "c"]
    assert got.left_out["b"].startswith("cannot be scored: `data.season_length` (52) needs 52 rows before")
    assert "one observed target value only (3)" in got.left_out["c"]
    assert got.notes["series_kept"] == 2 and got.notes["series_left_out"] == 2


def test_no_series_long_enough_for_the_season_is_a_config_error_naming_the_rows_a_series_needs(
    tmp_path: Path,
) -> None:
    need = rows_needed(52, SIZES)
    assert need is not None
    with pytest.raises(ContractError) as err:
        _check(_panel(tmp_path / "short.csv", {"a": _wave(60), "b": _wave(61)}))
    message = err.value.message
    assert err.value.code is ErrorCode.CONFIG_ERROR
    assert message.startswith("no series of the panel can be scored; series `a` (and 1 more series likewise)")
    assert "`data.season_length` (52) needs 52 rows before the test part, and data.split leaves 48" in message
    assert f"or supply a series of at least {need} rows (it has 60)" in message
    # the number is right: a series of `need` rows is kept, one of `need - 1` is not
    assert _check(_panel(tmp_path / "need.csv", {"a": _wave(need), "b": _wave(60)})).table.ids == ["a"]
    with pytest.raises(ContractError):
        _check(_panel(tmp_path / "fewer.csv", {"a": _wave(need - 1), "b": _wave(60)}))


def test_row_count_sizes_name_the_rows_of_the_panel_rule(tmp_path: Path) -> None:
    sizes = ("data.split.train=40", "data.split.val=10", "data.split.test=10", "data.season_length=45")
    with pytest.raises(ContractError) as err:
        _check(_panel(tmp_path / "rows.csv", {"a": _wave(54)}), *sizes)
    assert "or supply a series of at least 55 rows (it has 54)" in err.value.message
    assert _check(_panel(tmp_path / "ok.csv", {"a": _wave(55)}), *sizes).table.ids == ["a"]
    with pytest.raises(ContractError) as never:  # 40 + 10 rows at most before test: no length does
        _check(_panel(tmp_path / "never.csv", {"a": _wave(200)}), *sizes[:3], "data.season_length=52")
    assert "or give data.split.train + data.split.val at least 52 rows" in never.value.message


def test_a_calendar_split_names_the_rows_before_test_start(tmp_path: Path) -> None:
    cutoffs = ("data.split.val_start=2000-09-02", "data.split.test_start=2000-12-02", "data.split.test=20")
    with pytest.raises(ContractError) as err:
        _check(_panel(tmp_path / "cal.csv", {"a": _wave(100), "b": _wave(100, 2.0)}), *cutoffs)
    assert err.value.code is ErrorCode.CONFIG_ERROR
    assert "or give each series at least 52 rows before data.split.test_start" in err.value.message


def test_no_series_with_a_varying_test_part_is_insufficient_data(tmp_path: Path) -> None:
    a, b = _wave(100), _wave(100, 1.0)
    a[80:], b[80:] = 1.0, np.nan
    with pytest.raises(ContractError) as err:
        _check(_panel(tmp_path / "flat.csv", {"a": a, "b": b}))
    assert err.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR
    assert "series `a` (and 1 more series likewise): the test part (rows 80..99) holds one observed" in (
        err.value.message
    )


# --- the guard on the scores a run records -------------------------------------------------------------------


def _scores(value: float = 0.5, n_points: int = 10) -> Scores:
    metrics = dict.fromkeys(METRICS, value)
    per_horizon = {n: {"mae": [value, value], "rmse": [value, value]} for n in ("model", *BASELINES)}
    return Scores(metrics, {b: dict(metrics) for b in BASELINES}, per_horizon, n_points)


def _result(scores: Scores, panel: PanelScores | None = None, uncertainty: dict | None = None) -> EvalResult:
    return EvalResult("r", scores, TrainingSummary(1, 0.1), panel=panel, uncertainty=uncertainty)


PANEL = PanelScores(3, {n: {"smape": 1.0, "mase": 0.9, "mae": 0.5, "rmse": 0.6, "r2": 0.4} for n in ("model", "naive")})
LEVELS = {"levels": [0.1, 0.9], "scores": {"model": {"crps": 0.2, "coverage_80": 0.8}}, "per_horizon": {}}


def test_every_metric_mlflow_logs_is_one_the_guard_checks() -> None:
    full = _result(_scores(), PANEL, LEVELS)
    check_metrics(full)
    assert set(full.mlflow_metrics()) <= set(result_values(full))
    assert "per_horizon/seasonal_naive/rmse[2]" in result_values(full)


@given(st.data(), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_one_non_finite_score_anywhere_refuses_the_result_naming_it(data: st.DataObject, bad: float) -> None:
    full = _result(_scores(), PANEL, LEVELS)
    name = data.draw(st.sampled_from(sorted(result_values(full))))
    forecaster, _, key = name.removeprefix("per_horizon/").rpartition("/")
    forecaster = forecaster or "model"
    if name.startswith("per_horizon/"):
        key, step = key.rstrip("]").split("[")
        full.scores.per_horizon[forecaster][key][int(step) - 1] = bad
    elif key.startswith("mean_"):
        panel = PanelScores(PANEL.n_series, {n: dict(m) for n, m in PANEL.mean.items()})
        panel.mean[forecaster][key.removeprefix("mean_")] = bad
        full = _result(full.scores, panel, LEVELS)
    elif key in ("crps", "coverage_80"):
        full = _result(full.scores, PANEL, {**LEVELS, "scores": {"model": {"crps": 0.2, "coverage_80": 0.8, key: bad}}})
    else:
        (full.metrics if forecaster == "model" else full.baselines[forecaster])[key] = bad
    with pytest.raises(ContractError) as err:
        check_metrics(full)
    assert err.value.code is ErrorCode.INSUFFICIENT_DATA_ERROR
    assert f"{name} = {bad}" in err.value.message


def test_a_one_series_r2_without_a_spread_names_r2_and_why() -> None:
    scores = _scores()
    for table in (scores.metrics, *scores.baselines.values()):
        table["r2"] = math.nan
    with pytest.raises(ContractError) as err:
        check_metrics(_result(scores))
    message = err.value.message
    assert "r2 = nan, naive/r2 = nan, seasonal_naive/r2 = nan;" in message
    assert "r2: the scored test points hold one value, and R2 needs two" in message
    assert "start the run over with overwrite=true" in message


def test_no_scored_point_says_so() -> None:
    with pytest.raises(ContractError) as err:
        check_metrics(_result(_scores(math.nan, n_points=0)))
    assert "(and 26 more)" in err.value.message  # 18 metrics + 12 per-step scores, 4 shown
    assert "mae: no test point was scored" in err.value.message


def _forecast(actual: np.ndarray, flat_test: bool) -> evaluation.TestForecast:
    """One series of 60 rows (train 0..39, val 40..49, test 50..59), lookback 6, horizon 2, every test window."""
    y = actual.copy()
    if flat_test:
        y[50:] = 7.0
    starts = np.arange(44, 53)  # origins 50..58: truth rows 50..59
    forecast = y[starts[:, None] + 6 + np.arange(2)[None, :]] + 0.5
    return evaluation.TestForecast(starts, forecast, y, y, np.ones(60, dtype=bool))


def test_a_panel_whose_every_series_lacks_a_metric_is_refused_and_one_that_has_some_is_not() -> None:
    """Real per-series scoring and the panel's means: a mean over series is NaN only when every series' is."""
    contract = PanelSplitContract.of(
        "r",
        "from_end",
        ["a", "b"],
        [Split((0, 40), (40, 50), (50, 60))] * 2,
        np.arange(120).astype("datetime64[W]").astype("datetime64[ns]"),
        6,
        2,
    )
    base = 10.0 + np.sin(np.arange(60.0))
    one_flat = [_forecast(base, True), _forecast(base + 1.0, False)]
    scores, panel = panel_scores(score_series(one_flat, contract, 6, 4))
    assert math.isnan(score_test(one_flat[0], (0, 40), 6, 4).metrics["r2"])  # the flat series' own R2
    check_metrics(_result(scores, panel))  # the mean over the series that have one
    both_flat = [_forecast(base, True), _forecast(base + 1.0, True)]
    scores, panel = panel_scores(score_series(both_flat, contract, 6, 4))
    with pytest.raises(ContractError) as err:
        check_metrics(_result(scores, panel))
    assert "r2 = nan" in err.value.message
    assert "no series of the panel has a finite r2 (in each, the scored test points hold one value" in (
        err.value.message
    )

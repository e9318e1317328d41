"""stage=backtest: no fold reads a row after its cutoff (on the real preprocessing path), bad settings are
refused by the real command with nothing written, a backtest killed with SIGKILL after fold 1 resumes
without training its finished folds again, ending with one parent and three nested runs, and a panel
backtest without refit (run in this process) forecasts every fold with fold 0's model."""

from __future__ import annotations

import json
import signal
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import Cli, compose_config
from mlflow import MlflowClient

from splineforecast.artifacts import RunPaths
from splineforecast.contracts import check
from splineforecast.folds import Fold, fold_run_id

TINY = Path(str(resources.files("splineforecast") / "datasets" / "co2_tiny.csv"))
FOLDS, STEP = 3, 6


def _table(panel: bool) -> pd.DataFrame:
    """The tiny CO2 table, or two sites of it (the second shifted, and cut 30 weeks short: ragged ends)."""
    base = pd.read_csv(TINY)
    if not panel:
        return base
    sites = [base.assign(site="mlo"), base.iloc[:-30].assign(co2=base.co2.iloc[:-30] - 3.5, site="spo")]
    return pd.concat(sites, ignore_index=True)


def _folds(path: Path, root: Path, panel: bool) -> list[Fold]:
    keys = ["data=tiny", f"data.path={path}", "stage=backtest", "run_id=bt", f"paths.artifacts={root}"]
    keys += [f"backtest.folds={FOLDS}", f"backtest.step={STEP}", "tracking.uri=sqlite:///unused.db"]
    checked = check(compose_config(keys + (["data.series_column=site"] if panel else [])))
    assert checked.folds is not None
    return checked.folds


def _preprocessed(table: pd.DataFrame, root: Path, panel: bool) -> list[dict[str, np.ndarray]]:
    """Every fold preprocessed as stage=backtest does it: its processed arrays and fitted scaler."""
    from splineforecast import pipeline

    root.mkdir()
    path = root / "table.csv"
    table.to_csv(path, index=False)
    cfg = compose_config(["data=tiny", f"data.path={path}", *(["data.series_column=site"] if panel else [])])
    out = []
    for fold in _folds(path, root, panel):
        paths = RunPaths(root, fold.run_id)
        pipeline.preprocess(cfg, paths, fold.raw)
        arrays = dict(np.load(paths.processed_npz, allow_pickle=False))
        state = json.loads(paths.preprocessor_json.read_text())
        scaler = state["scaler"] if "scaler" in state else state["scalers"]
        arrays.update({f"scaler_{k}": np.asarray(v, dtype=np.float64) for k, v in scaler.items() if k != "kind"})
        arrays["split"] = np.asarray(json.dumps(json.loads(paths.split_contract_json.read_text()), sort_keys=True))
        out.append(arrays)
    return out


def _last_rows(table: pd.DataFrame, panel: bool, offset: int) -> np.ndarray:
    """Whether each row lies after its series' fold cutoff (in the last ``offset`` rows of its series)."""
    groups = table.groupby("site").cumcount(ascending=False) if panel else pd.Series(np.arange(len(table))[::-1])
    return (groups < offset).to_numpy()


@pytest.mark.parametrize("panel", [False, True], ids=["one_series", "panel"])
@pytest.mark.parametrize("k", range(FOLDS - 1))
def test_no_fold_reads_a_value_after_its_cutoff(tmp_path: Path, panel: bool, k: int) -> None:
    table = _table(panel)
    offset = (FOLDS - 1 - k) * STEP
    changed = table.copy()
    later = _last_rows(table, panel, offset)
    rng = np.random.default_rng(k)
    changed.loc[later, "co2"] = rng.normal(500.0, 50.0, int(later.sum()))  # wild values ...
    changed.loc[np.flatnonzero(later)[::3], "co2"] = np.nan  # ... and new gaps
    before = _preprocessed(table, tmp_path / "before", panel)
    after = _preprocessed(changed, tmp_path / "after", panel)
    for key, value in before[k].items():  # fill, mask, timestamps, raw target, scaler, split: all the same
        np.testing.assert_array_equal(after[k][key], value, err_msg=key)
    # the change reached the pipeline: the last fold (the whole table) sees it
    assert not np.array_equal(before[-1]["values"], after[-1]["values"], equal_nan=True)


def test_fold_run_ids_and_cutoffs(tmp_path: Path) -> None:
    folds = _folds(TINY, tmp_path, panel=False)
    names = [f.run_id for f in folds]
    assert names == [fold_run_id("bt", k) for k in range(FOLDS)] == ["bt-fold0", "bt-fold1", "bt-fold2"]
    ends = [f.raw.frame.index[-1] for f in folds]  # type: ignore[union-attr]
    full = pd.read_csv(TINY, parse_dates=["date"]).date
    assert ends == [full.iloc[-1] - pd.Timedelta(weeks=(FOLDS - 1 - k) * STEP) for k in range(FOLDS)]
    tests = [f.raw.split.test for f in folds]  # type: ignore[union-attr]
    assert all(b == len(f.raw.frame) for (a, b), f in zip(tests, folds, strict=True))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "code", "named"),
    [
        (["backtest.folds=0"], 25, ["`backtest.folds` (0)"]),
        (["backtest.step=0"], 25, ["`backtest.step` (0)"]),
        (["backtest.folds=120", "backtest.step=4"], 26, ["fold 0 of 120", "476 rows", "backtest.step 4", "400 rows"]),
    ],
    ids=["folds_below_1", "step_below_1", "folds_do_not_fit"],
)
def test_bad_settings_exit_with_the_numbers_and_write_nothing(
    cli: Cli, overrides: list[str], code: int, named: list[str]
) -> None:
    done = cli("stage=backtest", "data=tiny", "trainer=smoke", *overrides)
    assert done.returncode == code, done.stderr
    payload = json.loads(done.stderr.strip().splitlines()[-1])
    assert payload["exit_code"] == code
    for text in named:
        assert text in payload["error"]["message"]
    # no artifacts and no tracking store (Hydra's own log folder, outputs/, is all there is)
    assert sorted(p.name for p in cli.root.iterdir()) == ["outputs"]


def _ckpt(cli: Cli, run_id: str) -> tuple[int, int]:
    """(mtime_ns, epoch) of a fold's last.ckpt."""
    path = RunPaths(cli.artifacts, run_id).last_ckpt
    return path.stat().st_mtime_ns, int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


@pytest.mark.slow
def test_a_backtest_killed_after_fold_1_resumes_without_training_finished_folds(seeded: Cli) -> None:
    cli = seeded
    args = ["stage=backtest", "run_id=bt", "data=tiny", "trainer=smoke", "backtest.folds=3"]  # one epoch a fold
    with (cli.root / "first.err").open("w") as err:
        command = cli.command(*args)
        proc = subprocess.Popen(command, cwd=cli.root, env=cli.env, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("backtest fold 1/3 done"):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (cli.root / "first.err").read_text()
    finished = {run_id: _ckpt(cli, run_id) for run_id in ("bt-fold0", "bt-fold1")}
    assert not RunPaths(cli.artifacts, "bt-fold2").metrics_json.exists()  # killed before the last fold

    again = cli(*args)
    assert again.returncode == 0, again.stderr
    for k in (0, 1):
        assert f"backtest fold {k}/3: finished before (bt-fold{k}), not trained again" in again.stdout
    assert "backtest fold 2/3 done" in again.stdout
    assert {run_id: _ckpt(cli, run_id) for run_id in finished} == finished  # not a byte rewritten

    client = MlflowClient(cli.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("splineforecast").experiment_id])
    parent = [r for r in runs if r.info.run_name == "bt"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    nested = sorted((r.info.run_name, r.info.status) for r in runs if r.data.tags.get("mlflow.parentRunId"))
    assert nested == [(f"bt-fold{k}", "FINISHED") for k in range(3)]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs if r.info.run_name != "bt"} == {parent[0].info.run_id}
    record = json.loads(RunPaths(cli.artifacts, "bt").backtest_json.read_text())
    maes = [f["scores"]["model"]["mae"] for f in record["per_fold"]]
    assert [f["fold"] for f in record["per_fold"]] == [0, 1, 2]
    assert parent[0].data.metrics["backtest/mae_mean"] == pytest.approx(np.mean(maes))
    assert parent[0].data.metrics["backtest/mae_std"] == pytest.approx(np.std(maes))
    assert [m.value for m in client.get_metric_history(parent[0].info.run_id, "backtest/mae")] == pytest.approx(maes)


def _backtest_here(cli: Cli, mp: pytest.MonkeyPatch, *overrides: str) -> None:
    """stage=backtest of ``overrides`` as the command runs it, in this process, in ``cli``'s folder and store."""
    from splineforecast import backtest

    mp.chdir(cli.root)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        mp.delenv(name, raising=False)
    args = [*overrides, *cli.store]
    cfg = compose_config(args)
    backtest.run(cfg, args, None, check(cfg))


@pytest.mark.slow
def test_a_panel_backtest_without_refit_forecasts_every_fold_with_fold_0s_model(
    seeded: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = seeded  # in this process: the command's own stage=backtest runs in the test above
    _table(panel=True).to_csv(cli.root / "sites.csv", index=False)
    args = ["stage=backtest", "run_id=bp", "data=tiny", "data.path=sites.csv", "data.series_column=site"]
    _backtest_here(cli, monkeypatch, *args, "trainer=smoke", "backtest.folds=3", "backtest.refit=false")
    paths = {k: RunPaths(cli.artifacts, f"bp-fold{k}") for k in range(3)}
    scalers = [json.loads(p.preprocessor_json.read_text())["scalers"] for p in paths.values()]
    assert scalers[1] == scalers[0] == scalers[2]  # fitted once, on fold 0's train parts
    assert paths[1].best_ckpt.read_bytes() == paths[0].best_ckpt.read_bytes() == paths[2].best_ckpt.read_bytes()
    ends = [np.load(p.processed_npz)["timestamps"].max() for p in paths.values()]
    assert ends[0] < ends[1] < ends[2]  # ... but each fold forecasts from its own origin
    record = json.loads(RunPaths(cli.artifacts, "bp").backtest_json.read_text())
    assert [f["model_from"] for f in record["per_fold"]] == ["bp-fold0"] * 3
    assert [f["n_series"] for f in record["per_fold"]] == [2, 2, 2]
    client = MlflowClient(cli.tracking_uri)
    runs = {
        r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("splineforecast").experiment_id])
    }
    assert sorted(runs) == ["bp", "bp-fold0", "bp-fold1", "bp-fold2"]
    assert {runs[f"bp-fold{k}"].data.tags["mlflow.parentRunId"] for k in range(3)} == {runs["bp"].info.run_id}
    smape = [f["scores"]["model"]["smape"] for f in record["per_fold"]]
    assert runs["bp"].data.metrics["backtest/smape_mean"] == pytest.approx(np.mean(smape))

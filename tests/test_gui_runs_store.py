"""The Runs page's listing (``RunStore.list_runs``) over a real MLflow sqlite store: its column reads agree with
what ``search_runs`` says of the same runs, and the warm-up opens the store without making one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli

from splineforecast.api.runs import RunStore

NAN_RUN = "nan-run"


def _plant(cli: Cli) -> tuple[RunStore, str]:
    """Five tagged runs (one with a NaN metric, one deleted), one untagged run, a tagged run in another experiment."""
    from mlflow.entities import Metric, Param

    from splineforecast.tracking import RUN_ID_TAG, MlflowClient

    client = MlflowClient(tracking_uri=cli.tracking_uri)
    experiment = client.create_experiment("splineforecast")
    other = client.create_experiment("elsewhere")
    for i, run_id in enumerate(["a", "b", NAN_RUN, "c", "gone"]):
        run = client.create_run(experiment, tags={RUN_ID_TAG: run_id}, start_time=1_000 + i % 3)  # ties in time
        last = math.nan if run_id == NAN_RUN else 9.0 + i  # the latest step's value is the run's metric
        metrics = [Metric("mae", 0.5, 0, 0), Metric("mae", last, 0, 1), Metric("naive/mae", 2.0 * i, 0, 0)]
        params = [Param("model.name", "lstm"), Param("data.name", f"set{i}"), Param("model.hidden_size", "8")]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, "FINISHED" if i % 2 else "FAILED")
        if run_id == "gone":
            client.delete_run(run.info.run_id)
    client.create_run(experiment)  # no run_id: not one of ours
    client.create_run(other, tags={RUN_ID_TAG: "elsewhere"})
    return RunStore(cli.tracking_uri, "splineforecast", cli.artifacts), experiment


def _by_search_runs(store: RunStore, experiment: str, limit: int) -> list[dict[str, Any]]:
    """What MLflow's own search_runs gives for the same listing (the reference)."""
    from splineforecast.tracking import RUN_ID_TAG, MlflowClient

    client = MlflowClient(tracking_uri=store.uri)
    found = client.search_runs([experiment], max_results=1000, order_by=["attributes.start_time DESC"])
    return [store._summary(r) for r in found if RUN_ID_TAG in r.data.tags][:limit]


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    nan_free = [[{**r, "metrics": {k: str(v) for k, v in r["metrics"].items()}} for r in runs] for runs in (a, b)]
    return nan_free[0] == nan_free[1]


@pytest.mark.slow
def test_listing_reads_what_search_runs_says_newest_first(seeded: Cli) -> None:
    store, experiment = _plant(seeded)
    listed = store.list_runs(1000)
    ids = [r["run_id"] for r in listed]
    assert ids[:2] == [NAN_RUN, "b"] and sorted(ids[2:]) == ["a", "c"]  # started at 1002, 1001, 1000 and 1000
    assert _same(listed, _by_search_runs(store, experiment, 1000))
    nan_run = next(r for r in listed if r["run_id"] == NAN_RUN)
    assert math.isnan(nan_run["metrics"]["mae"]) and nan_run["metrics"]["naive/mae"] == 4.0
    assert {r["run_id"]: r["metrics"]["mae"] for r in listed if r["run_id"] != NAN_RUN} == {"a": 9, "b": 10, "c": 12}
    assert (nan_run["model"], nan_run["dataset"], nan_run["status"]) == ("lstm", "set2", "FAILED")
    assert _same(store.list_runs(2), _by_search_runs(store, experiment, 2))
    assert len(store.list_runs(2)) == 2


def test_warm_up_leaves_a_missing_store_unmade_and_only_logs_an_unreadable_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = RunStore(f"sqlite:///{tmp_path}/none/mlflow.db", "splineforecast", tmp_path / "artifacts")
    missing.warm()
    assert not (tmp_path / "none").exists()

    broken = tmp_path / "broken" / "mlflow.db"
    broken.parent.mkdir()
    broken.write_bytes(b"not a database" * 100)
    unreadable = RunStore(f"sqlite:///{broken}", "splineforecast", tmp_path / "artifacts")
    unreadable.warm()
    assert f"could not open the tracking store sqlite:///{broken}" in caplog.text
    with pytest.raises(Exception, match="not a database"):
        unreadable.list_runs()

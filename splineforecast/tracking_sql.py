"""The run listing read straight from an SQL tracking store (sqlite, PostgreSQL, MySQL) through MLflow's own
table models: the API's Runs page lists hundreds of runs, and ``search_runs`` builds an object for every
param, metric and tag of each. Other stores are listed by ``search_runs`` (:func:`sql_store` answers None).

It reads the store's tables, which MLflow may change between releases; ``tests/test_gui_runs_store.py``
checks it against ``search_runs`` on the installed MLflow.
"""

from __future__ import annotations

import math
from typing import Any


def sql_store(client: Any) -> Any:
    """The client's SQLAlchemy tracking store (sqlite, PostgreSQL, MySQL), or None for any other kind."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return store if isinstance(store, SqlAlchemyStore) else None


def run_summaries(
    sql_store: Any, experiment_id: int, limit: int, run_id_tag: str, listed_params: dict[str, str]
) -> list[dict[str, Any]]:
    """The summaries (run_id, status, times, metrics, ``listed_params`` renamed) of the ``limit`` newest active
    runs with a ``run_id_tag``, read as columns in three queries, newest first as MLflow orders them."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import select

    tagged: Any = (SqlTag.run_uuid == SqlRun.run_uuid) & (SqlTag.key == run_id_tag)
    newest: Any = (
        select(SqlRun.run_uuid, SqlRun.status, SqlRun.start_time, SqlRun.end_time, SqlTag.value)
        .join(SqlTag, tagged)
        .where(SqlRun.experiment_id == experiment_id, SqlRun.lifecycle_stage == "active")
        .order_by(SqlRun.start_time.desc(), SqlRun.run_uuid)
        .limit(limit)
    )
    metric_columns = (SqlLatestMetric.run_uuid, SqlLatestMetric.key, SqlLatestMetric.value, SqlLatestMetric.is_nan)
    with sql_store.ManagedSessionMaker() as session:
        runs = session.execute(newest).all()
        listed = [run[0] for run in runs]  # by id: a run made meanwhile (the newest) cannot slip in
        metrics = session.execute(select(*metric_columns).where(SqlLatestMetric.run_uuid.in_(listed))).all()
        named = SqlParam.run_uuid.in_(listed) & SqlParam.key.in_(list(listed_params))
        params = session.execute(select(SqlParam.run_uuid, SqlParam.key, SqlParam.value).where(named)).all()
    summaries = {
        uuid: {"run_id": run_id, "mlflow_run_id": uuid, "status": status, "start_time": start, "end_time": end}
        | {"metrics": {}, "model": None, "dataset": None}
        for uuid, status, start, end, run_id in runs
    }
    for uuid, key, value, is_nan in metrics:
        summaries[uuid]["metrics"][key] = math.nan if is_nan else value
    for uuid, key, value in params:
        summaries[uuid][listed_params[key]] = value
    return list(summaries.values())

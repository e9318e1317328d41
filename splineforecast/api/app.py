"""The FastAPI app of SPEC §7: runs, training jobs, data sets and forecasts under ``/api/v1``, the GUI at ``/``.

``create_app(settings)`` wires the endpoints behind the layers of :mod:`splineforecast.api.security`;
every endpoint but health (the docs and the OpenAPI document included) sits on one router whose
dependency is the token rule (``POST /datasets`` with its own body bound, ``Settings.upload_body``).
The endpoints call the package's own APIs: the CLI (training jobs), its table checks (uploaded data
sets, :mod:`splineforecast.api.datasets`), the tracking store and ``serving`` (forecasts). The GUI's
files are served by :class:`~splineforecast.api.gui.GuiPages`.
"""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from splineforecast import __version__
from splineforecast.api.busy import BusyLimiter, ServerBusy, busy_dependency
from splineforecast.api.datasets import DatasetExists, DatasetStore, UploadRequest, UploadTooLarge
from splineforecast.api.gui import GuiPages, load_files, static_dir
from splineforecast.api.jobs import (
    JobManager,
    NotCancellable,
    NotResumable,
    QueueFull,
    TrainRequest,
    UnknownDataset,
)
from splineforecast.api.runs import RunStore
from splineforecast.api.security import (
    API_KEY,
    API_PREFIX,
    ERROR_CODES,
    INTERNAL_ERROR,
    add_security_layers,
    error_body,
    json_bytes,
    token_dependency,
)
from splineforecast.api.settings import Settings
from splineforecast.artifacts import check_run_id
from splineforecast.errors import ContractError, ErrorCode, to_payload

_STATUS = {ErrorCode.FILE_NOT_FOUND: 404, ErrorCode.RUN_CONFLICT: 409}
Cell = str | float | int | bool | None


class SafeJSONResponse(JSONResponse):
    """JSON without NaN or infinity (encoded as null), whatever the content."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


class ForecastRequest(BaseModel):
    """Recent history as a table: column names and rows (the time column, the target, covariates)."""

    model_config = ConfigDict(extra="forbid")

    columns: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(min_length=1, max_length=64)
    data: list[list[Cell]] = Field(min_length=1, max_length=100_000)


def _contract_response(exc: ContractError) -> SafeJSONResponse:
    payload = json.loads(to_payload(exc.code, exc.message, exc.type_name))
    return SafeJSONResponse(payload, status_code=_STATUS.get(exc.code, 422))


def _not_found(what: str) -> SafeJSONResponse:
    return SafeJSONResponse(error_body("NOT_FOUND", what), status_code=404)


def _install_handlers(app: FastAPI, require_token: Callable[[str | None], None]) -> None:
    """JSON for every refusal; an unhandled error is answered by ``security.RequestRules``."""

    @app.exception_handler(ContractError)
    async def contract(_: Request, exc: ContractError) -> SafeJSONResponse:
        return _contract_response(exc)

    @app.exception_handler(ServerBusy)
    async def busy(_: Request, exc: ServerBusy) -> SafeJSONResponse:
        return SafeJSONResponse(exc.body(), status_code=429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> SafeJSONResponse:
        if exc.status_code in (404, 405):  # no route ran its token dependency: the same rule, here
            try:
                require_token(await API_KEY(request))
            except StarletteHTTPException as refused:
                exc = refused
        if exc.status_code >= 500:
            return SafeJSONResponse(INTERNAL_ERROR, status_code=exc.status_code)
        body = error_body(ERROR_CODES.get(exc.status_code, "HTTP_ERROR"), str(exc.detail))
        return SafeJSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> SafeJSONResponse:
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        body = {**error_body("VALIDATION_ERROR", "the request does not match the schema"), "details": details[:20]}
        return SafeJSONResponse(body, status_code=422)


def _forecast(store: RunStore, run_id: str, body: ForecastRequest) -> list[dict[str, Any]]:
    """The forecast records of a trained run after the history in ``body``."""
    if any(len(row) != len(body.columns) for row in body.data):
        raise ContractError(ErrorCode.INPUT_SHAPE_ERROR, f"every row must hold {len(body.columns)} cells")
    if len(set(body.columns)) != len(body.columns):
        raise ContractError(ErrorCode.DATA_SCHEMA_ERROR, "column names must be unique")
    import pandas as pd

    model = _model(store, run_id)
    time_column = model.settings.time_column
    history = pd.DataFrame(body.data, columns=body.columns, dtype=object)
    try:
        frame = model.predict(history)
    except ContractError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        message = f"the history could not be read ({type(exc).__name__})"
        raise ContractError(ErrorCode.DATA_SCHEMA_ERROR, message) from exc
    frame[time_column] = frame[time_column].map(lambda t: t.isoformat())
    records: list[dict[str, Any]] = frame.to_dict(orient="records")
    return records


def _model(store: RunStore, run_id: str) -> Any:
    """The run's Forecaster: the store's kept one (``RunStore.forecaster``); a store without that loads it anew."""
    kept = getattr(store, "forecaster", None)
    if kept is not None:
        return kept(run_id)
    from splineforecast.serving import load_run_forecaster

    return load_run_forecaster(store.paths(run_id))


def _linked(run: dict[str, Any], mlflow_ui_url: str | None) -> dict[str, Any]:
    """``run`` with ``mlflow_url``: its page in the MLflow UI at ``mlflow_ui_url`` (null when that is unset)."""
    mlflow_run_id = run.get("mlflow_run_id")
    link = None if mlflow_ui_url is None or not mlflow_run_id else f"{mlflow_ui_url}/#/runs/{quote(mlflow_run_id)}"
    return {**run, "mlflow_url": link}


def _add_run_routes(router: APIRouter, store: RunStore, mlflow_ui_url: str | None, busy: Any) -> None:
    @router.get("/runs", tags=["runs"], dependencies=[busy])
    def list_runs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Runs of the experiment, newest first, with their status, metrics and MLflow UI link."""
        runs = [_linked(run, mlflow_ui_url) for run in store.list_runs(limit)]
        return {"ok": True, "runs": runs, "mlflow_ui_url": mlflow_ui_url}

    @router.get("/runs/{run_id}", tags=["runs"], dependencies=[busy])
    def get_run(run_id: str) -> Any:
        """One run's params, metrics, artifact list, report (markdown, or null) and MLflow UI link."""
        found = store.get_run(check_run_id(run_id))
        if found is None:
            return _not_found(f"no run with run_id {run_id!r}")
        return {"ok": True, **_linked(found, mlflow_ui_url)}

    @router.post("/runs/{run_id}/forecast", tags=["runs"], dependencies=[busy])
    def forecast(run_id: str, body: ForecastRequest) -> Any:
        """The next ``horizon`` steps after the given history, from a finished run's model."""
        check_run_id(run_id)
        if not store.trained(run_id):
            return _not_found(f"run {run_id!r} has no trained model")
        return {"ok": True, "run_id": run_id, "forecast": _forecast(store, run_id, body)}


def _add_job_routes(router: APIRouter, jobs: JobManager) -> None:
    @router.post("/jobs", status_code=202, tags=["jobs"])
    def start_job(body: TrainRequest) -> Any:
        """Start a training run from allow-listed settings; poll ``/jobs/{job_id}`` for its status."""
        try:
            job = jobs.submit(body)
        except UnknownDataset as exc:
            return SafeJSONResponse(error_body("UNKNOWN_DATASET", str(exc)), status_code=422)
        except QueueFull as exc:
            return SafeJSONResponse(error_body("TOO_MANY_JOBS", str(exc)), status_code=429)
        return SafeJSONResponse(job.view(), status_code=202)

    @router.get("/jobs", tags=["jobs"])
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """The recorded jobs, newest first (their views without the log tail)."""
        return {"ok": True, "jobs": [job.view(tail=False) for job in jobs.recent(limit)]}

    @router.get("/jobs/{job_id}", tags=["jobs"])
    def job_status(job_id: str) -> Any:
        """A job's status (queued, running, finished, failed, cancelled, interrupted, timed_out), its SPEC error
        payload when it did not finish, and ``log_tail``: the last lines of its output."""
        job = jobs.get(check_run_id(job_id))
        return _not_found(f"no job {job_id!r}") if job is None else job.view()

    _add_job_control_routes(router, jobs)


def _add_job_control_routes(router: APIRouter, jobs: JobManager) -> None:
    @router.delete("/jobs/{job_id}", status_code=202, tags=["jobs"])
    def cancel_job(job_id: str) -> Any:
        """Cancel a job: a queued one never starts; a running one is stopped with SIGTERM (its run saves
        last.ckpt and ends KILLED) and becomes ``cancelled``, resumable. 409 when it is over already."""
        try:
            job = jobs.cancel(check_run_id(job_id))
        except NotCancellable as exc:
            return SafeJSONResponse(error_body("JOB_NOT_ACTIVE", str(exc)), status_code=409)
        return _not_found(f"no job {job_id!r}") if job is None else SafeJSONResponse(job.view(), status_code=202)

    @router.post("/jobs/{job_id}/resume", status_code=202, tags=["jobs"])
    def resume_job(job_id: str) -> Any:
        """Queue an interrupted, cancelled or timed-out job again: the same run_id resumes from its last.ckpt."""
        if jobs.get(check_run_id(job_id)) is None:
            return _not_found(f"no job {job_id!r}")
        try:
            job = jobs.resume(job_id)
        except NotResumable as exc:
            return SafeJSONResponse(error_body("JOB_NOT_RESUMABLE", str(exc)), status_code=409)
        except QueueFull as exc:
            return SafeJSONResponse(error_body("TOO_MANY_JOBS", str(exc)), status_code=429)
        return SafeJSONResponse(job.view(), status_code=202)


def _add_dataset_routes(router: APIRouter, settings: Settings, uploads: DatasetStore, busy: Any) -> None:
    @router.get("/datasets", tags=["datasets"])
    def datasets() -> dict[str, Any]:
        """The data set names a training job may choose (configured and uploaded), and the uploaded ones."""
        uploaded = uploads.list()
        names = sorted({*settings.datasets, *(u.name for u in uploaded)})
        views = [u.view() for u in uploaded]
        return {"ok": True, "datasets": names, "uploaded": views, "max_upload_bytes": settings.max_upload}

    # its own body bound (a CSV of max_upload bytes as JSON), not SPLINE_MAX_BODY_BYTES
    @router.post(
        "/datasets", status_code=201, tags=["datasets"], max_body_size=settings.upload_body, dependencies=[busy]
    )
    def upload_dataset(body: UploadRequest) -> Any:
        """Keep a CSV as a data set for jobs, after the CLI's checks of its table (422 with the CLI's error)."""
        try:
            upload = uploads.add(body)
        except UploadTooLarge as exc:
            return SafeJSONResponse(error_body("PAYLOAD_TOO_LARGE", str(exc)), status_code=413)
        except DatasetExists as exc:
            return SafeJSONResponse(error_body("DATASET_EXISTS", str(exc)), status_code=409)
        return SafeJSONResponse({"ok": True, "dataset": upload.view()}, status_code=201)


def _add_docs_routes(router: APIRouter, app: FastAPI) -> None:
    """The OpenAPI document and its Swagger page: FastAPI's own routes for them take no dependency."""

    @router.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @router.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{API_PREFIX}/openapi.json", title=f"{app.title} - docs")


def _new_app(jobs: JobManager, store: RunStore) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm = getattr(store, "warm", None)  # a store without warm() has no one-time work
        if warm is not None:  # in a worker thread: uvicorn listens once this returns, so no request waits for it
            await run_in_threadpool(warm)
        yield
        await run_in_threadpool(jobs.shutdown)

    return FastAPI(
        lifespan=lifespan,
        title="splineforecast API",
        version=__version__,
        description="Runs, training jobs and forecasts of splineforecast (SPEC §7).",
        default_response_class=SafeJSONResponse,
        openapi_url=None,  # served by _add_docs_routes, behind the token
        docs_url=None,
        redoc_url=None,
    )


def create_app(settings: Settings | None = None, store: RunStore | None = None) -> FastAPI:
    """The app of SPEC §7.

    Args:
        settings: Its settings; default: from the environment (which must be safe, else SettingsError).
        store: Where runs are read; default: the tracking store and artifact root of ``settings``.

    Returns:
        The FastAPI app, wrapped in the security layers.
    """
    settings = Settings.from_env() if settings is None else settings
    settings.validate()
    store = store or RunStore(settings.tracking_uri, settings.experiment, settings.artifact_root)
    uploads = DatasetStore(settings.data_dir, settings.datasets, settings.max_upload)
    jobs = JobManager(settings, uploads)
    app = _new_app(jobs, store)
    app.state.settings, app.state.jobs, app.state.store = settings, jobs, store
    app.state.busy = BusyLimiter(settings.max_busy, settings.busy_wait_s)  # heavy requests at once; health: never
    busy = Depends(busy_dependency(app.state.busy), scope="function")
    require_token = token_dependency(settings)
    _install_handlers(app, require_token)

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    async def health() -> dict[str, Any]:
        """Liveness; never needs a token."""
        return {"ok": True, "status": "ok", "version": __version__}

    # every other route: the token rule as the router's dependency, bodies bounded (chunked ones too)
    secured = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)], max_body_size=settings.max_body)
    _add_run_routes(secured, store, settings.mlflow_ui_url, busy)
    _add_job_routes(secured, jobs)
    _add_dataset_routes(secured, settings, uploads, busy)
    _add_docs_routes(secured, app)
    app.include_router(secured)
    app.add_middleware(GuiPages, files=load_files(static_dir()))  # the page and its assets: inside every security layer
    add_security_layers(app, settings)
    return app

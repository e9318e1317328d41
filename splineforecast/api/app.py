"""The FastAPI app of SPEC §7: runs, training jobs and forecasts under ``/api/v1``.

``create_app(settings)`` wires the endpoints behind :class:`SecurityMiddleware`; the endpoints call
the package's own APIs: the CLI (training jobs), the tracking store and ``serving`` (forecasts).
"""

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from splineforecast import __version__
from splineforecast.api.jobs import JobManager, QueueFull, TrainRequest, UnknownDataset
from splineforecast.api.runs import RunStore
from splineforecast.api.security import (
    API_PREFIX,
    INTERNAL_ERROR,
    TOKEN_HEADER,
    SecurityMiddleware,
    Settings,
    error_body,
    json_bytes,
    token_matches,
)
from splineforecast.artifacts import check_run_id
from splineforecast.errors import ContractError, ErrorCode, to_payload

log = logging.getLogger("splineforecast.api")

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


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ContractError)
    async def contract(_: Request, exc: ContractError) -> SafeJSONResponse:
        return _contract_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> SafeJSONResponse:
        if exc.status_code >= 500:
            return SafeJSONResponse(INTERNAL_ERROR, status_code=exc.status_code)
        names = {401: "UNAUTHORIZED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        body = error_body(names.get(exc.status_code, "HTTP_ERROR"), str(exc.detail))
        return SafeJSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> SafeJSONResponse:
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        body = {**error_body("VALIDATION_ERROR", "the request does not match the schema"), "details": details[:20]}
        return SafeJSONResponse(body, status_code=422)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> SafeJSONResponse:
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return SafeJSONResponse(INTERNAL_ERROR, status_code=500)


def _forecast(store: RunStore, run_id: str, body: ForecastRequest) -> list[dict[str, Any]]:
    """The forecast records of a trained run after the history in ``body``."""
    if any(len(row) != len(body.columns) for row in body.data):
        raise ContractError(ErrorCode.INPUT_SHAPE_ERROR, f"every row must hold {len(body.columns)} cells")
    if len(set(body.columns)) != len(body.columns):
        raise ContractError(ErrorCode.DATA_SCHEMA_ERROR, "column names must be unique")
    import pandas as pd

    from splineforecast.serving import load_run_forecaster

    time_column, time_format = store.time_column(run_id)
    model = load_run_forecaster(store.paths(run_id), time_column, time_format)
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


def _add_job_routes(app: FastAPI, settings: Settings, jobs: JobManager, secured: list[Any]) -> None:
    @app.post(f"{API_PREFIX}/jobs", dependencies=secured, status_code=202, tags=["jobs"])
    def start_job(body: TrainRequest) -> Any:
        """Start a training run from allow-listed settings; poll ``/jobs/{job_id}`` for its status."""
        try:
            job = jobs.submit(body)
        except UnknownDataset as exc:
            return SafeJSONResponse(error_body("UNKNOWN_DATASET", str(exc)), status_code=422)
        except QueueFull as exc:
            return SafeJSONResponse(error_body("TOO_MANY_JOBS", str(exc)), status_code=429)
        return SafeJSONResponse(job.view(), status_code=202)

    @app.get(API_PREFIX + "/jobs/{job_id}", dependencies=secured, tags=["jobs"])
    def job_status(job_id: str) -> Any:
        """A job's status: queued, running, finished, or failed with the SPEC error payload."""
        job = jobs.get(check_run_id(job_id))
        return _not_found(f"no job {job_id!r}") if job is None else job.view()

    @app.get(f"{API_PREFIX}/datasets", dependencies=secured, tags=["jobs"])
    def datasets() -> dict[str, Any]:
        """The data set names a training job may choose."""
        return {"ok": True, "datasets": sorted(settings.datasets)}


def create_app(settings: Settings | None = None, store: RunStore | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment (which must be safe, else SettingsError)."""
    settings = Settings.from_env() if settings is None else settings
    settings.validate()
    store = store or RunStore(settings.tracking_uri, settings.experiment, settings.artifact_root)
    jobs = JobManager(settings)
    api_key = APIKeyHeader(name=TOKEN_HEADER, auto_error=False, description="required unless SPLINE_DEV_MODE=1")

    def require_token(token: Annotated[str | None, Security(api_key)]) -> None:
        # the middleware already refused a missing or wrong token; this keeps the rule beside each route
        if settings.token is None:
            return
        if token is None and settings.dev_mode:
            return
        if not token_matches(None if token is None else token.encode("utf-8", "surrogateescape"), settings.token):
            raise StarletteHTTPException(401, f"a valid {TOKEN_HEADER} header is required")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(jobs.shutdown)

    app = FastAPI(
        lifespan=lifespan,
        title="splineforecast API",
        version=__version__,
        description="Runs, training jobs and forecasts of splineforecast (SPEC §7).",
        default_response_class=SafeJSONResponse,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings, app.state.jobs, app.state.store = settings, jobs, store
    _install_handlers(app)

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    async def health() -> dict[str, Any]:
        """Liveness; never needs a token."""
        return {"ok": True, "status": "ok", "version": __version__}

    secured = [Depends(require_token)]

    @app.get(f"{API_PREFIX}/runs", dependencies=secured, tags=["runs"])
    def list_runs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Runs of the experiment, newest first, with their status and metrics."""
        return {"ok": True, "runs": store.list_runs(limit)}

    @app.get(API_PREFIX + "/runs/{run_id}", dependencies=secured, tags=["runs"])
    def get_run(run_id: str) -> Any:
        """One run's params, metrics, artifact list and report (markdown, or null)."""
        found = store.get_run(check_run_id(run_id))
        return _not_found(f"no run with run_id {run_id!r}") if found is None else {"ok": True, **found}

    @app.post(API_PREFIX + "/runs/{run_id}/forecast", dependencies=secured, tags=["runs"])
    def forecast(run_id: str, body: ForecastRequest) -> Any:
        """The next ``horizon`` steps after the given history, from a finished run's model."""
        check_run_id(run_id)
        if not store.trained(run_id):
            return _not_found(f"run {run_id!r} has no trained model")
        return {"ok": True, "run_id": run_id, "forecast": _forecast(store, run_id, body)}

    _add_job_routes(app, settings, jobs, secured)
    app.add_middleware(SecurityMiddleware, settings=settings)
    return app

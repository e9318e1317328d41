"""The API server's settings, read from the environment and refused when unsafe (fail closed).

:meth:`Settings.from_env` reads the variables of the README's table (HTTP API); :meth:`Settings.validate`
refuses an unsafe combination with :class:`SettingsError`, before anything binds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEV_CORS_ORIGINS = "http://localhost,http://127.0.0.1,http://localhost:3000,http://127.0.0.1:3000"
DEFAULT_TRUSTED_HOSTS = "localhost,127.0.0.1,testserver"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_UPLOAD_CEILING = 100_000_000  # bytes: SPLINE_MAX_UPLOAD_BYTES may not be more
UPLOAD_FIELDS_BYTES = 65_536  # room in an upload's body for its fields but the CSV
_URL_REFUSED = frozenset(" \t\r\n\"'<>`#?\\")  # what a link target of SPLINE_MLFLOW_UI_URL may not hold


class SettingsError(ValueError):
    """The environment does not describe a safe server; it must not start."""


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _int(env: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < low:
        raise SettingsError(f"{name}={value} must be at least {low}")
    return value


@dataclass(frozen=True)
class Settings:
    """What the server needs, read from the environment by :meth:`from_env` (see README, HTTP API)."""

    dev_mode: bool = True
    token: str | None = None
    cors_origins: tuple[str, ...] = _split(DEV_CORS_ORIGINS)
    trusted_hosts: tuple[str, ...] = _split(DEFAULT_TRUSTED_HOSTS)
    host: str = "127.0.0.1"
    port: int = 8000
    artifact_root: Path = Path("artifacts")
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    experiment: str = "splineforecast"
    max_jobs: int = 1  # training jobs running at once
    max_queue: int = 4  # jobs waiting beyond those; more is 429
    max_body: int = 1_000_000  # bytes of one request body
    max_upload: int = 5_000_000  # bytes of one uploaded CSV (POST /datasets: its own body bound, upload_body)
    datasets: dict[str, str] = field(default_factory=lambda: {"co2": "co2", "tiny": "tiny"})
    dataset_paths: dict[str, str] = field(default_factory=dict)  # name -> data.path set by the operator
    state_dir: Path = Path("outputs/api")
    mlflow_ui_url: str | None = None  # the MLflow UI the GUI links runs to (SPLINE_MLFLOW_UI_URL)
    data_root: Path | None = None  # uploaded data sets (SPLINE_DATA_ROOT); None: state_dir / datasets
    job_timeout_s: int | None = None  # seconds one attempt of a job may run (SPLINE_JOB_TIMEOUT_S); None: no bound
    max_busy: int = 4  # heavy requests (run list and detail, forecast, upload) served at once (SPLINE_MAX_BUSY)
    busy_wait_s: float = 2.0  # seconds one more waits for a slot before its 429

    def __post_init__(self) -> None:
        self.validate()

    @property
    def data_dir(self) -> Path:
        """The folder of the uploaded data sets and their list."""
        return self.state_dir / "datasets" if self.data_root is None else self.data_root

    @property
    def upload_body(self) -> int:
        """The largest body of ``POST /datasets``, never below ``max_body``: a CSV of ``max_upload`` bytes as a
        JSON string (an escape takes at most 6 bytes for each byte it stands for, ``\\u0001``) and the other fields."""
        return max(self.max_body, 6 * self.max_upload + UPLOAD_FIELDS_BYTES)

    def validate(self) -> None:
        """Refuse an unsafe combination (fail closed)."""
        if not self.dev_mode and not self.token:
            raise SettingsError(
                "SPLINE_DEV_MODE=0 (prod) needs SPLINE_API_TOKEN: set a long random token "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`); refusing to start"
            )
        if "*" in self.cors_origins:
            raise SettingsError("SPLINE_CORS_ORIGINS must list origins; a wildcard `*` is refused")
        if "*" in self.trusted_hosts and not self.dev_mode:
            raise SettingsError("SPLINE_TRUSTED_HOSTS must list host names in prod; `*` is refused")
        if any("*" in host for host in self.trusted_hosts if host != "*"):
            raise SettingsError("SPLINE_TRUSTED_HOSTS lists host names; a pattern such as `*.example.org` is refused")
        if not 1 <= self.max_upload <= MAX_UPLOAD_CEILING:
            raise SettingsError(
                f"SPLINE_MAX_UPLOAD_BYTES={self.max_upload} must be from 1 to {MAX_UPLOAD_CEILING}: an upload is "
                "one JSON body read into memory"
            )
        if self.job_timeout_s is not None and self.job_timeout_s < 1:
            raise SettingsError(f"SPLINE_JOB_TIMEOUT_S={self.job_timeout_s} must be at least 1 (or 0: no limit)")
        if self.max_busy < 1 or self.busy_wait_s < 0:
            raise SettingsError(f"SPLINE_MAX_BUSY={self.max_busy} must be at least 1 (and the wait not negative)")
        url = self.mlflow_ui_url
        if url is not None and (not url.startswith(("http://", "https://")) or any(c in url for c in _URL_REFUSED)):
            raise SettingsError(
                f"SPLINE_MLFLOW_UI_URL={url!r} must be an http:// or https:// address without spaces, "
                "quotes, `#`, `?` or angle brackets (e.g. http://127.0.0.1:5000)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of the README's table, from ``env`` (default ``os.environ``); SettingsError if unsafe."""
        env = os.environ if env is None else env
        mode = env.get("SPLINE_DEV_MODE", "1").strip()
        if mode not in ("0", "1"):
            raise SettingsError(f"SPLINE_DEV_MODE={mode!r} is refused: use 1 (dev, the default) or 0 (prod)")
        datasets = {"co2": "co2", "tiny": "tiny"}
        paths: dict[str, str] = {}
        if env.get("SPLINE_DATA_ETTH1"):
            datasets["etth1"] = "etth1"
            paths["etth1"] = env["SPLINE_DATA_ETTH1"]
        root = Path(env.get("SPLINE_ARTIFACT_ROOT", "artifacts")).expanduser().resolve()
        return cls(
            dev_mode=mode == "1",
            token=env.get("SPLINE_API_TOKEN") or None,
            cors_origins=_split(env.get("SPLINE_CORS_ORIGINS", DEV_CORS_ORIGINS)),
            trusted_hosts=_split(env.get("SPLINE_TRUSTED_HOSTS", DEFAULT_TRUSTED_HOSTS)),
            host=env.get("SPLINE_API_HOST", "127.0.0.1"),
            port=_int(env, "SPLINE_API_PORT", 8000, 0),
            artifact_root=root,
            tracking_uri=env.get("SPLINE_TRACKING_URI")
            or env.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{Path('mlruns').resolve()}/mlflow.db",
            max_jobs=_int(env, "SPLINE_MAX_JOBS", 1, 1),
            max_queue=_int(env, "SPLINE_MAX_QUEUE", 4, 0),
            max_body=_int(env, "SPLINE_MAX_BODY_BYTES", 1_000_000, 1),
            max_upload=_int(env, "SPLINE_MAX_UPLOAD_BYTES", 5_000_000, 1),
            datasets=datasets,
            dataset_paths=paths,
            state_dir=Path(env.get("SPLINE_API_STATE_DIR", str(root.parent / "outputs" / "api"))).resolve(),
            mlflow_ui_url=env.get("SPLINE_MLFLOW_UI_URL", "").strip().rstrip("/") or None,
            data_root=Path(env["SPLINE_DATA_ROOT"]).expanduser().resolve() if env.get("SPLINE_DATA_ROOT") else None,
            job_timeout_s=_int(env, "SPLINE_JOB_TIMEOUT_S", 0, 0) or None,
            max_busy=_int(env, "SPLINE_MAX_BUSY", 4, 1),
        )

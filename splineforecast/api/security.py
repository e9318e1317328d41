"""Settings from the environment (fail-closed) and the ASGI security layer of SPEC §7.

One middleware, outermost, does what must hold for every response, refusals and 500s included:
security headers, the JSON error shape, the generic 5xx body, trusted hosts, CORS, refusal of
cross-origin state-changing requests from origins not allowed (also in dev mode), the JSON content
type on state-changing requests, the token (constant time), and the request-body size limit
(``Content-Length`` and chunked bodies alike).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("splineforecast.api")

API_PREFIX = "/api/v1"
HEALTH_PATH = f"{API_PREFIX}/health"
TOKEN_HEADER = "X-API-Token"
DEV_CORS_ORIGINS = "http://localhost,http://127.0.0.1,http://localhost:3000,http://127.0.0.1:3000"
DEFAULT_TRUSTED_HOSTS = "localhost,127.0.0.1,testserver"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})  # bodies are JSON or refused (415)
INTERNAL_ERROR = {"ok": False, "error": "internal server error"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
    datasets: dict[str, str] = field(default_factory=lambda: {"co2": "co2", "tiny": "tiny"})
    dataset_paths: dict[str, str] = field(default_factory=dict)  # name -> data.path set by the operator
    state_dir: Path = Path("outputs/api")

    def __post_init__(self) -> None:
        self.validate()

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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
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
            datasets=datasets,
            dataset_paths=paths,
            state_dir=Path(env.get("SPLINE_API_STATE_DIR", str(root.parent / "outputs" / "api"))).resolve(),
        )


def token_matches(given: bytes | None, expected: str) -> bool:
    """Constant-time comparison of header bytes with the token; any odd bytes simply do not match."""
    if given is None:
        return False
    return hmac.compare_digest(given, expected.encode("utf-8"))


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def json_bytes(obj: Any) -> bytes:
    return json.dumps(finite(obj), ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


class _BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


def _host_name(host: bytes) -> str:
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):  # [::1]:8000
        return text[1:].split("]", 1)[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class SecurityMiddleware:
    """The outermost layer: every rule of SPEC §7 that is not an endpoint's own."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.origins = frozenset(settings.cors_origins)
        self.hosts = frozenset(h.lower() for h in settings.trusted_hosts)

    async def _send_json(self, send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]]) -> None:
        data = json_bytes(body)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers + list(SECURITY_HEADERS)})
        await send({"type": "http.response.body", "body": data})

    def _refusal(self, scope: Scope) -> tuple[int, dict[str, Any]] | None:
        """The refusal that a request earns before it reaches the app, or None."""
        s = self.settings
        host = _header(scope, b"host")
        if "*" not in self.hosts and (host is None or _host_name(host) not in self.hosts):
            return 400, error_body("INVALID_HOST", "the Host header is not a trusted host")
        method = scope.get("method", "GET").upper()
        origin = _header(scope, b"origin")
        if method in STATE_CHANGING and origin is not None and origin.decode("latin-1") not in self.origins:
            return 403, error_body("ORIGIN_REFUSED", "cross-origin request from an origin that is not allowed")
        path = scope.get("path", "")
        if path != HEALTH_PATH and s.token is not None:
            given = _header(scope, TOKEN_HEADER.lower().encode())
            if (given is not None or not s.dev_mode) and not token_matches(given, s.token):
                return 401, error_body("UNAUTHORIZED", f"a valid {TOKEN_HEADER} header is required")
        if method in JSON_METHODS:
            ctype = (_header(scope, b"content-type") or b"").split(b";", 1)[0].strip().lower()
            if ctype != b"application/json":
                return 415, error_body("UNSUPPORTED_MEDIA_TYPE", "send the body as Content-Type: application/json")
            length = _header(scope, b"content-length")
            if length is not None:
                try:
                    size = int(length)
                except ValueError:
                    return 400, error_body("BAD_REQUEST", "invalid Content-Length")
                if size > s.max_body:
                    return 413, error_body("PAYLOAD_TOO_LARGE", f"request bodies are limited to {s.max_body} bytes")
        return None

    def _cors_headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        if origin is None or origin.decode("latin-1") not in self.origins:
            return [(b"vary", b"Origin")]
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        cors = self._cors_headers(origin)
        if scope.get("method") == "OPTIONS" and origin is not None and _header(scope, b"access-control-request-method"):
            await self._preflight(scope, send, origin, cors)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await self._send_json(send, refusal[0], refusal[1], cors)
            return
        await self._guarded(scope, receive, send, cors)

    async def _preflight(self, scope: Scope, send: Send, origin: bytes, cors: list[tuple[bytes, bytes]]) -> None:
        if origin.decode("latin-1") not in self.origins:
            await self._send_json(send, 403, error_body("ORIGIN_REFUSED", "origin not allowed"), cors)
            return
        headers = [
            *cors,
            (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-allow-headers", f"Content-Type, {TOKEN_HEADER}".encode()),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers + list(SECURITY_HEADERS)})
        await send({"type": "http.response.body", "body": b""})

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]) -> None:
        limit, seen, started, too_large, swallow = self.settings.max_body, 0, False, False, False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, swallow
            if too_large or swallow:
                return  # the app's answer to a truncated body is replaced by 413 below
            if message["type"] == "http.response.start":
                started = True
                if int(message["status"]) >= 500:  # never a detailed 5xx body: the generic one instead
                    swallow = True
                    await self._send_json(send, int(message["status"]), INTERNAL_ERROR, cors)
                    return
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in [*cors, *SECURITY_HEADERS] if h[0] not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:  # noqa: BLE001 - every failure is a generic 500, details to the log
            if not too_large:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
        if not started:
            await self._finish(send, too_large, cors)

    async def _finish(self, send: Send, too_large: bool, cors: list[tuple[bytes, bytes]]) -> None:
        """Answer a request whose app sent nothing: 413 for a body over the limit, else the generic 500."""
        if too_large:
            body = error_body("PAYLOAD_TOO_LARGE", f"request bodies are limited to {self.settings.max_body} bytes")
            await self._send_json(send, 413, body, cors)
        else:
            await self._send_json(send, 500, INTERNAL_ERROR, cors)

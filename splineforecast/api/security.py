"""The security layers of SPEC §7 (the settings they read: :mod:`splineforecast.api.settings`).

Starlette's ``TrustedHostMiddleware`` checks the ``Host`` and its ``CORSMiddleware`` answers preflights
and adds the CORS headers; the routes' ``max_body_size`` (FastAPI) bounds request bodies, chunked ones
included; the token is one FastAPI dependency (:func:`token_dependency`). Three small own pieces do
what those cannot:

* :class:`ResponseGuard`, outermost: the security headers on every response (Starlette's own answers
  included), the generic 5xx body, and the JSON error shape for a framework's plain-text refusal
  (Starlette answers a body over the limit with ``Content Too Large`` as text).
* :class:`JsonRefusals` around each Starlette middleware: the middleware answers its own refusals in
  plain text (``Invalid host header``, ``Disallowed CORS origin``) and a passed preflight with ``OK``;
  this sends our JSON error with our code instead, and a passed preflight as 204 without a body.
* :class:`RequestRules`, innermost: CORS only tells a browser what it may read, so it does not stop a
  simple cross-origin POST: a state-changing request from an origin not allowed (neither listed nor
  the request's own site, :func:`~splineforecast.api.gui.same_origin`) is refused (403), in dev mode
  too; state-changing bodies must be JSON (415), which no framework part checks; and an unhandled
  error becomes the generic 500 inside the CORS layer, so a browser can read it.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Callable, Sequence
from functools import partial
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import FastAPI, Security
from fastapi.security import APIKeyHeader
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from splineforecast.api.gui import same_origin
from splineforecast.api.settings import Settings

log = logging.getLogger("splineforecast.api")

API_PREFIX = "/api/v1"
TOKEN_HEADER = "X-API-Token"
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})  # bodies are JSON or refused (415)
INTERNAL_ERROR = {"ok": False, "error": "internal server error"}
ERROR_CODES = {  # our error code of each HTTP refusal the frameworks raise
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


API_KEY = APIKeyHeader(name=TOKEN_HEADER, auto_error=False, description="required unless SPLINE_DEV_MODE=1")


def token_matches(given: bytes | None, expected: str) -> bool:
    """Constant-time comparison of header bytes with the token; any odd bytes simply do not match."""
    if given is None:
        return False
    return hmac.compare_digest(given, expected.encode("utf-8"))


def token_dependency(settings: Settings) -> Callable[[str | None], None]:
    """The one token rule, as a FastAPI dependency (it also declares the scheme in the OpenAPI document).

    Prod: a matching ``X-API-Token`` is required. Dev: none is needed, but one that is sent must match
    a configured token (an empty header counts as none). Header values arrive decoded as latin-1, so
    encoding them back gives the bytes that were sent.

    Args:
        settings: The server's settings (their ``token`` and ``dev_mode``).

    Returns:
        ``require_token(token)``: returns if the request may pass, else raises HTTPException 401.
    """

    def require_token(token: Annotated[str | None, Security(API_KEY)]) -> None:
        if settings.token is None or (token is None and settings.dev_mode):
            return  # prod always has a token (Settings.validate)
        try:
            given = None if token is None else token.encode("latin-1")
        except UnicodeEncodeError:  # not from the wire (which is latin-1): refused like any odd bytes
            given = None
        if not token_matches(given, settings.token):
            message = f"a valid {TOKEN_HEADER} header is required"
            raise HTTPException(401, message, headers={"WWW-Authenticate": "APIKey"})

    return require_token


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
    """``obj`` as UTF-8 JSON, NaN and infinities as null."""
    return json.dumps(finite(obj), ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error shape of every refusal: ``{"ok": false, "error": {"code", "message"}}``."""
    return {"ok": False, "error": {"code": code, "message": message}}


Refusal = tuple[int, dict[str, Any]]  # status and body
Header = tuple[bytes, bytes]


async def send_json(send: Send, status: int, body: Any, headers: Sequence[Header] = ()) -> None:
    """Send a whole JSON response."""
    data = json_bytes(body)
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": data})


def _replacement(status: int, headers: list[Header]) -> dict[str, Any] | None:
    """The body that replaces a response's: the generic one for a 5xx, ours for a plain-text refusal."""
    if status >= 500:
        return INTERNAL_ERROR
    ctype = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
    if status < 400 or ctype.startswith(b"application/json"):
        return None
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "refused"
    return error_body(ERROR_CODES.get(status, "HTTP_ERROR"), phrase)


def _cors(headers: list[Header]) -> list[Header]:
    """The CORS headers among ``headers`` (kept on a replaced response, so a browser may read it)."""
    return [(k, v) for k, v in headers if k.lower().startswith(b"access-control-") or k.lower() == b"vary"]


class ResponseGuard:
    """Outermost: every response carries the security headers; no 5xx or plain-text refusal leaves as it came."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # the body of a response replaced below
            if message["type"] == "http.response.start":
                started, status, headers = True, int(message["status"]), list(message.get("headers", []))
                body = _replacement(status, headers)
                if body is not None:
                    replaced = True
                    await send_json(send, status, body, [*_cors(headers), *SECURITY_HEADERS])
                    return
                names = {k.lower() for k, _ in headers}
                message = {**message, "headers": [*headers, *(h for h in SECURITY_HEADERS if h[0] not in names)]}
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception:  # noqa: BLE001 - RequestRules answers the app's errors; this is the last resort
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_json(send, 500, INTERNAL_ERROR, SECURITY_HEADERS)


class JsonRefusals:
    """Runs a Starlette middleware and answers what it answers itself in our shape.

    A response the middleware makes on its own (the request never reached the app inside) is a
    refusal when its status is 400 or more: ``refusal`` (our status and JSON body) is sent instead of
    its plain text. Otherwise it is a passed CORS preflight: sent as 204, its headers kept, no body.
    """

    def __init__(self, app: ASGIApp, middleware: Callable[[ASGIApp], ASGIApp], refusal: Refusal) -> None:
        self.app, self.refusal = app, refusal
        self.passed = f"splineforecast.passed.{id(self)}"  # in the scope once the middleware let it through
        self.middleware = middleware(self._inside)

    async def _inside(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[self.passed] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answered = False

        async def own_send(message: Message) -> None:
            nonlocal answered
            if scope.get(self.passed):
                await send(message)
            elif not answered:  # the middleware's own response: replaced, its plain-text body dropped
                answered = True
                if int(message["status"]) >= 400:
                    await send_json(send, *self.refusal)
                    return
                dropped = (b"content-type", b"content-length")
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dropped]
                await send({"type": "http.response.start", "status": 204, "headers": headers})
                await send({"type": "http.response.body", "body": b""})

        await self.middleware(scope, receive, own_send)


class RequestRules:
    """Innermost: what CORS and the routes do not enforce (see the module docstring)."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app, self.origins = app, frozenset(origins)

    def _refusal(self, scope: Scope) -> Refusal | None:
        headers, method = Headers(scope=scope), str(scope.get("method", "GET")).upper()
        origin = headers.get("origin")
        allowed = origin in self.origins or same_origin(origin, headers.get("host"))
        if method in STATE_CHANGING and origin is not None and not allowed:
            return 403, error_body("ORIGIN_REFUSED", "cross-origin request from an origin that is not allowed")
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if method in JSON_METHODS and media_type != "application/json":
            return 415, error_body("UNSUPPORTED_MEDIA_TYPE", "send the body as Content-Type: application/json")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is not None:
            await send_json(send, *refusal)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception:  # noqa: BLE001 - every failure is a generic 500, details to the log
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started and scope["type"] == "http":
                await send_json(send, 500, INTERNAL_ERROR)


def add_security_layers(app: FastAPI, settings: Settings) -> None:
    """Wrap ``app`` in the layers of the module docstring (``add_middleware`` puts each one outside the last).

    Args:
        app: The FastAPI app, before it serves its first request.
        settings: Its settings (origins and trusted hosts).
    """
    app.add_middleware(RequestRules, origins=settings.cors_origins)
    cors = error_body("CORS_REFUSED", "the CORS preflight asks for an origin, method or header that is not allowed")
    cors_middleware = partial(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=("GET", "POST", "DELETE"),  # DELETE: cancelling a job
        allow_headers=("Content-Type", TOKEN_HEADER),
        allow_credentials=False,  # the token is a header; no cookies
        max_age=600,
    )
    app.add_middleware(JsonRefusals, middleware=cors_middleware, refusal=(403, cors))
    # Starlette compares an IPv6 host with its brackets ([::1]:8000 -> [::1])
    hosts = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in settings.trusted_hosts]
    host = error_body("INVALID_HOST", "the Host header is not a trusted host")
    host_middleware = partial(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    app.add_middleware(JsonRefusals, middleware=host_middleware, refusal=(400, host))
    app.add_middleware(ResponseGuard)

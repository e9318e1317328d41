"""The GUI of SPEC §7: a static page at ``/`` and its assets under ``/static/``, served by the API's process.

:class:`GuiPages` is an ASGI layer inside the security layers (so the ``Host`` check and the security
headers apply to the page too) that answers ``GET``/``HEAD`` of ``/`` and of the files in
``splineforecast/api/static/`` from memory, each with :data:`CONTENT_SECURITY_POLICY`. The page holds
no data: it reads everything from ``/api/v1`` with the token the user types (never in a URL, cookie
or ``localStorage``), so the files need no token. Any other request passes through unchanged: an
unknown ``/static/...`` path meets the API's own JSON 404 and its token rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_PREFIX = "/static/"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'"
)
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether ``origin`` is the request's own site: ``http(s)://`` + the ``Host`` header, exactly.

    The GUI's own ``POST`` carries its page's origin (a browser sends ``Origin`` on a same-origin POST
    too), which need not be in ``SPLINE_CORS_ORIGINS``. This leans on the ``Host`` check outside: the
    Host is a trusted name, so a page elsewhere (another name, or a DNS rebinding one) cannot match it.
    The scheme is not compared (a TLS proxy in front of uvicorn may forward plain http).
    """
    if not origin or not host:
        return False
    scheme, _, netloc = origin.partition("://")
    return scheme.lower() in ("http", "https") and netloc.lower() == host.lower()


def static_dir() -> Path:
    """The folder of the page and its assets, inside the installed package."""
    return Path(str(resources.files("splineforecast.api") / "static"))


def load_files(folder: Path) -> dict[str, tuple[bytes, bytes]]:
    """``{url path: (content type, bytes)}`` of the servable files under ``folder``; ``/`` is index.html.

    Only the suffixes of :data:`CONTENT_TYPES` are served (a LICENSE file stays in the package only).
    Read when the app is made, so a package without its page fails then (KeyError), not on a request.
    """
    files = {
        STATIC_PREFIX + path.relative_to(folder).as_posix(): (CONTENT_TYPES[path.suffix], path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix in CONTENT_TYPES
    }
    files["/"] = files.pop(STATIC_PREFIX + "index.html")
    return files


class GuiPages:
    """Answers ``GET``/``HEAD`` of the page's files with the CSP; passes every other request to ``app``."""

    def __init__(self, app: ASGIApp, files: Mapping[str, tuple[bytes, bytes]]) -> None:
        self.app, self.files = app, files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.files.get(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        content_type, body = found
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

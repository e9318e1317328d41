"""The GUI's files (SPEC §7) with FastAPI's TestClient: the page, its assets, its CSP and how it meets the layers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from api_helpers import AUTH, SECURITY_HEADERS, FakeStore, TestClient, assert_refused, client_for, settings_for

from splineforecast.api import Settings, SettingsError, create_app
from splineforecast.api.gui import static_dir

REPO = Path(__file__).resolve().parents[1]
ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@pytest.fixture
def prod(tmp_path: Path) -> TestClient:
    return client_for(tmp_path)


class PageParts(HTMLParser):
    """Every start tag with its attributes, and the text inside ``<script>`` and ``<style>`` elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline.append(f"<{self._open}>{data.strip()[:40]}")


def _page(client: TestClient) -> PageParts:
    parts = PageParts()
    parts.feed(client.get("/").text)
    return parts


def _assets(parts: PageParts) -> list[str]:
    scripts = [a["src"] for t, a in parts.tags if t == "script" and a.get("src")]
    sheets = [a["href"] for t, a in parts.tags if t == "link" and a.get("rel") == "stylesheet"]
    return [str(p) for p in [*scripts, *sheets]]


def _csp(response: Any) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def test_page_is_served_with_a_strict_csp_and_no_token(prod: TestClient) -> None:
    response = prod.get("/")  # prod mode, no token: the page holds no data
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.content == (static_dir() / "index.html").read_bytes()
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    csp = _csp(response)
    assert csp["default-src"] == csp["script-src"] == csp["style-src"] == csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    assert csp["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert store_calls(prod) == []


def store_calls(client: TestClient) -> list[tuple[str, Any]]:
    store = client.app.state.store  # type: ignore[attr-defined]
    assert isinstance(store, FakeStore)
    return store.calls


def test_page_has_no_inline_script_style_or_handlers(prod: TestClient) -> None:
    parts = _page(prod)
    assert parts.inline == []
    assert [t for t, _ in parts.tags].count("script") == 2 and "style" not in [t for t, _ in parts.tags]
    for tag, attrs in parts.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
        for name in ("src", "href", "action"):
            value = attrs.get(name)
            assert value is None or value.startswith(("/static/", "#/", "data:,")), (tag, name, value)
    form = next(a for t, a in parts.tags if t == "form")
    assert form["method"] == "post" and "action" not in form  # a typed token never lands in a URL


def test_assets_are_served_with_their_types_and_the_csp(prod: TestClient) -> None:
    assets = _assets(_page(prod))
    vendor = {"/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.min.css"}
    assert set(assets) == {"/static/app.js", "/static/app.css", *vendor}
    for path in assets:
        response = prod.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == ASSET_TYPES[Path(path).suffix], path
        assert response.content == (static_dir() / path.removeprefix("/static/")).read_bytes()
        assert _csp(response)["default-src"] == "'self'" and response.headers["x-content-type-options"] == "nosniff"
    head = prod.head("/static/app.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(prod.get("/static/app.js").content))


def test_script_uses_no_html_sinks() -> None:
    source = (static_dir() / "app.js").read_text(encoding="utf-8")
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, sink
    assert "localStorage" not in code and "document.cookie" not in code
    assert code.count("sessionStorage.setItem(TOKEN_KEY") == 1


def test_unknown_static_paths_meet_the_api_rules(tmp_path: Path, prod: TestClient) -> None:
    for path in ("/static/nope.js", "/static/vendor/uPlot.LICENSE", "/index.html", "/static/"):
        assert_refused(prod.get(path), 401, "UNAUTHORIZED")  # like any unknown path in prod
        assert_refused(prod.get(path, headers=AUTH), 404, "NOT_FOUND")
        assert "content-security-policy" not in prod.get(path, headers=AUTH).headers
    dev = client_for(tmp_path, dev_mode=True, token=None)
    assert_refused(dev.get("/static/nope.js"), 404, "NOT_FOUND")
    assert_refused(prod.post("/", json={}, headers=AUTH), 404, "NOT_FOUND")  # only GET and HEAD reach the page


def test_page_meets_the_host_check(prod: TestClient) -> None:
    assert_refused(prod.get("/", headers={"Host": "evil.example"}), 400, "INVALID_HOST")


def test_api_responses_keep_their_own_headers(prod: TestClient) -> None:
    response = prod.get("/api/v1/runs", headers=AUTH)
    assert response.status_code == 200 and "content-security-policy" not in response.headers
    assert response.json()["mlflow_ui_url"] is None and response.json()["runs"][0]["mlflow_url"] is None


class LinkedStore(FakeStore):
    """A store whose runs carry an MLflow run id."""

    def list_runs(self, limit: int = 100) -> list[dict[str, Any]]:
        return [{**run, "mlflow_run_id": "0a1b2c"} for run in super().list_runs(limit)]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        found = super().get_run(run_id)
        return None if found is None else {**found, "mlflow_run_id": "0a1b2c"}


def test_mlflow_links_follow_the_setting(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mlflow_ui_url="http://mlflow.example:5000")
    client = client_for(tmp_path, create_app(settings, store=LinkedStore(tmp_path)))  # type: ignore[arg-type]
    body = client.get("/api/v1/runs", headers=AUTH).json()
    assert body["mlflow_ui_url"] == "http://mlflow.example:5000"
    assert body["runs"][0]["mlflow_url"] == "http://mlflow.example:5000/#/runs/0a1b2c"
    assert client.get("/api/v1/runs/good", headers=AUTH).json()["mlflow_url"] == body["runs"][0]["mlflow_url"]


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "ftp://x", "http://x/\"onmouseover='1'", "http://x/a b", "//x"])
def test_mlflow_ui_url_must_be_a_plain_http_address(bad: str) -> None:
    with pytest.raises(SettingsError, match="SPLINE_MLFLOW_UI_URL"):
        Settings.from_env({"SPLINE_MLFLOW_UI_URL": bad})
    assert Settings.from_env({"SPLINE_MLFLOW_UI_URL": " https://m.example/ "}).mlflow_ui_url == "https://m.example"
    assert Settings.from_env({}).mlflow_ui_url is None


def test_vendored_chart_library_matches_the_pinned_version() -> None:
    script = (REPO / "scripts" / "vendor_gui.sh").read_text(encoding="utf-8")
    pinned = re.findall(r'^UPLOT_VERSION="([0-9.]+)"$', script, flags=re.M)
    assert len(pinned) == 1
    vendor = static_dir() / "vendor"
    banner = (vendor / "uPlot.iife.min.js").read_text(encoding="utf-8").splitlines()[0]
    assert banner == f"/*! https://github.com/leeoniya/uPlot (v{pinned[0]}) */"
    assert "MIT License" in (vendor / "uPlot.LICENSE").read_text(encoding="utf-8")
    assert sorted(p.name for p in vendor.iterdir()) == ["uPlot.LICENSE", "uPlot.iife.min.js", "uPlot.min.css"]

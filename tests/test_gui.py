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
from splineforecast.api.jobs import TrainRequest

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
    assert ("script", {"type": "module", "src": "/static/js/main.js"}) in parts.tags
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
    assert set(assets) == {"/static/js/main.js", "/static/app.css", *vendor}
    for path in assets:
        response = prod.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == ASSET_TYPES[Path(path).suffix], path
        assert response.content == (static_dir() / path.removeprefix("/static/")).read_bytes()
        assert _csp(response)["default-src"] == "'self'" and response.headers["x-content-type-options"] == "nosniff"
    head = prod.head("/static/js/main.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(prod.get("/static/js/main.js").content))


def _modules() -> dict[str, str]:
    """``{file name: code without its comment lines}`` of the page's own scripts (static/js/)."""
    found = {}
    for path in sorted((static_dir() / "js").glob("*.js")):
        source = path.read_text(encoding="utf-8")
        found[path.name] = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    return found


def test_modules_are_served_and_import_only_each_other(prod: TestClient) -> None:
    modules = _modules()
    assert "main.js" in modules and len(modules) >= 8
    imported = {"main.js"}
    for name, code in modules.items():
        response = prod.get(f"/static/js/{name}")
        assert response.status_code == 200 and response.headers["content-type"] == ASSET_TYPES[".js"], name
        targets = re.findall(r'^import .* from "([^"]+)";$', code, flags=re.M)
        assert all(re.fullmatch(r"\./[a-z]+\.js", t) for t in targets), (name, targets)  # no other origin
        imported |= {t.removeprefix("./") for t in targets}
        assert len(code.splitlines()) <= 400, name
    assert imported == set(modules)  # each module is imported (main.js by the page) and each import exists
    preloaded = {str(a["href"]) for t, a in _page(prod).tags if t == "link" and a.get("rel") == "modulepreload"}
    assert preloaded == {f"/static/js/{name}" for name in modules if name != "main.js"}  # fetched at once


def test_scripts_use_no_html_sinks() -> None:
    code = "\n".join(_modules().values())
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, sink
    for sink in ('setTimeout("', "setInterval(", ".src =", "javascript:"):
        assert sink not in code, sink
    assert "localStorage" not in code and "document.cookie" not in code
    assert code.count("sessionStorage.setItem(") == 1 and "sessionStorage.setItem(TOKEN_KEY, token)" in code


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


def test_the_pages_own_post_passes_the_origin_rule(tmp_path: Path, prod: TestClient) -> None:
    """A browser sends ``Origin`` on a same-origin POST too: the page's own origin is allowed, no look-alike is."""
    for origin in ("http://testserver", "https://testserver", "HTTP://TESTSERVER"):
        response = prod.post("/api/v1/jobs", json={"dataset": "nope"}, headers={**AUTH, "Origin": origin})
        assert_refused(response, 422, "UNKNOWN_DATASET")  # reached the endpoint
        assert "access-control-allow-origin" not in response.headers  # same origin: no CORS needed
    for origin in ("http://testserver:8000", "http://testserver.evil.example", "http://evil.testserver", "null"):
        response = prod.post("/api/v1/jobs", json={"dataset": "nope"}, headers={**AUTH, "Origin": origin})
        assert_refused(response, 403, "ORIGIN_REFUSED")
    served = client_for(tmp_path, create_app(settings_for(tmp_path, trusted_hosts=("127.0.0.1",))))
    page = {**AUTH, "Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000"}  # the GUI at its own port
    assert_refused(served.post("/api/v1/jobs", json={"dataset": "nope"}, headers=page), 422, "UNKNOWN_DATASET")
    other = {**page, "Origin": "http://127.0.0.1:8001"}
    assert_refused(served.post("/api/v1/jobs", json={"dataset": "nope"}, headers=other), 403, "ORIGIN_REFUSED")
    assert_refused(prod.post("/api/v1/jobs", json={}, headers={**page, "Host": "evil.example"}), 400, "INVALID_HOST")


def test_openapi_describes_the_job_form(prod: TestClient) -> None:
    """The New job form is built from this schema: each field a data set, a choice or a bounded whole number."""
    schema = prod.get("/api/v1/openapi.json", headers=AUTH).json()["components"]["schemas"]["TrainRequest"]
    assert list(schema["properties"]) == list(TrainRequest.model_fields) and schema["additionalProperties"] is False
    for name, field in TrainRequest.model_fields.items():
        prop = schema["properties"][name]
        assert prop.get("default") == field.default, name  # a null default is left out
        if name == "dataset":
            assert prop["type"] == "string"
            continue
        if "enum" in prop:
            assert prop["enum"] and prop["default"] in prop["enum"], name
            continue
        number = prop if prop.get("type") == "integer" else next(p for p in prop["anyOf"] if p["type"] == "integer")
        bounds = {type(m).__name__: m for m in field.metadata}
        assert (number["minimum"], number["maximum"]) == (bounds["Ge"].ge, bounds["Le"].le), name
        assert ({"type": "null"} in prop.get("anyOf", [])) == (field.default is None), name
    hidden = schema["properties"]["hidden_size"]
    assert (hidden["minimum"], hidden["maximum"], hidden["default"]) == (1, 512, 32)

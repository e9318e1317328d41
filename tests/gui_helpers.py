"""Shared by the GUI's browser tests: a real API server, a tiny trained run with planted markup, a page in
headless Chromium that records console errors and CSP violations, and ``look``: a full-page screenshot of each
page a test visits plus an axe-core accessibility check of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import wait_healthy
from conftest import Cli, find_free_port
from playwright import sync_api

TOKEN = "gui-test-token-0123456789"
RUN_ID = "gui-run"
XSS = '<img src=x onerror="window.__xss=1">'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AXE = Path(__file__).parent / "fixtures" / "axe" / "axe.min.js"  # test-only, scripts/vendor_axe.sh
BLOCKING = ("serious", "critical")
WIDE = {"width": 1280, "height": 800}  # a laptop's window
NARROW = {"width": 390, "height": 800}  # a phone's, or a narrow side-by-side window
# the focused element, named by its id, its sort column, its aria-label or its text
FOCUSED = """(() => {
  const a = document.activeElement;
  const th = a.closest("th[data-key]");
  return a.id || (th ? "sort:" + th.dataset.key : a.getAttribute("aria-label") || a.textContent.trim());
})()"""
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective));
"""


@contextmanager
def serve(root: Path, cli: Cli, **env: str) -> Iterator[str]:
    """``python -m splineforecast.api`` on a free loopback port over ``cli``'s store; yields its base URL.

    Each server keeps its jobs and uploads in a state folder of its own (one server holds a folder at a time)."""
    port = find_free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SPLINE_", "MLFLOW_"))}
    full.update(SPLINE_ARTIFACT_ROOT=str(cli.artifacts), SPLINE_TRACKING_URI=cli.tracking_uri)
    full.update(SPLINE_API_STATE_DIR=str(root / f"api-state-{port}"), **env)
    log_path = root / f"server-{port}.log"
    with log_path.open("w") as log:
        argv = [sys.executable, "-m", "splineforecast.api", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(argv, cwd=root, env=full, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, lambda: None if proc.poll() is None else log_path.read_text())
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def plant_untrusted_text(cli: Cli) -> None:
    """What anyone with access to the store could write: markup in a param and in another run's run_id tag."""
    from splineforecast.tracking import RUN_ID_TAG, MlflowClient

    client = MlflowClient(tracking_uri=cli.tracking_uri)
    experiment = client.get_experiment_by_name("splineforecast")
    trained = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{RUN_ID}'")
    client.log_param(trained[0].info.run_id, "note", XSS)
    planted = client.create_run(experiment.experiment_id, tags={RUN_ID_TAG: XSS})
    client.log_param(planted.info.run_id, "model.name", XSS)
    client.set_terminated(planted.info.run_id, "FAILED")


def api(base: str, path: str, body: Any = None) -> Any:
    """What the API itself answers (the reference the page must show)."""
    url = f"{base}/api/v1{path}"
    response = httpx.get(url, timeout=60) if body is None else httpx.post(url, json=body, timeout=60)
    return response.json()


def new_page(browser: Any) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport=WIDE)
    page.set_default_timeout(10_000)  # the page answers in well under a second here
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(WATCH)
    return page, errors


def rows(page: Any) -> list[str]:
    return [str(t) for t in page.locator("#runs-table tbody tr td:first-child").all_text_contents()]


def assert_inert(page: Any, errors: list[str]) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__violations") == [] and errors == []


def refused_fetches(errors: list[str]) -> list[str]:
    """The page's errors but the browser's own line for each refused fetch (the refusal is the test's subject)."""
    return [e for e in errors if "the server responded with a status of 422" not in e]


def train_tiny_run(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> tuple[Path, Cli, float]:
    """A tiny trained run plus the planted markup: ``(root, cli, the run's MAE)``."""
    root = tmp_path_factory.mktemp("gui")
    cli = Cli(root)
    cli.seed_store(migrated_store)
    done = cli("data=tiny", "trainer=smoke", "model.hidden_size=8", "model.num_layers=1", f"run_id={RUN_ID}")
    assert done.returncode == 0, done.stderr[-3000:]
    plant_untrusted_text(cli)
    from splineforecast.artifacts import RunPaths

    mae = RunPaths(cli.artifacts, RUN_ID).read_eval().to_json()["metrics"]["mae"]
    return root, cli, float(mae)


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium (``SPLINE_CHROMIUM``, else ``chromium`` on the PATH) through Playwright."""
    executable = os.environ.get("SPLINE_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        pytest.fail("no chromium binary: apt-get install chromium, or set SPLINE_CHROMIUM to one")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


@contextmanager
def dev_server(trained: tuple[Path, Cli, float]) -> Iterator[str]:
    """A dev-mode server over the trained run; yields its base URL."""
    root, cli, _ = trained
    with serve(root, cli, SPLINE_DEV_MODE="1", SPLINE_MLFLOW_UI_URL="http://127.0.0.1:5000") as base:
        yield base


def screenshot(page: Any, out: Path, name: str) -> Path:
    """A full-page PNG of what ``page`` shows now, as ``out/<name>.png``."""
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000, f"{path} is not a PNG"
    print(f"screenshot {path}")
    return path


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations in what ``page`` shows now.

    The product's CSP (script-src 'self', Trusted Types) forbids the inline script that add_script_tag
    injects, and axe must not trip the page's own CSP watch. So the page's DOM as it stands is copied into
    a separate context made with ``bypass_csp=True`` (the check's only; the product's pages keep their CSP),
    on the same origin so the product's stylesheets apply, its scripts blocked so nothing re-renders."""
    html = page.content()
    context = page.context.browser.new_context(bypass_csp=True, viewport=page.viewport_size)
    try:
        context.route("**/*.js", lambda route: route.abort())
        copy = context.new_page()
        copy.goto(page.url.split("#")[0])
        copy.set_content(html)
        sheets = "document.styleSheets.length"
        assert copy.evaluate(sheets) == page.evaluate(sheets) == 2  # uPlot's and the product's stylesheet
        copy.add_script_tag(path=str(AXE))
        result = copy.evaluate("axe.run(document, {resultTypes: ['violations']})")
        print(f"axe {page.url}: {len(result['passes'])} rules passed, {len(result['incomplete'])} incomplete")
    finally:
        context.close()
    return list(result["violations"])


def look(page: Any, out: Path, name: str) -> None:
    """Screenshot of the page and its accessibility check: nothing serious or critical (the rest printed)."""
    screenshot(page, out, name)
    found = axe_violations(page)
    for v in found:
        print(f"axe {name}: {v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])} nodes)")
    blocking = [(v["id"], [n["target"] for n in v["nodes"]]) for v in found if v["impact"] in BLOCKING]
    assert blocking == [], f"{name}: {blocking}"


def sideways(page: Any) -> tuple[int, int]:
    """``(the page's scroll width, the window's width)``: the page scrolls sideways when the first is larger."""
    width, window = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    return int(width), int(window)


def check_narrow(page: Any, out: Path, name: str, ready: str) -> None:
    """The page opened again in a narrow window (``NARROW``; ``ready``: a selector it shows once drawn): no
    sideways scroll, and a screenshot ``<name>-narrow.png``. The window is wide again afterwards."""
    page.set_viewport_size(NARROW)
    page.reload()
    page.locator(ready).first.wait_for()
    width, window = sideways(page)
    screenshot(page, out, f"{name}-narrow")
    page.set_viewport_size(WIDE)
    assert width <= window, f"{name}: {width} px wide in a {window} px window"


def tab_stops(page: Any, count: int) -> list[str]:
    """Where ``count`` presses of Tab put the focus, from where it is (a page just loaded: its start), each
    stop named by its id, its sort column (``sort:<key>``), its aria-label or its text."""
    stops = []
    for _ in range(count):
        page.keyboard.press("Tab")
        stops.append(str(page.evaluate(FOCUSED)))
    return stops


def focus_ring(page: Any) -> tuple[str, str]:
    """The focused element's outline: ``(style, width)``."""
    ring = page.evaluate("(s => [s.outlineStyle, s.outlineWidth])(getComputedStyle(document.activeElement))")
    return str(ring[0]), str(ring[1])

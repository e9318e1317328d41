"""The GUI in a real browser: uvicorn on 127.0.0.1 (dev and prod), a tiny trained run, headless Chromium.

Needs Playwright (the Python package) and a Chromium binary (``SPLINE_CHROMIUM``, else ``chromium`` on
the PATH); Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Cli, find_free_port
from playwright import sync_api

pytestmark = pytest.mark.slow

TOKEN = "gui-test-token-0123456789"
RUN_ID = "gui-run"
XSS = '<img src=x onerror="window.__xss=1">'
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.violatedDirective));
"""


@contextmanager
def _server(root: Path, cli: Cli, **env: str) -> Iterator[str]:
    """``python -m splineforecast.api`` on a free loopback port over ``cli``'s store; yields its base URL."""
    port = find_free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SPLINE_", "MLFLOW_"))}
    full.update(SPLINE_ARTIFACT_ROOT=str(cli.artifacts), SPLINE_TRACKING_URI=cli.tracking_uri, **env)
    log_path = root / f"server-{port}.log"
    with log_path.open("w") as log:
        argv = [sys.executable, "-m", "splineforecast.api", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(argv, cwd=root, env=full, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _plant_untrusted_text(cli: Cli) -> None:
    """What anyone with access to the store could write: markup in a param and in another run's run_id tag."""
    from splineforecast.tracking import RUN_ID_TAG, MlflowClient

    client = MlflowClient(tracking_uri=cli.tracking_uri)
    experiment = client.get_experiment_by_name("splineforecast")
    trained = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{RUN_ID}'")
    client.log_param(trained[0].info.run_id, "note", XSS)
    planted = client.create_run(experiment.experiment_id, tags={RUN_ID_TAG: XSS})
    client.log_param(planted.info.run_id, "model.name", XSS)
    client.set_terminated(planted.info.run_id, "FAILED")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> tuple[Path, Cli, float]:
    """A tiny trained run plus the planted markup: ``(root, cli, the run's MAE)``."""
    root = tmp_path_factory.mktemp("gui")
    cli = Cli(root)
    cli.seed_store(migrated_store)
    done = cli("data=tiny", "trainer=smoke", "model.hidden_size=8", "model.num_layers=1", f"run_id={RUN_ID}")
    assert done.returncode == 0, done.stderr[-3000:]
    _plant_untrusted_text(cli)
    from splineforecast.artifacts import RunPaths

    mae = RunPaths(cli.artifacts, RUN_ID).read_eval().to_json()["metrics"]["mae"]
    return root, cli, float(mae)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = os.environ.get("SPLINE_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        pytest.fail("no chromium binary: apt-get install chromium, or set SPLINE_CHROMIUM to one")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


def _new_page(browser: Any) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(10_000)  # the page answers in well under a second here
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(WATCH)
    return page, errors


def _rows(page: Any) -> list[str]:
    return [str(t) for t in page.locator("#runs-table tbody tr td:first-child").all_text_contents()]


def _assert_inert(page: Any, errors: list[str]) -> None:
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__violations") == [] and errors == []


def test_runs_table_run_page_and_untrusted_text_in_dev(browser: Any, trained: tuple[Path, Cli, float]) -> None:
    root, cli, mae = trained
    with _server(root, cli, SPLINE_DEV_MODE="1", SPLINE_MLFLOW_UI_URL="http://127.0.0.1:5000") as base:
        page, errors = _new_page(browser)
        page.goto(f"{base}/")
        row = page.locator("#runs-table tbody tr", has=page.locator("a", has_text=RUN_ID))
        row.wait_for()
        assert page.locator("#login").is_hidden()  # dev mode: no token asked
        cells = row.locator("td").all_text_contents()
        assert cells[1:4] == ["FINISHED", "lstm", "tiny"]
        assert float(cells[5]) == pytest.approx(mae, rel=1e-3)
        link = row.locator("a", has_text="open").get_attribute("href")
        assert link is not None and link.startswith("http://127.0.0.1:5000/#/runs/")
        assert sorted(_rows(page)) == sorted([RUN_ID, XSS])  # the planted run_id shows as text
        _assert_inert(page, errors)

        page.click("#runs-table th[data-key=run_id] button")
        ascending = _rows(page)
        page.click("#runs-table th[data-key=run_id] button")
        assert _rows(page) == ascending[::-1] and ascending != ascending[::-1]
        page.select_option("#status-filter", "FAILED")
        assert _rows(page) == [XSS]
        page.select_option("#status-filter", "")
        page.fill("#search", "gui-")
        assert _rows(page) == [RUN_ID]

        row.locator("a", has_text=RUN_ID).click()
        page.locator("#horizon-chart .uplot canvas").wait_for()
        assert page.locator("#run-title").text_content() == f"Run {RUN_ID}"
        note = page.locator("#params-table tbody tr", has=page.locator("td", has_text="note"))
        assert note.locator("td").all_text_contents() == ["note", XSS]
        assert page.locator("#artifacts-table tbody td", has_text="metrics.json").count() == 1
        mae_row = page.locator("#metrics-table tbody tr").first.locator("td").all_text_contents()
        assert mae_row[0] == "mae" and float(mae_row[1]) == pytest.approx(mae, rel=1e-3) and len(mae_row) == 4
        _assert_inert(page, errors)
        page.close()


def test_prod_asks_for_the_token_and_keeps_it_in_session_storage(
    browser: Any, trained: tuple[Path, Cli, float]
) -> None:
    root, cli, _ = trained
    with _server(root, cli, SPLINE_DEV_MODE="0", SPLINE_API_TOKEN=TOKEN, SPLINE_TRUSTED_HOSTS="127.0.0.1") as base:
        page, errors = _new_page(browser)
        sent: list[tuple[str, str | None]] = []
        page.on("request", lambda r: sent.append((r.url, r.headers.get("x-api-token"))))
        page.goto(f"{base}/")
        page.locator("#login").wait_for()
        assert "needs an API token" in page.locator("#login-message").text_content()

        page.fill("#token", "wrong-token")
        page.click("#login button[type=submit]")
        page.locator("#login-message", has_text="refused").wait_for()
        assert page.locator("#login").is_visible() and page.evaluate("sessionStorage.length") == 0

        page.fill("#token", TOKEN)
        page.click("#login button[type=submit]")
        page.locator("#runs-table tbody a", has_text=RUN_ID).wait_for()
        assert page.evaluate("sessionStorage.getItem('splineforecast.token')") == TOKEN
        assert page.evaluate("[sessionStorage.length, localStorage.length, document.cookie]") == [1, 0, ""]
        assert page.context.cookies() == [] and TOKEN not in page.url
        assert all(TOKEN not in url for url, _ in sent)
        assert (f"{base}/api/v1/runs?limit=1000", TOKEN) in sent

        page.locator("#runs-table tbody a", has_text=RUN_ID).click()
        page.locator("#horizon-chart .uplot canvas").wait_for()  # the stored token serves the next page too
        assert [e for e in errors if "401" not in e] == []  # the browser logs each refused fetch
        page.close()

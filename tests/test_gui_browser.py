"""The GUI in a real browser: uvicorn on 127.0.0.1 (dev and prod), a tiny trained run, headless Chromium.

Runs, Run, Compare (the trained run and one job trained through the New job form), the job pages
(refusals, a failed and a finished job), Forecast (pasted and picked CSV, table, download, refusals) and
Data (a picked CSV kept and offered by the job form, a refusal in the CLI's words).

Needs Playwright (the Python package) and a Chromium binary (``SPLINE_CHROMIUM``, else ``chromium`` on
the PATH); Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import re
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


@pytest.fixture(scope="module")
def dev(trained: tuple[Path, Cli, float]) -> Iterator[str]:
    """One dev-mode server over the trained run for the module's dev tests; yields its base URL."""
    root, cli, _ = trained
    with _server(root, cli, SPLINE_DEV_MODE="1", SPLINE_MLFLOW_UI_URL="http://127.0.0.1:5000") as base:
        yield base


def _api(base: str, path: str, body: Any = None) -> Any:
    """What the API itself answers (the reference the page must show)."""
    url = f"{base}/api/v1{path}"
    response = httpx.get(url, timeout=60) if body is None else httpx.post(url, json=body, timeout=60)
    return response.json()


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


def test_runs_table_run_page_and_untrusted_text_in_dev(
    browser: Any, trained: tuple[Path, Cli, float], dev: str
) -> None:
    mae = trained[2]
    runs = {r["run_id"]: r["status"] for r in _api(dev, "/runs?limit=1000")["runs"]}
    assert runs[RUN_ID] == "FINISHED" and runs[XSS] == "FAILED"
    page, errors = _new_page(browser)
    page.goto(f"{dev}/")
    row = page.locator("#runs-table tbody tr", has=page.locator("a", has_text=RUN_ID))
    row.wait_for()
    assert page.locator("#login").is_hidden()  # dev mode: no token asked
    cells = row.locator("td").all_text_contents()
    assert cells[1:4] == ["FINISHED", "lstm", "tiny"]
    assert float(cells[5]) == pytest.approx(mae, rel=1e-3)
    link = row.locator("a", has_text="open").get_attribute("href")
    assert link is not None and link.startswith("http://127.0.0.1:5000/#/runs/")
    assert sorted(_rows(page)) == sorted(runs)  # the planted run_id shows as text
    _assert_inert(page, errors)

    page.click("#runs-table th[data-key=run_id] button")
    ascending = _rows(page)
    page.click("#runs-table th[data-key=run_id] button")
    assert _rows(page) == ascending[::-1] and ascending != ascending[::-1]
    page.select_option("#status-filter", "FAILED")
    assert sorted(_rows(page)) == sorted(r for r, status in runs.items() if status == "FAILED") and XSS in _rows(page)
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
    forecast = page.locator("#run-summary a", has_text="Forecast with this run").get_attribute("href")
    assert forecast == f"#/forecast?run={RUN_ID}"
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


def _refused_fetches(errors: list[str]) -> list[str]:
    """The page's errors but the browser's own line for each refused fetch (the refusal is the test's subject)."""
    return [e for e in errors if "the server responded with a status of 422" not in e]


def _submit_job(page: Any, base: str, **fields: str) -> None:
    """Fills ``fields`` into the New job form (a fresh one, unless the page shows it already) and submits."""
    page.goto(f"{base}/#/jobs/new")
    page.locator("#job-hidden_size").wait_for()
    for name, value in fields.items():
        if name in ("dataset", "model", "spline"):
            page.select_option(f"#job-{name}", value)
        else:
            page.fill(f"#job-{name}", value)
    page.click("#job-submit")


def _job_id(page: Any) -> str:
    """The job_id of the job page the form went to (a hash change: no load event to wait for)."""
    page.locator("#job-page").wait_for()
    assert page.locator("#job-form-error").text_content() == ""
    return str(page.evaluate("location.hash").removeprefix("#/jobs/"))


def _check_form_refusals(page: Any, base: str, posts: list[str]) -> None:
    """Out of the form's bounds: refused here, nothing sent; a data set the server no longer offers: its refusal."""
    _submit_job(page, base, hidden_size="0")
    assert page.locator("#job-hidden_size-hint").text_content() == "whole number, 1 to 512; default 32"
    assert page.locator("#job-dataset option").all_text_contents() == _api(base, "/datasets")["datasets"]
    page.locator("#job-form-error", has_text="Hidden Size must be from 1 to 512, got 0").wait_for()
    assert posts == [] and page.locator("#job-hidden_size").get_attribute("aria-invalid") == "true"

    page.fill("#job-hidden_size", "4")
    page.evaluate("document.getElementById('job-dataset').append(new Option('gone', 'gone'))")
    page.select_option("#job-dataset", "gone")
    page.click("#job-submit")
    refusal = _api(base, "/jobs", {"dataset": "gone"})["error"]
    expected = f"The server refused the job: {refusal['code']}: {refusal['message']}"
    page.locator("#job-form-error", has_text=expected).wait_for()
    assert page.locator("#job-form-error").text_content() == expected and len(posts) == 1


def _check_failed_job(page: Any, base: str) -> None:
    """Within the bounds but more than the data holds: the job fails, its SPEC error shown field by field."""
    _submit_job(page, base, dataset="tiny", lookback="2000", horizon="500")  # the same form, its data set fixed
    failed = _job_id(page)
    page.locator("#job-status", has_text="failed").wait_for(timeout=60_000)
    payload = _api(base, f"/jobs/{failed}")["error"]
    fields = ("exit_code", "code", "message")
    shown = {f: page.locator(f"#job-error dd[data-field={f}]").text_content() for f in fields}
    assert shown == {"exit_code": str(payload["exit_code"]), **{f: payload["error"][f] for f in fields[1:]}}
    assert shown["code"] == "INSUFFICIENT_DATA_ERROR" and "lookback 2000" in shown["message"]
    words = page.locator("#job-error-words").text_content()
    assert words == f"The training run failed with exit code 26 (INSUFFICIENT_DATA_ERROR): {shown['message']}"


def _finish_job(page: Any, base: str, polls: list[float]) -> str:
    """A tiny job through the form, polled to its end; its link opens its run. Returns its run_id."""
    _submit_job(page, base, hidden_size="4", epochs="1")
    job = _job_id(page)
    page.locator("#job-status", has_text="running").wait_for()
    first = len(polls) - 1
    page.locator("#job-run-link").wait_for(timeout=120_000)
    assert page.locator("#job-status").text_content() == "finished"
    assert re.fullmatch(r"ran \d+ s|ran \d+ min \d\d s", str(page.locator("#job-elapsed").text_content()))
    seen = polls[first:]
    time.sleep(2.5)
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert len(polls[first:]) == len(seen) and gaps and min(gaps) > 1.5  # about every 2 s, and none after the end
    page.click("#job-run-link")
    page.locator("#horizon-chart .uplot canvas").wait_for()
    assert page.locator("#run-title").text_content() == f"Run {job}"
    return job


def _check_compare(page: Any, base: str, job: str) -> None:
    page.goto(f"{base}/#/runs")
    for run_id in (RUN_ID, job):
        page.locator("#runs-table tbody tr", has=page.locator("a", has_text=run_id)).locator("input").check()
    page.click("#compare-button")
    page.locator("#compare-chart .uplot canvas").wait_for()
    assert page.url == f"{base}/#/compare?runs={RUN_ID},{job}"
    rows = [r.locator("td").all_text_contents() for r in page.locator("#compare-params tbody tr").all()]
    differing = {row[0]: row[1:] for row in rows}
    assert differing["model.hidden_size"] == ["8", "4"]
    assert "data.name" not in differing and "model.name" not in differing  # equal params are left out
    legend = page.locator("#compare-chart .u-legend .u-series .u-label").all_text_contents()
    assert legend == ["step", RUN_ID, job]
    mae = page.locator("#compare-metrics tbody tr").first.locator("td").all_text_contents()
    assert mae[0] == "mae" and len(mae) == 1 + 2 * 3  # each run: the model, naive, seasonal naive
    page.goto(f"{base}/#/compare?runs={RUN_ID},{RUN_ID}")  # one run, twice
    page.locator("#notice", has_text="Compare takes 2 to 4 different runs; this link names 1.").wait_for()
    assert page.locator("#compare-page").is_hidden()


def test_job_form_refusals_a_failed_and_a_finished_job_then_compare(browser: Any, dev: str) -> None:
    page, errors = _new_page(browser)
    posts: list[str] = []
    polls: list[float] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.on("request", lambda r: polls.append(time.monotonic()) if "/api/v1/jobs/api-" in r.url else None)
    _check_form_refusals(page, dev, posts)
    _check_failed_job(page, dev)
    _check_compare(page, dev, _finish_job(page, dev, polls))
    assert page.evaluate("window.__violations") == [] and _refused_fetches(errors) == []
    page.close()


def _csv_text() -> str:
    from importlib import resources

    return (resources.files("splineforecast") / "datasets" / "co2_tiny.csv").read_text(encoding="utf-8")


def _payload(text: str) -> dict[str, Any]:
    """The request the page sends for a CSV text: cells as text, empty ones null."""
    lines = [line.split(",") for line in text.strip().splitlines()]
    return {"columns": lines[0], "data": [[c or None for c in row] for row in lines[1:]]}


def _check_forecast_shown(page: Any, base: str, text: str) -> None:
    """The table and chart of the forecast the API answers, and its CSV as a download at full precision."""
    records = _api(base, f"/runs/{RUN_ID}/forecast", _payload(text))["forecast"]
    assert len(records) == 4
    assert page.locator("#forecast-table thead th").all_text_contents() == list(records[0])
    table = [r.locator("td").all_text_contents() for r in page.locator("#forecast-table tbody tr").all()]
    assert [row[0] for row in table] == [r["date"] for r in records]
    assert [float(row[2]) for row in table] == pytest.approx([r["co2"] for r in records], rel=1e-6)
    legend = page.locator("#forecast-chart .u-legend .u-series .u-label").all_text_contents()
    assert legend == ["date", "co2 (history)", "co2 (forecast)"]
    with page.expect_download() as download:
        page.click("#forecast-download")
    assert download.value.suggested_filename == f"forecast-{RUN_ID}.csv"
    assert str(page.locator("#forecast-download").get_attribute("href")).startswith(f"blob:{base}/")
    lines = Path(download.value.path()).read_text(encoding="utf-8").strip().splitlines()
    assert lines[0] == ",".join(records[0]) and len(lines) == 1 + len(records)
    assert [float(line.split(",")[2]) for line in lines[1:]] == [r["co2"] for r in records]


def _check_refused(page: Any, base: str, history: str) -> str:
    """The API's refusal of ``history``, shown as its words; returns the API's message."""
    page.click("#forecast-submit")
    answer = _api(base, f"/runs/{RUN_ID}/forecast", _payload(history))
    message = str(answer["error"]["message"])
    page.locator("#forecast-error", has_text=message).wait_for()
    words = f"The server refused the forecast: {answer['error']['code']} (exit code {answer['exit_code']}): {message}"
    assert page.locator("#forecast-error").text_content() == words
    assert page.locator("#forecast-result").is_hidden()
    return message


def test_forecast_from_pasted_csv_with_table_download_and_refusals(browser: Any, dev: str, tmp_path: Path) -> None:
    page, errors = _new_page(browser)
    page.goto(f"{dev}/#/forecast?run={RUN_ID}")
    page.locator("#forecast-page").wait_for()
    assert page.locator("#forecast-run").input_value() == RUN_ID
    offered = page.eval_on_selector_all("#forecast-run option", "options => options.map(o => o.value)")
    assert XSS not in offered and RUN_ID in offered  # finished runs only
    text = _csv_text()
    page.fill("#forecast-csv", text)
    page.click("#forecast-submit")
    page.locator("#forecast-chart .uplot canvas").wait_for()
    _check_forecast_shown(page, dev, text)

    short = tmp_path / "short.csv"  # a local file, read by the page: too short for the lookback
    short.write_text("\n".join(text.splitlines()[:6]) + "\n", encoding="utf-8")
    page.set_input_files("#forecast-file", str(short))
    page.locator("#forecast-file-note", has_text="short.csv").wait_for()
    assert page.locator("#forecast-csv").input_value() == short.read_text(encoding="utf-8")
    assert "supply at least 16 steps" in _check_refused(page, dev, short.read_text(encoding="utf-8"))
    for history in (text.replace("1958-04-05", "not-a-date", 1), text.replace("date,co2", "when,value", 1)):
        page.fill("#forecast-csv", history)
        _check_refused(page, dev, history)

    page.fill("#forecast-csv", 'date,co2\n"1958-03-29",316.1\n')
    page.click("#forecast-submit")
    page.locator("#forecast-error", has_text="quoted cells are not read").wait_for()
    assert page.evaluate("window.__violations") == [] and _refused_fetches(errors) == []
    page.close()


def test_data_page_keeps_a_csv_the_job_form_offers_and_shows_the_cli_refusal(
    browser: Any, dev: str, tmp_path: Path
) -> None:
    page, errors = _new_page(browser)
    page.goto(f"{dev}/#/data")
    page.locator("#data-page").wait_for()
    source = tmp_path / "CO2 tiny.csv"  # a local file; its name only suggests the data set's
    source.write_text(_csv_text(), encoding="utf-8")
    page.set_input_files("#data-file", str(source))
    page.locator("#data-file-note", has_text="CO2 tiny.csv").wait_for()
    assert [page.locator(f"#data-{f}").input_value() for f in ("name", "time-column", "target")] == [
        "co2_tiny",
        "date",
        "co2",
    ]
    page.click("#data-submit")
    page.locator("#data-result").wait_for()
    kept = {d["name"]: d for d in _api(dev, "/datasets")["uploaded"]}["co2_tiny"]
    assert (kept["rows"], kept["columns"], kept["start"], kept["end"]) == (
        400,
        ["date", "co2"],
        "1958-03-29T00:00:00",
        "1965-11-20T00:00:00",
    )
    summary = page.locator("#data-summary").text_content()
    assert summary == (
        f"Kept co2_tiny: 400 rows, columns date, co2; from 1958-03-29 to 1965-11-20 "
        f"(400 steps of W-SAT, {kept['missing']} of them without a co2 value)."
    )
    assert page.locator("#data-table tbody td:first-child").all_text_contents() == ["co2_tiny"]
    page.click("#data-job-link")
    page.locator("#job-hidden_size").wait_for()
    assert page.locator("#job-dataset").input_value() == "co2_tiny"
    assert page.locator("#job-dataset option").all_text_contents() == _api(dev, "/datasets")["datasets"]

    page.goto(f"{dev}/#/data")
    page.locator("#data-page").wait_for()
    bad = _csv_text().replace("1958-04-05", "05/04/1958", 1)
    page.fill("#data-name", "co2_bad")
    page.fill("#data-target", "co2")
    page.fill("#data-csv", bad)
    page.click("#data-submit")
    answer = _api(dev, "/datasets", {"name": "co2_bad", "time_column": "date", "target": "co2", "csv": bad})
    message = str(answer["error"]["message"])
    assert message.startswith("column `date` line 3: cannot parse timestamp '05/04/1958'")
    page.locator("#data-error", has_text=message).wait_for()
    words = f"The server refused the upload: DATA_SCHEMA_ERROR (exit code 28): {message}"
    assert page.locator("#data-error").text_content() == words and page.locator("#data-result").is_hidden()
    assert "co2_bad" not in _api(dev, "/datasets")["datasets"]
    assert page.evaluate("window.__violations") == [] and _refused_fetches(errors) == []
    page.close()

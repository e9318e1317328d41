"""The GUI in a real browser: uvicorn on 127.0.0.1 (dev and prod), a tiny trained run, headless Chromium.

Runs, Run, Compare (the trained run and one job trained through the New job form) and the job pages
(refusals, a failed and a finished job); an empty store (its loading line and empty state), then 200 runs
(timed, by keyboard); each page also in a narrow window. tests/test_gui_browser_data.py has Forecast and
Data. The server, the run and the browser are tests/gui_fixtures.py's, over tests/gui_helpers.py
(Playwright driving the system Chromium).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from gui_helpers import (
    FOCUSED,
    RUN_ID,
    TOKEN,
    XSS,
    api,
    assert_inert,
    check_narrow,
    focus_ring,
    look,
    new_page,
    refused_fetches,
    rows,
    screenshot,
    serve,
    tab_stops,
)

pytestmark = pytest.mark.slow
pytest_plugins = ["gui_fixtures"]  # trained, browser, dev


def test_runs_table_run_page_and_untrusted_text_in_dev(
    browser: Any, trained: tuple[Path, Cli, float], dev: str, tmp_path: Path
) -> None:
    mae = trained[2]
    runs = {r["run_id"]: r["status"] for r in api(dev, "/runs?limit=1000")["runs"]}
    assert runs[RUN_ID] == "FINISHED" and runs[XSS] == "FAILED"
    page, errors = new_page(browser)
    page.goto(f"{dev}/")
    row = page.locator("#runs-table tbody tr", has=page.locator("a", has_text=RUN_ID))
    row.wait_for()
    assert page.locator("#login").is_hidden()  # dev mode: no token asked
    cells = row.locator("td").all_text_contents()
    assert cells[1:4] == ["FINISHED", "lstm", "tiny"]
    assert float(cells[5]) == pytest.approx(mae, rel=1e-3)
    link = row.locator("a", has_text="open").get_attribute("href")
    assert link is not None and link.startswith("http://127.0.0.1:5000/#/runs/")
    assert sorted(rows(page)) == sorted(runs)  # the planted run_id shows as text
    look(page, tmp_path, "runs")
    assert_inert(page, errors)

    page.click("#runs-table th[data-key=run_id] button")
    ascending = rows(page)
    page.click("#runs-table th[data-key=run_id] button")
    assert rows(page) == ascending[::-1] and ascending != ascending[::-1]
    page.select_option("#status-filter", "FAILED")
    assert sorted(rows(page)) == sorted(r for r, status in runs.items() if status == "FAILED") and XSS in rows(page)
    page.select_option("#status-filter", "")
    page.fill("#search", "gui-")
    assert rows(page) == [RUN_ID]

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
    look(page, tmp_path, "run")
    check_narrow(page, tmp_path, "run", "#test-chart .uplot canvas")
    assert_inert(page, errors)
    page.close()


def test_prod_asks_for_the_token_and_keeps_it_in_session_storage(
    browser: Any, trained: tuple[Path, Cli, float], tmp_path: Path
) -> None:
    root, cli, _ = trained
    with serve(root, cli, SPLINE_DEV_MODE="0", SPLINE_API_TOKEN=TOKEN, SPLINE_TRUSTED_HOSTS="127.0.0.1") as base:
        page, errors = new_page(browser)
        sent: list[tuple[str, str | None]] = []
        page.on("request", lambda r: sent.append((r.url, r.headers.get("x-api-token"))))
        page.goto(f"{base}/")
        page.locator("#login").wait_for()
        assert "needs an API token" in page.locator("#login-message").text_content()
        look(page, tmp_path, "token-prompt")

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


def _check_form_refusals(page: Any, base: str, posts: list[str], out: Path) -> None:
    """Out of the form's bounds: refused here, nothing sent; a data set the server no longer offers: its refusal."""
    _submit_job(page, base, hidden_size="0")
    assert page.locator("#job-hidden_size-hint").text_content() == "whole number, 1 to 512; default 32"
    assert page.locator("#job-dataset option").all_text_contents() == api(base, "/datasets")["datasets"]
    page.locator("#job-form-error", has_text="Hidden Size must be from 1 to 512, got 0").wait_for()
    assert posts == [] and page.locator("#job-hidden_size").get_attribute("aria-invalid") == "true"
    look(page, out, "new-job")
    check_narrow(page, out, "new-job", "#job-hidden_size")

    page.fill("#job-hidden_size", "4")
    page.evaluate("document.getElementById('job-dataset').append(new Option('gone', 'gone'))")
    page.select_option("#job-dataset", "gone")
    page.click("#job-submit")
    refusal = api(base, "/jobs", {"dataset": "gone"})["error"]
    expected = f"The server refused the job: {refusal['code']}: {refusal['message']}"
    page.locator("#job-form-error", has_text=expected).wait_for()
    assert page.locator("#job-form-error").text_content() == expected and len(posts) == 1


def _check_failed_job(page: Any, base: str, out: Path) -> None:
    """Within the bounds but more than the data holds: the job fails, its SPEC error shown field by field."""
    _submit_job(page, base, dataset="tiny", lookback="2000", horizon="500")  # the same form, its data set fixed
    failed = _job_id(page)
    page.locator("#job-status", has_text="failed").wait_for(timeout=60_000)
    payload = api(base, f"/jobs/{failed}")["error"]
    fields = ("exit_code", "code", "message")
    shown = {f: page.locator(f"#job-error dd[data-field={f}]").text_content() for f in fields}
    assert shown == {"exit_code": str(payload["exit_code"]), **{f: payload["error"][f] for f in fields[1:]}}
    assert shown["code"] == "INSUFFICIENT_DATA_ERROR" and "lookback 2000" in shown["message"]
    words = page.locator("#job-error-words").text_content()
    assert words == f"The training run failed with exit code 26 (INSUFFICIENT_DATA_ERROR): {shown['message']}"
    look(page, out, "job-failed")
    check_narrow(page, out, "job-failed", "#job-error")


def _finish_job(page: Any, base: str, polls: list[float], out: Path) -> str:
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
    look(page, out, "job-finished")
    page.click("#job-run-link")
    page.locator("#horizon-chart .uplot canvas").wait_for()
    assert page.locator("#run-title").text_content() == f"Run {job}"
    return job


def _check_compare(page: Any, base: str, job: str, out: Path) -> None:
    page.goto(f"{base}/#/runs")
    for run_id in (RUN_ID, job):
        page.locator("#runs-table tbody tr", has=page.locator("a", has_text=run_id)).locator("input").check()
    assert page.get_by_role("checkbox", name=f"compare {job}", exact=True).is_checked()
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
    look(page, out, "compare")
    check_narrow(page, out, "compare", "#compare-chart .uplot canvas")
    page.goto(f"{base}/#/compare?runs={RUN_ID},{RUN_ID}")  # one run, twice
    page.locator("#notice", has_text="Compare takes 2 to 4 different runs; this link names 1.").wait_for()
    assert page.locator("#compare-page").is_hidden()


def test_job_form_refusals_a_failed_and_a_finished_job_then_compare(browser: Any, dev: str, tmp_path: Path) -> None:
    page, errors = new_page(browser)
    posts: list[str] = []
    polls: list[float] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.on("request", lambda r: polls.append(time.monotonic()) if "/api/v1/jobs/api-" in r.url else None)
    _check_form_refusals(page, dev, posts, tmp_path)
    _check_failed_job(page, dev, tmp_path)
    _check_compare(page, dev, _finish_job(page, dev, polls, tmp_path), tmp_path)
    assert page.evaluate("window.__violations") == [] and refused_fetches(errors) == []
    page.close()


def _plant_runs(cli: Cli, count: int) -> list[str]:
    """``count`` finished runs straight into the store (no training): what the Runs page lists."""
    from splineforecast.tracking import RUN_ID_TAG, MlflowClient

    client = MlflowClient(tracking_uri=cli.tracking_uri)
    experiment_id = client.create_experiment("splineforecast")
    run_ids = [f"bulk-{i:03d}" for i in range(count)]
    for run_id in run_ids:
        client.create_run(experiment_id, tags={RUN_ID_TAG: run_id})
    return run_ids


def _check_empty_store(page: Any, base: str, out: Path) -> None:
    """No run yet: a loading line while the listing is on its way, then the empty state naming the command."""
    held: list[Any] = []
    listing = re.compile(r"/api/v1/runs\?")
    page.route(listing, lambda route: held.append(route))  # the listing waits until the loading line was seen
    page.goto(f"{base}/#/runs")
    page.locator("#loading").wait_for()
    assert page.locator("#loading").text_content() == "Loading…" and page.locator("#runs-page").is_hidden()
    for _ in range(100):  # the route's handler runs while this thread waits on the page
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    held[0].continue_()
    page.unroute(listing)
    page.locator("#runs-empty").wait_for()
    assert page.locator("#loading").is_hidden()
    assert "python -m splineforecast data=tiny trainer=smoke" in str(page.locator("#runs-empty").text_content())
    assert page.locator("#runs-empty a").get_attribute("href") == "#/jobs/new"
    assert page.locator("#runs-table").is_hidden() and page.locator("#runs-no-match").is_hidden()
    look(page, out, "runs-empty")
    check_narrow(page, out, "runs-empty", "#runs-empty")


def _check_keyboard(page: Any, out: Path) -> None:
    """The Runs page by keyboard: Tab reaches the header, the filters, the table and its sort buttons, with a
    visible ring; Enter sorts, Enter on a run's link opens it with the focus on its heading."""
    stops = tab_stops(page, 10)
    assert stops == [
        "home",
        "Runs",
        "New job",
        "Data",
        "Forecast",
        "status-filter",
        "search",
        "Runs",  # the table's scroll box (a region named Runs)
        "sort:run_id",
        "sort:status",
    ], stops
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED) == "sort:run_id" and focus_ring(page) == ("solid", "2px")
    page.keyboard.press("Enter")
    assert page.locator("#runs-table th[data-key=run_id]").get_attribute("aria-sort") == "ascending"
    assert rows(page)[:2] == ["bulk-000", "bulk-001"]
    page.locator("#runs-table tbody a").first.focus()
    page.keyboard.press("Enter")
    page.locator("#run-title", has_text="Run bulk-000").wait_for()
    assert page.evaluate("document.activeElement.id") == "run-title"  # the new page's heading
    notes = [page.locator(f"#{n}-note").text_content() for n in ("metrics", "params", "artifacts")]
    assert notes == [
        "No metrics yet: the run has not reached its evaluation (or it failed before it).",
        "No params recorded for this run.",
        "No artifacts yet: a run logs them as its stages end.",
    ]
    look(page, out, "run-empty")


def test_runs_page_empty_then_with_200_runs_by_keyboard_and_in_a_narrow_window(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, migrated_store: Path, tmp_path: Path
) -> None:
    root = tmp_path_factory.mktemp("gui-200")
    cli = Cli(root)
    cli.seed_store(migrated_store)
    with serve(root, cli, SPLINE_DEV_MODE="1") as base:
        began = time.monotonic()
        assert api(base, "/runs?limit=1000")["runs"] == []
        print(
            f"first GET /api/v1/runs, at once after the server's start (empty store): {time.monotonic() - began:.2f} s"
        )
        page, errors = new_page(browser)
        _check_empty_store(page, base, tmp_path)
        page.close()
        began = time.monotonic()
        planted = _plant_runs(cli, 200)
        print(f"planted 200 runs in {time.monotonic() - began:.1f} s")
        began = time.monotonic()
        assert len(api(base, "/runs?limit=1000")["runs"]) == 200
        print(f"GET /api/v1/runs?limit=1000 with 200 runs: {time.monotonic() - began:.2f} s")
        page, more = new_page(browser)
        start = time.monotonic()
        page.goto(f"{base}/#/runs")
        page.locator("#runs-table tbody tr:nth-child(200)").wait_for()
        listed = time.monotonic() - start
        page.fill("#search", "bulk-19")
        page.locator("#runs-table tbody tr:nth-child(11)").wait_for(state="detached")
        interactive = time.monotonic() - start
        print(f"Runs page, 200 runs on loopback: listed in {listed:.2f} s, search answered at {interactive:.2f} s")
        timing = page.evaluate(
            "({listed: performance.getEntriesByName('runs-listed').at(-1).startTime,"
            " ready: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd})"
        )
        print(
            f"in the browser, from navigation: modules run at {timing['ready']:.0f} ms, table drawn at "
            f"{timing['listed']:.0f} ms"
        )
        assert 0 < timing["ready"] <= timing["listed"]
        assert sorted(rows(page)) == planted[190:]
        page.fill("#search", "bulk-2")
        assert rows(page) == [] and page.locator("#runs-no-match").is_visible()
        page.fill("#search", "")
        assert sorted(rows(page)) == planted  # every run, none twice
        screenshot(page, tmp_path, "runs-200")  # the Runs page's accessibility check is the first test's
        check_narrow(page, tmp_path, "runs-200", "#runs-table tbody tr:nth-child(200)")
        _check_keyboard(page, tmp_path)
        check_narrow(page, tmp_path, "run-empty", "#artifacts-note")
        assert page.evaluate("window.__violations") == [] and errors == more == []
        page.close()

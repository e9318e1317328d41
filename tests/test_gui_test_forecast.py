"""The Run page's test-part chart in headless Chromium: a planted panel run's test_forecast (two series,
one named with markup, a 90% interval) and an older run without one, served by the real app in-process.

Needs Playwright (the Python package) and a Chromium binary (``SPLINE_CHROMIUM``, else ``chromium`` on
the PATH). No run is trained: the store answers what ``GET /api/v1/runs/{run_id}`` would for such runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from api_helpers import FakeStore, settings_for, wait_healthy
from conftest import find_free_port
from gui_helpers import chromium, new_page

from splineforecast.api import create_app

pytestmark = pytest.mark.slow

XSS = '<img src=x onerror="window.__xss=1">'
COLUMNS = ["unique_id", "timestamp", "actual", "forecast", "co2_q0.05", "co2_q0.5", "co2_q0.95"]


def _rows(sid: str, level: float) -> list[list[Any]]:
    days = [f"2001-01-{d:02d}" for d in range(1, 6)]
    return [
        [sid, day, None if k == 2 else level + k, level + k + 0.5, level + k - 1, level + k + 0.5, level + k + 2]
        for k, day in enumerate(days)
    ]


class PlantedStore(FakeStore):
    """``panel``: a finished panel run with a test_forecast; ``single``: a one-series run's, cut short;
    ``old``: a run trained before test_forecast.csv."""

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        base = {"run_id": run_id, "status": "FINISHED", "metrics": {}, "params": {"data.target": "co2"}}
        if run_id == "single":
            rows = [[day, 1.0, 1.5] for day in ("2001-01-01", "2001-01-02", "2001-01-03")]
            single = {"columns": ["timestamp", "actual", "forecast"], "series_column": None, "rows": rows}
            return {**base, "artifacts": [], "test_forecast": {**single, "truncated": True}}
        if run_id == "old":
            return {**base, "artifacts": [{"path": "forecast.png", "size": 10}], "test_forecast": None}
        if run_id != "panel":
            return None
        rows = _rows("a", 10.0) + _rows(XSS, 20.0)
        test_forecast = {"columns": COLUMNS, "series_column": "unique_id", "rows": rows, "truncated": False}
        return {**base, "artifacts": [], "test_forecast": test_forecast}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("gui-test-forecast")
    settings = settings_for(root, dev_mode=True, token=None, trusted_hosts=("127.0.0.1",))
    app = create_app(settings, store=PlantedStore(root / "artifacts"))  # type: ignore[arg-type]
    port = find_free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, lambda: None if thread.is_alive() else "the uvicorn thread ended", timeout=20)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(base: str) -> Iterator[tuple[Any, list[str]]]:
    with chromium() as browser:
        yield new_page(browser)


def _values_at_the_middle(tab: Any) -> list[str]:
    """The legend's values with the cursor over the middle of the chart (the 3rd of 5 windows), time left out."""
    tab.hover("#test-chart .u-over")
    return [str(v) for v in tab.locator("#test-chart .u-legend .u-value").all_text_contents()[1:]]


def test_a_panel_runs_test_forecast_is_charted_per_series_with_its_band(page: tuple[Any, list[str]], base: str) -> None:
    tab, errors = page
    tab.goto(f"{base}/#/runs/panel")
    tab.locator("#test-chart .uplot canvas").wait_for()
    note = tab.locator("#forecast-note").text_content()
    assert note is not None and note.startswith("10 test windows of 2 series") and "90% interval as a band" in note
    assert tab.locator("#test-series option").all_text_contents() == ["a", XSS]  # the markup id is text
    assert tab.locator("#test-series-field").is_visible()
    legend = tab.locator("#test-chart .u-legend .u-label").all_text_contents()
    band = ["co2_q0.05 (90% interval)", "co2_q0.95 (90% interval)"]
    assert legend == ["time", "actual", "forecast, 1 step ahead", *band]
    assert _values_at_the_middle(tab) == ["", "12.5", "11", "14"]  # series `a`, its 3rd window (unobserved: no actual)
    tab.select_option("#test-series", XSS)
    assert tab.locator("#test-chart .uplot").count() == 1  # the chart of series `a` was replaced
    assert _values_at_the_middle(tab) == ["", "22.5", "21", "24"]
    assert tab.evaluate("window.__xss") is None and tab.locator("main img").count() == 0
    assert tab.evaluate("window.__violations") == [] and errors == []


def test_a_run_without_a_test_forecast_says_what_it_holds(page: tuple[Any, list[str]], base: str) -> None:
    tab, errors = page
    tab.goto(f"{base}/#/runs/old")
    tab.locator("#run-title", has_text="Run old").wait_for()
    tab.locator("#forecast-note", has_text="only as the report's plot (forecast.png)").wait_for()
    assert tab.locator("#test-chart .uplot").count() == 0 and tab.locator("#test-series-field").is_hidden()
    assert errors == []


def test_a_one_series_run_has_no_series_choice_and_says_when_rows_were_left_off(
    page: tuple[Any, list[str]], base: str
) -> None:
    tab, errors = page
    tab.goto(f"{base}/#/runs/single")
    tab.locator("#run-title", has_text="Run single").wait_for()
    tab.locator("#test-chart .uplot canvas").wait_for()
    note = tab.locator("#forecast-note").text_content()
    assert note is not None and note.startswith("3 test windows: ") and "Only the file's first rows came" in note
    assert "interval" not in note and tab.locator("#test-series-field").is_hidden()
    legend = tab.locator("#test-chart .u-legend .u-label").all_text_contents()
    assert legend == ["time", "actual", "forecast, 1 step ahead"]
    assert errors == []

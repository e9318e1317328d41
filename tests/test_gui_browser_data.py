"""The GUI's Forecast and Data pages in a real browser: uvicorn on 127.0.0.1, a tiny trained run, headless
Chromium. Forecast: pasted and picked CSV, table, download, refusals. Data: a picked CSV kept and offered by
the job form, a refusal in the CLI's words. Each page also in a narrow window. The server, the run and the
browser are tests/gui_fixtures.py's, over tests/gui_helpers.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gui_helpers import (
    RUN_ID,
    XSS,
    api,
    check_narrow,
    look,
    new_page,
    refused_fetches,
)

pytestmark = pytest.mark.slow
pytest_plugins = ["gui_fixtures"]  # trained, browser, dev


def _csv_text() -> str:
    from importlib import resources

    return (resources.files("splineforecast") / "datasets" / "co2_tiny.csv").read_text(encoding="utf-8")


def _payload(text: str) -> dict[str, Any]:
    """The request the page sends for a CSV text: cells as text, empty ones null."""
    lines = [line.split(",") for line in text.strip().splitlines()]
    return {"columns": lines[0], "data": [[c or None for c in row] for row in lines[1:]]}


def _check_forecast_shown(page: Any, base: str, text: str) -> None:
    """The table and chart of the forecast the API answers, and its CSV as a download at full precision."""
    records = api(base, f"/runs/{RUN_ID}/forecast", _payload(text))["forecast"]
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
    answer = api(base, f"/runs/{RUN_ID}/forecast", _payload(history))
    message = str(answer["error"]["message"])
    page.locator("#forecast-error", has_text=message).wait_for()
    words = f"The server refused the forecast: {answer['error']['code']} (exit code {answer['exit_code']}): {message}"
    assert page.locator("#forecast-error").text_content() == words
    assert page.locator("#forecast-result").is_hidden()
    return message


def test_forecast_from_pasted_csv_with_table_download_and_refusals(browser: Any, dev: str, tmp_path: Path) -> None:
    page, errors = new_page(browser)
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
    look(page, tmp_path, "forecast")

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
    look(page, tmp_path, "forecast-refused")
    check_narrow(page, tmp_path, "forecast", "#forecast-page")
    assert page.evaluate("window.__violations") == [] and refused_fetches(errors) == []
    page.close()


def test_data_page_keeps_a_csv_the_job_form_offers_and_shows_the_cli_refusal(
    browser: Any, dev: str, tmp_path: Path
) -> None:
    page, errors = new_page(browser)
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
    kept = {d["name"]: d for d in api(dev, "/datasets")["uploaded"]}["co2_tiny"]
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
    look(page, tmp_path, "data")
    page.click("#data-job-link")
    page.locator("#job-hidden_size").wait_for()
    assert page.locator("#job-dataset").input_value() == "co2_tiny"
    assert page.locator("#job-dataset option").all_text_contents() == api(dev, "/datasets")["datasets"]

    page.goto(f"{dev}/#/data")
    page.locator("#data-page").wait_for()
    bad = _csv_text().replace("1958-04-05", "05/04/1958", 1)
    page.fill("#data-name", "co2_bad")
    page.fill("#data-target", "co2")
    page.fill("#data-csv", bad)
    page.click("#data-submit")
    answer = api(dev, "/datasets", {"name": "co2_bad", "time_column": "date", "target": "co2", "csv": bad})
    message = str(answer["error"]["message"])
    assert message.startswith("column `date` line 3: cannot parse timestamp '05/04/1958'")
    page.locator("#data-error", has_text=message).wait_for()
    words = f"The server refused the upload: DATA_SCHEMA_ERROR (exit code 28): {message}"
    assert page.locator("#data-error").text_content() == words and page.locator("#data-result").is_hidden()
    look(page, tmp_path, "data-refused")
    check_narrow(page, tmp_path, "data", "#data-table tbody tr")
    assert "co2_bad" not in api(dev, "/datasets")["datasets"]
    assert page.evaluate("window.__violations") == [] and refused_fetches(errors) == []
    page.close()

// The Forecast page (#/forecast[?run=<run_id>]): a finished run, a history as CSV (pasted, or a local
// file read here with FileReader), POST /api/v1/runs/{run_id}/forecast; the answer as a chart of the
// history's tail and the forecast (quantile levels as lines, symmetric pairs as bands), a table, and
// a CSV download (a Blob URL, revoked when replaced or the page is left).
import { ApiError, api } from "./api.js";
import { chart, dispose, orNull } from "./charts.js";
import { $, busy, el, fillTable, headRow, onLeave, say, show } from "./dom.js";
import { CsvError, parseCsv, toCsv } from "./csv.js";

const state = { chart: null, url: null };

function clearResult() {
  if (state.chart) dispose(state.chart);
  if (state.url) URL.revokeObjectURL(state.url);
  state.chart = state.url = null;
  $("forecast-result").hidden = true;
}

/** Seconds since the epoch of a timestamp; one without a zone is read as UTC (as the server writes it). */
export function toSeconds(text) {
  let s = String(text).trim().replace(/^(\d{4}-\d\d-\d\d) (\d)/, "$1T$2");
  if (s.includes("T") && !/([zZ]|[+-]\d\d:?\d\d)$/.test(s)) s += "Z";
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

/** The forecast's columns: time, target and quantile levels (``<target>_q<level>``), from the run's params. */
function layout(run, records) {
  const keys = Object.keys(records[0] || {});
  const params = run.params || {};
  const time = keys.includes(params["data.time_column"]) ? params["data.time_column"] : keys[0];
  const target = keys.includes(params["data.target"]) ? params["data.target"] : keys.filter((k) => k !== time && k !== "step")[0];
  const quantiles = keys
    .filter((k) => k.startsWith(target + "_q"))
    .map((name) => ({ name, level: Number(name.slice(target.length + 2)) }))
    .filter((q) => Number.isFinite(q.level));
  return { keys, time, target, quantiles, lookback: Number(params["data.lookback"]) || 50 };
}

function historyPoints(history, cols, horizon) {
  const ti = history.columns.indexOf(cols.time);
  const yi = history.columns.indexOf(cols.target);
  if (ti < 0 || yi < 0) return [];
  const points = history.data
    .map((row) => [toSeconds(row[ti]), row[yi] === null ? null : orNull(Number(row[yi]))])
    .filter(([x]) => x !== null)
    .sort((a, b) => a[0] - b[0]);
  return points.slice(-Math.max(cols.lookback, 3 * horizon)); // the tail the model read, and some
}

function bandsOf(quantiles, offset) {
  const bands = [];
  quantiles.forEach((lo, i) => {
    const j = quantiles.findIndex((hi) => Math.abs(hi.level - (1 - lo.level)) < 1e-9);
    if (lo.level < 0.5 && j >= 0) bands.push({ series: [offset + j, offset + i], fill: "rgba(31,119,180,0.12)" });
  });
  return bands;
}

function drawChart(history, records, cols) {
  const past = historyPoints(history, cols, records.length);
  const future = records.map((r) => [toSeconds(r[cols.time]), r]).filter(([x]) => x !== null);
  const xs = [...past.map((p) => p[0]), ...future.map((f) => f[0])];
  const n = xs.length;
  const line = () => new Array(n).fill(null);
  const hist = line();
  past.forEach(([, y], i) => (hist[i] = y));
  const point = line();
  if (past.length) point[past.length - 1] = past[past.length - 1][1]; // the forecast line starts at the last actual
  future.forEach(([, r], i) => (point[past.length + i] = orNull(r[cols.target])));
  const levels = cols.quantiles.map((q) => {
    const values = line();
    future.forEach(([, r], i) => (values[past.length + i] = orNull(r[q.name])));
    return values;
  });
  const series = [
    { label: cols.time },
    { label: `${cols.target} (history)`, stroke: "#555", width: 1.5 },
    { label: `${cols.target} (forecast)`, stroke: "#1f77b4", width: 2, points: { show: true } },
    ...cols.quantiles.map((q) => ({ label: q.name, stroke: "#1f77b4", width: 1, dash: [4, 4] })),
  ];
  const opts = {
    series,
    bands: bandsOf(cols.quantiles, 3),
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    axes: [{}, { label: cols.target }],
  };
  state.chart = chart($("forecast-chart"), opts, [xs, hist, point, ...levels]);
}

function renderResult(run, history, records) {
  clearResult();
  const cols = layout(run, records);
  $("forecast-summary").textContent = `${records.length} steps after the history's last row, from run ${run.run_id}`;
  headRow($("forecast-table"), cols.keys);
  const shown = (v) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(7)) : v === null ? "–" : v);
  fillTable($("forecast-table"), records.map((r) => cols.keys.map((k) => shown(r[k]))));
  state.url = URL.createObjectURL(new Blob([toCsv(cols.keys, records)], { type: "text/csv" }));
  const link = $("forecast-download");
  link.href = state.url;
  link.download = `forecast-${run.run_id}.csv`;
  $("forecast-result").hidden = false;
  const times = records.map((r) => r[cols.time]);
  const single = new Set(times).size === times.length; // a panel repeats each time once per series
  const chartable = single && history.columns.includes(cols.time) && history.columns.includes(cols.target);
  say($("forecast-chart-note"), chartable ? "" : "No chart: it draws one series with the run's time and target columns; the table holds every row.");
  if (chartable) drawChart(history, records, cols);
}

async function onSubmit(event) {
  event.preventDefault();
  clearResult();
  say($("forecast-error"), "");
  const runId = $("forecast-run").value;
  if (!runId) return say($("forecast-error"), "Choose a finished run first.");
  let history;
  try {
    history = parseCsv($("forecast-csv").value);
  } catch (error) {
    if (error instanceof CsvError) return say($("forecast-error"), `The CSV could not be read: ${error.message}`);
    throw error;
  }
  const button = busy($("forecast-submit"), "Forecasting…");
  try {
    const path = "/runs/" + encodeURIComponent(runId);
    const [run, answer] = await Promise.all([api(path), api(path + "/forecast", { method: "POST", body: history })]);
    renderResult(run, history, Array.isArray(answer.forecast) ? answer.forecast : []);
  } catch (error) {
    const words = error instanceof ApiError ? `The server refused the forecast: ${error.message}` : String(error.message || error);
    say($("forecast-error"), words);
  } finally {
    button.done();
  }
}

function onFile() {
  const file = $("forecast-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    $("forecast-csv").value = String(reader.result);
    say($("forecast-file-note"), `Read ${file.name} (${file.size} bytes) into the box above.`);
  });
  reader.addEventListener("error", () => say($("forecast-error"), `Could not read ${file.name}.`));
  reader.readAsText(file);
}

export function setupForecast() {
  $("forecast-form").addEventListener("submit", onSubmit);
  $("forecast-file").addEventListener("change", onFile);
}

export async function showForecast(alive, query) {
  const body = await api("/runs?limit=1000");
  if (!alive()) return;
  const finished = (Array.isArray(body.runs) ? body.runs : []).filter((r) => r.status === "FINISHED" && r.run_id);
  const wanted = new URLSearchParams(query).get("run") || $("forecast-run").value;
  $("forecast-run").replaceChildren(
    ...finished.map((r) => el("option", `${r.run_id} · ${r.model || "–"} on ${r.dataset || "–"}`, { value: r.run_id })),
  );
  if (finished.some((r) => r.run_id === wanted)) $("forecast-run").value = wanted;
  say(
    $("forecast-runs-note"),
    finished.length ? "" : "No finished run yet: train one first (New job, or python -m splineforecast on the command line).",
  );
  clearResult();
  say($("forecast-error"), "");
  onLeave(clearResult);
  show("forecast-page");
}

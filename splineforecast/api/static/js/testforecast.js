// The Run page's test-part chart: the run's test_forecast (GET /api/v1/runs/{run_id}), one row per test
// window: the observed truth and the 1-step-ahead forecast as lines, the widest interval as a band, and
// for a panel run a choice of series.
import { chart, dispose, orNull } from "./charts.js";
import { $, el, say } from "./dom.js";
import { toSeconds } from "./forecast.js";

const state = { chart: null };

/** The layout of a test_forecast answer: the column indexes, and the widest interval's pair (or null). */
export function testLayout(tf) {
  const columns = Array.isArray(tf.columns) ? tf.columns.map(String) : [];
  const time = columns.indexOf("timestamp");
  const levels = columns
    .map((name, index) => ({ name, index, level: Number(name.slice(name.lastIndexOf("_q") + 2)) }))
    .filter((c) => c.index > time + 2 && c.name.includes("_q") && Number.isFinite(c.level));
  const lo = levels.filter((c) => c.level < 0.5).sort((a, b) => a.level - b.level)[0];
  const hi = lo && levels.find((c) => Math.abs(c.level - (1 - lo.level)) < 1e-9);
  return {
    series: typeof tf.series_column === "string" && time > 0 ? 0 : -1,
    time,
    actual: columns.indexOf("actual"),
    forecast: columns.indexOf("forecast"),
    band: lo && hi ? { lo, hi, pct: Math.round((hi.level - lo.level) * 100) } : null,
  };
}

/** The series of a panel's rows, in their order (one unnamed series for a one-series run). */
export function seriesOf(rows, layout) {
  return layout.series < 0 ? [null] : [...new Set(rows.map((r) => String(r[layout.series])))];
}

function draw(rows, layout, sid, target) {
  if (state.chart) dispose(state.chart);
  const mine = rows
    .filter((r) => sid === null || String(r[layout.series]) === sid)
    .map((r) => [toSeconds(r[layout.time]), r])
    .filter(([x]) => x !== null)
    .sort((a, b) => a[0] - b[0]);
  const column = (i) => mine.map(([, r]) => orNull(r[i]));
  const series = [
    { label: "time" },
    { label: "actual", stroke: "#555", width: 1.5, points: { show: true, size: 4 } },
    { label: "forecast, 1 step ahead", stroke: "#1f77b4", width: 2 },
  ];
  const data = [mine.map(([x]) => x), column(layout.actual), column(layout.forecast)];
  const { band } = layout;
  if (band) {
    for (const q of [band.lo, band.hi]) {
      series.push({ label: `${q.name} (${band.pct}% interval)`, stroke: "#1f77b4", width: 1, dash: [4, 4] });
      data.push(column(q.index));
    }
  }
  const opts = {
    series,
    bands: band ? [{ series: [4, 3], fill: "rgba(31,119,180,0.15)" }] : [],
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    axes: [{}, { label: target }],
  };
  state.chart = chart($("test-chart"), opts, data);
}

function describe(tf, layout, rows, names) {
  const windows = layout.series < 0 ? `${rows.length} test windows` : `${rows.length} test windows of ${names.length} series`;
  const band = layout.band ? `, the ${layout.band.pct}% interval as a band` : "";
  const cut = tf.truncated ? " Only the file's first rows came: the rest are in test_forecast.csv." : "";
  return `${windows}: the observed value and the 1-step-ahead forecast at each window's first step${band}.${cut}`;
}

/** Draws ``run.test_forecast``; without one, says what the run holds instead. */
export function renderTestForecast(run) {
  const tf = run.test_forecast;
  const rows = tf && Array.isArray(tf.rows) ? tf.rows.filter(Array.isArray) : [];
  const layout = tf ? testLayout(tf) : null;
  const field = $("test-series-field");
  field.hidden = true;
  if (state.chart) dispose(state.chart);
  state.chart = null;
  if (!rows.length || layout.time < 0 || layout.forecast < 0) {
    const plot = (run.artifacts || []).some((a) => a.path === "forecast.png");
    say(
      $("forecast-note"),
      plot
        ? "This run holds its test-part forecast only as the report's plot (forecast.png): it was trained before test_forecast.csv existed."
        : "This run holds no test-part forecast.",
    );
    return;
  }
  const names = seriesOf(rows, layout);
  const target = String((run.params && run.params["data.target"]) || "value");
  say($("forecast-note"), describe(tf, layout, rows, names));
  const select = $("test-series");
  if (names[0] !== null) {
    select.replaceChildren(...names.map((sid) => el("option", sid, { value: sid })));
    select.onchange = () => draw(rows, layout, select.value, target);
    field.hidden = false;
  }
  draw(rows, layout, names[0], target);
}

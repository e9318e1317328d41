// The Run page (#/runs/<run_id>): status and links, metrics beside the baselines, MAE per horizon
// step as a chart, the forecast on the test part over the actuals (testforecast.js), params and artifacts.
import { api } from "./api.js";
import { STEP_AXES, chart, stepData } from "./charts.js";
import { $, el, fillTable, fmt, fmtTime, safeHttpUrl, say, show } from "./dom.js";
import { renderTestForecast } from "./testforecast.js";

const COLORS = { model: "#1f77b4", naive: "#d62728", seasonal_naive: "#2ca02c" };

/** The model's and each baseline's metrics of a run: from its metrics.json, else its tracked metrics. */
export function scoreSources(run) {
  const ev = run.evaluation;
  if (ev) return { names: Object.keys(ev.metrics || {}), model: ev.metrics || {}, baselines: ev.baselines || {} };
  const model = Object.fromEntries(Object.entries(run.metrics || {}).filter(([k]) => !k.includes("/")));
  return { names: Object.keys(model).sort(), model, baselines: {} };
}

function renderMetrics(run) {
  const { names, model, baselines } = scoreSources(run);
  const columns = ["model", ...Object.keys(baselines)];
  const head = el("tr");
  for (const name of ["metric", ...columns]) head.append(el("th", name.replace("_", " ")));
  $("metrics-table").tHead.replaceChildren(head);
  const source = (c) => (c === "model" ? model : baselines[c]) || {};
  fillTable($("metrics-table"), names.map((n) => [n, ...columns.map((c) => fmt(source(c)[n]))]));
  $("metrics-table").hidden = names.length === 0;
  say($("metrics-note"), names.length ? "" : "No metrics yet: the run has not reached its evaluation (or it failed before it).");
}

function renderHorizon(run) {
  const per = run.evaluation && run.evaluation.per_horizon;
  const names = per ? Object.keys(per).filter((n) => Array.isArray(per[n].mae)) : [];
  const note = $("horizon-note");
  note.hidden = names.length > 0;
  note.textContent = names.length ? "" : "No per-step scores: the run has no metrics.json yet.";
  if (!names.length) return;
  const series = [
    { label: "step" },
    ...names.map((n) => ({ label: n, stroke: COLORS[n] || "#555", width: 2, points: { show: true } })),
  ];
  const opts = { series, axes: STEP_AXES, scales: { x: { time: false } } };
  chart($("horizon-chart"), opts, stepData(names.map((n) => per[n].mae)));
}

function renderSummary(run) {
  const summary = $("run-summary");
  summary.replaceChildren(
    `${run.status} · ${run.model || "–"} on ${run.dataset || "–"} · started ${fmtTime(run.start_time)} UTC`,
  );
  const url = safeHttpUrl(run.mlflow_url);
  if (url) summary.append(" · ", el("a", "MLflow UI", { href: url, target: "_blank", rel: "noopener noreferrer" }));
  if (run.status === "FINISHED") {
    summary.append(" · ", el("a", "Forecast with this run", { href: "#/forecast?run=" + encodeURIComponent(run.run_id) }));
  }
}

function renderRun(run) {
  $("run-title").textContent = `Run ${run.run_id}`;
  renderSummary(run);
  renderMetrics(run);
  const params = Object.entries(run.params || {}).sort(([a], [b]) => a.localeCompare(b));
  fillTable($("params-table"), params);
  $("params-table").hidden = params.length === 0;
  say($("params-note"), params.length ? "" : "No params recorded for this run.");
  const artifacts = (run.artifacts || []).map((a) => [a.path, a.size]);
  fillTable($("artifacts-table"), artifacts);
  $("artifacts-table").hidden = artifacts.length === 0;
  say($("artifacts-note"), artifacts.length ? "" : "No artifacts yet: a run logs them as its stages end.");
  show("run-page");
  renderHorizon(run);
  renderTestForecast(run);
}

export async function showRun(alive, runId) {
  const run = await api("/runs/" + encodeURIComponent(runId));
  if (alive()) renderRun(run);
}

// The Compare page (#/compare?runs=a,b[,c,d]): the runs' params that differ, their metrics side by
// side with each run's baselines, and their MAE per horizon step overlaid in one chart.
import { api } from "./api.js";
import { PALETTE, STEP_AXES, chart, stepData } from "./charts.js";
import { $, el, fillTable, fmt, headRow, runLink, say, show } from "./dom.js";
import { scoreSources } from "./run.js";
import { COMPARE_MAX, COMPARE_MIN } from "./runs.js";

/** The run_ids of ``runs=a,b`` in ``query``: split on the commas, then each decoded; duplicates dropped. */
export function compareIds(query) {
  const pair = query.split("&").find((p) => p.startsWith("runs="));
  const decode = (id) => {
    try {
      return decodeURIComponent(id);
    } catch (_) {
      return id;
    }
  };
  return [...new Set((pair ? pair.slice(5) : "").split(",").filter(Boolean).map(decode))];
}

/** ``[[name, value per run...]]`` of the params whose values are not the same in every run ("–": absent). */
export function differingParams(runs) {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.params || {})))].sort();
  const valueOf = (run, name) => (run.params && name in run.params ? String(run.params[name]) : "–");
  return names
    .map((name) => [name, ...runs.map((run) => valueOf(run, name))])
    .filter(([, ...values]) => values.some((v) => v !== values[0]));
}

function renderParams(runs) {
  const rows = differingParams(runs);
  headRow($("compare-params"), ["param", ...runs.map((r) => r.run_id)]);
  fillTable($("compare-params"), rows);
  say($("compare-params-note"), rows.length ? "" : "Every param has the same value in these runs.");
}

function metricsHead(runs, sources) {
  const top = el("tr");
  const sub = el("tr");
  top.append(el("th", "metric", { rowspan: "2" }));
  runs.forEach((run, i) => {
    const columns = ["model", ...Object.keys(sources[i].baselines)];
    top.append(el("th", run.run_id, { colspan: String(columns.length), class: "group" }));
    for (const c of columns) sub.append(el("th", c.replace("_", " "), { class: "num" }));
  });
  $("compare-metrics").tHead.replaceChildren(top, sub);
}

function renderMetrics(runs) {
  const sources = runs.map(scoreSources);
  metricsHead(runs, sources);
  const names = [...new Set(sources.flatMap((s) => s.names))];
  const rows = names.map((name) => {
    const tr = el("tr");
    tr.append(el("td", name));
    for (const s of sources) {
      const value = s.model[name];
      const naive = s.baselines.naive && s.baselines.naive[name];
      const td = el("td", fmt(value), { class: "num" });
      if (typeof value === "number" && typeof naive === "number") td.classList.add(value < naive ? "better" : "worse");
      tr.append(td);
      for (const b of Object.keys(s.baselines)) tr.append(el("td", fmt(s.baselines[b][name]), { class: "num" }));
    }
    return tr;
  });
  $("compare-metrics").tBodies[0].replaceChildren(...rows);
}

function renderCurves(runs) {
  const curveOf = (run) => {
    const per = run.evaluation && run.evaluation.per_horizon;
    return per && per.model && Array.isArray(per.model.mae) ? per.model.mae : null;
  };
  const drawn = runs.filter((run) => curveOf(run));
  const missing = runs.filter((run) => !curveOf(run)).map((r) => r.run_id);
  say($("compare-chart-note"), missing.length ? `No per-step scores (no metrics.json) for: ${missing.join(", ")}` : "");
  if (!drawn.length) return;
  const series = [
    { label: "step" },
    ...drawn.map((run, i) => ({ label: run.run_id, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: true } })),
  ];
  chart($("compare-chart"), { series, axes: STEP_AXES, scales: { x: { time: false } } }, stepData(drawn.map(curveOf)));
}

function renderRunsList(runs) {
  fillTable(
    $("compare-runs"),
    runs.map((r) => [runLink(r.run_id), r.status || "–", r.model || "–", r.dataset || "–"]),
  );
}

export async function showCompare(alive, query) {
  const ids = compareIds(query);
  if (ids.length < COMPARE_MIN || ids.length > COMPARE_MAX) {
    throw new Error(`Compare takes ${COMPARE_MIN} to ${COMPARE_MAX} different runs; this link names ${ids.length}.`);
  }
  const runs = await Promise.all(ids.map((id) => api("/runs/" + encodeURIComponent(id))));
  if (!alive()) return;
  $("compare-title").textContent = `Compare ${runs.length} runs`;
  renderRunsList(runs);
  renderParams(runs);
  renderMetrics(runs);
  show("compare-page");
  renderCurves(runs);
}

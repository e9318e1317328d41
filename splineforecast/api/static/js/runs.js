// The Runs page (#/runs): every run with its MAE and MASE beside the naive baseline's, sortable,
// filtered by status and text; tick 2 to 4 runs to compare them (#/compare?runs=a,b).
import { api } from "./api.js";
import { $, el, fmt, fmtTime, runLink, safeHttpUrl, show } from "./dom.js";

const state = { runs: [], sortKey: "start_time", sortDir: -1, selected: new Set() };
export const COMPARE_MIN = 2;
export const COMPARE_MAX = 4;

function runRow(run) {
  const m = run.metrics || {};
  return {
    run,
    run_id: run.run_id || "",
    status: run.status || "",
    model: run.model || "",
    dataset: run.dataset || "",
    start_time: run.start_time,
    mae: m.mae,
    naive_mae: m["naive/mae"],
    mase: m.mase,
    naive_mase: m["naive/mase"],
  };
}

function compare(a, b) {
  const key = state.sortKey;
  const x = a[key],
    y = b[key];
  const missing = (v) => v === undefined || v === null || v === "";
  if (missing(x) || missing(y)) return missing(x) - missing(y); // missing last, either direction
  const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
  return order * state.sortDir;
}

function visibleRows() {
  const status = $("status-filter").value;
  const text = $("search").value.trim().toLowerCase();
  return state.runs
    .map(runRow)
    .filter((r) => !status || r.status === status)
    .filter((r) => !text || [r.run_id, r.model, r.dataset, r.status].some((v) => v.toLowerCase().includes(text)))
    .sort(compare);
}

function metricCell(value, baseline) {
  const td = el("td", fmt(value), { class: "num" });
  if (typeof value === "number" && typeof baseline === "number") td.classList.add(value < baseline ? "better" : "worse");
  return td;
}

function pickCell(runId) {
  const box = el("input", null, { type: "checkbox", "aria-label": `compare ${runId}` });
  box.value = runId;
  box.checked = state.selected.has(runId);
  box.disabled = !runId;
  const td = el("td");
  td.append(box);
  return td;
}

function runsTableRow(r) {
  const tr = el("tr");
  const idCell = el("td");
  idCell.append(runLink(r.run_id));
  tr.append(idCell, el("td", r.status), el("td", r.model || "–"), el("td", r.dataset || "–"));
  tr.append(el("td", fmtTime(r.start_time)), metricCell(r.mae, r.naive_mae), el("td", fmt(r.naive_mae), { class: "num" }));
  tr.append(metricCell(r.mase, r.naive_mase), el("td", fmt(r.naive_mase), { class: "num" }));
  const link = el("td");
  const url = safeHttpUrl(r.run.mlflow_url);
  if (url) link.append(el("a", "open", { href: url, target: "_blank", rel: "noopener noreferrer" }));
  tr.append(link, pickCell(r.run_id));
  return tr;
}

function renderSelection() {
  const n = state.selected.size;
  const ok = n >= COMPARE_MIN && n <= COMPARE_MAX;
  $("compare-button").disabled = !ok;
  $("compare-hint").textContent = ok
    ? `compare the ${n} ticked runs`
    : `tick ${COMPARE_MIN} to ${COMPARE_MAX} runs to compare them (${n} ticked)`;
}

function renderRunsTable() {
  const rows = visibleRows();
  const none = state.runs.length === 0;
  $("runs-table").tBodies[0].replaceChildren(...rows.map(runsTableRow));
  $("runs-count").textContent = `${rows.length} of ${state.runs.length} runs`;
  $("runs-empty").hidden = !none;
  $("runs-no-match").hidden = none || rows.length > 0;
  $("runs-table").parentElement.hidden = rows.length === 0;
  for (const th of $("runs-table").tHead.rows[0].cells) {
    if (!th.dataset.key) continue;
    const sorted = th.dataset.key === state.sortKey;
    th.setAttribute("aria-sort", sorted ? (state.sortDir > 0 ? "ascending" : "descending") : "none");
  }
  renderSelection();
}

function onSort(event) {
  const th = event.target.closest("th[data-key]");
  if (!th) return;
  if (state.sortKey === th.dataset.key) state.sortDir = -state.sortDir;
  else [state.sortKey, state.sortDir] = [th.dataset.key, 1];
  renderRunsTable();
}

function onPick(event) {
  const box = event.target;
  if (box.type !== "checkbox") return;
  if (box.checked) state.selected.add(box.value);
  else state.selected.delete(box.value);
  renderSelection();
}

function onCompare() {
  const ids = [...state.selected].map(encodeURIComponent).join(",");
  location.hash = "#/compare?runs=" + ids;
}

export function setupRuns() {
  $("runs-table").tHead.addEventListener("click", onSort);
  $("runs-table").tBodies[0].addEventListener("change", onPick);
  $("status-filter").addEventListener("change", renderRunsTable);
  $("search").addEventListener("input", renderRunsTable);
  $("compare-button").addEventListener("click", onCompare);
}

export async function showRuns(alive) {
  const body = await api("/runs?limit=1000");
  if (!alive()) return;
  state.runs = Array.isArray(body.runs) ? body.runs : [];
  const known = new Set(state.runs.map((r) => r.run_id));
  for (const id of state.selected) if (!known.has(id)) state.selected.delete(id);
  show("runs-page");
  renderRunsTable();
  performance.mark("runs-listed"); // User Timing: when the table was drawn, for the browser's profiler and tests
}

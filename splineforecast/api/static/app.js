// The splineforecast GUI: hash routes #/runs and #/runs/<run_id>, every datum from /api/v1.
// Server strings only ever become text nodes (textContent); no innerHTML anywhere (the page's CSP
// requires Trusted Types for such sinks, so a slip would fail loudly instead of running).
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "splineforecast.token"; // sessionStorage only: this tab, never a URL, cookie or log
  const COLORS = { model: "#1f77b4", naive: "#d62728", seasonal_naive: "#2ca02c" };
  const state = { runs: [], sortKey: "start_time", sortDir: -1, charts: [] };

  class Unauthorized extends Error {}

  const $ = (id) => document.getElementById(id);

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  }

  function safeHttpUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  function fmt(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return "–";
    return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
      ? value.toExponential(3)
      : value.toPrecision(4);
  }

  function fmtTime(ms) {
    return typeof ms === "number" ? new Date(ms).toISOString().slice(0, 19).replace("T", " ") : "–";
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["X-API-Token"] = token;
    const response = await fetch(API + path, { headers, credentials: "omit", cache: "no-store" });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      throw new Unauthorized(token ? "The token was refused. Enter it again." : "This server needs an API token.");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      throw new Error(`${path}: HTTP ${response.status}, not JSON`);
    }
    if (!response.ok) {
      const error = body && body.error;
      throw new Error(`${path}: ${error && error.message ? error.message : "HTTP " + response.status}`);
    }
    return body;
  }

  function show(sectionId) {
    for (const id of ["login", "runs-page", "run-page"]) $(id).hidden = id !== sectionId;
  }

  function notice(message) {
    $("notice").textContent = message || "";
    $("notice").hidden = !message;
  }

  function askToken(message) {
    $("login-message").textContent = message;
    show("login");
    $("token").focus();
  }

  function onLogin(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    route();
  }

  // --- Runs ---------------------------------------------------------------------------------

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
    if (typeof value === "number" && typeof baseline === "number")
      td.classList.add(value < baseline ? "better" : "worse");
    return td;
  }

  function runsTableRow(r) {
    const tr = el("tr");
    const idCell = el("td");
    idCell.append(el("a", r.run_id, { href: "#/runs/" + encodeURIComponent(r.run_id) }));
    tr.append(idCell, el("td", r.status), el("td", r.model || "–"), el("td", r.dataset || "–"));
    tr.append(
      el("td", fmtTime(r.start_time)),
      metricCell(r.mae, r.naive_mae),
      el("td", fmt(r.naive_mae), { class: "num" }),
    );
    tr.append(metricCell(r.mase, r.naive_mase), el("td", fmt(r.naive_mase), { class: "num" }));
    const link = el("td");
    const url = safeHttpUrl(r.run.mlflow_url);
    if (url) link.append(el("a", "open", { href: url, target: "_blank", rel: "noopener noreferrer" }));
    tr.append(link);
    return tr;
  }

  function renderRunsTable() {
    const rows = visibleRows();
    $("runs-table").tBodies[0].replaceChildren(...rows.map(runsTableRow));
    $("runs-count").textContent = `${rows.length} of ${state.runs.length} runs`;
    for (const th of $("runs-table").tHead.rows[0].cells) {
      if (!th.dataset.key) continue;
      const sorted = th.dataset.key === state.sortKey;
      th.setAttribute("aria-sort", sorted ? (state.sortDir > 0 ? "ascending" : "descending") : "none");
    }
  }

  function onSort(event) {
    const th = event.target.closest("th[data-key]");
    if (!th) return;
    if (state.sortKey === th.dataset.key) state.sortDir = -state.sortDir;
    else [state.sortKey, state.sortDir] = [th.dataset.key, 1];
    renderRunsTable();
  }

  async function showRuns() {
    const body = await api("/runs?limit=1000");
    state.runs = Array.isArray(body.runs) ? body.runs : [];
    show("runs-page");
    renderRunsTable();
  }

  // --- Run ----------------------------------------------------------------------------------

  function destroyCharts() {
    for (const chart of state.charts) chart.destroy();
    state.charts = [];
  }

  function fillTable(table, rows) {
    table.tBodies[0].replaceChildren(
      ...rows.map((cells) => {
        const tr = el("tr");
        cells.forEach((cell, i) =>
          tr.append(el("td", cell, i > 0 && typeof cell === "number" ? { class: "num" } : {})),
        );
        return tr;
      }),
    );
  }

  function renderMetrics(run) {
    const ev = run.evaluation;
    const columns = ev ? ["model", ...Object.keys(ev.baselines || {})] : ["model"];
    const source = (name) => (name === "model" ? ev.metrics : ev.baselines[name]) || {};
    const head = el("tr");
    for (const name of ["metric", ...columns]) head.append(el("th", name.replace("_", " ")));
    $("metrics-table").tHead.replaceChildren(head);
    const names = ev ? Object.keys(ev.metrics || {}) : Object.keys(run.metrics || {}).sort();
    const rows = names.map((n) => [n, ...columns.map((c) => fmt(ev ? source(c)[n] : run.metrics[n]))]);
    fillTable($("metrics-table"), rows);
  }

  function renderHorizon(run) {
    const per = run.evaluation && run.evaluation.per_horizon;
    const names = per ? Object.keys(per).filter((n) => Array.isArray(per[n].mae)) : [];
    const note = $("horizon-note");
    note.hidden = names.length > 0;
    note.textContent = names.length ? "" : "No per-step scores: the run has no metrics.json yet.";
    if (!names.length) return;
    const steps = per[names[0]].mae.map((_, i) => i + 1);
    const series = [
      { label: "step" },
      ...names.map((n) => ({ label: n, stroke: COLORS[n] || "#555", width: 2, points: { show: true } })),
    ];
    const data = [steps, ...names.map((n) => per[n].mae.map((v) => (typeof v === "number" ? v : null)))];
    const container = $("horizon-chart");
    const width = Math.max(320, Math.min(900, container.clientWidth || 640));
    const axes = [{ label: "horizon step", incrs: [1, 2, 5, 10, 20, 50, 100] }, { label: "MAE" }];
    const opts = { width, height: 260, series, axes, scales: { x: { time: false } } };
    state.charts.push(new uPlot(opts, data, container));
  }

  function renderRun(run) {
    $("run-title").textContent = `Run ${run.run_id}`;
    const summary = $("run-summary");
    summary.replaceChildren(
      `${run.status} · ${run.model || "–"} on ${run.dataset || "–"} · started ${fmtTime(run.start_time)} UTC`,
    );
    const url = safeHttpUrl(run.mlflow_url);
    if (url) summary.append(" · ", el("a", "MLflow UI", { href: url, target: "_blank", rel: "noopener noreferrer" }));
    renderMetrics(run);
    const plot = (run.artifacts || []).some((a) => a.path === "forecast.png");
    $("forecast-note").textContent = plot
      ? "This run's artifacts hold the test-part forecast only as the report's plot (forecast.png), not as numbers to chart."
      : "This run's artifacts hold no test-part forecast.";
    fillTable(
      $("params-table"),
      Object.entries(run.params || {}).sort(([a], [b]) => a.localeCompare(b)),
    );
    fillTable(
      $("artifacts-table"),
      (run.artifacts || []).map((a) => [a.path, a.size]),
    );
    show("run-page");
    renderHorizon(run);
  }

  async function showRun(runId) {
    renderRun(await api("/runs/" + encodeURIComponent(runId)));
  }

  // --- routing ------------------------------------------------------------------------------

  async function route() {
    destroyCharts();
    notice("");
    const match = /^#\/runs\/(.+)$/.exec(location.hash);
    try {
      if (match) await showRun(decodeURIComponent(match[1]));
      else await showRuns();
    } catch (error) {
      if (error instanceof Unauthorized) askToken(error.message);
      else notice(String(error.message || error));
    }
  }

  async function showVersion() {
    try {
      const health = await api("/health");
      $("version").textContent = `v${health.version}`;
    } catch (_) {
      $("version").textContent = "";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", onLogin);
    $("runs-table").tHead.addEventListener("click", onSort);
    $("status-filter").addEventListener("change", renderRunsTable);
    $("search").addEventListener("input", renderRunsTable);
    window.addEventListener("hashchange", route);
    showVersion();
    route();
  });
})();

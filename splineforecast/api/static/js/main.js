// The splineforecast GUI: hash routes over /api/v1, one module per page. Server and user strings only
// ever become text nodes (textContent); no innerHTML anywhere (the page's CSP requires Trusted Types
// for such sinks, so a slip would fail loudly instead of running).
import { Unauthorized, api, storeToken } from "./api.js";
import { showCompare } from "./compare.js";
import { setupData, showData } from "./data.js";
import { $, enter, focusNextPage, loading, notice, show } from "./dom.js";
import { setupForecast, showForecast } from "./forecast.js";
import { setupJobs, showJob, showNewJob } from "./jobs.js";
import { showRun } from "./run.js";
import { setupRuns, showRuns } from "./runs.js";

/** ``[pattern of the path, page(alive, match, query)]``; the first that matches wins, else Runs. */
const ROUTES = [
  [/^\/runs\/(.+)$/, (alive, m) => showRun(alive, decodeURIComponent(m[1]))],
  [/^\/compare$/, (alive, _, query) => showCompare(alive, query)],
  [/^\/jobs\/new$/, (alive, _, query) => showNewJob(alive, query)],
  [/^\/jobs\/(.+)$/, (alive, m) => showJob(alive, decodeURIComponent(m[1]))],
  [/^\/data$/, (alive) => showData(alive)],
  [/^\/forecast$/, (alive, _, query) => showForecast(alive, query)],
  [/^/, (alive) => showRuns(alive)],
];

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
  storeToken(token);
  route();
}

async function route() {
  const alive = enter();
  notice("");
  loading();
  const hash = location.hash.replace(/^#/, "") || "/runs";
  const cut = hash.indexOf("?");
  const [path, query] = cut < 0 ? [hash, ""] : [hash.slice(0, cut), hash.slice(cut + 1)];
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    try {
      await page(alive, match, query);
    } catch (error) {
      if (!alive()) return;
      if (error instanceof Unauthorized) askToken(error.message);
      else {
        show("");
        notice(String(error.message || error));
      }
    }
    return;
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
  setupRuns();
  setupJobs();
  setupData();
  setupForecast();
  window.addEventListener("hashchange", () => {
    focusNextPage();
    route();
  });
  showVersion();
  route();
});

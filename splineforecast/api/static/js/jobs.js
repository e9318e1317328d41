// New job (#/jobs/new): a form built from the training body of POST /api/v1/jobs (its OpenAPI
// schema: fields, bounds, defaults), checked here as well; the server stays the authority.
// Job (#/jobs/<job_id>): its status polled every 2 s until it ends (finished, failed, cancelled,
// interrupted, timed_out), the last lines of its output, Cancel (queued or running) and Resume
// (cancelled, interrupted, timed_out: the same run_id goes on from its last checkpoint).
import { ApiError, api } from "./api.js";
import { $, el, fillTable, runLink, say, show, sleep } from "./dom.js";

const POLL_MS = 2000;
const STOPPED = new Set(["cancelled", "interrupted", "timed_out"]); // resumable
const ACTIVE = new Set(["queued", "running"]); // cancellable
const DONE = new Set(["finished", "failed", ...STOPPED]);
const STOPPED_WORDS = { cancelled: "Cancelled", interrupted: "Interrupted", timed_out: "Stopped at its time limit" };
let current = null; // the job page shown: {jobId, alive, polling}
let specs = null; // the form's fields, read once from the OpenAPI document

/** A field of the form from its JSON schema: a data set, a choice, a bounded whole number. */
export function fieldSpec(name, prop) {
  const label = prop.title || name;
  const int = prop.type === "integer" ? prop : (prop.anyOf || []).find((p) => p.type === "integer");
  const nullable = (prop.anyOf || []).some((p) => p.type === "null");
  if (name === "dataset") return { name, label, kind: "dataset", def: prop.default };
  if (Array.isArray(prop.enum)) return { name, label, kind: "choice", options: prop.enum, def: prop.default };
  if (int) return { name, label, kind: "int", min: int.minimum, max: int.maximum, nullable, def: prop.default };
  return { name, label, kind: "text", def: prop.default };
}

function hintOf(spec) {
  if (spec.kind === "int") {
    const bounds = `whole number, ${spec.min} to ${spec.max}`;
    return spec.nullable ? `${bounds}; blank: the data set's default` : `${bounds}; default ${spec.def}`;
  }
  if (spec.kind === "dataset") return "a data set this server offers";
  return spec.def === undefined ? "" : `default ${spec.def}`;
}

function inputOf(spec, datasets) {
  const id = "job-" + spec.name;
  if (spec.kind === "int" || spec.kind === "text") {
    const attrs = { id, name: spec.name, type: spec.kind === "int" ? "number" : "text" };
    if (spec.kind === "int") Object.assign(attrs, { min: String(spec.min), max: String(spec.max), step: "1" });
    const input = el("input", null, attrs);
    input.value = spec.def === null || spec.def === undefined ? "" : String(spec.def);
    return input;
  }
  const select = el("select", null, { id, name: spec.name });
  const options = spec.kind === "dataset" ? datasets : spec.options;
  for (const value of options) select.append(el("option", value, { value }));
  if (options.includes(spec.def)) select.value = spec.def;
  return select;
}

/** The value of one field, or its error in words. */
export function readField(spec, input) {
  const text = input.value.trim();
  if (spec.kind !== "int") {
    if (spec.kind === "choice" && !spec.options.includes(text)) return { error: `${spec.label}: choose one of ${spec.options.join(", ")}` };
    return text ? { value: text } : { error: `${spec.label} is required` };
  }
  if (input.validity && input.validity.badInput) return { error: `${spec.label} must be a whole number` };
  if (!text) return spec.nullable ? { value: null } : { error: `${spec.label} is required (${spec.min} to ${spec.max})` };
  if (!/^-?\d+$/.test(text)) return { error: `${spec.label} must be a whole number, got ${text}` };
  const n = Number(text);
  if (n < spec.min || n > spec.max) return { error: `${spec.label} must be from ${spec.min} to ${spec.max}, got ${n}` };
  return { value: n };
}

async function loadSpecs() {
  if (specs) return specs;
  const doc = await api("/openapi.json");
  const schema = doc.components && doc.components.schemas && doc.components.schemas.TrainRequest;
  if (!schema || !schema.properties) throw new Error("the server's OpenAPI document has no TrainRequest schema");
  specs = Object.entries(schema.properties).map(([name, prop]) => fieldSpec(name, prop));
  return specs;
}

function renderForm(fields, datasets) {
  $("job-fields").replaceChildren(
    ...fields.map((spec) => {
      const row = el("div", null, { class: "field" });
      const hint = el("span", hintOf(spec), { class: "hint", id: `job-${spec.name}-hint` });
      row.append(el("label", spec.label, { for: "job-" + spec.name }), inputOf(spec, datasets), hint);
      return row;
    }),
  );
}

async function onSubmit(event) {
  event.preventDefault();
  const errors = [];
  const body = {};
  for (const spec of specs || []) {
    const input = $("job-" + spec.name);
    const read = readField(spec, input);
    input.setAttribute("aria-invalid", read.error ? "true" : "false");
    if (read.error) errors.push(read.error);
    else body[spec.name] = read.value;
  }
  say($("job-form-error"), errors.join(". "));
  if (errors.length) return;
  $("job-submit").disabled = true;
  try {
    const job = await api("/jobs", { method: "POST", body });
    location.hash = "#/jobs/" + encodeURIComponent(job.job_id);
  } catch (error) {
    const words = error instanceof ApiError ? `The server refused the job: ${error.message}` : String(error.message || error);
    say($("job-form-error"), words);
  } finally {
    $("job-submit").disabled = false;
  }
}

export function setupJobs() {
  $("job-form").addEventListener("submit", onSubmit);
}

/** The New job form; ``query`` may choose its data set (``dataset=<name>``, as the Data page links it). */
export async function showNewJob(alive, query) {
  const [fields, listed] = await Promise.all([loadSpecs(), api("/datasets")]);
  if (!alive()) return;
  const datasets = Array.isArray(listed.datasets) ? listed.datasets.map(String) : [];
  renderForm(fields, datasets);
  const wanted = new URLSearchParams(query || "").get("dataset");
  if (wanted && datasets.includes(wanted) && $("job-dataset")) $("job-dataset").value = wanted;
  say($("job-form-error"), "");
  show("job-new-page");
}

// --- one job --------------------------------------------------------------------------------

export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

function elapsedText(job) {
  const now = Date.now() / 1000;
  if (typeof job.started !== "number") {
    const waited = (typeof job.ended === "number" ? job.ended : now) - job.created;
    return `${DONE.has(job.status) ? "waited" : "queued for"} ${fmtDuration(waited)}`;
  }
  const seconds = (typeof job.ended === "number" ? job.ended : now) - job.started;
  return `${DONE.has(job.status) ? "ran" : "running for"} ${fmtDuration(seconds)}`;
}

function failure(job) {
  const payload = job.error || {};
  const error = payload.error && typeof payload.error === "object" ? payload.error : {};
  const exit = typeof payload.exit_code === "number" ? payload.exit_code : job.exit_code;
  const code = error.code || "UNKNOWN_ERROR";
  const message = error.message || "no message";
  const words = el("p", `The training run failed with exit code ${exit} (${code}): ${message}`, { id: "job-error-words" });
  const list = el("dl", null, { id: "job-error" });
  for (const [term, value] of [["exit code", exit], ["code", code], ["message", message], ["type", error.type || "–"]]) {
    list.append(el("dt", term), el("dd", value, { "data-field": term.replace(" ", "_") }));
  }
  return [words, list];
}

/** The words of a job the server stopped (cancelled, interrupted, timed out): why, and what Resume does. */
function stoppedWords(job) {
  const error = job.error && job.error.error && typeof job.error.error === "object" ? job.error.error : {};
  const exit = typeof job.exit_code === "number" ? ` (exit code ${job.exit_code})` : "";
  const why = error.message || (typeof job.started === "number" ? "stopped" : "before it started");
  return el("p", `${STOPPED_WORDS[job.status]}${exit}: ${why}`, { id: "job-stopped-words" });
}

/** The Cancel and Resume buttons and the output box, made once (after #job-result). */
function ensureControls() {
  if ($("job-actions")) return;
  const actions = el("div", null, { id: "job-actions" });
  const cancel = el("button", "Cancel job", { id: "job-cancel", type: "button" });
  const resume = el("button", "Resume job", { id: "job-resume", type: "button" });
  const refused = el("p", null, { id: "job-action-error", class: "error", role: "alert" });
  refused.hidden = true;
  cancel.addEventListener("click", () => act("cancel", cancel));
  resume.addEventListener("click", () => act("resume", resume));
  actions.append(cancel, " ", resume, refused);
  const title = el("h3", "Output (last lines)", { id: "job-log-title" });
  const log = el("pre", null, { id: "job-log", class: "log", tabindex: "0", "aria-labelledby": "job-log-title" });
  $("job-result").after(actions, title, log);
}

function renderJob(job) {
  ensureControls();
  $("job-title").textContent = `Job ${job.job_id}`;
  $("job-status").textContent = job.stopping ? `${job.status} (stopping: ${job.stopping})` : job.status;
  $("job-status").className = "status-" + String(job.status).replace(/[^a-z]/g, "");
  $("job-elapsed").textContent = elapsedText(job);
  const request = Object.entries(job.request || {}).map(([k, v]) => [k, v === null ? "the data set's default" : String(v)]);
  fillTable($("job-request"), request);
  const result = $("job-result");
  if (job.status === "finished") {
    const link = runLink(job.run_id);
    link.id = "job-run-link";
    link.textContent = `Open run ${job.run_id}`;
    result.replaceChildren(el("p", "Finished. "), link);
  } else if (job.status === "failed") result.replaceChildren(...failure(job));
  else if (STOPPED.has(job.status)) result.replaceChildren(stoppedWords(job));
  else result.replaceChildren(el("p", `Checking every ${POLL_MS / 1000} s…`, { class: "hint" }));
  $("job-cancel").hidden = !ACTIVE.has(job.status) || Boolean(job.stopping);
  $("job-resume").hidden = !STOPPED.has(job.status);
  const lines = Array.isArray(job.log_tail) ? job.log_tail.map(String) : [];
  $("job-log").textContent = lines.length ? lines.join("\n") : "No output yet.";
}

/** Cancel (DELETE) or resume (POST …/resume) the job shown; polls again while it is not over. */
async function act(kind, button) {
  const page = current;
  if (!page) return;
  button.disabled = true;
  try {
    const path = "/jobs/" + encodeURIComponent(page.jobId);
    const job = kind === "cancel" ? await api(path, { method: "DELETE" }) : await api(path + "/resume", { method: "POST", body: {} });
    if (!page.alive()) return;
    say($("job-action-error"), "");
    renderJob(job);
    if (!page.polling && !DONE.has(job.status)) {
      poll(page).catch((error) => page.alive() && say($("job-action-error"), String(error.message || error)));
    }
  } catch (error) {
    if (!page.alive()) return;
    const words = error instanceof ApiError ? `The server refused: ${error.message}` : String(error.message || error);
    say($("job-action-error"), words);
  } finally {
    button.disabled = false;
  }
}

async function poll(page) {
  page.polling = true;
  try {
    for (;;) {
      const job = await api("/jobs/" + encodeURIComponent(page.jobId));
      if (!page.alive()) return;
      renderJob(job);
      show("job-page");
      if (DONE.has(job.status)) return;
      await sleep(POLL_MS);
      if (!page.alive()) return;
    }
  } finally {
    page.polling = false;
  }
}

export async function showJob(alive, jobId) {
  current = { jobId, alive, polling: false };
  if ($("job-action-error")) say($("job-action-error"), "");
  await poll(current);
}

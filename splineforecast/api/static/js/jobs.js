// New job (#/jobs/new): a form built from the training body of POST /api/v1/jobs (its OpenAPI
// schema: fields, bounds, defaults), checked here as well; the server stays the authority.
// Job (#/jobs/<job_id>): its status polled every 2 s until finished or failed.
import { ApiError, api } from "./api.js";
import { $, el, fillTable, runLink, say, show, sleep } from "./dom.js";

const POLL_MS = 2000;
const DONE = new Set(["finished", "failed"]);
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
  if (typeof job.started !== "number") return `queued for ${fmtDuration(now - job.created)}`;
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

function renderJob(job) {
  $("job-title").textContent = `Job ${job.job_id}`;
  $("job-status").textContent = job.status;
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
  else result.replaceChildren(el("p", `Checking every ${POLL_MS / 1000} s…`, { class: "hint" }));
}

export async function showJob(alive, jobId) {
  for (;;) {
    const job = await api("/jobs/" + encodeURIComponent(jobId));
    if (!alive()) return;
    renderJob(job);
    show("job-page");
    if (DONE.has(job.status)) return;
    await sleep(POLL_MS);
    if (!alive()) return;
  }
}

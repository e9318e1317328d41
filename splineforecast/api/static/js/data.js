// The Data page (#/data): a CSV (pasted, or a local file read here with FileReader) sent as a new data
// set, POST /api/v1/datasets; the server runs the CLI's table checks and answers the data set it kept
// (rows, columns, span) or the CLI's refusal (its column and line), shown as text. Below: the uploaded
// data sets, each with a link to the New job form with it chosen.
import { ApiError, api } from "./api.js";
import { $, busy, el, fillTable, say, show } from "./dom.js";

let maxBytes = null; // the server's SPLINE_MAX_UPLOAD_BYTES, from GET /datasets

function jobLink(name, text) {
  return el("a", text, { href: "#/jobs/new?dataset=" + encodeURIComponent(name) });
}

/** One line about a kept data set: its rows, columns and span. */
export function summary(d) {
  const day = (t) => String(t).replace("T00:00:00", "").replace("T", " ");
  const missing = d.missing ? `, ${d.missing} of them without a ${d.target} value` : "";
  return (
    `Kept ${d.name}: ${d.rows} rows, columns ${(d.columns || []).join(", ")}; ` +
    `from ${day(d.start)} to ${day(d.end)} (${d.steps} steps of ${d.freq}${missing}).`
  );
}

function renderList(uploaded) {
  const rows = uploaded.map((d) => [d.name, d.time_column, d.target, d.rows, (d.columns || []).join(", "), d.start, d.end, d.freq, jobLink(d.name, "new job")]);
  fillTable($("data-table"), rows);
  $("data-table").parentElement.hidden = rows.length === 0;
  say($("data-none"), rows.length ? "" : "No data set uploaded yet: paste or pick a CSV above and press Upload.");
}

async function refresh() {
  const listed = await api("/datasets");
  maxBytes = typeof listed.max_upload_bytes === "number" ? listed.max_upload_bytes : null;
  renderList(Array.isArray(listed.uploaded) ? listed.uploaded : []);
}

/** The request body of the form, or its error in words. */
export function readForm(name, timeColumn, target, csv) {
  if (!/^[a-z0-9_]{1,32}$/.test(name)) return { error: "Name: 1 to 32 lower-case letters, digits or _" };
  if (!timeColumn || !target) return { error: "Name the time column and the target column" };
  if (!csv.trim()) return { error: "Paste a CSV or choose a file: a header row, then one row per time step" };
  const bytes = new Blob([csv]).size;
  if (maxBytes !== null && bytes > maxBytes) return { error: `The CSV is ${bytes} bytes; this server takes at most ${maxBytes}` };
  return { body: { name, time_column: timeColumn, target, csv } };
}

async function onSubmit(event) {
  event.preventDefault();
  $("data-result").hidden = true;
  const read = readForm($("data-name").value.trim(), $("data-time-column").value.trim(), $("data-target").value.trim(), $("data-csv").value);
  say($("data-error"), read.error);
  if (read.error) return;
  const button = busy($("data-submit"), "Uploading…");
  try {
    const answer = await api("/datasets", { method: "POST", body: read.body });
    const kept = answer.dataset || {};
    $("data-summary").textContent = summary(kept);
    const link = $("data-job-link");
    link.href = "#/jobs/new?dataset=" + encodeURIComponent(kept.name);
    link.textContent = `Start a job on ${kept.name}`;
    $("data-result").hidden = false;
    await refresh();
  } catch (error) {
    const words = error instanceof ApiError ? `The server refused the upload: ${error.message}` : String(error.message || error);
    say($("data-error"), words);
  } finally {
    button.done();
  }
}

/** A name for a data set from a file's name (a suggestion only: the server names the stored file). */
export function suggestName(fileName) {
  return String(fileName).replace(/\.[^.]*$/, "").toLowerCase().replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 32);
}

function onFile() {
  const file = $("data-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    const text = String(reader.result);
    $("data-csv").value = text;
    if (!$("data-name").value.trim()) $("data-name").value = suggestName(file.name);
    const header = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/, 1)[0].split(",").map((c) => c.trim());
    const others = header.filter((c) => c && c !== $("data-time-column").value.trim());
    if (!$("data-target").value.trim() && others.length === 1) $("data-target").value = others[0];
    say($("data-file-note"), `Read ${file.name} (${file.size} bytes) into the box above.`);
  });
  reader.addEventListener("error", () => say($("data-error"), `Could not read ${file.name}.`));
  reader.readAsText(file);
}

export function setupData() {
  $("data-form").addEventListener("submit", onSubmit);
  $("data-file").addEventListener("change", onFile);
}

export async function showData(alive) {
  await refresh();
  if (!alive()) return;
  say($("data-error"), "");
  $("data-result").hidden = true;
  show("data-page");
}

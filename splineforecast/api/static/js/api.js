// The /api/v1 client of the GUI. The token lives in this tab's sessionStorage only: never in a URL,
// cookie, localStorage or log; it is sent as the X-API-Token header.

const API = "/api/v1";
const TOKEN_KEY = "splineforecast.token";

export class Unauthorized extends Error {}

/** A refusal of the API: ``status`` and its JSON ``body`` ({ok: false, error: ...}). */
export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** The words of a refusal body: a SPEC error with its code and exit code, validation details, or the message. */
export function errorText(body, status) {
  const error = body && body.error;
  if (!error || typeof error !== "object") return `HTTP ${status}${typeof error === "string" ? ": " + error : ""}`;
  const code = error.code ? String(error.code) : `HTTP ${status}`;
  const exit = typeof body.exit_code === "number" ? ` (exit code ${body.exit_code})` : "";
  let text = `${code}${exit}: ${error.message || "refused"}`;
  if (Array.isArray(body.details) && body.details.length) {
    const parts = body.details.map((d) => {
      const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
      return loc ? `${loc}: ${d.msg}` : String(d.msg);
    });
    text += ` (${parts.join("; ")})`;
  }
  return text;
}

/** ``GET`` (or ``method`` with a JSON ``body``) of ``API + path``; the JSON answer, else ApiError / Unauthorized. */
export async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["X-API-Token"] = token;
  const init = { method: options.method || "GET", headers, credentials: "omit", cache: "no-store" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(API + path, init);
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new Unauthorized(token ? "The token was refused. Enter it again." : "This server needs an API token.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    throw new ApiError(`${path}: HTTP ${response.status}, not JSON`, response.status, null);
  }
  if (!response.ok) throw new ApiError(errorText(body, response.status), response.status, body);
  return body;
}

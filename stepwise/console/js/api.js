// Calls to the HTTP API (same routes the CLI uses). Every reply is JSON; errors keep their status,
// error name and message so pages can say what happened (403 four-eyes, 409 decided first, ...).

import { authorizationHeader } from "./auth.js";

let base = "";

export function setApiBase(url) {
  base = String(url || "").replace(/\/+$/, "");
}

export class ApiError extends Error {
  constructor(status, error, message, details) {
    super(message || error || `HTTP ${status}`);
    this.status = status;
    this.error = error || "";
    this.details = details || [];
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const auth = await authorizationHeader();
  if (auth) headers.Authorization = auth;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await reply.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!reply.ok) {
    const payload = data && typeof data === "object" ? data : {};
    throw new ApiError(reply.status, payload.error, payload.message || text.slice(0, 200), payload.details);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);

// a read that may be refused (a persona without the route): null instead of an error
export async function tryGet(path) {
  try {
    return await get(path);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) return null;
    throw err;
  }
}

export function explain(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  const fields = (err.details || []).map((d) => `${d.field}: ${d.reason}`).join("; ");
  return `${err.status} ${err.error || ""}: ${err.message}${fields ? ` (${fields})` : ""}`.replace("  ", " ");
}

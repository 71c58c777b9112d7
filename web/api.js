// The API seen from the page: requests with the key header, error bodies as ApiError, and a job's event
// stream read with fetch() (EventSource cannot send headers; the key never goes into a URL).

export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 4000];

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// ---------- HTTP

// fetch() with the key; a 4xx/5xx answer throws ApiError(code, message, status) from the error body.
export async function request(key, path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("connection_failed", `Cannot reach the service (${err.message}).`, 0);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || "The request failed.";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not our JSON error body (a proxy page): keep the HTTP status
  }
  return new ApiError(code, message, response.status);
}

// ---------- Server-Sent Events over fetch

class SSEParser {
  constructor() {
    this.event = "";
    this.data = [];
    this.lastId = null;
  }

  // One line (without its end); returns {event, data, id} when a blank line ends an event.
  feed(line) {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const out = { event: this.event || "message", data: this.data.join("\n"), id: this.lastId };
      this.event = "";
      this.data = [];
      return out;
    }
    if (line.startsWith(":")) return null; // heartbeat
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.event = value;
    else if (name === "data") this.data.push(value);
    else if (name === "id") this.lastId = value;
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Calls onJob(job, eventName) for every event until the terminal one; reconnects with Last-Event-ID.
export async function followEvents(key, jobId, onJob, signal) {
  const parser = new SSEParser();
  let attempt = 0;
  let lastError = null;
  while (!signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (parser.lastId) headers["Last-Event-ID"] = parser.lastId;
      const response = await request(key, `/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers, signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (const line of lines) {
          const event = parser.feed(line.replace(/\r$/, ""));
          if (!event) continue;
          attempt = 0;
          const job = JSON.parse(event.data);
          onJob(job, event.event);
          if (TERMINAL.has(job.status)) return job;
        }
      }
    } catch (err) {
      if (signal.aborted) return null;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
      lastError = err;
    }
    // the stream broke or ended before the job did: resume after a pause (attempts reset on every event)
    attempt += 1;
    if (attempt > RECONNECT_DELAYS_MS.length) {
      throw lastError || new ApiError("stream_ended", "The progress stream keeps ending early; reload the page.", 0);
    }
    await sleep(RECONNECT_DELAYS_MS[attempt - 1]);
  }
  return null;
}

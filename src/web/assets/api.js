// The page's one door to the JSON API: the key (kept in sessionStorage, for this tab only),
// authenticated GETs, and the live feed read from a fetch stream (EventSource cannot send a
// bearer key). Never stores the key anywhere else, never writes to the log.

const KEY = "annals.key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

/** A refused or failed request, with the problem details the server sent. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** GET `path` with `params` (null and empty values left out), as JSON. */
export async function get(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const resp = await fetch(url, { headers: { Authorization: `Bearer ${getKey()}` } });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

/**
 * Follows `/events/live` from seq `from`, calling `onRecord(envelope)` per record and
 * `onState(live)` when the feed is up or down. Reconnects after a pause, resuming after the
 * last seq seen. Returns a function that stops it.
 */
export function follow(from, onRecord, onState) {
  let stopped = false;
  let next = from;
  let controller = null;
  const run = async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const resp = await fetch(`/events/live?from=${next}`, {
          headers: { Authorization: `Bearer ${getKey()}`, Accept: "text/event-stream" },
          signal: controller.signal,
        });
        if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
        onState(true);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const msg = parseEvent(block);
            if (msg.event === "record" && msg.data) {
              const rec = JSON.parse(msg.data);
              next = rec.seq + 1;
              onRecord(rec);
            } else if (msg.event === "error" && msg.data) {
              const p = JSON.parse(msg.data);
              if (p.resume_from) next = p.resume_from;
            }
          }
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          onState(false, e);
          return;
        }
      }
      onState(false);
      if (!stopped) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  run();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}

function parseEvent(block) {
  const msg = { event: "message", data: "" };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") msg.event = value;
    else if (field === "data") msg.data += (msg.data ? "\n" : "") + value;
  }
  return msg;
}

// Operating streams from the page: create, stop, keep alive with heartbeats, and show every
// API error in the page (the console is not where an operator looks).
import { ApiError } from "./api.js";

const MAX_SHOWN_ERRORS = 8;
const DEFAULT_HEARTBEAT_S = 10; // well inside any lease; shortened to a third of a short lease

/** The page's error list: newest first, each line "time action: status code: message". */
export class ErrorList {
  constructor(box, list) {
    this.box = box;
    this.list = list;
  }

  show(action, err) {
    // ApiError and WhipError both describe themselves: "status code: message"
    const text =
      err instanceof ApiError || typeof err?.describe === "function"
        ? err.describe()
        : String(err?.message ?? err);
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${action}: ${text}`;
    this.list.prepend(item);
    while (this.list.children.length > MAX_SHOWN_ERRORS) this.list.lastElementChild.remove();
    this.box.hidden = false;
  }

  clear() {
    this.list.replaceChildren();
    this.box.hidden = true;
  }
}

/** The "new stream" form → POST /streams; onCreated(view) after a 201. */
export function wireCreateForm(form, api, errors, onCreated) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fields = form.elements;
    const spec = {
      stream_id: fields.stream_id.value.trim(),
      source_url: fields.source_url.value.trim(),
      qualities: [...form.querySelectorAll("input[name=quality]:checked")].map((q) => q.value),
      low_latency: fields.low_latency.checked,
    };
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const view = await api.createStream(spec);
      onCreated(view);
    } catch (err) {
      errors.show(`create ${spec.stream_id || "(no id)"}`, err);
    } finally {
      button.disabled = false;
    }
  });
}

/** A "Stop" button for one stream's row → DELETE /streams/{id}; onStopped() after. */
export function stopButton(streamId, api, errors, onStopped) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "stop";
  button.textContent = "Stop";
  button.title = `DELETE /streams/${streamId}`;
  button.addEventListener("click", async (ev) => {
    ev.stopPropagation(); // not a row selection
    button.disabled = true;
    try {
      await api.stopStream(streamId);
      onStopped(streamId);
    } catch (err) {
      errors.show(`stop ${streamId}`, err);
      button.disabled = false;
    }
  });
  return button;
}

/**
 * While the toggle is on, POST /streams/{id}/heartbeat for every stream that is still running,
 * now and then every few seconds. streamIds() gives the ids to keep alive at each beat.
 */
export function wireHeartbeats(toggle, statusNode, api, errors, streamIds) {
  let timer = null;
  let intervalS = DEFAULT_HEARTBEAT_S;
  const beat = async () => {
    const ids = streamIds();
    const results = await Promise.allSettled(ids.map((id) => api.heartbeat(id)));
    let sent = 0;
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        sent += 1;
        const leaseS = Number(result.value?.lease_seconds);
        if (Number.isFinite(leaseS) && leaseS > 0) intervalS = Math.min(DEFAULT_HEARTBEAT_S, leaseS / 3);
      } else {
        errors.show(`heartbeat ${ids[i]}`, result.reason);
      }
    });
    statusNode.textContent = `${sent}/${ids.length} kept alive at ${new Date().toLocaleTimeString()}`;
    if (toggle.checked) timer = setTimeout(beat, intervalS * 1000);
  };
  toggle.addEventListener("change", () => {
    clearTimeout(timer);
    timer = null;
    if (toggle.checked) beat();
    else statusNode.textContent = "off";
  });
}

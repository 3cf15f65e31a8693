// Dashboard: polls GET /streams every 2 s, plays the selected stream with the chosen engine,
// charts it, and operates streams (create, stop, heartbeats). Plain ES modules, no build step.
import { ApiClient } from "./api.js";
import { StreamCharts } from "./charts.js";
import { ServerClock } from "./clock.js";
import { wireGoLive } from "./golive.js";
import { appendSample, sampleOf } from "./history.js";
import { ErrorList, stopButton, wireCreateForm, wireHeartbeats } from "./operate.js";
import { ENGINES, collectPageErrors, createPlayer, exposeTestHooks } from "./players.js";
import { renderStats, syncQualityOptions } from "./ui.js";

const POLL_INTERVAL_MS = 2000;
const STATS_INTERVAL_MS = 500;

// Playback URLs in /streams are relative to the API origin. The dashboard is
// normally served by that same API; ?api=http://host:8083 points it elsewhere.
const apiBase = new URL(new URLSearchParams(location.search).get("api") ?? "/", location.href);

const pageErrors = collectPageErrors();
let player = null;
let playerKey = null; // "streamId|engine|url|ll" of the running player
let selectedId = null;
let latestStreams = [];
let samplesById = new Map(); // stream id → samples, oldest first (see history.js)
let serverClock = null; // started with the first stream that has segments (needs GET /time)
exposeTestHooks(() => player, pageErrors);

const $ = (id) => document.getElementById(id);
const engineSelect = $("engine");
const qualitySelect = $("quality");
const viaCdn = $("via-cdn");
const video = $("video");
const api = new ApiClient(apiBase);
const errors = new ErrorList($("api-error-box"), $("api-errors"));
const charts = new StreamCharts($("charts"));
wireGoLive({
  form: $("golive-form"),
  preview: $("golive-preview"),
  statusNode: $("golive-status"),
  apiBase,
  errors,
});
window.__dashboard_charts = () => charts.summary();

// Restore the selection from the fragment so a reload keeps watching.
const hash = new URLSearchParams(location.hash.slice(1));
selectedId = hash.get("stream");
if (hash.get("engine")) engineSelect.value = hash.get("engine");

function saveHash() {
  const h = new URLSearchParams();
  if (selectedId) h.set("stream", selectedId);
  h.set("engine", engineSelect.value);
  history.replaceState(null, "", `#${h}`);
}

function formatUptime(createdAt) {
  const t = Date.parse(createdAt);
  if (!Number.isFinite(t)) return "–";
  let s = Math.max(0, Math.floor((Date.now() - t) / 1000));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const hms = `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  return d ? `${d}d ${hms}` : hms;
}

function qualityLabel(q) {
  if (typeof q === "string" || typeof q === "number") return String(q);
  if (q && typeof q === "object") {
    return q.name ?? q.label ?? (q.height ? `${q.height}p` : JSON.stringify(q));
  }
  return "?";
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function absUrl(path) {
  return path ? new URL(path, apiBase).href : null;
}

function renderStreams(streams) {
  const body = $("streams-body");
  $("streams-table").hidden = streams.length === 0;
  $("no-streams").hidden = streams.length !== 0;
  body.replaceChildren(
    ...streams.map((s) => {
      const links = el("td", { className: "links" });
      for (const [name, key] of [["HLS", "hls"], ["DASH", "dash"], ["CDN HLS", "cdn_hls"], ["CDN DASH", "cdn_dash"]]) {
        const url = absUrl(s.urls?.[key]);
        if (url) links.append(el("a", { href: url, target: "_blank", rel: "noopener" }, name), " ");
      }
      const row = el(
        "tr",
        { className: s.stream_id === selectedId ? "selected" : "", tabIndex: 0 },
        el(
          "td",
          {},
          el("strong", {}, String(s.stream_id)),
          s.low_latency ? el("span", { className: "pill pill-ll" }, "LL") : "",
        ),
        el("td", {}, el("span", { className: `pill state-${String(s.state).toLowerCase()}` }, String(s.state))),
        el("td", {}, (s.qualities ?? []).map(qualityLabel).join(", ") || "–"),
        el("td", { className: s.restarts > 0 ? "warn" : "" }, String(s.restarts ?? 0)),
        el("td", { className: "uptime" }, formatUptime(s.created_at)),
        links,
        el("td", {}, isEnded(s) ? "" : stopButton(s.stream_id, api, errors, () => poll())),
      );
      const select = () => {
        selectedId = s.stream_id;
        saveHash();
        renderStreams(latestStreams);
        syncPlayer();
      };
      row.addEventListener("click", (ev) => {
        if (ev.target.tagName !== "A") select();
      });
      row.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter") select();
      });
      return row;
    }),
  );
}

function setApiStatus(ok, text) {
  const pill = $("api-status");
  pill.textContent = text;
  pill.className = `pill ${ok ? "pill-ok" : "pill-bad"}`;
}

function isEnded(stream) {
  return ["stopped", "failed", "stale"].includes(String(stream.state));
}

let lastPollError = null; // the same failure every 2 s is listed once

async function poll() {
  try {
    const data = await api.listStreams();
    // Accept a bare list or {"streams": [...]} so a small API change does not
    // blank the page.
    latestStreams = Array.isArray(data) ? data : (data?.streams ?? []);
    setApiStatus(true, `${latestStreams.length} stream(s)`);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    lastPollError = null;
    $("token-form").hidden = true;
    record(latestStreams);
  } catch (err) {
    setApiStatus(false, err.status ? `API error ${err.status}` : "API unreachable");
    const text = err.describe?.() ?? String(err);
    if (text !== lastPollError) errors.show("list streams", err);
    lastPollError = text;
  }
  renderStreams(latestStreams);
  syncPlayer();
  drawCharts();
}

// One sample per stream per poll, on the server's clock once GET /time answered.
function record(streams) {
  if (!serverClock && streams.some((s) => s.last_segment_at)) {
    serverClock = new ServerClock(new URL("time", apiBase).href).start();
  }
  const nowS = Date.now() / 1000 + (serverClock?.offsetS ?? 0);
  const next = new Map();
  for (const s of streams) {
    const playing = player && s.stream_id === selectedId ? window.__player_state() : null;
    next.set(s.stream_id, appendSample(samplesById.get(s.stream_id) ?? [], sampleOf(s, nowS, playing)));
  }
  samplesById = next; // streams that are gone take their history with them
}

function drawCharts() {
  const samples = samplesById.get(selectedId);
  $("charts-stream").textContent = samples ? `– ${selectedId}` : "– select a stream";
  if (samples) charts.update(samples);
  else charts.clear();
}

function stopPlayer() {
  player?.destroy();
  player = null;
  playerKey = null;
  video.removeAttribute("src");
  video.load();
}

function showPlayerMessage(text) {
  const m = $("player-message");
  m.textContent = text ?? "";
  m.hidden = !text;
}

// Start, keep or replace the player so it matches the current selection.
async function syncPlayer() {
  const stream = latestStreams.find((s) => s.stream_id === selectedId) ?? null;
  if (!stream) {
    if (player) stopPlayer();
    $("player-stream").textContent = "";
    $("ll-badge").hidden = true;
    if (selectedId && latestStreams.length) showPlayerMessage(`Stream ${selectedId} is gone.`);
    else if (!latestStreams.length) showPlayerMessage("");
    return;
  }
  const engine = engineSelect.value;
  const key = ENGINES[engine]?.protocol === "dash" ? "dash" : "hls";
  const path = viaCdn.checked ? (stream.urls?.[`cdn_${key}`] ?? stream.urls?.[key]) : stream.urls?.[key];
  const src = absUrl(path);
  const lowLatency = Boolean(stream.low_latency);
  $("player-stream").textContent = `– ${stream.stream_id}`;
  $("ll-badge").hidden = !lowLatency;
  if (!src) {
    stopPlayer();
    showPlayerMessage(`Stream ${stream.stream_id} has no ${key.toUpperCase()} URL yet.`);
    return;
  }
  if (stream.state === "starting") {
    // no playlist before the first segment: a player started now would only see 404s
    stopPlayer();
    showPlayerMessage(`Stream ${stream.stream_id} is starting…`);
    return;
  }
  if (stream.state === "waiting" && !stream.segments_produced) {
    // a push stream nobody has published to yet (once it has media, a player keeps going
    // across publisher reconnects)
    stopPlayer();
    showPlayerMessage(`Stream ${stream.stream_id} is waiting for a publisher…`);
    return;
  }
  const wanted = `${stream.stream_id}|${engine}|${src}|${lowLatency}`;
  if (wanted === playerKey) return;
  stopPlayer();
  showPlayerMessage("");
  playerKey = wanted;
  const created = await createPlayer({ engine, video, src, lowLatency });
  if (playerKey !== wanted) {
    created.destroy(); // the selection changed while the engine was loading
    return;
  }
  player = created;
}

function refreshStats() {
  const s = window.__player_state();
  syncQualityOptions(qualitySelect, s);
  $("stats").textContent = player ? renderStats(s) : "Select a stream to play it.";
  $("error-count").textContent = String(s.errors.length);
  $("errors").replaceChildren(...s.errors.map((e) => el("li", {}, e)));
  if (s.fatal) showPlayerMessage(`Fatal player error: ${s.errors[s.errors.length - 1] ?? "unknown"}`);
}

engineSelect.addEventListener("change", () => {
  saveHash();
  syncPlayer();
});
viaCdn.addEventListener("change", () => syncPlayer());
qualitySelect.addEventListener("change", () => player?.setLevel(Number(qualitySelect.value)));

api.onUnauthorized = () => {
  $("token-form").hidden = false;
};
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  api.token = $("token").value.trim();
  $("token").value = "";
  lastPollError = null;
  poll();
});
$("clear-errors").addEventListener("click", () => errors.clear());
wireCreateForm($("create-form"), api, errors, (view) => {
  selectedId = view.stream_id;
  saveHash();
  poll();
});
wireHeartbeats($("heartbeats"), $("heartbeat-status"), api, errors, () =>
  latestStreams.filter((s) => !isEnded(s)).map((s) => s.stream_id),
);

poll();
setInterval(poll, POLL_INTERVAL_MS);
setInterval(refreshStats, STATS_INTERVAL_MS);

// Dashboard: polls GET /streams every 2 s and plays the selected stream with
// the chosen engine. Plain ES module, no build step.
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
exposeTestHooks(() => player, pageErrors);

const $ = (id) => document.getElementById(id);
const engineSelect = $("engine");
const qualitySelect = $("quality");
const viaCdn = $("via-cdn");
const video = $("video");

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

async function poll() {
  try {
    const resp = await fetch(new URL("streams", apiBase), { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const data = await resp.json();
    // Accept a bare list or {"streams": [...]} so a small API change does not
    // blank the page.
    latestStreams = Array.isArray(data) ? data : (data.streams ?? []);
    setApiStatus(true, `${latestStreams.length} stream(s)`);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    setApiStatus(false, `API unreachable: ${err.message}`);
  }
  renderStreams(latestStreams);
  syncPlayer();
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

poll();
setInterval(poll, POLL_INTERVAL_MS);
setInterval(refreshStats, STATS_INTERVAL_MS);

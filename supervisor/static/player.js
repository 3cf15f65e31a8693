// Standalone player page: plays ?src= with ?engine= (see player.html).
import {
  ENGINES,
  DEFAULT_LL_TARGET_LATENCY_S,
  collectPageErrors,
  createPlayer,
  exposeTestHooks,
} from "./players.js";
import { renderStats, syncQualityOptions } from "./ui.js";

const pageErrors = collectPageErrors();
let player = null;
exposeTestHooks(() => player, pageErrors);

const params = new URLSearchParams(location.search);
const engine = params.get("engine") ?? "hlsjs";
const src = params.get("src");
const lowLatency = ["1", "true", "yes"].includes((params.get("ll") ?? "").toLowerCase());
const target = params.get("target");
// target=mpd (and the default) defers to the manifest's own target latency; target=3 sets a
// dash.js liveDelay of 3 s.
const targetLatencyS =
  target === "mpd" ? null : target !== null && Number.isFinite(Number(target)) ? Number(target) : DEFAULT_LL_TARGET_LATENCY_S;

const video = document.getElementById("video");
const quality = document.getElementById("quality");
const stats = document.getElementById("stats");
const message = document.getElementById("message");

function showMessage(text) {
  message.textContent = text;
  message.hidden = false;
}

quality.addEventListener("change", () => player?.setLevel(Number(quality.value)));

async function main() {
  if (!src) {
    showMessage("Nothing to play: add ?src=URL (and optionally &engine=hlsjs|dashjs|shaka&ll=1).");
    stats.textContent = "";
    return;
  }
  if (!(engine in ENGINES)) {
    showMessage(`Unknown engine "${engine}". Use one of: ${Object.keys(ENGINES).join(", ")}.`);
    return;
  }
  document.title = `${ENGINES[engine].label} – ${src}`;
  player = await createPlayer({ engine, video, src, lowLatency, targetLatencyS });
  setInterval(() => {
    const s = window.__player_state();
    syncQualityOptions(quality, s);
    stats.textContent = renderStats(s);
    if (s.fatal) showMessage(`Fatal: ${s.errors[s.errors.length - 1] ?? "unknown error"}`);
  }, 500);
}

main();

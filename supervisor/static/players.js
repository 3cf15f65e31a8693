// Engine adapters shared by the dashboard (index.html) and the standalone
// player page (player.html). Each adapter wraps one vendored player library
// behind the same small surface so pages and the e2e harness can treat
// hls.js, dash.js and Shaka alike:
//
//   const p = await createPlayer({engine, video, src, lowLatency});
//   p.state()        -> JSON-able snapshot (see snapshot() below)
//   p.setLevel(i)    -> force rendition i of p.state().levels, -1 = auto (ABR)
//   p.destroy()
//
// The players are loaded lazily from ./vendor/ (served by the origin itself,
// never a CDN), so a page that only uses hls.js never downloads Shaka.

import { ServerClock } from "./clock.js";

export const ENGINES = Object.freeze({
  hlsjs: { label: "hls.js", protocol: "hls" },
  dashjs: { label: "dash.js", protocol: "dash" },
  "shaka-hls": { label: "Shaka (HLS)", protocol: "hls" },
  "shaka-dash": { label: "Shaka (DASH)", protocol: "dash" },
  // "shaka" alone picks the protocol from the URL (player.html?engine=shaka).
  shaka: { label: "Shaka", protocol: "auto" },
});

// Default live delay for dash.js in low-latency mode: null, so the MPD's
// ServiceDescription Latency@target decides (the same target as LL-HLS's PART-HOLD-BACK).
// An explicit app setting beats it in dash.js; pages pass a number (?target=3) to override.
export const DEFAULT_LL_TARGET_LATENCY_S = null;

// Fastest playback rate hls.js may use to get back to its target latency (LL only).
export const HLSJS_MAX_CATCH_UP_RATE = 1.5;
// hls.js recovers from *fatal* network errors only when told to (startLoad, below). When the
// origin comes back slowly instead (a restarted service holding playlist requests until its
// resumed stream's first segment, a cluster node taking a stream over), hls.js's held requests
// time out as non-fatal errors and it can sit still for good. A live player that has made no
// progress for this long, not paused, loads again from the live edge.
export const HLSJS_STALL_RESTART_MS = 8000;

// Shaka's catch-up on LL-HLS (seconds behind its seek range end, which is PART-HOLD-BACK behind
// the live edge; rates like the MPD's PlaybackRate).
export const SHAKA_LL_HLS_LIVE_SYNC = Object.freeze({
  targetLatency: 0.25,
  targetLatencyTolerance: 0.25,
  minPlaybackRate: 0.96,
  maxPlaybackRate: 1.1,
});

// Shaka's own low-latency defaults (PlayerConfiguration.createDefaultForLL) turn DASH's
// autoCorrectDrift off, but Shaka applies them only after the first MPD parse (player.js
// "if (this.manifest_.isLowLatency) this.configure(this.lowLatencyConfig_)"), and that first
// parse is the one that places the live edge: with the drift correction on it takes the end of the
// last listed segment (the growing one, announced with its nominal duration, up to a segment in
// the future) as "now" and adds availabilityTimeOffset on top. Shaka then believed it was 1.4-3.4 s
// further behind than it was (how much depended on the moment it loaded), played at the MPD's
// maximum rate until its buffer ran dry, stalled, and again. Set before load, as Shaka means it.
export const SHAKA_LL_DASH_MANIFEST = Object.freeze({ autoCorrectDrift: false });

// Shaka keeps its LL-DASH latency anywhere within Latency@target ± liveSync.targetLatencyTolerance
// of its live edge (default ±0.5 s) and only changes rate outside that band, so it stayed wherever
// it started or a stall left it: up to a second above the target, for good. A narrow band keeps
// it at the MPD's target (its own figure 1.1-1.2 s) and brings it back after a stall at the MPD's
// maximum rate. Only the tolerance: liveSync stays off so the MPD's ServiceDescription decides
// the target and the rates.
export const SHAKA_LL_DASH_LIVE_SYNC = Object.freeze({ targetLatencyTolerance: 0.1 });

// Keep the error list bounded: a live stream that keeps failing must not grow
// the page's memory (or the harness's JSON) forever.
const MAX_ERRORS = 50;

const VENDOR = {
  hlsjs: new URL("./vendor/hls.min.js", import.meta.url).href,
  dashjs: new URL("./vendor/dash.mediaplayer.min.js", import.meta.url).href,
  shaka: new URL("./vendor/shaka-player.compiled.js", import.meta.url).href,
};

const loadedScripts = new Map();

function loadScript(url) {
  // The vendored builds are UMD bundles that set a global (Hls, dashjs,
  // shaka); a classic <script> tag is the simplest way to get that global.
  if (!loadedScripts.has(url)) {
    loadedScripts.set(
      url,
      new Promise((resolve, reject) => {
        const el = document.createElement("script");
        el.src = url;
        el.async = true;
        el.onload = () => resolve();
        el.onerror = () => {
          loadedScripts.delete(url);
          reject(new Error(`failed to load ${url}`));
        };
        document.head.appendChild(el);
      }),
    );
  }
  return loadedScripts.get(url);
}

function finiteOrNull(x) {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

function bufferAheadS(video) {
  const t = video.currentTime;
  const ranges = video.buffered;
  for (let i = 0; i < ranges.length; i++) {
    // A small tolerance: playback often sits a few ms before the range start
    // right after a seek or a segment boundary.
    if (ranges.start(i) - 0.1 <= t && t <= ranges.end(i)) {
      return Math.max(0, ranges.end(i) - t);
    }
  }
  return 0;
}

function frameCounts(video) {
  if (typeof video.getVideoPlaybackQuality === "function") {
    const q = video.getVideoPlaybackQuality();
    return { decoded: q.totalVideoFrames, dropped: q.droppedVideoFrames };
  }
  return {
    decoded: video.webkitDecodedFrameCount ?? 0,
    dropped: video.webkitDroppedFrameCount ?? 0,
  };
}

function describeDashError(e) {
  // dash.js error events carry {error: {code, message, data}}; data holds the
  // whole request object, far too big for a one-line error entry.
  const err = e?.error ?? e;
  if (err && typeof err === "object" && ("code" in err || "message" in err)) {
    return `code ${err.code ?? "?"}: ${err.message ?? ""}`;
  }
  return describeError(err);
}

function describeError(e) {
  if (e === null || e === undefined) return "unknown error";
  if (typeof e === "string") return e;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  try {
    return JSON.stringify(e).slice(0, 500);
  } catch {
    return String(e);
  }
}

class ErrorLog {
  constructor() {
    this.errors = [];
    this.fatal = false;
  }
  add(message, fatal) {
    this.errors.push(String(message).slice(0, 500));
    if (this.errors.length > MAX_ERRORS) this.errors.splice(0, this.errors.length - MAX_ERRORS);
    // Sticky: once a fatal error happened the session is suspect even if the
    // adapter managed to recover, and tests must see it.
    if (fatal) this.fatal = true;
  }
}

// Common base: owns the <video> element bookkeeping; subclasses fill in the
// engine-specific levels/latency/level switching.
class BaseAdapter {
  constructor(engine, video, src, lowLatency) {
    this.engine = engine;
    this.video = video;
    this.src = src;
    this.lowLatency = lowLatency;
    this.log = new ErrorLog();
    // the server that serves src knows the clock its PDT / availability times are in
    this.serverClock = new ServerClock(new URL("/time", src).href).start();
    this.onVideoError = () => {
      const err = video.error;
      // MediaError on the element itself means decoding/format failure.
      this.log.add(`video element: ${err ? `code ${err.code} ${err.message}` : "error"}`, true);
    };
    video.addEventListener("error", this.onVideoError);
  }

  levels() {
    return [];
  }
  currentLevel() {
    return -1;
  }
  autoLevel() {
    return true;
  }
  latencyS() {
    return null;
  }
  // The engine's own latency figure only (latencyS() may fall back to the page's own measure).
  playerLatencyS() {
    return this.latencyS();
  }
  // Wall clock now minus the wall-clock time of the frame on screen, from the manifest's own
  // clock mapping (HLS PROGRAM-DATE-TIME, DASH availabilityStartTime): independent of how the
  // engine defines its "latency".
  wallClockLatencyS() {
    return null;
  }
  isLive() {
    return false;
  }

  state() {
    const v = this.video;
    const frames = frameCounts(v);
    const pdtLatencyS = this.isLive() ? finiteOrNull(this.wallClockLatencyS()) : null;
    const clockOffsetS = this.serverClock.offsetS;
    return {
      engine: this.engine,
      src: this.src,
      lowLatency: this.lowLatency,
      live: this.isLive(),
      currentTime: v.currentTime,
      readyState: v.readyState,
      paused: v.paused,
      ended: v.ended,
      playbackRate: v.playbackRate,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      droppedFrames: frames.dropped,
      decodedFrames: frames.decoded,
      bufferAheadS: bufferAheadS(v),
      latencyS: finiteOrNull(this.latencyS()),
      playerLatencyS: finiteOrNull(this.playerLatencyS()),
      pdtLatencyS,
      // the same on the server's clock: what the viewer's picture is behind the server's "now"
      measuredLatencyS: pdtLatencyS !== null && clockOffsetS !== null ? pdtLatencyS + clockOffsetS : null,
      clockOffsetS,
      levels: this.levels(),
      currentLevel: this.currentLevel(),
      autoLevel: this.autoLevel(),
      errors: [...this.log.errors],
      fatal: this.log.fatal,
    };
  }

  destroy() {
    this.video.removeEventListener("error", this.onVideoError);
    this.serverClock.stop();
  }
}

// ---------------------------------------------------------------- hls.js

class HlsJsAdapter extends BaseAdapter {
  async start() {
    await loadScript(VENDOR.hlsjs);
    const Hls = window.Hls;
    if (!Hls || !Hls.isSupported()) throw new Error("hls.js: MediaSource not supported");
    // lowLatencyMode defaults to true in hls.js; turn it off explicitly for
    // classic streams so it never tries blocking reloads there. hls.js only aims at
    // PART-HOLD-BACK when it starts: without a catch-up rate (its default is 1, off) every stall
    // or slow start stays in the latency for good. Up to 1.5x while more than 1 s is buffered
    // (hls.js's own rule), like dash.js's catch-up from the MPD's PlaybackRate.
    this.hls = new Hls({
      lowLatencyMode: this.lowLatency,
      enableWorker: true,
      ...(this.lowLatency ? { maxLiveSyncPlaybackRate: HLSJS_MAX_CATCH_UP_RATE } : {}),
    });
    this.mediaRecoveries = 0;
    this.hls.on(Hls.Events.ERROR, (_event, data) => {
      const what = `hls.js ${data.type}/${data.details}${data.fatal ? " (fatal)" : ""}`;
      this.log.add(what, data.fatal);
      if (!data.fatal) return;
      // The usual hls.js recovery ladder; the fatal flag stays set so a
      // test still notices the stream was broken.
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && this.mediaRecoveries < 2) {
        this.mediaRecoveries += 1;
        this.hls.recoverMediaError();
      } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        this.hls.startLoad();
      }
    });
    this.hls.loadSource(this.src);
    this.hls.attachMedia(this.video);
    this.watchProgress();
  }

  watchProgress() {
    let lastTime = this.video.currentTime;
    let lastProgressAt = Date.now();
    let played = false; // armed once playback has moved: a slow first start is not a stall
    this.progressTimer = setInterval(() => {
      const now = Date.now();
      const moved = this.video.currentTime !== lastTime;
      if (moved && lastTime > 0) played = true;
      if (!played || this.video.paused || moved || !this.isLive()) {
        lastTime = this.video.currentTime;
        lastProgressAt = now;
        return;
      }
      if (now - lastProgressAt < HLSJS_STALL_RESTART_MS) return;
      lastProgressAt = now;
      this.log.add("hls.js made no progress: loading again from the live edge", false);
      this.hls.stopLoad();
      this.hls.startLoad(-1);
      const live = this.hls.liveSyncPosition;
      if (live) this.video.currentTime = live;
    }, 1000);
  }

  levels() {
    return (this.hls?.levels ?? []).map((l) => ({
      height: l.height ?? 0,
      width: l.width ?? 0,
      bitrate: l.bitrate ?? 0,
    }));
  }
  currentLevel() {
    return this.hls ? this.hls.currentLevel : -1;
  }
  autoLevel() {
    return this.hls ? this.hls.autoLevelEnabled : true;
  }
  isLive() {
    return Boolean(this.hls?.latestLevelDetails?.live);
  }
  latencyS() {
    // hls.latency is only defined relative to a live edge.
    return this.isLive() ? this.hls.latency : null;
  }
  wallClockLatencyS() {
    const when = this.hls?.playingDate;
    return when ? (Date.now() - when.getTime()) / 1000 : null;
  }
  setLevel(i) {
    if (!this.hls) return;
    // currentLevel switches immediately (flushes the forward buffer) so the
    // effect is visible at once; -1 hands control back to ABR.
    this.hls.currentLevel = i;
  }
  destroy() {
    super.destroy();
    clearInterval(this.progressTimer);
    this.hls?.destroy();
  }
}

// ---------------------------------------------------------------- dash.js

class DashJsAdapter extends BaseAdapter {
  constructor(engine, video, src, lowLatency, targetLatencyS) {
    super(engine, video, src, lowLatency);
    this.targetLatencyS = targetLatencyS;
    this.auto = true;
  }

  async start() {
    await loadScript(VENDOR.dashjs);
    const dashjs = window.dashjs;
    if (!dashjs) throw new Error("dash.js failed to initialise");
    this.events = dashjs.MediaPlayer.events;
    this.player = dashjs.MediaPlayer().create();
    const streaming = {
      abr: { autoSwitchBitrate: { video: true, audio: true } },
    };
    if (this.lowLatency) {
      // dash.js picks its own low-latency fetch mode from the MPD
      // (availabilityTimeComplete=false); the app only sets the live delay
      // and turns on catch-up (playback-rate nudging toward the target).
      streaming.liveCatchup = { enabled: true };
      if (this.targetLatencyS !== null) {
        streaming.delay = { liveDelay: this.targetLatencyS };
      }
    }
    const debug = new URLSearchParams(location.search).get("debug") === "1";
    // ?debug=1 on the page turns on dash.js's own log (console) for diagnostics.
    this.player.updateSettings({ streaming, debug: { logLevel: debug ? 5 : 1 } });
    this.player.on(this.events.ERROR, (e) => {
      this.log.add(`dash.js error ${describeDashError(e)}`, true);
    });
    this.player.on(this.events.PLAYBACK_ERROR, (e) => {
      this.log.add(`dash.js playback error ${describeDashError(e)}`, true);
    });
    this.player.initialize(this.video, this.src, true);
  }

  videoReps() {
    try {
      return this.player?.getRepresentationsByType("video") ?? [];
    } catch {
      return []; // before the stream is initialised dash.js throws
    }
  }
  levels() {
    return this.videoReps().map((r) => ({
      height: r.height ?? 0,
      width: r.width ?? 0,
      bitrate: r.bandwidth ?? 0,
    }));
  }
  currentLevel() {
    let cur = null;
    try {
      cur = this.player?.getCurrentRepresentationForType("video") ?? null;
    } catch {
      cur = null;
    }
    if (!cur) return -1;
    return this.videoReps().findIndex((r) => r.id === cur.id);
  }
  autoLevel() {
    return this.auto;
  }
  isLive() {
    try {
      return Boolean(this.player?.isDynamic());
    } catch {
      return false;
    }
  }
  latencyS() {
    if (!this.isLive()) return null;
    return this.player.getCurrentLiveLatency();
  }
  wallClockLatencyS() {
    // timeAsUTC(): the playhead as seconds since 1970 (AST + period start + currentTime)
    const utc = this.player?.timeAsUTC();
    return Number.isFinite(utc) && utc > 0 ? Date.now() / 1000 - utc : null;
  }
  setLevel(i) {
    if (!this.player) return;
    this.auto = i < 0;
    this.player.updateSettings({
      streaming: { abr: { autoSwitchBitrate: { video: this.auto } } },
    });
    if (!this.auto) {
      const rep = this.videoReps()[i];
      if (rep) this.player.setRepresentationForTypeById("video", rep.id, true);
    }
  }
  destroy() {
    super.destroy();
    try {
      this.player?.destroy();
    } catch {
      // destroying a half-initialised player can throw; nothing to clean then
    }
  }
}

// ---------------------------------------------------------------- Shaka

/** One video rendition, whatever list it comes from: its height and video bandwidth. */
function renditionKey(height, bandwidth) {
  return `${height ?? 0}/${bandwidth ?? 0}`;
}
/** renditionKey of a Shaka video or variant track. */
function trackKey(t) {
  return renditionKey(t.height, t.videoBandwidth ?? t.bandwidth);
}
function byHeightThenBandwidth(a, b) {
  return (a.height ?? 0) - (b.height ?? 0) || (a.bandwidth ?? 0) - (b.bandwidth ?? 0);
}

class ShakaAdapter extends BaseAdapter {
  constructor(engine, video, src, lowLatency, protocol) {
    super(engine, video, src, lowLatency);
    this.protocol = protocol;
  }

  async start() {
    await loadScript(VENDOR.shaka);
    const shaka = window.shaka;
    if (!shaka) throw new Error("Shaka failed to initialise");
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) throw new Error("Shaka: browser not supported");
    this.shaka = shaka;
    this.player = new shaka.Player();
    this.player.addEventListener("error", (ev) => {
      const err = ev.detail;
      // Shaka fires "error" before its streaming failureCallback runs; on a live stream that
      // callback downgrades HTTP errors (1001-1003) to RECOVERABLE and retries streaming itself
      // (e.g. a preload-hinted part that never appears because the encoder restarted). Read the
      // severity after that decision, so only errors Shaka really gives up on count as fatal.
      setTimeout(() => {
        const fatal = err?.severity === shaka.util.Error.Severity.CRITICAL;
        // a script error inside Shaka (no shaka.util.Error code) is worth its message
        const what =
          err?.code !== undefined
            ? `shaka error ${err.code} (category ${err?.category ?? "?"})`
            : `shaka error: ${describeError(err)}`;
        this.log.add(fatal ? what : `${what}, recoverable: Shaka retries`, fatal);
      }, 0);
    });
    const streaming = { lowLatencyMode: this.lowLatency, preferNativeHls: false };
    if (this.lowLatency && this.protocol === "hls") {
      // LL-HLS carries no ServiceDescription, so Shaka's catch-up is off and it kept whatever
      // latency it started with (~2.7 s). Its latency here is measured from its seek range end,
      // which is already PART-HOLD-BACK behind the edge: aim just behind that. (For DASH the MPD's
      // ServiceDescription drives the same catch-up; enabling liveSync would override it.)
      streaming.liveSync = { enabled: true, ...SHAKA_LL_HLS_LIVE_SYNC };
    }
    const config = {
      abr: { enabled: true },
      // Never hand HLS to the browser's native player (Safari/Chromium
      // would then bypass MSE and every stat we report).
      streaming,
    };
    if (this.lowLatency && this.protocol === "dash") {
      config.manifest = { dash: SHAKA_LL_DASH_MANIFEST };
      streaming.liveSync = { ...SHAKA_LL_DASH_LIVE_SYNC };
    }
    this.player.configure(config);
    await this.player.attach(this.video);
    const mime = { hls: "application/x-mpegurl", dash: "application/dash+xml" }[this.protocol];
    try {
      await this.player.load(this.src, null, mime ?? null);
    } catch (err) {
      this.log.add(`shaka load failed: ${err?.code ?? describeError(err)}`, true);
    }
  }

  // Shaka's playable video tracks (one per video rendition, whatever the audio), low → high.
  videoTracks() {
    return this.player ? [...this.player.getVideoTracks()].sort(byHeightThenBandwidth) : [];
  }
  // Every video rendition the manifest lists, low → high. Shaka's track lists leave out the
  // renditions its ABR has banned for a while (30 s when the browser drops ≥15 % of frames, common
  // on a loaded machine); the quality menu still lists them, flagged, and picking one lifts the ban.
  renditions() {
    const variants = this.player?.getManifest()?.variants;
    if (!variants) return []; // nothing loaded yet
    const nowS = Date.now() / 1000;
    const byKey = new Map();
    for (const v of variants) {
      if (!v.video) continue;
      const bandwidth = v.video.bandwidth || v.bandwidth || 0;
      const key = renditionKey(v.video.height, bandwidth);
      const banned = (v.disabledUntilTime ?? 0) > nowS;
      const r = byKey.get(key);
      if (r) {
        r.banned = r.banned && banned;
        r.variants.push(v);
      } else {
        byKey.set(key, {
          key,
          height: v.video.height ?? 0,
          width: v.video.width ?? 0,
          bandwidth,
          banned,
          variants: [v],
        });
      }
    }
    return [...byKey.values()].sort(byHeightThenBandwidth);
  }
  levels() {
    return this.renditions().map((r) => ({
      height: r.height,
      width: r.width,
      bitrate: r.bandwidth,
      banned: r.banned,
    }));
  }
  currentLevel() {
    const active = this.videoTracks().find((t) => t.active);
    if (!active) return -1;
    const key = trackKey(active);
    return this.renditions().findIndex((r) => r.key === key);
  }
  autoLevel() {
    return this.player ? this.player.getConfiguration().abr.enabled : true;
  }
  isLive() {
    return Boolean(this.player?.isLive());
  }
  playerLatencyS() {
    if (!this.isLive()) return null;
    const stats = this.player.getStats();
    return Number.isFinite(stats.liveLatency) && stats.liveLatency > 0 ? stats.liveLatency : null;
  }
  latencyS() {
    // Fallback: wall clock minus the wall-clock time of the playhead
    // (needs program-date-time / availabilityStartTime in the manifest).
    return this.playerLatencyS() ?? (this.isLive() ? this.wallClockLatencyS() : null);
  }
  wallClockLatencyS() {
    const when = this.player?.getPlayheadTimeAsDate();
    return when ? (Date.now() - when.getTime()) / 1000 : null;
  }
  setLevel(i) {
    if (!this.player) return;
    if (i < 0) {
      this.player.configure({ abr: { enabled: true } });
      return;
    }
    const rendition = this.renditions()[i];
    if (!rendition) return;
    // ABR off first: Shaka only bans renditions while ABR runs, so the choice sticks.
    this.player.configure({ abr: { enabled: false } });
    for (const v of rendition.variants) v.disabledUntilTime = 0;
    const track = this.videoTracks().find((t) => trackKey(t) === rendition.key);
    if (!track) return;
    this.player.selectVideoTrack(track, /* clearBuffer= */ true);
  }
  destroy() {
    super.destroy();
    this.player?.destroy();
  }
}

function guessProtocol(src) {
  const path = new URL(src, location.href).pathname.toLowerCase();
  return path.endsWith(".mpd") ? "dash" : "hls";
}

/**
 * Create and start a player on `video`. Never throws for playback problems:
 * they end up in state().errors / state().fatal so pages and tests can show
 * them. Throws only for an unknown engine.
 */
export async function createPlayer({
  engine,
  video,
  src,
  lowLatency = false,
  targetLatencyS = DEFAULT_LL_TARGET_LATENCY_S,
}) {
  if (!(engine in ENGINES)) throw new Error(`unknown engine ${engine}`);
  // Muted autoplay is the only kind browsers allow without a user gesture.
  video.muted = true;
  // dash.js autoplays itself (initialize(..., true)) and must see the element's "play" event
  // after it has attached: its ManifestUpdater only starts refreshing a dynamic MPD on
  // PLAYBACK_STARTED, so a play() fired earlier (autoplay attribute or our own call) leaves it
  // playing a manifest that never updates and stalling at its last segment.
  const selfStarting = engine === "dashjs";
  video.autoplay = !selfStarting;
  video.playsInline = true;
  const absSrc = new URL(src, location.href).href;
  let adapter;
  if (engine === "hlsjs") {
    adapter = new HlsJsAdapter(engine, video, absSrc, lowLatency);
  } else if (engine === "dashjs") {
    adapter = new DashJsAdapter(engine, video, absSrc, lowLatency, targetLatencyS);
  } else {
    const protocol = ENGINES[engine].protocol === "auto" ? guessProtocol(absSrc) : ENGINES[engine].protocol;
    adapter = new ShakaAdapter(engine, video, absSrc, lowLatency, protocol);
  }
  try {
    await adapter.start();
  } catch (err) {
    adapter.log.add(`${engine} start failed: ${describeError(err)}`, true);
  }
  if (selfStarting) return adapter;
  video.play().catch((err) => {
    // Autoplay can be refused before data arrives; the engines retry play()
    // themselves once media is attached, so this is informational only.
    if (err?.name !== "AbortError") adapter.log.add(`play(): ${describeError(err)}`, false);
  });
  return adapter;
}

/**
 * Publish the test hooks the e2e harness reads (window.__player_state,
 * window.__set_level, and window.__engine: the hls.js / dash.js / Shaka object itself, for
 * tests and for poking at a player from the console). getPlayer returns the current adapter or null.
 */
export function exposeTestHooks(getPlayer, pageErrors) {
  window.__player_state = () => {
    const p = getPlayer();
    if (!p) {
      return {
        engine: null,
        currentTime: 0,
        readyState: 0,
        paused: true,
        videoWidth: 0,
        videoHeight: 0,
        droppedFrames: 0,
        decodedFrames: 0,
        bufferAheadS: 0,
        latencyS: null,
        playerLatencyS: null,
        pdtLatencyS: null,
        measuredLatencyS: null,
        clockOffsetS: null,
        levels: [],
        currentLevel: -1,
        errors: [...pageErrors],
        fatal: false,
      };
    }
    const s = p.state();
    s.errors = [...pageErrors, ...s.errors];
    return s;
  };
  window.__engine = () => {
    const p = getPlayer();
    return p ? (p.hls ?? p.player ?? null) : null;
  };
  window.__set_level = (i) => {
    const p = getPlayer();
    if (!p) return false;
    p.setLevel(Number(i));
    return true;
  };
}

/** Collect uncaught page errors so they show up in __player_state().errors. */
export function collectPageErrors() {
  const errors = [];
  const push = (msg) => {
    errors.push(String(msg).slice(0, 500));
    if (errors.length > MAX_ERRORS) errors.shift();
  };
  window.addEventListener("error", (ev) => push(`page: ${ev.message}`));
  window.addEventListener("unhandledrejection", (ev) => push(`page: ${describeError(ev.reason)}`));
  return errors;
}

export function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return "–";
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mb/s` : `${Math.round(bps / 1e3)} kb/s`;
}

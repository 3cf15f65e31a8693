// What the dashboard charts: one sample per stream per poll, the last HISTORY_S seconds. Pure
// functions of plain data (no DOM, no clock of their own) so they are easy to reason about.

export const HISTORY_S = 300; // "the last minutes": five of them

/**
 * One sample of a stream from its GET /streams view. nowS is the server's clock (unix seconds)
 * so the segment age does not depend on this computer's clock. player is
 * window.__player_state() when this page is playing this stream, else null.
 */
export function sampleOf(view, nowS, player) {
  const lastSegmentS = view.last_segment_at ? Date.parse(view.last_segment_at) / 1000 : NaN;
  return {
    t: nowS,
    speed: finiteOrNull(view.encoder?.speed),
    bitrateBps: { ...(view.bitrate_out_bps ?? {}) },
    segmentAgeS: Number.isFinite(lastSegmentS) ? Math.max(0, nowS - lastSegmentS) : null,
    viewers: finiteOrNull(view.viewers),
    measuredLatencyS: finiteOrNull(player?.measuredLatencyS),
    playerLatencyS: finiteOrNull(player?.latencyS),
  };
}

function finiteOrNull(x) {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/** Append a sample and drop what is older than HISTORY_S (returns a new array). */
export function appendSample(samples, sample, historyS = HISTORY_S) {
  return [...samples, sample].filter((s) => s.t >= sample.t - historyS);
}

/** uPlot data for the fixed series charts: {labels, data: [xs, ys...]}. */
export const CHARTS = Object.freeze({
  speed: {
    title: "Encoder speed (× realtime)",
    series: (samples) => ({ labels: ["speed"], data: [xs(samples), samples.map((s) => s.speed)] }),
  },
  bitrate: {
    title: "Bitrate out per rendition (kb/s)",
    series: (samples) => {
      const ids = [...new Set(samples.flatMap((s) => Object.keys(s.bitrateBps)))].sort();
      const data = ids.map((id) => samples.map((s) => kbps(s.bitrateBps[id])));
      return { labels: ids, data: [xs(samples), ...data] };
    },
  },
  segmentAge: {
    title: "Segment age (s)",
    series: (samples) => ({
      labels: ["age"],
      data: [xs(samples), samples.map((s) => roundOrNull(s.segmentAgeS))],
    }),
  },
  latency: {
    title: "Latency of this page's player (s)",
    series: (samples) => ({
      labels: ["measured", "player"],
      data: [
        xs(samples),
        samples.map((s) => roundOrNull(s.measuredLatencyS)),
        samples.map((s) => roundOrNull(s.playerLatencyS)),
      ],
    }),
  },
  viewers: {
    title: "Viewers",
    series: (samples) => ({ labels: ["viewers"], data: [xs(samples), samples.map((s) => s.viewers)] }),
  },
});

function xs(samples) {
  return samples.map((s) => s.t);
}

function kbps(bps) {
  return typeof bps === "number" ? Math.round(bps / 1000) : null;
}

function roundOrNull(x) {
  return x === null ? null : Math.round(x * 100) / 100;
}

/** How many points of a chart's data carry a value (what "the chart has points" means). */
export function pointCount(data) {
  return data.slice(1).reduce((n, ys) => n + ys.filter((y) => y !== null).length, 0);
}

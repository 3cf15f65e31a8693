// Small DOM helpers shared by the dashboard and the standalone player page.
import { formatBitrate } from "./players.js";

/** One line of human-readable player stats from a __player_state() dict. */
export function renderStats(s) {
  const level = s.currentLevel >= 0 ? s.levels[s.currentLevel] : null;
  const rendition = level
    ? `${level.height}p @ ${formatBitrate(level.bitrate)}`
    : s.videoHeight
      ? `${s.videoHeight}p`
      : "–";
  const parts = [
    `${s.engine ?? "no engine"}`,
    `rendition ${rendition}${s.autoLevel === false ? " (manual)" : " (auto)"}`,
    `buffer ${s.bufferAheadS.toFixed(1)} s`,
    `latency ${s.latencyS === null ? "–" : `${s.latencyS.toFixed(2)} s`}`,
    // now minus the on-screen frame's program-date-time / DASH wall-clock time: the same for
    // every player, and (the timeline is anchored at capture) what a viewer sees
    `behind live ${s.pdtLatencyS == null ? "–" : `${s.pdtLatencyS.toFixed(2)} s`}`,
    `t ${s.currentTime.toFixed(1)} s`,
    `frames ${s.decodedFrames} (${s.droppedFrames} dropped)`,
  ];
  if (s.playbackRate !== undefined && s.playbackRate !== 1) {
    parts.push(`rate ${s.playbackRate.toFixed(2)}×`);
  }
  if (s.errors.length) parts.push(`${s.errors.length} error(s)`);
  return parts.join(" · ");
}

/** Keep a <select> in sync with the player's level list (auto + each level). */
export function syncQualityOptions(select, s) {
  const wanted = [
    "auto",
    ...s.levels.map((l) => {
      const label = `${l.height}p · ${formatBitrate(l.bitrate)}`;
      return l.banned ? `${label} (paused by ABR)` : label;
    }),
  ];
  const have = [...select.options].map((o) => o.textContent);
  if (wanted.join("|") !== have.join("|")) {
    const keep = select.value;
    select.replaceChildren(
      ...wanted.map((text, i) => {
        const o = document.createElement("option");
        o.value = String(i - 1); // option 0 is auto (-1), then level indices
        o.textContent = text;
        return o;
      }),
    );
    select.value = [...select.options].some((o) => o.value === keep) ? keep : "-1";
  }
  // Reflect automatic mode only when the user has not picked a level.
  if (s.autoLevel !== false && document.activeElement !== select) select.value = "-1";
}

// The server's clock as seen from this page. HLS PROGRAM-DATE-TIME and DASH availability times
// are in the server's clock, so "now minus the time of the frame on screen" is only a latency
// once it is read on the server's clock: the viewer's computer may be seconds off.
//
// GET /time (both the API and the origin answer it, ISO 8601 with ms): the offset is the server's
// time minus the middle of the request's round trip; of a few samples the one with the shortest
// round trip wins (its error is at most half of it), resampled every minute.

const SAMPLES = 3;
const RESYNC_MS = 60_000;

export class ServerClock {
  constructor(timeUrl) {
    this.timeUrl = timeUrl;
    this.offsetS = null; // server time − local time, seconds; null until /time answers
    this.roundTripS = null;
    this.timer = null;
  }

  async sample() {
    const sentMs = Date.now();
    const resp = await fetch(this.timeUrl, { cache: "no-store" });
    if (!resp.ok) throw new Error(`GET ${this.timeUrl}: HTTP ${resp.status}`);
    const serverMs = Date.parse((await resp.text()).trim());
    const receivedMs = Date.now();
    if (!Number.isFinite(serverMs)) throw new Error(`GET ${this.timeUrl}: not a time`);
    return {
      offsetS: (serverMs - (sentMs + receivedMs) / 2) / 1000,
      roundTripS: (receivedMs - sentMs) / 1000,
    };
  }

  async sync() {
    let best = null;
    for (let i = 0; i < SAMPLES; i++) {
      try {
        const s = await this.sample();
        if (best === null || s.roundTripS < best.roundTripS) best = s;
      } catch {
        return; // no /time here (a static server, a CDN that does not forward it): stay unknown
      }
    }
    this.offsetS = best.offsetS;
    this.roundTripS = best.roundTripS;
  }

  start() {
    this.sync();
    this.timer = setInterval(() => this.sync(), RESYNC_MS);
    return this;
  }

  stop() {
    clearInterval(this.timer);
  }
}

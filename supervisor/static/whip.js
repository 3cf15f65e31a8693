// WHIP (RFC 9725) from this browser: getUserMedia → RTCPeerConnection (send-only, H.264 first)
// → POST the offer with the stream key → set the answer; DELETE the session URL to stop.
// The service's WHIP endpoint does not take trickled candidates (no PATCH), so the offer is
// sent once ICE gathering is complete (or after GATHER_TIMEOUT_MS with what was found).

const GATHER_TIMEOUT_MS = 2000;

/** codecs (RTCRtpCodecCapability[]) with H.264 first — packetization-mode=1 before others — then
 *  the rest in their order: the service needs H.264 (FFmpeg decodes it, no transcoding), but a
 *  browser without it still negotiates (and gets a clear 400 back). Pure: tested in node. */
export function preferH264(codecs) {
  const rank = (c) => {
    const mime = c.mimeType.toLowerCase();
    if (mime !== "video/h264") return 2;
    return /packetization-mode=1/.test(c.sdpFmtpLine ?? "") ? 0 : 1;
  };
  return codecs
    .map((codec, index) => ({ codec, index }))
    .sort((a, b) => rank(a.codec) - rank(b.codec) || a.index - b.index)
    .map(({ codec }) => codec);
}

/** Under a low bandwidth estimate (every call starts at ~300 kb/s) a browser scales the picture
 *  down and back up; each size change makes the service's ladder re-plan. Drop frames instead. */
async function keepResolution(sender) {
  try {
    const params = sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await sender.setParameters(params);
  } catch {
    // not supported here: the browser adapts the way it likes
  }
}

/** The WHIP endpoint of a stream, relative to the API base. */
export function whipUrl(apiBase, streamId) {
  return new URL(`streams/${encodeURIComponent(streamId)}/whip`, apiBase).href;
}

export class WhipError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  describe() {
    return `${this.status ? `${this.status} ` : ""}${this.code}: ${this.message}`;
  }
}

function iceGatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

async function errorOf(resp, what) {
  let code = "http_error";
  let message = `${what}: HTTP ${resp.status}`;
  try {
    const data = JSON.parse(await resp.text());
    code = data?.error?.code ?? code;
    message = data?.error?.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  return new WhipError(resp.status, code, message);
}

/** One publishing session. start() resolves once the service answered (201). */
export class WhipPublisher {
  constructor({ endpoint, streamKey, media }) {
    this.endpoint = endpoint;
    this.streamKey = streamKey;
    this.media = media; // a MediaStream (camera + microphone)
    this.pc = null;
    this.location = null; // the session URL (DELETE ends it)
    this.onstatechange = () => {};
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
    this.pc = pc;
    pc.addEventListener("connectionstatechange", () => this.onstatechange(pc.connectionState));
    for (const track of this.media.getTracks()) {
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [this.media] });
      if (track.kind === "video" && transceiver.setCodecPreferences) {
        const caps = RTCRtpSender.getCapabilities("video");
        if (caps) transceiver.setCodecPreferences(preferH264(caps.codecs));
      }
      if (track.kind === "video") await keepResolution(transceiver.sender);
    }
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    let resp;
    try {
      resp = await fetch(this.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${this.streamKey}` },
        body: pc.localDescription.sdp,
      });
    } catch (err) {
      this.close();
      throw new WhipError(0, "unreachable", `WHIP endpoint unreachable (${err.message})`);
    }
    if (resp.status !== 201) {
      const error = await errorOf(resp, "publish");
      this.close();
      throw error;
    }
    this.location = new URL(resp.headers.get("Location"), this.endpoint).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
  }

  /** DELETE the session (the service's stream goes back to waiting) and release everything. */
  async stop() {
    const location = this.location;
    this.location = null;
    this.close();
    if (location) {
      try {
        await fetch(location, {
          method: "DELETE",
          headers: { Authorization: `Bearer ${this.streamKey}` },
        });
      } catch {
        // the service is gone: nothing left to end
      }
    }
  }

  close() {
    if (this.pc) this.pc.close();
    this.pc = null;
  }
}

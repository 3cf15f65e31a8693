// "Go live from this browser": the camera and microphone of this tab published to a WHIP push
// stream (the stream id and its key, shown once when the stream was created).
import { WhipPublisher, whipUrl } from "./whip.js";

const CAPTURE = {
  video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
  audio: true,
};

export function wireGoLive({ form, preview, statusNode, apiBase, errors }) {
  let publisher = null;
  let media = null;
  const button = form.querySelector("button[type=submit]");
  const setStatus = (text) => {
    statusNode.textContent = text;
    form.dataset.state = text;
  };

  async function stop() {
    const running = publisher;
    publisher = null;
    if (running) await running.stop();
    if (media) for (const track of media.getTracks()) track.stop();
    media = null;
    preview.srcObject = null;
    button.textContent = "Go live from this browser";
    setStatus("off");
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (publisher) {
      await stop();
      return;
    }
    const streamId = form.elements.stream_id.value.trim();
    const streamKey = form.elements.stream_key.value.trim();
    button.disabled = true;
    try {
      setStatus("asking for the camera…");
      media = await navigator.mediaDevices.getUserMedia(CAPTURE);
      preview.srcObject = media;
      setStatus("connecting…");
      publisher = new WhipPublisher({ endpoint: whipUrl(apiBase, streamId), streamKey, media });
      publisher.onstatechange = (state) => {
        if (publisher) setStatus(state === "connected" ? "live" : state);
      };
      await publisher.start();
      button.textContent = "Stop going live";
    } catch (err) {
      errors.show(`go live ${streamId || "(no id)"}`, err);
      publisher = null;
      await stop();
      setStatus("failed");
    } finally {
      button.disabled = false;
    }
  });
  window.__golive_state = () => ({
    status: statusNode.textContent,
    session: publisher?.location ?? null,
  });
  return { stop };
}

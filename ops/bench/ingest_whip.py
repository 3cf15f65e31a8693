"""WHIP ingest cost and A/V sync: the aiortc peer child's CPU per ingested media-second.

    python -m ops.bench.ingest_whip              # 30 s of 720p30 at 4 Mb/s + Opus, 3 runs
    python -m ops.bench.ingest_whip --tiny       # 4 s of 426x240 (the smoke test)

FFmpeg's own ``whip`` muxer publishes a live test pattern + tone (``-re``, x264 ultrafast, no
B-frames, ``-g`` = 1 s) to the real WHIP routes (in this process, Hypercorn on 127.0.0.1); the
session's MPEG-TS goes to a file. Measured, per run:

* the peer child's CPU seconds (psutil, user + system) from its first media byte until just
  before it exits, divided by the media seconds it delivered: the whole steady-state Python side
  of WHIP (ICE consent, DTLS/SRTP, jitter buffer, RTP → access units, PyAV muxing). The goal is
  ≤ 10 % of one core at 720p30 4 Mb/s. Its start-up CPU (imports, certificate, ICE, DTLS) is
  printed apart: it is paid once per publish, not per media second.
* publisher start → answer, and publisher start → first MPEG-TS byte out of the child (the
  WHIP share of "publish → first part servable"; the ladder's share is ``ops.bench.first_part``'s).
* A/V sync: lavfi starts video and audio together at t = 0, so the first audio PTS minus the
  first video PTS in what we wrote is our sync error (RTCP SR based: FFmpeg sends an SR with its
  first packets).

Then, through the whole service (``python -m supervisor.cli serve``, a WHIP push stream, the
default x264 preset): publisher process start → first LL-HLS part servable on the origin (and
first full segment), the issue's "publish → first part" (goal ≤ 1.5 s). It includes the
publisher's own start-up (FFmpeg, x264), the answer, ICE + DTLS, FFmpeg probing our MPEG-TS and
the first part of the ladder.

Numbers are noisy on a shared 2-core machine: each is printed per run, with the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import psutil
import trio

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.common import (
    header,
    http,
    running_service,
    stop_process,
    wait_first_part_and_segment,
)
from supervisor.ingest.whip import PublisherBusyError
from tests.integration.whip_helpers import serve_whip, whip_publisher_argv

KEY = "bench.whip-bench-key-0123456789abcdef"
STREAM = "bench"


@dataclass
class FileFeed:
    """The stream input stand-in: the session's MPEG-TS goes to a file; first byte time kept."""

    path: Path
    first_byte_at: float | None = None
    bytes_in: int = 0
    runs: int = 1
    ended: trio.Event = field(default_factory=trio.Event)

    async def send(self, data: bytes) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        self.bytes_in += len(data)
        with self.path.open("ab") as out:
            out.write(data)

    def note_codec(self, codec: str) -> None:
        pass

    def end(self) -> None:
        self.ended.set()


@dataclass
class FileTarget:
    path: Path
    feed: FileFeed | None = None

    def check_key(self, candidate: str) -> bool:
        return candidate == KEY

    @property
    def busy(self) -> bool:
        return self.feed is not None and not self.feed.ended.is_set()

    def attach_publisher(self, address: str) -> FileFeed:
        if self.busy:
            raise PublisherBusyError("busy")
        self.feed = FileFeed(self.path)
        return self.feed


@dataclass
class Run:
    media_s: float
    startup_cpu_s: float  # the child's CPU until its first media byte
    peer_cpu_s: float  # the child's CPU from its first media byte to its exit
    answer_s: float
    first_byte_s: float
    bitrate_bps: float
    av_offset_ms: float
    sync_mode: str | None


def first_pts_s(path: Path) -> tuple[float, float]:
    """(first video PTS, first audio PTS) in seconds, and the media duration from video."""
    with av.open(str(path)) as container:
        firsts: dict[str, float] = {}
        last_video = 0.0
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            kind = packet.stream.type
            seconds = float(packet.pts * packet.time_base)
            firsts.setdefault(kind, seconds)
            if kind == "video":
                last_video = seconds
    return firsts.get("audio", float("nan")) - firsts["video"], last_video - firsts["video"]


async def one_run(seconds: float, size: str, bitrate: str, workdir: Path, index: int) -> Run:
    ts_path = workdir / f"run{index}.ts"
    target = FileTarget(ts_path)

    async with serve_whip({STREAM: target}) as (base, ingest):
        url = f"{base}/streams/{STREAM}/whip"
        argv = whip_publisher_argv(url, KEY, size=size, video_bitrate=bitrate, seconds=seconds)
        started = time.monotonic()
        publisher = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while not ingest.session_ids(STREAM):  # noqa: ASYNC110 - polling a registry
                await trio.sleep(0.005)
            answered = time.monotonic()
            (session_id,) = ingest.session_ids(STREAM)
            status = ingest.session_status(session_id)
            assert status is not None
            assert status.pid is not None
            peer = psutil.Process(status.pid)
            cpu_s = 0.0
            startup_cpu_s: float | None = None
            while publisher.poll() is None:
                cpu_s = sum(peer.cpu_times()[:2])
                if startup_cpu_s is None and target.feed and target.feed.first_byte_at:
                    startup_cpu_s = cpu_s  # imports, certificate, ICE, DTLS: once per session
                await trio.sleep(0.05)
            sync_mode = status.stats.sync_mode if status.stats else None
            # the publisher DELETEs on exit; take the child's last reading before it goes
            while ingest.session_ids(STREAM):
                try:
                    cpu_s = sum(peer.cpu_times()[:2])
                except psutil.Error:
                    break
                await trio.sleep(0.02)
        finally:
            if publisher.poll() is None:
                publisher.kill()
            await publisher.wait()
    feed = target.feed
    assert feed is not None
    assert feed.first_byte_at is not None
    offset_s, media_s = first_pts_s(ts_path)
    assert startup_cpu_s is not None
    return Run(
        media_s=media_s,
        startup_cpu_s=startup_cpu_s,
        peer_cpu_s=cpu_s - startup_cpu_s,
        answer_s=answered - started,
        first_byte_s=feed.first_byte_at - started,
        bitrate_bps=feed.bytes_in * 8 / max(media_s, 1e-9),
        av_offset_ms=offset_s * 1000,
        sync_mode=sync_mode,
    )


def publish_event(log_path: Path, stream_id: str) -> tuple[float, float] | None:
    """(received_unix_s, answer_ms) of the stream's WHIP publish, from the service's JSON log."""
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "whip_session_started" and event.get("stream_id") == stream_id:
            return float(event["received_unix_s"]), float(event["answer_ms"])
    return None


def first_parts(runs: int, size: str, bitrate: str, qualities: list[str]) -> list[float]:
    """Publisher start → first part servable, through the service, ``runs`` times."""
    firsts: list[float] = []
    with running_service(
        WEBRTC_HOST_ADDRESSES="127.0.0.1", SEGMENT_DURATION="2", LOG_LEVEL="info"
    ) as service:
        for index in range(runs):
            sid = f"whip{index}"
            status, body, _ = http(
                "POST",
                f"{service.api}/streams",
                {"stream_id": sid, "ingest": "whip", "qualities": qualities, "low_latency": True},
            )
            if status != 201:
                raise RuntimeError(f"POST /streams → {status}: {body[:300]!r}")
            ingest = json.loads(body)["ingest"]
            time.sleep(1.0)  # a publisher comes a moment after the stream exists (warm spare)
            argv = whip_publisher_argv(
                ingest["publish_url"], ingest["stream_key"], size=size, video_bitrate=bitrate
            )
            started, started_unix_s = time.monotonic(), time.time()
            publisher = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
            )
            try:
                base = f"{service.origin}/{sid}/{qualities[0]}"
                first_part, first_segment = wait_first_part_and_segment(base, started)
            finally:
                stop_process(publisher)
            service.delete(sid)
            published = publish_event(service.log_path, sid)
            if first_part is None or first_segment is None or published is None:
                print(f"{sid}: timed out (part {first_part}, segment {first_segment})")
                continue
            # publish = the WHIP POST reaching the service (the publisher's own start-up before
            # it, FFmpeg + x264, is not ours); wall clocks of this machine on both sides
            received_unix_s, answer_ms = published
            to_part_s = started_unix_s + first_part - received_unix_s
            firsts.append(to_part_s)
            print(
                f"{sid}: POST → answer {answer_ms:.0f} ms, POST → first part"
                f" {to_part_s * 1000:.0f} ms (publisher start → first part"
                f" {first_part * 1000:.0f} ms, → first segment {first_segment * 1000:.0f} ms)",
                flush=True,
            )
    return firsts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--bitrate", default="4M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--qualities", default="720p,480p,360p,240p")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    if args.tiny:
        args.seconds, args.size, args.bitrate, args.runs = 4, "426x240", "500k", 1
        args.qualities = "240p"
    header(
        f"WHIP peer: {args.runs} × {args.seconds:g} s of {args.size} @ {args.bitrate} + Opus "
        "from FFmpeg's whip muxer"
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="whip-bench-") as tmp:
        for index in range(args.runs):
            run = trio.run(one_run, args.seconds, args.size, args.bitrate, Path(tmp), index)
            runs.append(run)
            print(
                f"run {index + 1}: media {run.media_s:.1f} s, in {run.bitrate_bps / 1e6:.2f} Mb/s,"
                f" peer CPU {run.peer_cpu_s:.2f} s = {100 * run.peer_cpu_s / run.media_s:.1f} %"
                f" of a core (+ {run.startup_cpu_s:.2f} s to start), publisher start→answer"
                f" {run.answer_s * 1000:.0f} ms, publisher start→first"
                f" TS byte {run.first_byte_s * 1000:.0f} ms, A/V offset {run.av_offset_ms:+.1f} ms"
                f" ({run.sync_mode})",
                flush=True,
            )
    share = [100 * r.peer_cpu_s / r.media_s for r in runs]
    print(
        f"median: peer CPU {statistics.median(share):.1f} % of one core per media second"
        f" (goal ≤ 10 %), A/V offset {statistics.median(r.av_offset_ms for r in runs):+.1f} ms,"
        f" first TS byte {statistics.median(r.first_byte_s for r in runs) * 1000:.0f} ms"
    )
    qualities = args.qualities.split(",")
    header(f"WHIP POST → first part servable: {args.size} → {qualities}, 2 s segments")
    firsts = first_parts(args.runs, args.size, args.bitrate, qualities)
    if firsts:
        print(
            f"median over {len(firsts)}: POST → first part"
            f" {statistics.median(firsts) * 1000:.0f} ms (goal ≤ 1.5 s)"
        )


if __name__ == "__main__":
    main()

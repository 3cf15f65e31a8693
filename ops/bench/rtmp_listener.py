"""The RTMP listener alone, in-process: its CPU per ingested media second and how late each video
tag reaches the pipe, for comparing listener changes (the whole-service figure is ops/bench/ingest).

    python -m ops.bench.rtmp_listener              # 720p30 clip, 10 s window
    python -m ops.bench.rtmp_listener --profile    # + cProfile (CPU time) of the window

One FFmpeg publishes a clip in real time (``-re -c copy -f flv``) to ``RtmpServer`` running in
this process; the stream's feed is drained here (FLV tags parsed back), as the actor's pump
would write it to FFmpeg. CPU = ``time.process_time()`` of this process over the window / wall
seconds (the media is real time; the publishing FFmpeg is another process, not counted).
Delay = each video tag's arrival time minus its media time, relative to the earliest: what the
listener adds on top of the best case (p50/p95/max, ms). Noisy on a shared machine: compare
runs made one after the other, and report the load average printed with them.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from actors.ingest.publisher import IngestProtocol, PublisherFeed, PushInput, new_stream_key
from ops.bench.common import FFMPEG, header, parse_size
from ops.bench.ingest import make_clip
from supervisor.ingest.rtmp_server import RtmpServer

FLV_HEADER_BYTES = 13  # the file header and the first PreviousTagSize
FLV_TAG_HEADER_BYTES = 11
FLV_VIDEO = 9
WARM_UP_MS = 3000


class OneStream:
    """The listener's directory: one push stream."""

    def __init__(self, push: PushInput) -> None:
        self.push = push

    def push_input(self, stream_id: str, protocol: IngestProtocol) -> PushInput | None:
        return self.push if stream_id == self.push.stream_id else None


def video_tag_times(data: bytearray, arrived_s: float, offsets_s: list[float]) -> None:
    """Consume the complete FLV tags at the start of ``data``; note arrival − media time of each
    video tag past the warm-up."""
    while len(data) >= FLV_TAG_HEADER_BYTES:
        size = int.from_bytes(data[1:4], "big")
        end = FLV_TAG_HEADER_BYTES + size + 4
        if len(data) < end:
            return
        timestamp_ms = int.from_bytes(data[4:7], "big") | (data[7] << 24)
        if data[0] == FLV_VIDEO and timestamp_ms > WARM_UP_MS:
            offsets_s.append(arrived_s - timestamp_ms / 1000)
        del data[:end]


async def drain(feed: PublisherFeed, offsets_s: list[float]) -> None:
    pending = bytearray()
    header_left = FLV_HEADER_BYTES
    while (chunk := await feed.receive()) is not None:
        arrived_s = time.monotonic()
        pending += chunk
        if header_left:
            skipped = min(header_left, len(pending))
            del pending[:skipped]
            header_left -= skipped
        video_tag_times(pending, arrived_s, offsets_s)


async def measure(clip: Path, window_s: float, profile: bool) -> None:
    key = new_stream_key("bench")
    push = PushInput("bench", IngestProtocol.RTMP, key)
    offsets_s: list[float] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(RtmpServer(OneStream(push)).serve, "127.0.0.1", 0)

        async def consume() -> None:
            await drain(await push.next_publisher(), offsets_s)

        nursery.start_soon(consume)
        publisher = await trio.lowlevel.open_process(
            [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", str(clip),
             "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{port}/live/{key}"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await trio.sleep(WARM_UP_MS / 1000)
            bytes_before = push.bytes_total
            profiler = cProfile.Profile(time.process_time) if profile else None
            cpu_before, wall_before = time.process_time(), time.monotonic()
            if profiler is not None:
                profiler.enable()
            await trio.sleep(window_s)
            if profiler is not None:
                profiler.disable()
            cpu_s, wall_s = time.process_time() - cpu_before, time.monotonic() - wall_before
            mbps = (push.bytes_total - bytes_before) * 8 / wall_s / 1e6
        finally:
            publisher.kill()
            with trio.CancelScope(shield=True):
                await publisher.wait()
        nursery.cancel_scope.cancel()
    delays_ms = sorted((offset - min(offsets_s)) * 1000 for offset in offsets_s)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"listener: {cpu_s / wall_s:.4f} CPU-s per media second at {mbps:.2f} Mb/s in; "
        f"video tag delay over the best p50 {delays_ms[len(delays_ms) // 2]:.1f} ms, "
        f"p95 {delays_ms[int(len(delays_ms) * 0.95)]:.1f} ms, max {delays_ms[-1]:.1f} ms "
        f"({len(delays_ms)} tags); load average {load}",
        flush=True,
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--window", type=float, default=10.0, help="measured window, seconds")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    width, height = parse_size(args.size)
    header(f"rtmp listener: {args.size} clip published in real time, {args.window:g} s window")
    with tempfile.TemporaryDirectory(prefix="hlsbench-rtmp-") as scratch:
        clip = Path(scratch) / "clip.flv"
        make_clip(clip, width, height, args.window + WARM_UP_MS / 1000 + 5)
        trio.run(measure, clip, args.window, args.profile)


if __name__ == "__main__":
    main()

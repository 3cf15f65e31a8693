"""``python -m actors.ingest.whip_peer --control-fd N [...]``: one WHIP session, asyncio + aiortc.

stdin: unused. stdout: MPEG-TS (undecoded H.264 + Opus). stderr: logs. The control socket
(``--control-fd``, a socketpair end the parent passed) carries the JSON lines of ``control``.
The process exits when the session ends: the publisher leaves (DTLS/ICE closed, RTCP BYE), the
parent says ``stop`` or closes its end, or ICE does not connect in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc import codecs as aiortc_codecs
from aiortc.mediastreams import MediaStreamError

from actors.ingest.whip_peer import control, dtls_retry, passthrough
from actors.ingest.whip_peer.muxer import TsMuxer, contains_idr
from actors.ingest.whip_peer.ports import parse_port_range, port_candidates
from actors.ingest.whip_peer.timing import MEDIA_TIMEOUT_S, AvSync, keyframe_due, media_stopped
from actors.ingest.whip_sdp import advertise_public_ip

log = logging.getLogger("whip_peer")
ICE_CONNECT_TIMEOUT_S = 15.0
STATS_INTERVAL_S = 1.0
# FFmpeg not reading for this much buffered media means it is gone or wedged: end the session
MAX_BUFFERED_MEDIA_BYTES = 32 * 1024 * 1024
CLOCK_RATES_HZ = {"video": 90_000, "audio": 48_000}


class MediaWriter:
    """Writes media to a fd from a thread, so a slow reader never blocks the event loop (ICE
    consent and DTLS keep running); gives up past MAX_BUFFERED_MEDIA_BYTES."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._buffered = 0
        self._lock = threading.Lock()
        self.bytes_written = 0
        self.failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="media-writer", daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._buffered += len(chunk)
            if self._buffered > MAX_BUFFERED_MEDIA_BYTES:
                self.failed.set()
        self._queue.put(chunk)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            with self._lock:
                self._buffered -= len(chunk)
            if self.failed.is_set() and self._buffered > MAX_BUFFERED_MEDIA_BYTES:
                continue
            try:
                view = memoryview(chunk)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                    self.bytes_written += written
            except OSError:  # EPIPE: the reader is gone
                self.failed.set()
                return

    def close(self, timeout_s: float = 2.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m actors.ingest.whip_peer")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument(
        "--host-address",
        action="append",
        default=[],
        help="local address for ICE host candidates (repeatable; default: every interface "
        "but loopback, aioice's choice)",
    )
    parser.add_argument("--udp-ports", default="", help="e.g. 40000-40100 (default: any)")
    parser.add_argument("--public-ip", default="", help="advertise this address (1:1 NAT)")
    parser.add_argument("--sr-wait-s", type=float, default=1.0)
    return parser.parse_args(argv)


def restrict_udp_ports(loop: asyncio.AbstractEventLoop, ports: range) -> None:
    """aioice binds each host candidate to port 0; bind them inside ``ports`` instead."""
    original = loop.create_datagram_endpoint

    async def create_datagram_endpoint(
        protocol_factory: Callable[[], Any], local_addr: tuple[str, int] | None = None, **kw: Any
    ) -> Any:
        if local_addr is None or local_addr[1] != 0:
            return await original(protocol_factory, local_addr=local_addr, **kw)
        last_error: OSError | None = None
        for port in port_candidates(ports):
            try:
                return await original(protocol_factory, local_addr=(local_addr[0], port), **kw)
            except OSError as exc:  # taken: try the next one
                last_error = exc
        raise last_error or OSError("WEBRTC_UDP_PORTS is empty")

    loop.create_datagram_endpoint = create_datagram_endpoint  # type: ignore[method-assign,assignment]


class Session:
    def __init__(self, args: argparse.Namespace, send: Callable[[control.ControlMessage], None]):
        self.args = args
        self.send = send
        self.sync: AvSync[passthrough.EncodedUnit] = AvSync(CLOCK_RATES_HZ, args.sr_wait_s)
        self.writer = MediaWriter(sys.stdout.fileno())
        self.muxer: TsMuxer | None = None
        self.units = {"video": 0, "audio": 0}
        self.last_video_at: float | None = None
        self.first_video_at: float | None = None
        self.last_idr_at: float | None = None
        self.last_keyframe_request_at: float | None = None
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: no outside traffic
        self.tasks: set[asyncio.Task[None]] = set()

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def answer(self, offer_sdp: str) -> str:
        pc = self.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.spawn(self.consume(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                self.send(self._connected())
            elif pc.connectionState in {"failed", "closed"}:
                self.end(f"peer connection {pc.connectionState}")

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        kinds = {t.kind for t in pc.getTransceivers() if t.kind in CLOCK_RATES_HZ and t.receiver}
        if "video" not in kinds:
            raise ValueError("no video to receive")
        self.sync = AvSync({k: CLOCK_RATES_HZ[k] for k in kinds}, self.args.sr_wait_s)
        await pc.setLocalDescription(await pc.createAnswer())
        negotiated = self._negotiated()
        if "video" not in negotiated:
            raise ValueError("no H.264 video could be negotiated")
        self.muxer = TsMuxer(self.writer.write, with_audio="audio" in negotiated)
        self.sync = AvSync({k: CLOCK_RATES_HZ[k] for k in negotiated}, self.args.sr_wait_s)
        sdp = pc.localDescription.sdp
        if self.args.public_ip:
            sdp = advertise_public_ip(sdp, self.args.public_ip)
        return sdp

    def _negotiated(self) -> dict[str, str]:
        """kind → codec name of each transceiver that will receive media."""
        out: dict[str, str] = {}
        for transceiver in self.pc.getTransceivers():
            codecs = [c for c in transceiver._codecs if c.name.lower() != "rtx"]
            if codecs and transceiver.currentDirection in {"recvonly", "sendrecv"}:
                out[transceiver.kind] = codecs[0].name
        return out

    def _connected(self) -> control.Connected:
        negotiated = self._negotiated()
        remote: str | None = None
        with contextlib.suppress(Exception):  # best effort: aioice internals vary by version
            transport = self.pc.getTransceivers()[0].receiver.transport.transport
            pair = transport._connection._nominated.get(1)
            if pair is not None:
                remote = f"{pair.remote_addr[0]}:{pair.remote_addr[1]}"
        return control.Connected(
            video_codec=negotiated.get("video", ""),
            audio_codec=negotiated.get("audio"),
            remote_address=remote,
        )

    async def consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                unit = await track.recv()
            except MediaStreamError:
                if track.kind == "video":
                    self.end("publisher stopped sending video")
                return
            assert isinstance(unit, passthrough.EncodedUnit)
            if unit.kind == "video":
                self.last_video_at = unit.arrival_s
                if self.first_video_at is None:
                    self.first_video_at = unit.arrival_s
                if contains_idr(unit.data):
                    self.last_idr_at = unit.arrival_s
            if unit.kind not in self.sync.clock_rates_hz:
                continue
            self.emit(self.sync.push(unit.kind, unit.rtp_timestamp, unit.arrival_s, unit))

    def emit(self, timed: list[Any]) -> None:
        assert self.muxer is not None
        for item in timed:
            unit: passthrough.EncodedUnit = item.payload
            if unit.kind == "video":
                written = self.muxer.write_video(unit.data, item.pts)
            else:
                written = self.muxer.write_audio(unit.data, item.pts)
            self.units[unit.kind] += int(written)

    async def tick(self) -> None:
        while not self.ended.is_set():
            await asyncio.sleep(STATS_INTERVAL_S / 4)
            if self.muxer is not None:
                self.emit(self.sync.poll(time.monotonic()))
            if self.writer.failed.is_set():
                self.end("the media reader stopped reading")
            now = time.monotonic()
            if media_stopped(self.last_video_at, now):
                self.end(f"no video from the publisher for {MEDIA_TIMEOUT_S:g} s")
            elif keyframe_due(
                self.last_idr_at,
                self.last_keyframe_request_at,
                now,
                first_video_at_s=self.first_video_at,
            ):
                await self.request_keyframe()

    async def stats(self) -> None:
        while not self.ended.is_set():
            await asyncio.sleep(STATS_INTERVAL_S)
            self.send(
                control.Stats(
                    media_bytes_out=self.writer.bytes_written,
                    video_units=self.units["video"],
                    audio_units=self.units["audio"],
                    sync_mode=self.sync.mode,
                )
            )

    async def request_keyframe(self) -> None:
        """RTCP PLI to the publisher's video (RFC 4585 §6.3.1): it answers with an IDR."""
        self.last_keyframe_request_at = time.monotonic()
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            receiver = transceiver.receiver
            for source in receiver.getSynchronizationSources():
                await receiver._send_rtcp_pli(source.source)

    async def ice_deadline(self) -> None:
        await asyncio.sleep(ICE_CONNECT_TIMEOUT_S)
        if self.pc.connectionState != "connected":
            self.end("ICE/DTLS did not connect in time")

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 5.0)
        if self.muxer is not None:
            with contextlib.suppress(Exception):
                self.muxer.close()
        self.writer.close()


async def read_messages(
    reader: asyncio.StreamReader,
) -> Any:
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # over the StreamReader limit
            raise control.ControlMessageError("control line too long") from None
        if not line:
            return
        yield control.decode_message(line)


async def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    loop = asyncio.get_running_loop()
    if args.host_address:
        addresses = list(args.host_address)
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: addresses
    if args.udp_ports:
        restrict_udp_ports(loop, parse_port_range(args.udp_ports))
    sock = socket.socket(fileno=args.control_fd)
    reader, writer = await asyncio.open_unix_connection(
        sock=sock, limit=control.MAX_CONTROL_LINE_BYTES
    )

    def send(message: control.ControlMessage) -> None:
        if not writer.is_closing():
            writer.write(control.encode_message(message))

    session: Session | None = None
    sync_reports: list[tuple[str, float, int]] = []

    def on_sender_report(kind: str, ntp_s: float, rtp_timestamp: int) -> None:
        if session is not None:
            session.sync.on_sender_report(kind, ntp_s, rtp_timestamp)
        else:
            sync_reports.append((kind, ntp_s, rtp_timestamp))

    passthrough.install(on_sender_report)
    dtls_retry.install()
    # RFC 7675 consent freshness guards against *sending* to a peer that no longer wants our
    # packets; we only receive (and send RTCP). FFmpeg's whip muxer does not answer aioice's
    # consent checks, so aioice would close every FFmpeg session after ~30 s: never expire it,
    # a silent publisher ends by MEDIA_TIMEOUT_S instead.
    aioice.ice.CONSENT_FAILURES = sys.maxsize
    aiortc_codecs.CODECS["audio"] = [c for c in aiortc_codecs.CODECS["audio"] if c.name == "opus"]
    messages = read_messages(reader)
    try:
        # no timeout of our own: a warm spare waits for its publisher as long as the service
        # lives, and the service closing its end (or dying: PR_SET_PDEATHSIG) ends the wait
        first = await anext(messages)
    except (StopAsyncIteration, control.ControlMessageError) as exc:
        send(control.Error(f"no offer: {exc!r}"))
        return 2
    if not isinstance(first, control.Offer):
        send(control.Error("the first message must be an offer"))
        return 2
    session = Session(args, send)
    try:
        answer_sdp = await session.answer(first.sdp)
    except Exception as exc:  # aiortc raises many types for offers it cannot answer
        log.warning("offer refused: %r", exc)
        send(control.Error(str(exc) or type(exc).__name__))
        await session.close()
        return 3
    send(control.Answer(answer_sdp))

    async def listen() -> None:
        try:
            async for message in messages:
                if isinstance(message, control.Stop):
                    session.end(f"stopped: {message.reason}" if message.reason else "stopped")
                    return
                if isinstance(message, control.RequestKeyframe):
                    await session.request_keyframe()
        except control.ControlMessageError as exc:
            log.warning("bad control message: %s", exc)
        session.end("the service closed the control channel")

    session.spawn(listen())
    session.spawn(session.tick())
    session.spawn(session.stats())
    session.spawn(session.ice_deadline())
    await session.ended.wait()
    await session.close()
    send(control.Ended(session.end_reason))
    with contextlib.suppress(Exception):
        await writer.drain()
        writer.close()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(asyncio.run(main(sys.argv[1:])))

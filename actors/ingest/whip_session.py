"""The trio side of one WHIP session: spawn the asyncio peer child, trade offer for answer, then
pump its MPEG-TS into a sink until the publisher leaves or we stop it.

The child is spawned like FFmpeg (``actors.ffmpeg.process.spawn_process``: own process group,
PR_SET_PDEATHSIG, SIGTERM → SIGKILL ladder), so a WHIP peer never outlives the service. Control is
a socketpair (JSON lines, ``whip_peer.control``); media is the child's stdout.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
import trio

from actors.ffmpeg.process import ProcessHandle, spawn_process
from actors.ingest.whip_peer import control
from actors.pipes import receive_chunks

log = structlog.get_logger(__name__)
PEER_MODULE = "actors.ingest.whip_peer"
# the child's own offer wait is 10 s; aiortc answers in ~50 ms plus candidate gathering
DEFAULT_ANSWER_TIMEOUT_S = 10.0
STOP_GRACE_S = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WhipPeerSettings:
    """How WHIP peer children are started (WEBRTC_* settings)."""

    python_path: str = sys.executable
    host_addresses: tuple[str, ...] = ()  # () = aioice's choice (every interface but loopback)
    udp_ports: str = ""  # WEBRTC_UDP_PORTS, e.g. "40000-40100"; "" = any
    public_ip: str = ""  # WEBRTC_PUBLIC_IP: advertised instead of the local addresses
    sr_wait_s: float = 1.0
    answer_timeout_s: float = DEFAULT_ANSWER_TIMEOUT_S


def peer_argv(settings: WhipPeerSettings, control_fd: int) -> list[str]:
    """The child's argv (a list: nothing here goes through a shell)."""
    argv = [settings.python_path, "-m", PEER_MODULE, "--control-fd", str(control_fd)]
    for address in settings.host_addresses:
        argv += ["--host-address", address]
    if settings.udp_ports:
        argv += ["--udp-ports", settings.udp_ports]
    if settings.public_ip:
        argv += ["--public-ip", settings.public_ip]
    argv += ["--sr-wait-s", repr(settings.sr_wait_s)]
    return argv


class WhipOfferError(Exception):
    """The peer could not answer the offer (or not in time); the message says why."""


@dataclass(slots=True)
class WhipPeerStatus:
    """What the session knows of its publisher, updated from the child's control messages."""

    answer_sdp: str = ""
    connected: control.Connected | None = None
    stats: control.Stats | None = None
    ended_reason: str | None = None
    pid: int | None = None


@dataclass(slots=True)
class WhipPeer:
    """Handed to ``nursery.start``'s caller once the answer is there."""

    status: WhipPeerStatus
    _stop: trio.Event = field(default_factory=trio.Event)
    stop_reason: str = ""
    _keyframe_wanted: trio.Event = field(default_factory=trio.Event)
    keyframe_reason: str = ""

    def request_keyframe(self, reason: str) -> None:
        """Ask the publisher for an IDR (a new FFmpeg reads it); returns at once."""
        self.keyframe_reason = reason
        self._keyframe_wanted.set()

    def stop(self, reason: str) -> None:
        """Ask the session to end (DELETE, key rotation, stream stopped); returns at once."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()


Spawn = Callable[[Sequence[str], Sequence[int]], ProcessHandle]


def _spawn(argv: Sequence[str], pass_fds: Sequence[int]) -> ProcessHandle:
    return spawn_process(argv, pass_fds=pass_fds, term_timeout_s=STOP_GRACE_S)


@dataclass(slots=True)
class PeerProcess:
    """A started peer child and our end of its control socket, waiting for an offer.

    Spawning one ahead of time (a warm spare) takes its Python start-up (aiortc and PyAV imports,
    0.3–1.5 s on a busy machine) off the publisher's POST → answer time."""

    process: ProcessHandle
    control: trio.SocketStream

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.process.aclose("whip peer closed")
            await self.control.aclose()


def spawn_peer(settings: WhipPeerSettings, spawn: Spawn = _spawn) -> PeerProcess:
    """Start a peer child (from the trio thread: PR_SET_PDEATHSIG); it waits for its offer."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child_fd = child_sock.detach()
    try:
        process = spawn(peer_argv(settings, child_fd), [child_fd])
    except BaseException:
        parent_sock.close()
        raise
    return PeerProcess(process, trio.SocketStream(trio.socket.from_stdlib_socket(parent_sock)))


async def run_whip_peer(
    offer_sdp: str,
    *,
    settings: WhipPeerSettings,
    media_sink: Callable[[bytes], Awaitable[None]],
    peer_process: PeerProcess | None = None,
    spawn: Spawn = _spawn,
    task_status: trio.TaskStatus[WhipPeer] = trio.TASK_STATUS_IGNORED,
) -> str:
    """Run one session on ``peer_process`` (owned from here on) or a child spawned now;
    ``nursery.start`` returns the ``WhipPeer`` once the child answered (WhipOfferError before
    that: nothing keeps running). Returns why the session ended."""
    if peer_process is None:
        peer_process = spawn_peer(settings, spawn)
    process, stream = peer_process.process, peer_process.control
    status = WhipPeerStatus(pid=process.pid)
    peer = WhipPeer(status)
    splitter = control.LineSplitter()
    pending: list[control.ControlMessage] = []

    async def next_message() -> control.ControlMessage | None:
        while not pending:
            chunk = await stream.receive_some()
            if not chunk:
                return None
            pending.extend(control.decode_message(line) for line in splitter.feed(chunk))
        return pending.pop(0)

    try:
        first: control.ControlMessage | None = None
        with trio.move_on_after(settings.answer_timeout_s) as answer_scope:
            try:
                await stream.send_all(control.encode_message(control.Offer(offer_sdp)))
                first = await next_message()
            except trio.BrokenResourceError:
                first = None  # it died before answering: said below, with its exit code
        if answer_scope.cancelled_caught:
            raise WhipOfferError("the WebRTC peer did not answer in time")
        if isinstance(first, control.Error):
            raise WhipOfferError(first.message)
        if not isinstance(first, control.Answer):
            raise WhipOfferError(await _why_no_answer(process))
        status.answer_sdp = first.sdp
        task_status.started(peer)

        async def read_control() -> None:
            try:
                while (message := await next_message()) is not None:
                    if isinstance(message, control.Connected):
                        status.connected = message
                        log.info(
                            "whip_connected",
                            codec=message.video_codec,
                            remote=message.remote_address,
                        )
                    elif isinstance(message, control.Stats):
                        status.stats = message
                    elif isinstance(message, control.Ended):
                        status.ended_reason = message.reason
            except (control.ControlMessageError, trio.BrokenResourceError) as exc:
                # a confused or dying child: its media decides when the session is over
                log.warning("whip_control_broken", error=str(exc))

        async def pump_media() -> None:
            async for chunk in receive_chunks(process.stdout):
                await media_sink(chunk)

        async def log_stderr() -> None:
            async for chunk in receive_chunks(process.stderr):
                log.warning("whip_peer_stderr", text=chunk[-2000:].decode("utf-8", "replace"))

        async def stop_on_request(cancel_scope: trio.CancelScope) -> None:
            await peer._stop.wait()
            # a clean stop closes the PeerConnection (the publisher sees it) and flushes the TS;
            # the child may be gone already (the publisher left first): then there is no one to
            # tell, and the process ladder below reaps it
            with trio.move_on_after(STOP_GRACE_S):
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(control.encode_message(control.Stop(peer.stop_reason)))
                await process.wait()
            cancel_scope.cancel()

        async def forward_keyframe_requests() -> None:
            while True:
                await peer._keyframe_wanted.wait()
                peer._keyframe_wanted = trio.Event()
                message = control.RequestKeyframe(peer.keyframe_reason)
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(control.encode_message(message))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_request, nursery.cancel_scope)
            nursery.start_soon(forward_keyframe_requests)
            nursery.start_soon(log_stderr)
            nursery.start_soon(read_control)
            await pump_media()  # EOF: the child is gone or closing
            with trio.move_on_after(STOP_GRACE_S):
                await process.wait()
            nursery.cancel_scope.cancel()
    except control.ControlMessageError as exc:
        # only reachable before the answer: later, read_control handles its own
        raise WhipOfferError(f"the WebRTC peer failed: {exc}") from exc
    finally:
        await peer_process.aclose()
    reason = status.ended_reason or peer.stop_reason or "the WebRTC peer exited"
    status.ended_reason = reason
    return reason


async def _why_no_answer(process: ProcessHandle) -> str:
    """The child ended without an answer: its exit code, and its stderr in the log."""
    with trio.move_on_after(1.0):
        await process.wait()
    tail = b""
    with trio.move_on_after(0.5):
        async for chunk in receive_chunks(process.stderr):
            tail = (tail + chunk)[-4000:]
    log.warning(
        "whip_peer_no_answer",
        returncode=process.returncode,
        stderr=tail.decode("utf-8", "replace"),
    )
    return f"the WebRTC peer ended before answering (exit code {process.returncode})"

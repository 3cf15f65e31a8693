"""The trio owner of a WHIP peer child, with scripted children (real processes, real pipes and a
real control socket; only the WebRTC part is scripted)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

import pytest
import trio

from actors.ffmpeg.process import ProcessHandle, spawn_process
from actors.ingest.whip_session import (
    Spawn,
    WhipOfferError,
    WhipPeer,
    WhipPeerSettings,
    run_whip_peer,
)

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whip"
REAL_OFFERS = {
    name: (FIXTURES / f"{name}_offer.sdp").read_text() for name in ("chromium", "ffmpeg")
}

# a child that answers, writes some "media", then leaves on its own (the publisher hung up)
ANSWERS_THEN_LEAVES = """
import json, os, socket, sys
control = socket.socket(fileno=int(sys.argv[sys.argv.index("--control-fd") + 1]))
reader = control.makefile("rb")
json.loads(reader.readline())
control.sendall(json.dumps({"type": "answer", "sdp": "v=0 answer"}).encode() + b"\\n")
os.write(1, b"media" * 100)
control.sendall(json.dumps({"type": "ended", "reason": "publisher left"}).encode() + b"\\n")
"""
CRASHES_BEFORE_ANSWERING = "import sys; sys.exit(3)"
SAYS_GARBAGE = """
import socket, sys
control = socket.socket(fileno=int(sys.argv[sys.argv.index("--control-fd") + 1]))
control.sendall(b"this is not json\\n")
control.recv(1)
"""


def scripted(script: str) -> Spawn:
    def spawn(argv: Sequence[str], pass_fds: Sequence[int]) -> ProcessHandle:
        # keep the real argv's options (the control fd) after our script
        return spawn_process(
            [sys.executable, "-c", textwrap.dedent(script), *argv[3:]], pass_fds=pass_fds
        )

    return spawn


async def no_media(chunk: bytes) -> None:
    raise AssertionError("no media expected")


async def start_peer(
    nursery: trio.Nursery,
    offer: str,
    *,
    sink: Callable[[bytes], Awaitable[None]] = no_media,
    script: str | None = None,
    settings: WhipPeerSettings | None = None,
) -> WhipPeer:
    """``run_whip_peer`` in ``nursery``, on a scripted child or (``script=None``) the real one."""
    spawn = {} if script is None else {"spawn": scripted(script)}
    peer: WhipPeer = await nursery.start(
        partial(
            run_whip_peer, offer, settings=settings or WhipPeerSettings(), media_sink=sink, **spawn
        )
    )
    return peer


async def test_stopping_a_session_whose_child_already_left_is_quiet() -> None:
    """Regression: DELETE after the publisher had gone raised BrokenResourceError (as an
    exception group) out of the session instead of ending it."""
    received: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        received.append(chunk)

    async with trio.open_nursery() as nursery:
        peer = await start_peer(nursery, "v=0 offer", sink=sink, script=ANSWERS_THEN_LEAVES)
        assert peer.status.answer_sdp == "v=0 answer"
        with trio.fail_after(10):
            while peer.status.ended_reason is None:  # noqa: ASYNC110 - set from the child's line
                await trio.sleep(0.01)
        peer.stop("DELETE")  # the child is gone by now
    assert b"".join(received) == b"media" * 100
    assert peer.status.ended_reason == "publisher left"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (CRASHES_BEFORE_ANSWERING, "ended before answering"),
        (SAYS_GARBAGE, "the WebRTC peer failed"),
    ],
)
async def test_a_child_that_cannot_answer_is_an_offer_error_and_is_reaped(
    script: str, message: str
) -> None:
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            with pytest.raises(WhipOfferError, match=message):
                await start_peer(nursery, "v=0 offer", script=script)


@pytest.mark.parametrize("offer_name", sorted(REAL_OFFERS))
async def test_the_real_peer_answers_real_offers_with_h264_and_opus(offer_name: str) -> None:
    offer = REAL_OFFERS[offer_name]

    settings = WhipPeerSettings(host_addresses=("127.0.0.1",), udp_ports="41000-41099")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            peer = await start_peer(nursery, offer, settings=settings)  # nobody connects
            answer = peer.status.answer_sdp
            peer.stop("test over")
    video = answer[answer.index("m=video") :]
    assert "H264/90000" in video
    assert "VP8" not in video
    assert "opus/48000/2" in answer[: answer.index("m=video")]
    assert "a=setup:active" in answer or "a=setup:passive" in answer
    # host candidates on loopback only, inside WEBRTC_UDP_PORTS
    candidates = [line.split() for line in answer.splitlines() if line.startswith("a=candidate")]
    assert candidates
    for fields in candidates:
        assert fields[4] == "127.0.0.1"
        assert 41000 <= int(fields[5]) <= 41099
    assert peer.status.ended_reason is not None


async def test_a_child_that_never_answers_times_out() -> None:
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            with pytest.raises(WhipOfferError, match="did not answer in time"):
                await start_peer(
                    nursery,
                    "v=0 offer",
                    script="import time; time.sleep(60)",
                    settings=WhipPeerSettings(answer_timeout_s=0.5),
                )

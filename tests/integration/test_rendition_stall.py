"""One rendition's pipe stalls alone, with real FFmpeg: the watchdog restarts the encoder.

The stall is made on our side of the pipe (SIGSTOP would stop every rendition at once): a test
hook stops reading the audio pipe of the first encoder run once the stream is live. FFmpeg keeps
writing video for as long as the unread 1 MiB audio pipe takes to fill (about a minute at
128 kb/s), so the other renditions keep delivering media while the commit barrier publishes
nothing. Before, any rendition's media satisfied the watchdog; now the quiet one is caught.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.encoder_run import EncoderRun
from actors.status import StreamState
from tests.integration.live import (
    LAVFI_SOURCE,
    running_service,
    start_stream,
    wait_for,
    wait_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _StopsReading(trio.abc.ReceiveStream):
    """A pipe reader that stops reading (without closing) once ``stalled`` says so."""

    def __init__(self, inner: trio.abc.ReceiveStream, stalled: trio.Event) -> None:
        self._inner = inner
        self._stalled = stalled

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._stalled.is_set():
            await trio.sleep_forever()
        return await self._inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_one_stalled_rendition_pipe_restarts_the_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = trio.Event()
    hooked: list[str] = []
    original = EncoderRun._read_rendition

    async def read_rendition(
        self: EncoderRun,
        rendition_id: str,
        stream: trio.abc.ReceiveStream,
        done: trio.Event,
    ) -> None:
        if rendition_id == "audio" and not hooked:  # the first encoder run's audio only
            hooked.append(rendition_id)
            stream = _StopsReading(stream, stalled)
        await original(self, rendition_id, stream, done)

    monkeypatch.setattr(EncoderRun, "_read_rendition", read_rendition)
    async with running_service(tmp_path, WATCHDOG_SEGMENTS="2") as service:
        actor = await start_stream(service, "quiet", LAVFI_SOURCE, qualities=["240p"])
        await wait_segments(actor, 2)
        pid = actor.status.encoder_pid
        stalled.set()
        # SEGMENT_DURATION is 1 s: 2 s of audio silence, checked every 0.5 s, then 0.5 s backoff
        await wait_for(lambda: actor.status.restarts >= 1, 15, "the watchdog to restart it")
        assert "no media from rendition audio" in (actor.status.last_error or "")
        assert "while the others run" in (actor.status.last_error or "")
        before = actor.status.segments_produced
        await wait_for(lambda: actor.status.segments_produced > before + 1, 30, "recovery")
        assert actor.status.encoder_pid not in (None, pid)
        assert actor.status.state is StreamState.LIVE

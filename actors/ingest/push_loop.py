"""A push stream's side of its actor: wait for a publisher, encode it until it leaves, wait again.

The stream actor (``actors.stream``) owns one ``PushLoop`` per push stream and is its host: the
loop asks the host to show ``waiting`` and to run encoders on a publisher's pipe; the host keeps
what outlives a publisher (timeline, plan, status). The loop owns the stream's ``PushInput``, the
publisher the encoder currently reads, and for SRT the relay that listens for publishers
(``actors.ingest.srt_relay``).

A publisher leaving is its input ending, not a failure: back to ``waiting``, nothing counted
against the restart intensity. FFmpeg failing under a connected publisher raises to the host's
restart policy like a pull stream's; the next run reads the same publisher (its preamble first).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

import structlog
import trio

from actors.errors import EncoderExited
from actors.ffmpeg.process import Spawner
from actors.ingest.publisher import PublisherFeed, PushInput, pipe_format
from actors.ingest.srt_relay import SrtListen, run_srt_relay
from supervisor.otp.errors import StallDetected
from supervisor.otp.supervise import describe_exception, exception_leaves

log = structlog.get_logger(__name__)


class PushHost(Protocol):
    """What the push loop needs from its stream (the actor; fakes in tests)."""

    def publisher_awaited(self) -> None:
        """No publisher: the stream shows ``waiting``."""

    async def encode_publisher(self, pipe_input: tuple[PublisherFeed, str]) -> None:
        """Encoder runs reading ``(feed, demuxer)`` until one ends other than by a re-plan
        (always raises, like a pull stream's encoder runs)."""


class PushLoop:
    """One push stream's publishers, one after the other, into its encoder runs."""

    def __init__(
        self,
        push: PushInput,
        srt_listen: SrtListen | None,
        *,
        ffmpeg_path: str,
        spawner: Spawner,
        wall_clock: Callable[[], float],
    ) -> None:
        """``srt_listen``: where an SRT stream's relay listens (None for other protocols)."""
        self.push = push
        self._srt_listen = srt_listen
        self._ffmpeg_path = ffmpeg_path
        self._spawn = spawner
        self._wall = wall_clock
        self._feed: PublisherFeed | None = None  # the publisher the encoder reads

    @property
    def srt_port(self) -> int | None:
        """The UDP port an SRT push stream listens on."""
        return self._srt_listen.port if self._srt_listen is not None else None

    def start_listening(self, nursery: trio.Nursery) -> None:
        """Start what waits for publishers inside the stream (SRT's relay; RTMP and WHIP attach
        from the service's listeners). It runs until the nursery is cancelled."""
        if self._srt_listen is not None:
            nursery.start_soon(
                functools.partial(
                    run_srt_relay,
                    self.push,
                    self._srt_listen,
                    ffmpeg_path=self._ffmpeg_path,
                    spawner=self._spawn,
                    wall_clock=self._wall,
                )
            )

    def close(self, reason: str) -> None:
        """The stream ends: refuse new publishers and drop the current one."""
        self.push.close(reason)

    async def encoder_runs(self, host: PushHost, task_status: trio.TaskStatus[None]) -> None:
        """Wait for a publisher, encode it until it leaves, wait again (the host's supervised
        child: it returns only by raising)."""
        push = self.push
        task_status.started()
        while True:
            feed = self._feed
            if feed is None or feed.ended.is_set():
                host.publisher_awaited()
                feed = self._feed = await push.next_publisher()
                log.info(
                    "publisher_attached",
                    protocol=push.protocol.value,
                    address=feed.info.address,
                    publishes=push.publishes,
                )
            try:
                await host.encode_publisher((feed, pipe_format(push.protocol)))
            except Exception as error:
                # the watchdog's StallDetected comes out of the run's nursery as a group
                leaves = exception_leaves(error) if isinstance(error, ExceptionGroup) else [error]
                if not all(isinstance(e, EncoderExited | StallDetected) for e in leaves):
                    raise
                stalled = any(isinstance(e, StallDetected) for e in leaves)
                if stalled and feed.silent:
                    # the encoder starved because the publisher went quiet (a pulled cable, an
                    # SRT peer not yet timed out): its input ended; a later byte gets it closed
                    feed.drop("the publisher went silent")
                elif not feed.ended.is_set() or feed.dropped_reason is not None:
                    raise
                log.info(
                    "publisher_left",
                    reason=describe_exception(leaves[0])[:200],
                    bytes_in=feed.bytes_in,
                )

"""Prometheus metrics, read at scrape time from status snapshots (a Collector), not pushed.

The seed service's names are kept exactly (``streaming_active_streams``,
``streaming_ffmpeg_processes``, ``streaming_cpu_percent``, ``streaming_memory_bytes``); ours are
prefixed ``hlsdash_``. HTTP request counters and the latency histogram are ordinary
prometheus-client instruments updated per request (that is what they measure).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from actors.status import StreamState

if TYPE_CHECKING:
    from supervisor.service import StreamService

FFMPEG_NAME_HINT = "ffmpeg"
# A viewer is a client that asked for one of the stream's playlists or its MPD within this many
# seconds. Players re-poll at least every target duration (LL-HLS players continuously, dash.js
# at minimumUpdatePeriod <= the segment duration); 30 s covers a 10 s segment duration three
# times over, so a player is not lost between two polls, and one that left drops out in 30 s.
VIEWER_WINDOW_S = 30.0
# Bound on clients remembered per stream (memory), whatever the request rate.
MAX_CLIENTS_PER_STREAM = 100_000


class ViewerTracker:
    """Players currently watching each stream, estimated from playlist/MPD polling.

    A client is whatever ``client_key`` the HTTP layer gives: the ``session`` query parameter
    when a player sends one, else the address and user agent. Behind a CDN or the nginx edge
    the origin sees edges, not players: each edge counts as one viewer (per user agent).
    Requests record on the event loop while /metrics counts in a worker thread: one lock.
    """

    def __init__(
        self,
        *,
        window_s: float = VIEWER_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_clients_per_stream: int = MAX_CLIENTS_PER_STREAM,
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._max_clients = max_clients_per_stream
        self._last_seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def seen(self, stream_id: str, client_key: str) -> None:
        with self._lock:
            clients = self._last_seen.setdefault(stream_id, {})
            clients[client_key] = self._clock()
            if len(clients) > self._max_clients:
                self._prune(stream_id)
                while len(clients) > self._max_clients:  # all fresh: forget the oldest
                    del clients[min(clients, key=clients.__getitem__)]

    def count(self, stream_id: str) -> int:
        with self._lock:
            self._prune(stream_id)
            return len(self._last_seen.get(stream_id, ()))

    def counts(self) -> dict[str, int]:
        """Viewers of every stream that has any (pruned)."""
        return {sid: n for sid in list(self._last_seen) if (n := self.count(sid))}

    def _prune(self, stream_id: str) -> None:
        clients = self._last_seen.get(stream_id)
        if clients is None:
            return
        oldest = self._clock() - self._window_s
        for key in [k for k, t in clients.items() if t < oldest]:
            del clients[key]
        if not clients:
            del self._last_seen[stream_id]


def viewer_key(
    *, session: str | None, forwarded_for: str | None, address: str | None, user_agent: str | None
) -> str:
    """Who is polling: the player's own session tag, else its address (the first hop of
    X-Forwarded-For when a proxy says so) and user agent."""
    if session:
        return "session:" + session[:128]
    hop = forwarded_for.split(",")[0].strip() if forwarded_for else address or ""
    return f"client:{hop}|{(user_agent or '')[:256]}"


class ProcessSampler:
    """CPU and memory of this process and its FFmpeg children.

    psutil's cpu_percent is measured between two calls on the same Process object, so the objects
    are kept across scrapes (keyed by pid + create time, so a reused pid is not confused).
    """

    def __init__(self) -> None:
        self._self = psutil.Process(os.getpid())
        self._self.cpu_percent(None)
        self._children: dict[tuple[int, float], psutil.Process] = {}
        self.children_cpu_percent = 0.0

    def ffmpeg_children(self) -> list[psutil.Process]:
        found = []
        try:
            children = self._self.children(recursive=True)
        except psutil.Error:
            return []
        for child in children:
            try:
                if FFMPEG_NAME_HINT in child.name().lower() and child.status() != "zombie":
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def sample(self) -> tuple[int, float, int]:
        """(number of FFmpeg processes, CPU percent, RSS bytes) for service + FFmpeg children."""
        children = self.ffmpeg_children()
        live: dict[tuple[int, float], psutil.Process] = {}
        cpu = 0.0
        rss = 0
        for child in children:
            try:
                key = (child.pid, child.create_time())
            except psutil.Error:
                continue
            known = self._children.get(key)
            if known is None:
                known = child
                known.cpu_percent(None)  # first call primes the counter
            live[key] = known
            try:
                cpu += known.cpu_percent(None)
                rss += known.memory_info().rss
            except psutil.Error:
                continue
        self._children = live
        self.children_cpu_percent = cpu  # the encoders alone (cluster placement reads it)
        try:
            cpu += self._self.cpu_percent(None)
            rss += self._self.memory_info().rss
        except psutil.Error:
            pass
        return len(live), cpu, rss


class StreamCollector(Collector):
    def __init__(
        self, service: StreamService, sampler: ProcessSampler, viewers: ViewerTracker
    ) -> None:
        self._service = service
        self._sampler = sampler
        self._viewers = viewers

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        service = self._service
        actors = service.list()
        active = sum(1 for a in actors if not a.status.state.is_terminal)
        processes, cpu, rss = self._sampler.sample()
        yield GaugeMetricFamily(
            "streaming_active_streams", "Streams not in a terminal state", active
        )
        yield GaugeMetricFamily(
            "streaming_ffmpeg_processes", "FFmpeg processes owned by the service", processes
        )
        yield GaugeMetricFamily(
            "streaming_cpu_percent", "CPU percent of the service and its FFmpeg children", cpu
        )
        yield GaugeMetricFamily(
            "streaming_memory_bytes", "Resident memory of the service and its FFmpeg children", rss
        )
        now = time.time()
        state = GaugeMetricFamily(
            "hlsdash_stream_state",
            "1 for the stream's current state",
            labels=["stream_id", "state"],
        )
        restarts = CounterMetricFamily(
            "hlsdash_stream_restarts", "Encoder restarts", labels=["stream_id"]
        )
        fps = GaugeMetricFamily(
            "hlsdash_encoder_fps", "Encoder frames per second", labels=["stream_id"]
        )
        speed = GaugeMetricFamily(
            "hlsdash_encoder_speed", "Encoder speed (1.0 = realtime)", labels=["stream_id"]
        )
        segments = CounterMetricFamily(
            "hlsdash_segments_produced", "Segments committed", labels=["stream_id"]
        )
        age = GaugeMetricFamily(
            "hlsdash_last_segment_age_seconds",
            "Seconds since the last segment",
            labels=["stream_id"],
        )
        served = CounterMetricFamily(
            "hlsdash_origin_bytes_served", "Bytes served for the stream", labels=["stream_id"]
        )
        segment_duration = GaugeMetricFamily(
            "hlsdash_segment_duration_seconds",
            "Target segment duration (SEGMENT_DURATION)",
            labels=["stream_id"],
        )
        viewers = GaugeMetricFamily(
            "hlsdash_viewers",
            f"Clients that polled a playlist or the MPD in the last {VIEWER_WINDOW_S:g} s "
            "(behind a CDN: edges)",
            labels=["stream_id"],
        )
        ingest_bytes = CounterMetricFamily(
            "hlsdash_ingest_bytes",
            "Bytes pushed by publishers into the stream (RTMP: FLV; SRT, WHIP: MPEG-TS)",
            labels=["stream_id", "protocol"],
        )
        ingest_reconnects = CounterMetricFamily(
            "hlsdash_ingest_reconnects",
            "Publishers after the first (each continues the stream's timeline)",
            labels=["stream_id", "protocol"],
        )
        ingest_connected = GaugeMetricFamily(
            "hlsdash_ingest_connected",
            "1 while a publisher is connected to the push stream",
            labels=["stream_id"],
        )
        target_s = service.settings.segment_duration_s
        for actor in actors:
            ingest = service.ingest_state(actor)
            if ingest is not None:
                labels = [actor.status.stream_id, ingest.protocol]
                ingest_bytes.add_metric(labels, ingest.bytes_total)
                ingest_reconnects.add_metric(labels, ingest.reconnects)
                ingest_connected.add_metric(
                    [actor.status.stream_id], 1.0 if ingest.publisher is not None else 0.0
                )
            status = actor.status
            sid = status.stream_id
            for candidate in StreamState:
                state.add_metric([sid, candidate.value], 1.0 if status.state is candidate else 0.0)
            restarts.add_metric([sid], status.restarts)
            if status.encoder_fps is not None:
                fps.add_metric([sid], status.encoder_fps)
            if status.encoder_speed is not None:
                speed.add_metric([sid], status.encoder_speed)
            segments.add_metric([sid], status.segments_produced)
            if status.last_segment_unix_s is not None:
                age.add_metric([sid], max(0.0, now - status.last_segment_unix_s))
            served.add_metric([sid], actor.bytes_served)
            segment_duration.add_metric([sid], target_s)
            viewers.add_metric([sid], self._viewers.count(sid))
        yield from (state, restarts, fps, speed, segments, age, served, segment_duration, viewers)
        yield from (ingest_bytes, ingest_reconnects, ingest_connected)
        writer = service.registry_writer
        if writer is not None:
            yield CounterMetricFamily(
                "hlsdash_registry_writes",
                "Stream registry writes of positions and removals (coalesced: at most one per "
                "stream per second)",
                writer.writes_total,
            )
            yield GaugeMetricFamily(
                "hlsdash_registry_available",
                "0 while the stream registry refuses or does not answer writes",
                1.0 if writer.available else 0.0,
            )


class Metrics:
    """The service's registry: the stream collector plus HTTP instruments."""

    def __init__(self, service: StreamService) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.sampler = ProcessSampler()
        self.viewers = ViewerTracker()
        self.registry.register(StreamCollector(service, self.sampler, self.viewers))
        self.http_requests = Counter(
            "hlsdash_http_requests",
            "HTTP requests by listener, route and status",
            ["listener", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "hlsdash_http_request_duration_seconds",
            "HTTP request latency by listener and route",
            ["listener", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

        # labelled children per (listener, route, status): .labels() validates and locks on
        # every call, and observe() runs per request; routes are templates, so this stays small
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, listener: str, route: str, status: int, duration_s: float) -> None:
        key = (listener, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(listener, route, str(status)),
                self.http_latency.labels(listener, route),
            )
        requests, latency = children
        requests.inc()
        latency.observe(duration_s)

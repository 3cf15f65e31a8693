"""The process: root nursery with the stream service, both HTTP listeners and signal handling.

Shutdown order on SIGTERM/SIGINT: stop accepting (both listeners' shutdown trigger fires and
Hypercorn drains for its graceful timeout), then stop every stream in parallel (FFmpeg killed,
folders removed), then return so the process exits 0.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import structlog
import trio

from actors.ffmpeg.sources import synthetic_source
from actors.status import StreamSpec
from supervisor import __version__, memory_trace
from supervisor.config import Settings
from supervisor.http.api import create_api_app
from supervisor.http.api_server import serve_api
from supervisor.http.origin import OriginApp
from supervisor.http.origin_server import serve_origin
from supervisor.http.playback import Playback
from supervisor.ingest.rtmp_server import RtmpServer
from supervisor.metrics import Metrics
from supervisor.registry import open_registry
from supervisor.registry.interface import StreamRegistry
from supervisor.service import StreamService

if TYPE_CHECKING:
    from supervisor.cluster.runtime import ClusterParts

log = structlog.get_logger(__name__)

DEMO_STREAM_ID = "demo"
DEMO_FILTER_GRAPH = (
    "testsrc2=size=1280x720:rate=30[out0];sine=frequency=440:beep_factor=4:sample_rate=48000[out1]"
)
DEMO_QUALITIES = ("720p", "480p", "360p", "240p")


async def _watch_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal_received", signal=signal.Signals(signum).name)
            stop.set()
            return


async def _keep_demo_alive(service: StreamService, interval_s: float) -> None:
    while True:
        await trio.sleep(interval_s)
        try:
            service.heartbeat(DEMO_STREAM_ID)
        except LookupError:
            return


def _display_host(bound: str) -> str:
    """Where a browser on this machine reaches a listener bound to ``bound``."""
    if bound in {"", "0.0.0.0", "::"}:  # noqa: S104 - compared, not bound
        return "localhost"
    return f"[{bound}]" if ":" in bound else bound


async def start_demo_stream(service: StreamService) -> None:
    # built here, never parsed from a request: lavfi stays off the client-facing allow-list
    source = synthetic_source(DEMO_FILTER_GRAPH)
    spec = StreamSpec(
        stream_id=DEMO_STREAM_ID,
        source_url=f"lavfi:{DEMO_FILTER_GRAPH}",
        qualities=DEMO_QUALITIES,
        low_latency=service.settings.low_latency_hls,
    )
    # not durable: the demo makes its stream again at every start (lavfi is not resumable)
    await service.create(spec, source, durable=False)


async def run_service(settings: Settings, demo: bool = False) -> None:
    if _is_cluster(settings):
        from supervisor.cluster.local import with_cluster_node_id  # noqa: PLC0415

        settings = with_cluster_node_id(settings)
    # RegistryUnavailable (locked, corrupt, unreachable, newer schema) stops the start here
    async with open_registry(settings.effective_registry_url) as registry:
        await _run_with_registry(settings, registry, demo)


def _is_cluster(settings: Settings) -> bool:
    return settings.registry_url.startswith("redis://")


async def _run_with_registry(settings: Settings, registry: StreamRegistry, demo: bool) -> None:
    service = StreamService(settings, registry=registry)
    metrics = Metrics(service)
    playback = Playback(service)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, stop)
        if memory_trace.enabled(os.environ):  # HLSDASH_TRACEMALLOC: reports on SIGUSR2
            await nursery.start(memory_trace.report_on_signal)
        await nursery.start(service.run)
        if settings.rtmp_port:
            # one RTMP listener for every push stream (RTMP_PORT; 0 switches it off)
            service.rtmp_port = await nursery.start(
                RtmpServer(service).serve, settings.api_host, settings.rtmp_port
            )
        cluster: ClusterParts | None = None
        if _is_cluster(settings):
            # only a cluster needs membership, leases and the peer proxy
            from supervisor.cluster.runtime import run_cluster  # noqa: PLC0415

            cluster = await nursery.start(run_cluster, settings, service)
        origin = OriginApp(
            playback,
            metrics,
            cluster=cluster.node if cluster else None,
            proxy=cluster.proxy if cluster else None,
        )
        api_urls = await nursery.start(
            serve_api,
            create_api_app(
                service,
                metrics,
                playback,
                cluster.api if cluster else None,
                cluster_origin=origin if cluster else None,
            ),
            settings,
            settings.api_port,
            stop.wait,
        )
        origin_urls = await nursery.start(
            serve_origin, origin, settings, settings.origin_port, stop.wait
        )
        log.info(
            "service_started",
            version=__version__,
            api=api_urls,
            origin=origin_urls,
            rtmp_port=service.rtmp_port or None,
            output_dir=str(settings.output_dir),
            ffmpeg=service.ffmpeg_path,
            ladder_scaler="zscale" if service.stream_settings.zscale else "swscale",
            registry=registry.description,
            node_id=settings.node_id,
        )
        if demo:
            await start_demo_stream(service)
            nursery.start_soon(_keep_demo_alive, service, max(settings.stale_threshold_s / 3, 1.0))
            base = f"http://{_display_host(settings.api_host)}:{settings.api_port}"
            print(
                f"\n  hlsdash demo is live: open {base}/#stream={DEMO_STREAM_ID}\n"
                f"  HLS  {base}/streams/{DEMO_STREAM_ID}/playlist.m3u8\n"
                f"  DASH {base}/streams/{DEMO_STREAM_ID}/manifest.mpd\n"
                f"  Ctrl-C stops it.\n",
                flush=True,
            )
        await stop.wait()
        log.info("service_stopping")
        if cluster is not None:
            cluster.node.stopping = True  # the streams stopped now are released for the others
        with trio.CancelScope(shield=True) as cleanup:
            cleanup.deadline = trio.current_time() + 12
            stragglers = await service.root.shutdown(timeout_s=10.0)
            if stragglers:
                log.warning("streams_still_stopping", streams=list(stragglers))
        nursery.cancel_scope.cancel(reason="service stopped")
    log.info("service_stopped")

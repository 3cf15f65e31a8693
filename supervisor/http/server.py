"""Both listeners on Hypercorn inside the root nursery (programmatic ``hypercorn.trio.serve``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from supervisor.config import Settings


def hypercorn_config(settings: Settings, port: int) -> Config:
    config = Config()
    host = settings.api_host
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    config.bind = [f"{bind_host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 3.0
    config.keep_alive_timeout = 75.0  # longer than CDN/LB idle timeouts, so they close first
    config.h11_max_incomplete_size = 16 * 1024
    config.include_server_header = False
    config.h2_max_concurrent_streams = 1000  # LL-HLS keeps several blocking requests in flight
    # thousands of players reconnect at once after a CDN hiccup; the default 100 drops SYNs
    config.backlog = 4096
    if settings.tls_cert:
        config.certfile = settings.tls_cert
        config.keyfile = settings.tls_key
        config.alpn_protocols = ["h2", "http/1.1"]
    return config


async def serve_app(
    app: Any,
    settings: Settings,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve one ASGI app until ``shutdown_trigger`` returns; reports the bound URLs."""
    await serve(
        app,
        hypercorn_config(settings, port),
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )

"""Hypercorn's configuration shared by both listeners (``api_server``, ``origin_server``)."""

from __future__ import annotations

import logging

from hypercorn.config import Config

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

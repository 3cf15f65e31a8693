"""JSON shape of a push stream's ``ingest`` block (pure): where and how to publish.

``publish_url`` is complete and works as-is: ``ffmpeg … -f flv <publish_url>`` (RTMP),
``ffmpeg … -f mpegts <publish_url>`` (SRT), ``ffmpeg … -f whip -authorization <stream_key>
<publish_url>`` (WHIP). RTMP also gives ``server`` + ``stream_key`` the way OBS asks for them.
The key appears only in the answers that issue it (``POST /streams``, ``rotate-key``); a
``GET`` shows the same block with ``stream_key: null`` and the URLs without it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from supervisor.http.views import iso
from supervisor.service import IngestState

RTMP_APP = "live"
KEY_PLACEHOLDER = "<stream_key>"


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def ingest_view(
    state: IngestState,
    *,
    stream_id: str,
    host: str,
    rtmp_port: int,
    api_base: str,
    key: str | None = None,
) -> dict[str, Any]:
    shown_key = key if key is not None else KEY_PLACEHOLDER
    url_host = _host_for_url(host)
    view: dict[str, Any] = {"protocol": state.protocol, "stream_key": key}
    if state.protocol == "rtmp":
        server = f"rtmp://{url_host}:{rtmp_port}/{RTMP_APP}"
        view |= {"server": server, "publish_url": f"{server}/{shown_key}"}
    elif state.protocol == "srt":
        passphrase = quote(shown_key, safe="<>_")
        view |= {
            "publish_url": f"srt://{url_host}:{state.srt_port}?passphrase={passphrase}&pbkeylen=16",
            "port": state.srt_port,
            "latency_ms": state.srt_latency_ms,
            "passphrase_note": "the stream key is the SRT passphrase (AES-128, pbkeylen=16)",
        }
    else:
        view |= {
            "publish_url": f"{api_base.rstrip('/')}/streams/{stream_id}/whip",
            "authorization": f"Bearer {shown_key}",
        }
    publisher = state.publisher
    view["publisher"] = (
        {
            "protocol": publisher.protocol,
            "address": publisher.address,
            "codec": publisher.codec,
            "bitrate_in_bps": publisher.bitrate_in_bps,
            "bytes_in": publisher.bytes_in,
            "connected_since": iso(publisher.connected_since_unix_s),
        }
        if publisher is not None
        else None
    )
    view["publishes"] = state.publishes
    view["reconnects"] = state.reconnects
    view["bytes_in_total"] = state.bytes_total
    return view

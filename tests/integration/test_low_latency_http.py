"""Low-latency delivery over real HTTP: held parts, chunked growing segments, HTTP/2 (h2c and TLS)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from actors.packager.bmff import split_stream
from actors.packager.model import Fragment
from actors.stream import StreamActor
from supervisor.http.api import create_api_app
from supervisor.http.api_server import serve_api
from supervisor.http.origin import OriginApp
from supervisor.http.origin_server import serve_origin
from supervisor.http.playback import Playback
from supervisor.metrics import Metrics
from supervisor.service import StreamService
from tests.integration.live import (
    LAVFI_SOURCE,
    free_port,
    running_service,
    start_stream,
    wait_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@contextlib.asynccontextmanager
async def origin_with_stream(
    tmp_path: Path, stream_id: str
) -> AsyncIterator[tuple[StreamService, StreamActor, str]]:
    """The service with its origin on a free port and one LL 240p stream of 2+ segments.

    Yields the service, the stream's actor and the stream's base URL on the origin.
    """
    origin_port = free_port()
    async with running_service(tmp_path, ORIGIN_PORT=str(origin_port)) as service:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(
                serve_origin,
                OriginApp(Playback(service), Metrics(service)),
                service.settings,
                origin_port,
                stop.wait,
            )
            actor = await start_stream(service, stream_id, LAVFI_SOURCE, qualities=["240p"])
            await wait_segments(actor, 2)
            try:
                yield service, actor, f"http://127.0.0.1:{origin_port}/{stream_id}"
            finally:
                stop.set()


async def test_hinted_part_is_held_and_growing_segment_streams_chunk_by_chunk(
    tmp_path: Path,
) -> None:
    async with origin_with_stream(tmp_path, "ll") as (_service, actor, stream_base):
        base = f"{stream_base}/240p"
        async with httpx.AsyncClient(timeout=15) as client:
            playlist = (await client.get(f"{base}/playlist.m3u8")).text
            hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', playlist)
            assert hint is not None
            asked = time.monotonic()
            held = await client.get(f"{base}/{hint.group(1)}")
            held_s = time.monotonic() - asked
            assert held.status_code == 200
            # the hinted part did not exist yet: the request waited for it (≤ one part)
            assert 0.0 < held_s < 1.5
            records = split_stream((await client.get(f"{base}/init_1.mp4")).content + held.content)
            assert isinstance(records[-1], Fragment)
            # the part is exactly what the playlist lists next
            after = (await client.get(f"{base}/playlist.m3u8")).text
            assert f'URI="{hint.group(1)}"' in after.split("#EXT-X-PRELOAD-HINT")[0]

            # a part is also addressable as a byte range of its segment, while it grows…
            edge = actor.timeline.edge("240p") if actor.timeline else None
            assert edge is not None
            assert edge.partial is not None
            growing = edge.partial
            part = growing.parts[-1]
            by_name = await client.get(f"{base}/part_{growing.number}_{part.index}.m4s")
            last = part.byte_offset + part.byte_length - 1
            by_range = await client.get(
                f"{base}/seg_{growing.number}.m4s",
                headers={"Range": f"bytes={part.byte_offset}-{last}"},
            )
            assert by_range.status_code in {206}, by_range.text
            assert by_range.content == by_name.content
            # …and once it is complete (then with the total length)
            await wait_segments(actor, actor.status.segments_produced + 1)
            done = await client.get(
                f"{base}/seg_{growing.number}.m4s",
                headers={"Range": f"bytes={part.byte_offset}-{last}"},
            )
            assert done.status_code == 206
            assert done.content == by_name.content
            assert not done.headers["content-range"].endswith("/*")

            number = actor.timeline.next_number + 1 if actor.timeline else 0
            arrivals: list[tuple[float, int]] = []
            asked = time.monotonic()
            async with client.stream("GET", f"{base}/seg_{number}.m4s") as response:
                assert response.status_code == 200
                assert response.headers["cache-control"] == "no-cache"
                body = b""
                async for chunk in response.aiter_raw():
                    arrivals.append((time.monotonic() - asked, len(chunk)))
                    body += chunk
            # bytes came in several bursts spread over the segment's duration…
            assert len(arrivals) >= 2
            assert arrivals[-1][0] - arrivals[0][0] > 0.4
            # …and add up to exactly the finished segment
            final = await client.get(f"{base}/seg_{number}.m4s")
            assert final.status_code == 200
            assert final.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert body == final.content


async def test_http2_cleartext_and_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    api_port, tls_port = free_port(), free_port()
    async with running_service(tmp_path / "streams") as service:
        playback = Playback(service)
        metrics = Metrics(service)
        settings = service.settings
        tls_settings = type(settings)(
            **{
                **{f: getattr(settings, f) for f in settings.__dataclass_fields__},
                "tls_cert": str(cert),
                "tls_key": str(key),
            }
        )
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(
                serve_api, create_api_app(service, metrics, playback), settings, api_port, stop.wait
            )
            await nursery.start(
                serve_origin, OriginApp(playback, metrics), tls_settings, tls_port, stop.wait
            )
            actor = await start_stream(service, "h2", LAVFI_SOURCE, qualities=["240p"])
            await wait_segments(actor, 2)
            # h2c with prior knowledge on the API port
            async with httpx.AsyncClient(http1=False, http2=True, timeout=15) as h2c:
                response = await h2c.get(
                    f"http://127.0.0.1:{api_port}/streams/h2/240p/playlist.m3u8"
                )
                assert response.http_version == "HTTP/2"
                assert response.status_code == 200
                assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES" in response.text
            # TLS with ALPN h2 on the origin, and a blocking reload over it
            async with httpx.AsyncClient(http2=True, verify=str(cert), timeout=15) as h2:
                base = f"https://127.0.0.1:{tls_port}/h2/240p"
                playlist = await h2.get(f"{base}/playlist.m3u8")
                assert playlist.http_version == "HTTP/2"
                last = max(int(n) for n in re.findall(r"seg_(\d+)\.m4s", playlist.text))
                asked = time.monotonic()
                blocked = await h2.get(
                    f"{base}/playlist.m3u8", params={"_HLS_msn": last + 1, "_HLS_part": 0}
                )
                assert blocked.http_version == "HTTP/2"
                assert blocked.status_code == 200
                assert time.monotonic() - asked < 3 * 1 + 0.5
                assert (
                    f"part_{last + 1}_0.m4s" in blocked.text
                    or f"seg_{last + 1}.m4s" in blocked.text
                )
            stop.set()


MPD_NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


async def test_ll_mpd_announces_the_next_segment_and_the_origin_serves_it(tmp_path: Path) -> None:
    """The LL MPD lists the segment after the growing one: a promise the origin keeps.

    Players fetch it as soon as the growing one is complete (Shaka) or when its availability time
    (nominal start + duration − ATO) comes (dash.js), before it has begun: that request must get
    the real next segment (held until it exists, then streamed), starting where the MPD says.
    After it, an open-ended ``<S r="-1">`` stands for the segments to come.
    """
    async with (
        origin_with_stream(tmp_path, "lldash") as (service, actor, base),
        httpx.AsyncClient(timeout=15) as client,
    ):
        mpd = ET.fromstring((await client.get(f"{base}/manifest.mpd")).text)
        video = mpd.find(".//d:AdaptationSet[@contentType='video']", MPD_NS)
        assert video is not None
        template = video.find("d:SegmentTemplate", MPD_NS)
        assert template is not None
        timescale = int(template.attrib["timescale"])
        segment_ticks = round(service.settings.segment_duration_s * timescale)
        # ATO = one segment duration: available from its nominal start
        assert float(template.attrib["availabilityTimeOffset"]) == pytest.approx(
            service.settings.segment_duration_s
        )
        *listed, open_end = template.findall("d:SegmentTimeline/d:S", MPD_NS)
        assert open_end.attrib == {"d": str(segment_ticks), "r": "-1"}
        entries: list[tuple[int, int]] = []  # (number, start), every listed segment
        number, start = int(template.attrib["startNumber"]), 0
        for s in listed:
            start = int(s.get("t", start))
            for _ in range(int(s.get("r", "0")) + 1):
                entries.append((number, start))
                number, start = number + 1, start + int(s.attrib["d"])
        # the last one listed is the announced segment, after the growing one
        number, next_start = entries[-1]
        # (not committed when the MPD was made; the growing one may have been since)
        assert actor.timeline is not None
        assert number >= actor.timeline.next_number
        init = (await client.get(f"{base}/240p/init_1.mp4")).content
        response = await client.get(f"{base}/240p/seg_{number}.m4s")
        assert response.status_code == 200
        fragments = [r for r in split_stream(init + response.content) if isinstance(r, Fragment)]
        assert fragments
        assert fragments[0].starts_with_sync
        # a transcoded rendition's keyframes sit on the segment grid: exactly there
        assert fragments[0].decode_time_ticks == next_start

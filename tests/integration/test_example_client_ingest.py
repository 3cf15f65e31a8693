"""``example_client.py start --ingest …`` against the real API: it prints a publish URL and a key
the service accepts (checked against the stream's stored hash), and the SRT port; a start with
both a source URL and --ingest, or neither, is refused before any request."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import trio

import example_client
from actors.ingest.publisher import IngestProtocol
from tests.integration.http_helpers import running_front
from tests.integration.live import free_port

pytestmark = [pytest.mark.integration]


def printed(label: str, text: str) -> str:
    found = re.search(rf"^  {label} +(\S+)", text, re.MULTILINE)
    assert found is not None, text
    return found[1]


async def test_start_ingest_prints_a_working_key_and_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srt_port = free_port(socket.SOCK_DGRAM)
    async with running_front(tmp_path, SRT_PORT_RANGE=f"{srt_port}-{srt_port}") as front:
        api = ["--api", front.api_url]
        rtmp_code = await trio.to_thread.run_sync(
            example_client.main, [*api, "start", "cam", "--ingest", "rtmp", "--qualities", "240p"]
        )
        rtmp_out = capsys.readouterr().out
        srt_code = await trio.to_thread.run_sync(
            example_client.main,
            [*api, "start", "srtcam", "--ingest", "srt", "--srt-latency-ms", "200"],
        )
        srt_out = capsys.readouterr().out
        assert (rtmp_code, srt_code) == (0, 0), (rtmp_out, srt_out)

        key = printed("key", rtmp_out)
        rtmp = front.service.push_input("cam", IngestProtocol.RTMP)
        assert rtmp is not None
        assert rtmp.check_key(key)
        server = printed("server", rtmp_out)
        assert server == f"rtmp://127.0.0.1:{front.service.rtmp_port}/live"
        assert printed("publish", rtmp_out) == f"{server}/{key}"
        assert f'-f flv "{server}/{key}"' in rtmp_out  # an FFmpeg command that works as-is

        srt_key = printed("key", srt_out)
        srt = front.service.push_input("srtcam", IngestProtocol.SRT)
        assert srt is not None
        assert srt.check_key(srt_key)
        assert printed("publish", srt_out) == (
            f"srt://127.0.0.1:{srt_port}?passphrase={srt_key}&pbkeylen=16"
        )
        assert f"port      {srt_port} (UDP), latency 200 ms" in srt_out


@pytest.mark.parametrize(
    "arguments", [["start", "cam"], ["start", "cam", "rtmp://h/x", "--ingest", "rtmp"]]
)
def test_start_needs_exactly_one_of_source_url_and_ingest(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        example_client.main(["--api", "http://127.0.0.1:9", *arguments])
    assert refused.value.code == 2
    assert "exactly one" in capsys.readouterr().err

"""Resume after a restart, with ``hlsdash serve`` as a real process and real FFmpeg: a live stream,
the service SIGKILLed (or SIGTERMed) and started again with the same settings → the stream is live
again by itself, numbered above everything published before, with a discontinuity; DELETE then
removes it from the registry for good. The time to live again is measured and printed, never
asserted (a shared 2-core machine)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.live import LAVFI_SOURCE, free_port, service_env
from tests.integration.test_service_process import (
    HLSDASH,
    ROOT,
    get_json,
    served,
    wait_encoder_pid,
    wait_gone,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAM = "resumable"


@dataclass(frozen=True)
class MediaPlaylist:
    media_sequence: int
    discontinuity_sequence: int
    numbers: tuple[int, ...]  # complete segments and segments with parts listed


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode()
        return text


def media_playlist(origin_port: int, stream_id: str = STREAM) -> MediaPlaylist:
    text = fetch_text(f"http://127.0.0.1:{origin_port}/{stream_id}/240p/playlist.m3u8")
    numbers = {int(n) for n in re.findall(r"^seg_(\d+)\.m4s", text, re.MULTILINE)}
    numbers |= {int(n) for n in re.findall(r'URI="part_(\d+)_\d+\.m4s"', text)}
    media = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
    discontinuity = re.search(r"#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)", text)
    assert media is not None, text
    assert discontinuity is not None, text
    return MediaPlaylist(int(media[1]), int(discontinuity[1]), tuple(sorted(numbers)))


def create(api_port: int) -> None:
    body = json.dumps(
        {"stream_id": STREAM, "source_url": LAVFI_SOURCE, "qualities": ["240p"],
         "low_latency": True}
    ).encode()  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/streams",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def wait_live_above(
    origin_port: int, api_port: int, above: int, timeout_s: float, stream_id: str = STREAM
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = get_json(f"http://127.0.0.1:{api_port}/streams/{stream_id}")["state"]
            if state == "live" and media_playlist(origin_port, stream_id).media_sequence > above:
                return
        except (OSError, AssertionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{stream_id} was not live above segment {above} within {timeout_s} s")


def restart_and_check(tmp_path: Path, signum: signal.Signals) -> None:
    ports = (free_port(), free_port())
    with served(tmp_path, ports=ports) as (process, api_port, origin_port):
        create(api_port)
        old_pid = wait_encoder_pid(api_port, STREAM, segments=3)
        created_at = get_json(f"http://127.0.0.1:{api_port}/streams/{STREAM}")["created_at"]
        before = media_playlist(origin_port)
        process.send_signal(signum)
        code = process.wait(timeout=20)
        if signum is signal.SIGTERM:
            assert code == 0
        assert wait_gone(old_pid, 5), "FFmpeg outlived its service"
    # the newest number any player may have seen (a part of the growing segment counts)
    newest_seen = max(before.numbers)

    restarted = time.monotonic()
    with served(tmp_path, ports=ports, log_name="service-2.log") as (_, api_port, origin_port):
        answering_s = time.monotonic() - restarted
        wait_live_above(origin_port, api_port, newest_seen, timeout_s=40)
        live_again_s = time.monotonic() - restarted
        print(
            f"\n{signum.name}: the new process answered after {answering_s:.2f} s, "
            f"the stream was live again after {live_again_s:.2f} s"
        )
        after = media_playlist(origin_port)
        stream = get_json(f"http://127.0.0.1:{api_port}/streams/{STREAM}")
        # numbers only go up, past anything published before; players are told of the break
        assert min(after.numbers) > newest_seen
        assert after.discontinuity_sequence >= before.discontinuity_sequence + 1
        mpd = fetch_text(f"http://127.0.0.1:{origin_port}/{STREAM}/manifest.mpd")
        periods = [int(n) for n in re.findall(r'<Period id="p(\d+)"', mpd)]
        assert periods
        assert min(periods) > newest_seen  # a new Period, never one of the old ids
        assert stream["created_at"] == created_at  # the same stream, not a new one
        encoder = stream["encoder"]
        assert isinstance(encoder, dict)
        assert encoder["pid"] != old_pid
        assert stream["qualities"] == ["240p"]
        # DELETE removes it from the registry: it is not resumed again
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/streams/{STREAM}", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            assert response.status == 200
    with served(tmp_path, ports=ports, log_name="service-3.log") as (_, api_port, _origin):
        time.sleep(1.0)
        with pytest.raises(urllib.error.HTTPError) as gone:
            get_json(f"http://127.0.0.1:{api_port}/streams/{STREAM}")
        assert gone.value.code == 404
        assert get_json(f"http://127.0.0.1:{api_port}/streams") == {"streams": []}


def test_sigkill_of_the_service_resumes_its_streams(tmp_path: Path) -> None:
    restart_and_check(tmp_path, signal.SIGKILL)


def test_sigterm_of_the_service_resumes_its_streams(tmp_path: Path) -> None:
    restart_and_check(tmp_path, signal.SIGTERM)


def test_a_registry_in_use_by_another_service_stops_the_start_clearly(tmp_path: Path) -> None:
    with served(tmp_path):
        # a second service on the same OUTPUT_DIR (so the same registry file) must not start,
        # or it would resume the same streams a second time
        env = {
            **os.environ,
            **service_env(tmp_path / "streams"),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(free_port()),
            "ORIGIN_PORT": str(free_port()),
        }
        second = subprocess.run(
            [*HLSDASH, "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
    assert second.returncode == 1
    assert "hlsdash: cannot start: registry sqlite://" in second.stderr
    assert "is in use by another process" in second.stderr
    assert "Traceback" not in second.stderr

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest

from actors.ffmpeg.stderr import (
    SourceInfo,
    SourceInfoCollector,
    classify_error,
    parse_source_info,
    redact_line,
)
from tests.threaded_http import QuietHandler, serving

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg_stderr(*input_args: str) -> list[str]:
    """Real stderr of the bundled FFmpeg for a tiny run (same log flags as command.py)."""
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "info", "-nostats",
         *input_args, "-t", "0.1", "-f", "null", "-"],
        capture_output=True, timeout=15, check=False,
    )  # fmt: skip
    return done.stderr.decode("utf-8", "replace").splitlines()


def test_lavfi_with_audio_real_stderr() -> None:
    lines = run_ffmpeg_stderr(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25[out0];sine=sample_rate=44100[out1]"
    )
    assert parse_source_info(lines) == SourceInfo(
        width=320, height=240, frame_rate=25.0, video_codec="wrapped_avframe",
        has_audio=True, audio_codec="pcm_s16le",
    )  # fmt: skip


def test_lavfi_without_audio_real_stderr_incremental() -> None:
    lines = run_ffmpeg_stderr("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30000/1001")
    collector = SourceInfoCollector()
    results = [(i, info) for i, line in enumerate(lines) if (info := collector.feed_line(line))]
    assert len(results) == 1  # reported exactly once
    index, info = results[0]
    assert lines[index].startswith("Stream mapping:")
    assert (info.width, info.height, info.has_audio, info.audio_codec) == (1280, 720, False, None)
    assert info.frame_rate == pytest.approx(29.97)


def test_real_h264_aac_mpegts_stream_lines() -> None:
    # Typical of a remote source: MPEG-TS decorations [0x100] and codec profiles.
    lines = [
        "Input #0, mpegts, from 'srt://127.0.0.1:9000':",
        "  Duration: N/A, start: 1.400000, bitrate: N/A",
        "  Program 1 ",
        "  Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(tv, "
        "bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 50 fps, 50 tbr, 90k tbn",
        "  Stream #0:1[0x101](eng): Audio: aac (LC) ([15][0][0][0] / 0x000F), 48000 Hz, "
        "stereo, fltp, 130 kb/s",
        "Output #0, mp4, to 'pipe:3':",
    ]
    assert parse_source_info(lines) == SourceInfo(1920, 1080, 50.0, "h264", True, "aac")


def test_level_prefix_and_no_input_block() -> None:
    assert parse_source_info(["[info] nothing here"]) is None
    info = parse_source_info(
        [
            "[info] Input #0, flv, from 'rtmp://h/a':",
            "[info]   Stream #0:0: Video: h264 (Constrained Baseline), yuv420p, 640x360, 24 tbr",
        ]
    )
    assert info == SourceInfo(640, 360, 24.0, "h264", False, None)


def test_refused_rtmp_real_stderr() -> None:
    lines = run_ffmpeg_stderr("-rw_timeout", "2000000", "-i", "rtmp://127.0.0.1:1/x")
    reasons = {classify_error(line) for line in lines} - {None}
    assert reasons == {"source refused the connection"}
    assert parse_source_info(lines) is None


def test_missing_file_and_unknown_protocol_real_stderr() -> None:
    missing = run_ffmpeg_stderr("-i", "file:/nonexistent/x.ts")
    assert "source file does not exist" in {classify_error(line) for line in missing}
    unknown = run_ffmpeg_stderr("-i", "foo://bar")
    assert "protocol not supported" in {classify_error(line) for line in unknown}


def test_invalid_data_real_stderr(tmp_path: Path) -> None:
    path = tmp_path / "garbage.ts"
    path.write_bytes(b"this is not media\n" * 10)
    lines = run_ffmpeg_stderr("-i", f"file:{path}")
    assert "source sent data FFmpeg cannot decode" in {classify_error(line) for line in lines}


@pytest.fixture
def http_404_url() -> Iterator[str]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_error(404)

    with serving(Handler) as url:
        yield url


def test_http_404_real_stderr(http_404_url: str) -> None:
    lines = run_ffmpeg_stderr("-i", http_404_url)
    assert "source not found (HTTP 404)" in {classify_error(line) for line in lines}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[tcp @ 0x1] Connection to tcp://h:1935 failed: Connection timed out", "source timed out"),
        ("Error opening input files: Server returned 403 Forbidden (access denied)",
         "source denied access (HTTP 401/403)"),
        ("[tcp @ 0x1] Failed to resolve hostname nope.invalid: Name or service not known",
         "source host name could not be resolved"),
        ("Stream map '0:a:0' matches no streams.",
         "source lacks a requested stream (e.g. no audio)"),
        ("Output file does not contain any stream", "source contains no streams"),
        ("av_interleaved_write_frame(): Broken pipe",
         "output pipe closed (packager stopped reading)"),
        ("frame=  90 fps=30 q=22.0 size=299KiB", None),
        ("  Stream #0:0: Video: h264", None),
    ],
)  # fmt: skip
def test_classify_known_lines(line: str, reason: str | None) -> None:
    assert classify_error(line) == reason


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("http://user:hunter2@127.0.0.1:9/live.m3u8?token=s3cr3t&x=1", ("hunter2", "s3cr3t")),
        ("srt://127.0.0.1:9?passphrase=abcdefghij12&mode=caller&connect_timeout=300",
         ("abcdefghij12",)),
        ("rtmp://pub:pa55w0rd@127.0.0.1:9/live/key?sig=f00dfeed", ("pa55w0rd", "f00dfeed")),
    ],
)  # fmt: skip
def test_real_ffmpeg_error_lines_carry_the_secrets_and_redaction_removes_them(
    url: str, secrets: tuple[str, ...]
) -> None:
    lines = run_ffmpeg_stderr("-rw_timeout", "2000000", "-i", url)
    # FFmpeg repeats its input URL, credentials and all, in its error lines
    assert any(secret in line for line in lines for secret in secrets)
    redacted = [redact_line(line) for line in lines]
    assert not any(secret in line for line in redacted for secret in secrets)
    assert any("127.0.0.1:9" in line for line in redacted)  # the rest stays readable
    assert classify_error(redacted[-1]) == classify_error(lines[-1])

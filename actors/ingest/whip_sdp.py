"""WHIP offer checks and answer munging (RFC 9725 + RFC 8866): pure text in, verdicts/text out.

The HTTP endpoint runs ``check_whip_offer`` *before* any child process is spawned, so garbage (not
SDP, no video, a VP8-only offer, a megabyte of text) is refused with a precise 4xx and costs
nothing. aiortc would refuse some of these too, but only after a process start and with an
exception text made for developers, not publishers.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# Chromium's offer (every codec it has, audio + video) is ~6 KiB, FFmpeg's ~1.5 KiB. 16 KiB (the
# control API's body limit too) leaves room for any real publisher; the 1 MB abuse case is 413.
MAX_OFFER_BYTES = 16 * 1024
REQUIRED_VIDEO_CODEC = "H264"
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([A-Za-z0-9_.-]+)/(\d+)")
_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host.*)$")


@dataclass(frozen=True, slots=True)
class MediaSection:
    """One ``m=`` section: its kind, whether it is enabled (port ≠ 0) and its codec names."""

    kind: str
    enabled: bool
    codec_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OfferProblem:
    """Why an offer is refused: an HTTP status, a stable error code and a human message."""

    status: int
    code: str
    message: str


def parse_media_sections(sdp: str) -> tuple[MediaSection, ...]:
    """The ``m=`` sections of ``sdp`` with their rtpmap codec names (upper-case)."""
    sections: list[MediaSection] = []
    kind: str | None = None
    enabled = False
    codecs: list[str] = []
    for raw_line in sdp.splitlines():
        line = raw_line.strip()
        if line.startswith("m="):
            if kind is not None:
                sections.append(MediaSection(kind, enabled, tuple(codecs)))
            fields = line[2:].split()
            kind = fields[0].lower() if fields else ""
            enabled = len(fields) > 1 and fields[1] != "0"
            codecs = []
        elif kind is not None and (match := _RTPMAP.match(line)):
            codecs.append(match.group(2).upper())
    if kind is not None:
        sections.append(MediaSection(kind, enabled, tuple(codecs)))
    return tuple(sections)


def check_whip_offer(body: bytes) -> OfferProblem | None:
    """None when ``body`` is an SDP offer we can ingest, else why not (413 or 400).

    We need one enabled video section offering H.264 (FFmpeg decodes it once; no transcoding of
    VP8/VP9/AV1 in Python). Audio is optional; if offered, aiortc answers Opus or rejects it.
    """
    if len(body) > MAX_OFFER_BYTES:
        return OfferProblem(
            413, "offer_too_large", f"the SDP offer is over {MAX_OFFER_BYTES} bytes"
        )
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        return OfferProblem(400, "sdp_invalid", "the SDP offer is not UTF-8 text")
    if not sdp.lstrip().startswith("v=0"):
        return OfferProblem(400, "sdp_invalid", "the body is not an SDP offer (no v=0 line)")
    videos = [s for s in parse_media_sections(sdp) if s.kind == "video" and s.enabled]
    if not videos:
        return OfferProblem(400, "sdp_no_video", "the SDP offer has no video section")
    if not any(REQUIRED_VIDEO_CODEC in s.codec_names for s in videos):
        offered = sorted({name for s in videos for name in s.codec_names} - {"RTX"})
        return OfferProblem(
            400,
            "sdp_no_h264",
            f"the SDP offer has no H.264 video (offered: {', '.join(offered) or 'none'});"
            " H.264 is required",
        )
    return None


def advertise_public_ip(answer_sdp: str, public_ip: str) -> str:
    """The answer with every host candidate's address replaced by ``public_ip`` (1:1 NAT: we
    bind local addresses but publishers must reach us at the public one), de-duplicated."""
    version = ipaddress.ip_address(public_ip).version  # ValueError for a bad setting
    out: list[str] = []
    seen: set[str] = set()
    for original in answer_sdp.splitlines():
        line = f"c=IN IP{version} {public_ip}" if original.startswith("c=IN ") else original
        match = _CANDIDATE.match(line)
        if match:
            line = f"{match.group(1)}{public_ip}{match.group(3)}"
            # the same port bound on two local addresses would be advertised twice
            key = line.split(" ", 1)[1]
            if key in seen:
                continue
            seen.add(key)
        out.append(line)
    return "\r\n".join(out) + "\r\n"

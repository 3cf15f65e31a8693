"""WHIP offer checks (refused before any process starts) and the public-IP answer rewrite."""

from __future__ import annotations

from pathlib import Path

from actors.ingest.whip_sdp import (
    MAX_OFFER_BYTES,
    advertise_public_ip,
    check_whip_offer,
    parse_media_sections,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whip"
FFMPEG_OFFER = (FIXTURES / "ffmpeg_offer.sdp").read_bytes()
# Chromium's (Debian chromium, fake camera + microphone, send-only, every codec it has)
CHROMIUM_OFFER = (FIXTURES / "chromium_offer.sdp").read_bytes()


def _offer(*media: str) -> bytes:
    return ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + "".join(media)).encode()


VP8_VIDEO = (
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n"
)
H264_VIDEO = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n"
OPUS_AUDIO = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"


def test_ffmpegs_real_offer_is_accepted_and_parsed() -> None:
    assert check_whip_offer(FFMPEG_OFFER) is None
    sections = parse_media_sections(FFMPEG_OFFER.decode())
    assert [(s.kind, s.enabled) for s in sections] == [("audio", True), ("video", True)]
    assert sections[0].codec_names == ("OPUS",)
    assert sections[1].codec_names == ("H264", "RTX")


def test_chromiums_real_offer_is_accepted_and_fits_the_size_limit() -> None:
    assert check_whip_offer(CHROMIUM_OFFER) is None
    assert len(CHROMIUM_OFFER) < MAX_OFFER_BYTES / 2
    video = [s for s in parse_media_sections(CHROMIUM_OFFER.decode()) if s.kind == "video"]
    assert {"H264", "VP8", "VP9", "AV1"} <= set(video[0].codec_names)


def test_h264_among_other_codecs_is_enough() -> None:
    offer = _offer(
        OPUS_AUDIO, VP8_VIDEO.replace("96 97", "96 97 102") + "a=rtpmap:102 H264/90000\r\n"
    )
    assert check_whip_offer(offer) is None


def test_an_offer_without_video_is_400_sdp_no_video() -> None:
    problem = check_whip_offer(_offer(OPUS_AUDIO))
    assert problem is not None
    assert (problem.status, problem.code) == (400, "sdp_no_video")


def test_a_rejected_video_section_port_0_counts_as_no_video() -> None:
    problem = check_whip_offer(_offer(OPUS_AUDIO, H264_VIDEO.replace("m=video 9", "m=video 0")))
    assert problem is not None
    assert problem.code == "sdp_no_video"


def test_a_vp8_only_offer_is_400_naming_what_was_offered() -> None:
    problem = check_whip_offer(_offer(OPUS_AUDIO, VP8_VIDEO))
    assert problem is not None
    assert (problem.status, problem.code) == (400, "sdp_no_h264")
    assert "VP8" in problem.message
    assert "RTX" not in problem.message
    assert "H.264 is required" in problem.message


def test_a_megabyte_offer_is_413_before_it_is_even_decoded() -> None:
    problem = check_whip_offer(FFMPEG_OFFER + b"a=x\r\n" * (1024 * 1024 // 5))
    assert problem is not None
    assert (problem.status, problem.code) == (413, "offer_too_large")
    assert check_whip_offer(b"v=0\r\n" + b"\xff" * MAX_OFFER_BYTES) is not None


def test_not_sdp_and_not_text_are_400_sdp_invalid() -> None:
    for body in (b"", b"hello", b'{"sdp": "v=0"}', b"\xff\xfe\x00v=0", b"\x00" * 100):
        problem = check_whip_offer(body)
        assert problem is not None, body
        assert (problem.status, problem.code) == (400, "sdp_invalid"), body


def test_public_ip_replaces_host_candidates_and_the_connection_line() -> None:
    answer = (
        "v=0\r\nm=video 40001 UDP/TLS/RTP/SAVPF 106\r\nc=IN IP4 10.0.0.5\r\n"
        "a=candidate:abc 1 udp 2130706431 10.0.0.5 40001 typ host\r\n"
        "a=candidate:def 1 udp 2130706431 172.17.0.2 40002 typ host\r\n"
        "a=candidate:ghi 1 udp 1694498815 198.51.100.1 40001 typ srflx raddr 10.0.0.5 rport 40001\r\n"
        "a=end-of-candidates\r\n"
    )
    rewritten = advertise_public_ip(answer, "203.0.113.7")
    assert rewritten.splitlines() == [
        "v=0",
        "m=video 40001 UDP/TLS/RTP/SAVPF 106",
        "c=IN IP4 203.0.113.7",
        "a=candidate:abc 1 udp 2130706431 203.0.113.7 40001 typ host",
        "a=candidate:def 1 udp 2130706431 203.0.113.7 40002 typ host",
        "a=candidate:ghi 1 udp 1694498815 198.51.100.1 40001 typ srflx raddr 10.0.0.5 rport 40001",
        "a=end-of-candidates",
    ]
    assert rewritten.endswith("\r\n")


def test_public_ip_must_be_an_address() -> None:
    try:
        advertise_public_ip("v=0\r\n", "example.com")
    except ValueError:
        return
    raise AssertionError("a host name was accepted as WEBRTC_PUBLIC_IP")

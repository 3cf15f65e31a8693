"""The reliability suite's HLS media playlist checker (ops/reliability/playlist.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.reliability.playlist import (
    PlaylistError,
    ReloadChecker,
    media_playlist_uris,
    parse_media_playlist,
)

# what the service published for a 1 s segment / 0.5 s part LL stream (trimmed to three segments)
LL_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,CAN-SKIP-UNTIL=6.000
#EXT-X-PART-INF:PART-TARGET=0.500
#EXT-X-MAP:URI="init_1.mp4"
#EXT-X-PROGRAM-DATE-TIME:2026-11-30T11:37:09.052Z
#EXTINF:1.000,
seg_7.m4s
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2026-11-30T11:37:12.052Z
#EXT-X-PART:DURATION=0.500,URI="part_8_0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="part_8_1.m4s"
#EXTINF:1.000,
seg_8.m4s
#EXT-X-PART:DURATION=0.500,URI="part_9_0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_9_1.m4s"
#EXT-X-RENDITION-REPORT:URI="../audio/playlist.m3u8",LAST-MSN=9,LAST-PART=0
"""


def test_a_published_ll_playlist_passes() -> None:
    playlist = parse_media_playlist(LL_PLAYLIST)
    assert playlist.target_duration_s == 1
    assert playlist.media_sequence == 7
    assert playlist.segment_numbers == (7, 8)
    assert playlist.discontinuities == 1
    assert playlist.discontinuity_sequence == 1
    assert [(p.segment_number, p.index) for p in playlist.parts] == [(8, 0), (8, 1), (9, 0)]
    assert playlist.part_target_s == 0.5
    assert playlist.preload_hints == 1


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("#EXTINF:1.000,\nseg_7", "#EXTINF:1.600,\nseg_7", "rounds above"),
        ("#EXT-X-MEDIA-SEQUENCE:7", "#EXT-X-MEDIA-SEQUENCE:6", "does not name the first"),
        ("seg_8.m4s", "seg_10.m4s", "not consecutive"),
        ('DURATION=0.500,URI="part_8_1', 'DURATION=0.600,URI="part_8_1', "> PART-TARGET"),
        ('DURATION=0.500,URI="part_8_1', 'DURATION=0.300,URI="part_8_1', "add up"),
        ("#EXT-X-PART-INF:PART-TARGET=0.500\n", "", "without EXT-X-PART-INF"),
        ("#EXT-X-RENDITION", '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="x"\n#EXT-X-RENDITION', "2 EXT"),
        ("#EXT-X-TARGETDURATION:1", "#EXT-X-TARGETDURATION:1.5", "integer"),
        ('URI="part_9_0.m4s"', 'URI="chunk.m4s"', "part URI"),
    ],
)
def test_each_broken_rule_is_named(old: str, new: str, rule: str) -> None:
    assert old in LL_PLAYLIST
    with pytest.raises(PlaylistError, match=rule):
        parse_media_playlist(LL_PLAYLIST.replace(old, new, 1))


def test_a_short_part_is_refused_unless_it_ends_its_segment_or_is_independent() -> None:
    short_first = LL_PLAYLIST.replace(
        'DURATION=0.500,URI="part_8_0.m4s",INDEPENDENT=YES', 'DURATION=0.300,URI="part_8_0.m4s"'
    ).replace("#EXTINF:1.000,\nseg_8", "#EXTINF:0.800,\nseg_8")
    with pytest.raises(PlaylistError, match=r"0\.85"):
        parse_media_playlist(short_first)
    short_last = LL_PLAYLIST.replace(
        'DURATION=0.500,URI="part_8_1.m4s"', 'DURATION=0.300,URI="part_8_1.m4s"'
    ).replace("#EXTINF:1.000,\nseg_8", "#EXTINF:0.800,\nseg_8")
    assert parse_media_playlist(short_last).segment_durations_s[-1] == 0.8


def fed(text: str) -> ReloadChecker:
    checker = ReloadChecker("x")
    checker.feed(text)
    return checker


def test_reloads_never_go_back() -> None:
    checker = ReloadChecker("240p")
    checker.feed(LL_PLAYLIST)
    later = LL_PLAYLIST.replace("#EXT-X-MEDIA-SEQUENCE:7", "#EXT-X-MEDIA-SEQUENCE:8").replace(
        "#EXTINF:1.000,\nseg_7.m4s\n", ""
    )
    checker.feed(later)
    assert checker.reloads == 2
    assert checker.newest_number == 8
    assert checker.numbers_seen == {7, 8}
    with pytest.raises(PlaylistError, match="MEDIA-SEQUENCE went back"):
        checker.feed(LL_PLAYLIST)
    with pytest.raises(PlaylistError, match="TARGETDURATION changed"):
        fed(LL_PLAYLIST).feed(LL_PLAYLIST.replace("TARGETDURATION:1", "TARGETDURATION:2"))
    renamed = LL_PLAYLIST.replace("#EXTINF:1.000,\nseg_8", "#EXTINF:0.900,\nseg_8").replace(
        'DURATION=0.500,URI="part_8_1', 'DURATION=0.400,URI="part_8_1'
    )
    with pytest.raises(PlaylistError, match="changed duration"):
        fed(LL_PLAYLIST).feed(renamed)


def _render(target_s: int, first: int, durations_s: list[float], gap_after: int | None) -> str:
    lines = ["#EXTM3U", f"#EXT-X-TARGETDURATION:{target_s}", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for offset, duration_s in enumerate(durations_s):
        if gap_after is not None and offset == gap_after:
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXTINF:{duration_s:.3f},", f"seg_{first + offset}.m4s"]
    return "\n".join(lines) + "\n"


@given(
    target_s=st.integers(1, 10),
    first=st.integers(0, 10**9),
    fractions=st.lists(st.floats(0.05, 1.0), max_size=12),
    gap_after=st.none() | st.integers(0, 11),
)
def test_any_well_formed_plain_playlist_round_trips(
    target_s: int, first: int, fractions: list[float], gap_after: int | None
) -> None:
    durations_s = [round(f * target_s, 3) for f in fractions]
    playlist = parse_media_playlist(_render(target_s, first, durations_s, gap_after))
    assert playlist.segment_numbers == tuple(range(first, first + len(durations_s)))
    assert list(playlist.segment_durations_s) == durations_s
    assert playlist.discontinuities == (gap_after is not None and gap_after < len(durations_s))


def test_media_playlist_uris_of_a_multivariant_playlist() -> None:
    multivariant = (
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="main",URI="audio/playlist.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=595786,AUDIO="audio"\n240p/playlist.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=995786,AUDIO="audio"\n360p/playlist.m3u8\n'
    )
    assert media_playlist_uris(multivariant) == [
        "audio/playlist.m3u8",
        "240p/playlist.m3u8",
        "360p/playlist.m3u8",
    ]

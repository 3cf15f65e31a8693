"""Pure checks of the HLS media playlists the service publishes, one reload and across reloads.

The rules are the MUSTs of RFC 8216bis / the LL-HLS appendix that a fault can break
(``/work/shared/specs/ll-hls-ll-dash-requirements.md`` A1, A3, A4, A8, A10): an integer target
duration that never changes, ``round(EXTINF) ≤ TARGETDURATION``, a media sequence that names the
first segment and never goes back, parts no longer than ``PART-TARGET``, one preload hint.
Our segment URIs carry their media sequence number (``seg_{n}.m4s``, ``part_{n}_{k}.m4s``), so
"numbers strictly increase" is checked on the names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SEGMENT_URI = re.compile(r"^seg_(\d+)\.m4s$")
_PART_URI = re.compile(r"part_(\d+)_(\d+)\.m4s")
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
# float text in playlists is rounded to the millisecond or finer
_DURATION_EPSILON_S = 0.0015
_MIN_PART_FRACTION = 0.85  # A4: a part is ≥ 0.85 × PART-TARGET unless exempt


class PlaylistError(ValueError):
    """A playlist (or a reload of it) breaks a rule; the message names the rule and the line."""


@dataclass(frozen=True, slots=True)
class Part:
    segment_number: int
    index: int
    duration_s: float
    independent: bool
    gap: bool


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration_s: int
    media_sequence: int
    discontinuity_sequence: int
    segment_numbers: tuple[int, ...]
    segment_durations_s: tuple[float, ...]
    discontinuities: int  # EXT-X-DISCONTINUITY tags in this reload
    parts: tuple[Part, ...] = ()
    part_target_s: float | None = None
    preload_hints: int = 0
    ended: bool = False

    @property
    def newest_number(self) -> int | None:
        return self.segment_numbers[-1] if self.segment_numbers else None


def _attributes(text: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in _ATTRIBUTE.findall(text)}


def _number_after(line: str, tag: str) -> str:
    return line[len(tag) + 1 :].strip()


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Parse and check one media playlist; raises PlaylistError naming the broken rule."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("the first line is not #EXTM3U")
    target: int | None = None
    media_sequence = 0
    discontinuity_sequence = 0
    numbers: list[int] = []
    durations: list[float] = []
    parts: list[Part] = []
    part_target: float | None = None
    pending_duration: float | None = None
    discontinuities = hints = 0
    ended = False
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            if target is not None:
                raise PlaylistError("EXT-X-TARGETDURATION appears twice")
            raw = _number_after(line, "#EXT-X-TARGETDURATION")
            if not raw.isdigit() or int(raw) < 1:
                raise PlaylistError(f"EXT-X-TARGETDURATION is not an integer ≥ 1: {line}")
            target = int(raw)
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            media_sequence = int(_number_after(line, "#EXT-X-MEDIA-SEQUENCE"))
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            discontinuity_sequence = int(_number_after(line, "#EXT-X-DISCONTINUITY-SEQUENCE"))
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuities += 1
        elif line.startswith("#EXT-X-PART-INF:"):
            part_target = float(_attributes(line)["PART-TARGET"])
        elif line.startswith("#EXT-X-PART:"):
            attrs = _attributes(line)
            found = _PART_URI.search(attrs.get("URI", ""))
            if found is None:
                raise PlaylistError(f"a part URI is not part_{{n}}_{{k}}.m4s: {line}")
            parts.append(
                Part(
                    segment_number=int(found.group(1)),
                    index=int(found.group(2)),
                    duration_s=float(attrs["DURATION"]),
                    independent=attrs.get("INDEPENDENT") == "YES",
                    gap=attrs.get("GAP") == "YES",
                )
            )
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            hints += 1
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line.startswith("#EXTINF:"):
            pending_duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif not line.startswith("#"):
            found = _SEGMENT_URI.match(line)
            if found is None:
                raise PlaylistError(f"a segment URI is not seg_{{n}}.m4s: {line}")
            if pending_duration is None:
                raise PlaylistError(f"segment without EXTINF: {line}")
            numbers.append(int(found.group(1)))
            durations.append(pending_duration)
            pending_duration = None
    if target is None:
        raise PlaylistError("no EXT-X-TARGETDURATION")
    playlist = MediaPlaylist(
        target_duration_s=target,
        media_sequence=media_sequence,
        discontinuity_sequence=discontinuity_sequence,
        segment_numbers=tuple(numbers),
        segment_durations_s=tuple(durations),
        discontinuities=discontinuities,
        parts=tuple(parts),
        part_target_s=part_target,
        preload_hints=hints,
        ended=ended,
    )
    _check_segments(playlist)
    _check_parts(playlist)
    return playlist


def _check_segments(playlist: MediaPlaylist) -> None:
    numbers = playlist.segment_numbers
    if numbers and numbers[0] != playlist.media_sequence:
        raise PlaylistError(
            f"EXT-X-MEDIA-SEQUENCE {playlist.media_sequence} does not name the first segment "
            f"seg_{numbers[0]}.m4s"
        )
    expected = list(range(playlist.media_sequence, playlist.media_sequence + len(numbers)))
    if list(numbers) != expected:
        raise PlaylistError(f"segment numbers are not consecutive: {list(numbers)}")
    for number, duration_s in zip(numbers, playlist.segment_durations_s, strict=True):
        if round(duration_s) > playlist.target_duration_s:
            raise PlaylistError(
                f"seg_{number}.m4s: EXTINF {duration_s:g} rounds above "
                f"EXT-X-TARGETDURATION {playlist.target_duration_s}"
            )


def _check_parts(playlist: MediaPlaylist) -> None:
    parts = playlist.parts
    if not parts:
        return
    if playlist.part_target_s is None:
        raise PlaylistError("EXT-X-PART without EXT-X-PART-INF")
    if not playlist.ended and playlist.preload_hints != 1:
        raise PlaylistError(f"{playlist.preload_hints} EXT-X-PRELOAD-HINT tags (want exactly 1)")
    part_target_s = playlist.part_target_s
    growing = playlist.media_sequence + len(playlist.segment_numbers)
    for position, part in enumerate(parts):
        name = f"part_{part.segment_number}_{part.index}.m4s"
        if part.segment_number not in playlist.segment_numbers and part.segment_number != growing:
            raise PlaylistError(f"{name} belongs to no listed or growing segment")
        if part.duration_s > part_target_s + _DURATION_EPSILON_S:
            raise PlaylistError(f"{name}: DURATION {part.duration_s:g} > PART-TARGET")
        following = parts[position + 1] if position + 1 < len(parts) else None
        last_of_parent = following is None or following.segment_number != part.segment_number
        if following is not None and not last_of_parent and following.index != part.index + 1:
            raise PlaylistError(f"{name} is followed by part {following.index} of its segment")
        exempt = part.independent or part.gap or last_of_parent or bool(following and following.gap)
        if not exempt and part.duration_s < _MIN_PART_FRACTION * part_target_s:
            raise PlaylistError(
                f"{name}: DURATION {part.duration_s:g} < 0.85 × PART-TARGET {part_target_s:g}"
            )
    _check_parts_add_up(playlist)


def _check_parts_add_up(playlist: MediaPlaylist) -> None:
    """A completed segment whose parts are all listed lasts as long as its parts together."""
    by_segment: dict[int, list[Part]] = {}
    for part in playlist.parts:
        by_segment.setdefault(part.segment_number, []).append(part)
    for number, duration_s in zip(
        playlist.segment_numbers, playlist.segment_durations_s, strict=True
    ):
        listed = by_segment.get(number)
        if not listed or listed[0].index != 0:
            continue  # its first parts already left the playlist (A8)
        total_s = sum(p.duration_s for p in listed)
        if abs(total_s - duration_s) > _DURATION_EPSILON_S * len(listed):
            raise PlaylistError(
                f"seg_{number}.m4s: EXTINF {duration_s:g} but its parts add up to {total_s:g}"
            )


@dataclass(slots=True)
class ReloadChecker:
    """Follows successive reloads of one media playlist and checks what may never go back."""

    name: str
    reloads: int = 0
    newest_number: int | None = None
    numbers_seen: set[int] = field(default_factory=set)
    _previous: MediaPlaylist | None = None

    def feed(self, text: str) -> MediaPlaylist:
        try:
            playlist = parse_media_playlist(text)
        except PlaylistError as error:
            raise PlaylistError(f"{self.name} (reload {self.reloads + 1}): {error}") from None
        previous = self._previous
        if previous is not None:
            self._check_against(previous, playlist)
        self._previous = playlist
        self.reloads += 1
        self.numbers_seen.update(playlist.segment_numbers)
        if playlist.newest_number is not None:
            self.newest_number = playlist.newest_number
        return playlist

    def _check_against(self, previous: MediaPlaylist, playlist: MediaPlaylist) -> None:
        where = f"{self.name} (reload {self.reloads + 1})"
        if playlist.target_duration_s != previous.target_duration_s:
            raise PlaylistError(
                f"{where}: EXT-X-TARGETDURATION changed "
                f"{previous.target_duration_s} → {playlist.target_duration_s}"
            )
        if playlist.media_sequence < previous.media_sequence:
            raise PlaylistError(
                f"{where}: EXT-X-MEDIA-SEQUENCE went back "
                f"{previous.media_sequence} → {playlist.media_sequence}"
            )
        if playlist.discontinuity_sequence < previous.discontinuity_sequence:
            raise PlaylistError(f"{where}: EXT-X-DISCONTINUITY-SEQUENCE went back")
        old_newest, new_newest = previous.newest_number, playlist.newest_number
        if old_newest is not None and (new_newest is None or new_newest < old_newest):
            raise PlaylistError(
                f"{where}: the newest segment went back {old_newest} → {new_newest}"
            )
        # a segment number names one segment for good: same number, same duration
        old = dict(zip(previous.segment_numbers, previous.segment_durations_s, strict=True))
        for number, duration_s in zip(
            playlist.segment_numbers, playlist.segment_durations_s, strict=True
        ):
            if number in old and abs(old[number] - duration_s) > _DURATION_EPSILON_S:
                raise PlaylistError(
                    f"{where}: seg_{number}.m4s changed duration {old[number]:g} → {duration_s:g}"
                )


def media_playlist_uris(multivariant: str) -> list[str]:
    """The media playlists a multivariant playlist names (variants and EXT-X-MEDIA renditions)."""
    uris = re.findall(r'URI="([^"]+\.m3u8)"', multivariant)
    uris += [
        line.strip()
        for line in multivariant.splitlines()
        if line.strip().endswith(".m3u8") and not line.startswith("#")
    ]
    return list(dict.fromkeys(uris))

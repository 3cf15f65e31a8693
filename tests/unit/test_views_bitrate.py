"""``bitrate_out_bps`` (GET /streams/{id}): each rendition's newest committed segment, in bit/s."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.status import StreamSpec, StreamStatus
from supervisor.http.views import bitrate_out_bps, stream_view


def test_bytes_times_eight_over_the_segment_duration_rounded_to_whole_bits() -> None:
    newest = {"720p": (375_000, 1.5), "audio": (24_001, 1.5)}
    assert bitrate_out_bps(newest) == {"720p": 2_000_000, "audio": 128_005}


def test_a_rendition_without_a_committed_segment_or_duration_has_no_figure() -> None:
    assert bitrate_out_bps({}) == {}
    assert bitrate_out_bps({"360p": (1000, 0.0)}) == {}


@given(
    st.dictionaries(
        st.sampled_from(["1080p", "720p", "480p", "360p", "240p", "audio"]),
        st.tuples(
            st.integers(min_value=0, max_value=10**9),
            st.floats(min_value=0.01, max_value=60.0, allow_nan=False),
        ),
    )
)
def test_every_rendition_with_media_gets_a_non_negative_figure_in_id_order(
    newest: dict[str, tuple[int, float]],
) -> None:
    figures = bitrate_out_bps(newest)
    assert list(figures) == sorted(newest)
    for rendition_id, bps in figures.items():
        byte_count, duration_s = newest[rendition_id]
        assert bps >= 0
        assert abs(bps - byte_count * 8 / duration_s) <= 0.5


def _view(newest: dict[str, tuple[int, float]] | None) -> dict[str, object]:
    status = StreamStatus(spec=StreamSpec(stream_id="cam", source_url="lavfi:testsrc2"))
    return stream_view(
        status,
        api_base="http://api",
        cdn_base="http://cdn",
        now_unix_s=10.0,
        viewers=0,
        newest_segments=newest,
    )


def test_the_stream_view_carries_the_figures_and_an_empty_map_before_any_segment() -> None:
    assert _view(None)["bitrate_out_bps"] == {}
    assert _view({"360p": (100_000, 2.0)})["bitrate_out_bps"] == {"360p": 400_000}

"""The glass bench's case selection: our plain (non-LL) output gets rows of its own, on its own
stream, after the LL players (ops/bench/glass.py)."""

from __future__ import annotations

from ops.bench.glass import CASES, cases_per_stream, select_cases


def test_plain_rows_play_our_own_non_ll_hls_and_dash() -> None:
    plain = [c for c in CASES if not c.low_latency]
    assert [(c.engine, c.protocol) for c in plain] == [("hlsjs", "hls"), ("dashjs", "dash")]


def test_cases_are_grouped_into_an_ll_stream_then_a_plain_one() -> None:
    groups = cases_per_stream(select_cases("dashjs"))
    assert [[c.low_latency for c in g] for g in groups] == [[True, True], [False]]
    assert [c.label for c in groups[1]] == ["dash.js plain DASH"]


def test_no_plain_and_tiny_leave_only_ll_cases() -> None:
    assert all(c.low_latency for c in select_cases("all", plain=False))
    assert [c.label for c in select_cases("all", tiny=True)] == ["hls.js LL"]
    assert cases_per_stream(select_cases("shaka-dash", plain=False)) == [
        [c for c in CASES if c.engine == "shaka-dash"]
    ]

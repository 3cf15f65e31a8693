"""What a look at the membership says: who beats recently, when the next record expires."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from supervisor.cluster.membership import MembershipView
from tests.node_records import node_info as node


def test_a_node_silent_for_longer_than_a_live_one_ever_is_not_counted_on() -> None:
    view = MembershipView(
        live=[node("a"), node("b"), node("c")],
        dead={"d"},
        expires_in_s={"a": 5.9, "b": 3.4, "c": 3.1},
    )
    # TTL 6 s, silent after 2.7 s: a record with under 3.3 s left was not refreshed since
    assert view.recently_beating(ttl_s=6.0, silent_after_s=2.7) == {"a", "b"}
    assert view.next_expiry_s(besides="a") == 3.1
    assert view.next_expiry_s(besides="c") == 3.4  # its own record is not waited for
    assert MembershipView(live=[node("a")], dead=set()).next_expiry_s(besides="a") is None


@given(
    left=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d", "e"]), st.floats(0.0, 6.0), min_size=1
    ),
    silent_after_s=st.floats(0.0, 6.0),
)
def test_recently_beating_is_the_live_nodes_with_enough_time_left(
    left: dict[str, float], silent_after_s: float
) -> None:
    view = MembershipView(live=[node(n) for n in sorted(left)], dead=set(), expires_in_s=left)
    beating = view.recently_beating(ttl_s=6.0, silent_after_s=silent_after_s)
    assert beating == {n for n, s in left.items() if s >= 6.0 - silent_after_s}
    # the node expiring first is beating only if every node is
    first = min(left, key=lambda n: left[n])
    if first in beating:
        assert beating == set(left)
    assert view.next_expiry_s(besides="nobody") == left[first]

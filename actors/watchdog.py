"""The encoder stall watchdog's rule, pure: which rendition (if any) went quiet for too long.

Every rendition is watched on its own. FFmpeg writes one pipe per rendition; one output can hang
(an encoder thread stuck, a pipe nobody drains) while the others keep going, and the commit
barrier then publishes nothing at all. "Any media from the encoder" would call that healthy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stall:
    message: str
    idle_s: float


def find_stall(
    *,
    media_at: Mapping[str, float],
    first_media_at: float | None,
    rendition_ids: Sequence[str],
    spawned_at: float,
    now: float,
    stall_s: float,
    start_timeout_s: float,
) -> Stall | None:
    """The first rendition idle for more than ``stall_s``, or None.

    ``media_at`` maps a rendition to when its pipe last delivered media (init or fragment), on
    the same clock as ``spawned_at`` and ``now``; ``first_media_at`` is the first delivery of
    any. Before that the (longer) start timeout applies: the source may take a while to open. A
    rendition that has not delivered yet once another has is idle since that first delivery.
    """
    if first_media_at is None:
        idle_s = now - spawned_at
        if idle_s > start_timeout_s:
            return Stall(f"no media from the encoder {start_timeout_s:g} s after start", idle_s)
        return None
    idle_s_by_rendition = {r: now - media_at.get(r, first_media_at) for r in rendition_ids}
    stalled = [r for r, idle_s in idle_s_by_rendition.items() if idle_s > stall_s]
    if not stalled:
        return None
    if len(stalled) == len(idle_s_by_rendition):  # the whole encoder (hung, SIGSTOP, no source)
        idle_s = min(idle_s_by_rendition.values())
        return Stall(f"no media from the encoder for {idle_s:.1f} s", idle_s)
    idle_s = idle_s_by_rendition[stalled[0]]
    return Stall(
        f"no media from rendition {stalled[0]} for {idle_s:.1f} s while the others run", idle_s
    )

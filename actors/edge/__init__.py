"""The one read-only interface the HTTP layer has onto a stream's live edge.

``LiveEdge`` (one call per request), the pure LL rules it applies (``rules``) and the shared waits
it uses (``gates``, owned by the stream actor where the live-edge events are made).
"""

from actors.edge.interface import (
    Document,
    GrowingRange,
    GrowingSegment,
    LiveEdge,
    MediaBytes,
    next_incarnation,
)
from actors.edge.rules import Refusal

__all__ = [
    "Document",
    "GrowingRange",
    "GrowingSegment",
    "LiveEdge",
    "MediaBytes",
    "Refusal",
    "next_incarnation",
]

"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=ops.reliability.schemathesis_hooks``).

Random ``source_url`` strings are nearly always refused (422), so without help the stateful phase
never owns a stream to read, renew and delete. Half of the generated ``POST /streams`` bodies get
the source in ``HLSDASH_SCHEMA_SOURCE_URL`` (a local file, the only protocol the case allows, so
no generated request can make FFmpeg reach the network) with ``"qualities": ["source"]``; the other
half stay as generated.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    operation = context.operation
    source_url = os.environ.get("HLSDASH_SCHEMA_SOURCE_URL")
    if (
        source_url is None
        or operation is None
        or (operation.method.upper(), operation.path) != ("POST", "/streams")
        or not isinstance(body, dict)
        or not _schema_valid_source_url(body.get("source_url"))
    ):
        # a negative case whose fault *is* its source_url keeps it: that must still be refused
        return st.just(body)
    # passthrough ("source": video copied) keeps the streams it starts nearly free of CPU
    return st.sampled_from([body, {**body, "source_url": source_url, "qualities": ["source"]}])


def _schema_valid_source_url(value: object) -> bool:
    """What the document allows for source_url (a string of at most 2,048 characters)."""
    return isinstance(value, str) and len(value) <= 2048


# WHIP's offer is an SDP document (``application/sdp``, a string in the schema): sent as its UTF-8
# bytes, like a browser or FFmpeg would. Without a serializer Schemathesis stops with an error on
# that operation instead of fuzzing it (the service answers such garbage 400, never 5xx).
schemathesis.serializer.alias("application/sdp", "text/plain")

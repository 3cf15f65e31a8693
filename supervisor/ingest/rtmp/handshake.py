"""The RTMP handshake, server side, the "simple" way (RTMP spec 5.2). Pure.

C0 (version 3) + C1 (1536 bytes: time, zero, random) → S0 + S1 (ours) + S2 (C1 echoed) → C2.
S1's bytes 4..7 are zero, which tells a client that this server does no digest ("complex",
Flash Player 9) handshake: FFmpeg validates a server digest only when it *plays* and S1 carries a
version there (rtmpproto.c ``rtmp_handshake``), and OBS's librtmp publishes with the simple one.
C2 is read and ignored: a client that echoes it wrongly still speaks RTMP to us, and the stream
key, not the handshake, is what authenticates.
"""

from __future__ import annotations

import os
import struct

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
# Version bytes of RTMPE (6, encrypted) and the odd 8/9 are refused: we only speak plain RTMP.
ACCEPTED_VERSIONS = frozenset({RTMP_VERSION})


class HandshakeError(ValueError):
    """Not an RTMP client (wrong version byte: random bytes, an HTTP request, RTMPE)."""


def server_reply(c0_c1: bytes, *, server_time_ms: int, random_bytes: bytes | None = None) -> bytes:
    """S0+S1+S2 for the client's C0+C1 (exactly 1 + 1536 bytes).

    Raises:
        HandshakeError: the first byte is not RTMP version 3.
    """
    if len(c0_c1) != 1 + HANDSHAKE_SIZE:
        raise HandshakeError("C0+C1 must be 1537 bytes")
    version = c0_c1[0]
    if version not in ACCEPTED_VERSIONS:
        shown = c0_c1[:8].decode("latin-1").encode("unicode_escape").decode()
        raise HandshakeError(f"not an RTMP client (version byte {version}, starts {shown!r})")
    c1 = c0_c1[1:]
    random_part = random_bytes if random_bytes is not None else os.urandom(HANDSHAKE_SIZE - 8)
    if len(random_part) != HANDSHAKE_SIZE - 8:
        raise ValueError("S1 needs 1528 random bytes")
    time_field = struct.pack(">I", server_time_ms & 0xFFFFFFFF)
    s1 = time_field + b"\x00\x00\x00\x00" + random_part
    # S2 echoes C1's time and random bytes, with our read time in the second field
    s2 = c1[:4] + time_field + c1[8:]
    return bytes([RTMP_VERSION]) + s1 + s2

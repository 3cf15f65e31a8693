"""RTMP, one pure layer per module (as MediaMTX's ``internal/protocols/rtmp``):
``handshake`` → ``chunk`` (chunk stream ↔ messages) → ``amf0`` (command values) → ``session``
(what a publishing client says and what we answer) → ``flv`` (messages re-wrapped as FLV tags).
None of them does I/O; ``supervisor.ingest.rtmp_server`` is the trio shell.
"""

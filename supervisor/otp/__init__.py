"""A small Erlang/OTP-style supervision library for trio: restart types and intensity
(``policy``), exponential backoff with jitter (``backoff``), the supervision loop (``supervise``)
and its exceptions (``errors``).

Generic on purpose: it imports nothing else of this project, and it is the only part of
``supervisor/`` that ``actors/`` may import (the stream actor supervises its own encoder with it).
"""

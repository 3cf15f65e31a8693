"""structlog set-up: JSON lines when stdout is not a TTY, a console renderer when it is.

``stream_id`` is bound with ``structlog.contextvars`` in each actor's root task; trio copies the
context into the tasks it spawns, so every line an actor (or its children) logs carries it.
Hypercorn's and the stdlib's records go through the same processors.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    use_json = (not sys.stdout.isatty()) if json is None else json
    level_number = logging.getLevelName(level.upper())
    if not isinstance(level_number, int):
        level_number = logging.INFO
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer()
        shared_tail: list[structlog.types.Processor] = [structlog.processors.dict_tracebacks]
    else:
        renderer = structlog.dev.ConsoleRenderer()
        shared_tail = []
    structlog.configure(
        processors=[*shared, *shared_tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *shared_tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_number)
    # access logs are metrics' job; keep them out of the event log unless debugging
    logging.getLogger("hypercorn.access").setLevel(
        logging.DEBUG if level_number <= logging.DEBUG else logging.WARNING
    )

"""Structured logs: text for people, one JSON object per line on request.

Caller numbers never reach a log line in full: any value under a key that names
a number is masked, whatever module logged it.
"""

from __future__ import annotations

import logging
import sys

import structlog

from callflow.core.channel import mask_number

_NUMBER_KEYS = frozenset({"caller", "number", "caller_number", "to", "from_number", "callerid"})


def _mask_numbers(_logger: object, _name: str, event: dict) -> dict:
    for key in _NUMBER_KEYS & event.keys():
        value = event[key]
        if isinstance(value, str) and sum(ch.isdigit() for ch in value) > 4 and "*" not in value:
            event[key] = mask_number(value)
    return event


def setup(fmt: str = "text", level: str = "INFO") -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    pre_chain = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_numbers,
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

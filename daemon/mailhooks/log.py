"""structlog: one JSON line per event under systemd (journald), console lines on a terminal.

Every log line passes `redact`: a key that names a secret never carries its value, so a
careless `log.info(..., headers=...)` cannot leak a credential.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final, TextIO

import structlog

from mailhooks.text import REDACTED

_SECRET_KEY: Final = re.compile(
    r"secret|token|password|passwd|authorization|signature|api[-_]?key|user[-_]?key|cookie|"
    r"^headers$|credential",
    re.IGNORECASE,
)
_level = logging.INFO


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
    return event_dict


def configure(fmt: str | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """`fmt` json or console; None picks console on a terminal and json otherwise.
    Call it once, before anything logs (loggers keep the configuration of their first line)."""
    global _level
    _level = logging.getLevelNamesMapping()[level.upper()]
    out = stream or sys.stdout
    if fmt is None:
        fmt = "console" if out.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level),
        logger_factory=structlog.PrintLoggerFactory(out),
        # Each module's logger is bound once, not on every call: an uncached proxy
        # rebuilds its logger per line, even for a line its level filters out. Hence:
        # configure once per process, before the first line.
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library (aiohttp's own errors): same lines.
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[*shared, structlog.processors.format_exc_info],
    ))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(logging.WARNING, _level))


def debug_enabled() -> bool:
    """Whether debug lines are written. A line per event or delivery at debug is skipped
    whole when they are not: even a filtered call costs the event loop about 10 µs
    between requests (the logger proxy, the keyword arguments)."""
    return _level <= logging.DEBUG


def get(name: str) -> Any:
    return structlog.get_logger(name)

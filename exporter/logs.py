"""structlog set-up: one event a line, logfmt or JSON."""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import TextIO

import structlog
from structlog.types import EventDict, WrappedLogger

from .sanitize import clean_text
from .scrub import BIDI_CONTROLS, INVISIBLE, scrub

# Longest value of one log field; vendor text beyond it is cut (tracebacks are exempt).
MAX_FIELD_LENGTH = 512

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str = "info", fmt: str = "logfmt") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.processors.LogfmtRenderer(
            key_order=["ts", "level", "event"], bool_as_flag=False
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            scrub_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=LineLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if not any(isinstance(handler, _AsOurEvents) for handler in root.handlers):
        root.addHandler(_AsOurEvents())


class LineLogger:
    """structlog's PrintLogger, one line a call, under a re-entrant lock. The garbage
    collector may run a finalizer that logs (asyncio's "Unclosed client session") in the
    middle of a write; under PrintLogger's plain lock that line waited for ever on the
    write it interrupted, and the process froze. Now it is written, or lost if the
    stream refuses a nested write; never a freeze."""

    _lock = threading.RLock()  # one for all: every logger writes the same stream

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        with self._lock:
            self._file.write(message + "\n")
            self._file.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class LineLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: object) -> LineLogger:
        return LineLogger(self._file)


class _AsOurEvents(logging.Handler):
    """The libraries' own log records (aiohttp's "Error handling request" for a
    malformed request, asyncio's "Task exception was never retrieved") as our events:
    one line each, in the chosen format, through the same scrubbing. Before, they went
    to stderr as Python's multi-line tracebacks, which any client could set off."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = get_logger(library=record.name)
            extra: dict[str, object] = {"exc_info": record.exc_info} if record.exc_info else {}
            if record.levelno >= logging.ERROR:
                logger.error(record.getMessage(), **extra)
            elif record.levelno >= logging.WARNING:
                logger.warning(record.getMessage(), **extra)
            else:
                logger.info(record.getMessage(), **extra)
        except Exception:  # logging must never raise into its caller
            self.handleError(record)


def get_logger(**bindings: object) -> structlog.stdlib.BoundLogger:
    # Stays lazy: module-level loggers created before configure() still obey it.
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(**bindings)
    return logger


# Control characters but line feed and tab (which both renderers handle): logfmt writes
# them raw, and an ESC sequence in a vendor string would drive the terminal reading it.
# The bidirectional overrides too: U+202E shows the rest of the line backwards.
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_CONTROLS}{INVISIBLE}]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def scrub_fields(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """The last line of defence: no log field carries a secret, an unencodable character
    or an unbounded vendor string, whichever code path put it there."""
    for key, value in event.items():
        if isinstance(value, BaseException):
            value = str(value)
        elif not isinstance(value, str):
            continue
        value = scrub(clean_text(value))
        if not value.isprintable():
            value = _CONTROL.sub(_escaped, value)
        if key != "exception" and len(value) > MAX_FIELD_LENGTH:
            value = value[:MAX_FIELD_LENGTH] + "…"
        event[key] = value
    return event

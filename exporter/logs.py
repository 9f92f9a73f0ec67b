"""structlog set-up: one event a line, logfmt or JSON."""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "logfmt") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json"
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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**bindings: object) -> structlog.stdlib.BoundLogger:
    # Stays lazy: module-level loggers created before configure() still obey it.
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(**bindings)
    return logger

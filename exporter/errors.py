"""Exceptions shared by the core and the vendor packages."""

from __future__ import annotations

from .sanitize import clean_text
from .scrub import scrub


class ParseError(ValueError):
    """A vendor reply that could not be understood. Parsers raise only this."""


class UpstreamError(Exception):
    """One failed upstream operation, already counted in the self-metrics.

    `reason` is a short, fixed label value (timeout, http_5xx, auth, parse, ...).
    The message must never contain a secret: build it from status codes and
    operation names, never from URLs with credentials or request bodies.
    """

    def __init__(
        self, operation: str, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        message = scrub(clean_text(message))  # messages reach logs and the status page
        super().__init__(f"{operation}: {reason}: {message}")
        self.operation = operation
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

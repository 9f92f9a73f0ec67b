"""Vendor values made safe where they enter: text that always encodes, numbers parsed
strictly and checked for plausibility, label values of bounded length.

Parsers call these so that no vendor value can raise anything but our `ParseError`, and
no absurd number (1e308, NaN, the year 9999) is ever observed into a series.
"""

from __future__ import annotations

import math
import re

from .scrub import UNSHOWABLE, scrub

# The longest vendor string kept as a label value; longer ones are cut and marked.
LABEL_VALUE_MAX_LENGTH = 64
TRUNCATION_MARKER = "…"

# A session lasting, or a customer waiting, longer than this is a vendor error.
MAX_PLAUSIBLE_SECONDS = 7 * 86400.0
# A vendor record dated later than this after now is a vendor error: a day allows for a
# vendor writing its local time as UTC, and for clocks apart.
MAX_AHEAD = 86400.0

# More sessions (or guests) than any one account has in a day: a bigger count is a vendor
# error, and as a gauge it would flatten every dashboard beside it. Below 2**53, too, so a
# count stays exact as the float a sample holds.
MAX_PLAUSIBLE_COUNT = 10**9

# Enough for any count or id a vendor sends; far below Python's int conversion limit.
MAX_DIGITS = 18
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` guaranteed to encode as UTF-8: lone surrogates (valid in JSON, invalid in
    UTF-8) become U+FFFD. A render must never fail on one vendor string."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


# In a label value they reach terminals and pages (ESC [ moves a cursor, U+202E shows
# what follows backwards), and no real name has one.
_CONTROL = re.compile(f"[{UNSHOWABLE}]")


def printable(text: str) -> str:
    """A vendor string fit to show: encodable, scrubbed of secrets, control characters
    blanked one for one. Scrubbed again once blanked: "pass\tphrase" blanked is
    "pass phrase", which may be a secret."""
    text = scrub(clean_text(text))
    if not text.isprintable():  # one C pass: most values have nothing to blank
        text = scrub(_CONTROL.sub(" ", text))
    return text


def label_value(text: str, max_length: int = LABEL_VALUE_MAX_LENGTH) -> tuple[str, bool]:
    """A vendor string as a label value: `printable`, at most `max_length` characters.
    The flag says whether it had to be cut."""
    text = printable(text)
    if len(text) <= max_length:
        return text, False
    return text[: max_length - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER, True


def strict_int(text: str) -> int | None:
    """ASCII digits only (superscripts and Arabic-Indic digits are digits to
    `str.isdigit`, not to us), at most `MAX_DIGITS` of them; None otherwise."""
    text = text.strip()
    # For ASCII text `isdigit` is exactly [0-9]; two string methods instead of a regex
    # match, because parsers call this for every id and count of every record.
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        return None
    return int(text)


def plausible_seconds(value: float, maximum: float = MAX_PLAUSIBLE_SECONDS) -> bool:
    """A duration or wait a real session can have: finite, from 0 to `maximum`."""
    return math.isfinite(value) and 0.0 <= value <= maximum


def plausible_start(value: float, now: float, maximum: float = MAX_PLAUSIBLE_SECONDS) -> bool:
    """A Unix time something still going on can have begun at: at most `maximum` before
    `now`, at most `MAX_AHEAD` after it."""
    return math.isfinite(value) and now - maximum <= value <= now + MAX_AHEAD


# Bounds for parsers, which have no clock: vendor dates outside 2000-2100 are errors.
EARLIEST_PLAUSIBLE = 946_684_800.0  # 2000-01-01T00:00:00Z
LATEST_PLAUSIBLE = 4_102_444_800.0  # 2100-01-01T00:00:00Z


def plausible_epoch(value: float) -> bool:
    """A vendor timestamp of this century (what a parser can check without a clock)."""
    return math.isfinite(value) and EARLIEST_PLAUSIBLE <= value < LATEST_PLAUSIBLE

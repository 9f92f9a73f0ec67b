"""The one secret scrubber: every configured credential, in every encoding it travels in.

Vendor text (error bodies, values that become labels, messages that reach a log) may quote
what we sent: the raw key, its form or URL encoding, the base64 of a Basic token with or
without padding. Every `Secret` registers itself here when it is made, and clients register
the derived forms they send (a Basic token); `scrub` replaces all of them.
"""

from __future__ import annotations

import base64
import re
import threading
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
# Shorter values would redact ordinary words; config refuses nothing, but a credential
# this short is no secret anyway.
MIN_SECRET_LENGTH = 4
# A cut excerpt may end inside a secret: drop a trailing fragment at least this long that
# starts one of the forms.
MIN_FRAGMENT = 4

_lock = threading.Lock()
_forms: set[str] = set()
_pattern: re.Pattern[str] | None = None


def encodings(value: str) -> set[str]:
    """The forms `value` takes on the wire: raw, URL and form encoded, base64 (padded or
    not, standard and URL-safe alphabets), and those base64 forms URL-encoded."""
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    raw = value.encode("utf-8")
    for b64 in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        for form in (b64, b64.rstrip("=")):
            forms.update({form, quote(form, safe=""), quote_plus(form)})
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def register(value: str) -> None:
    """Know `value` (and its encodings) from now on."""
    global _pattern
    if len(value) < MIN_SECRET_LENGTH:
        return
    new = encodings(value) - _forms
    if not new:
        return
    with _lock:
        _forms.update(new)
        ordered = sorted(_forms, key=len, reverse=True)  # longest first: no partial hits
        _pattern = re.compile("|".join(re.escape(f) for f in ordered), re.IGNORECASE)


def register_basic(user: str, password: str) -> None:
    """An HTTP Basic credential: the token is base64 of ``user:password``."""
    register(f"{user}:{password}")


def scrub(text: str) -> str:
    """`text` with every known secret form replaced by ``<redacted>``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def contains_secret(text: str) -> bool:
    pattern = _pattern
    return pattern is not None and pattern.search(text) is not None


def excerpt(text: str, limit: int) -> str:
    """A scrubbed excerpt of at most about `limit` characters. Scrubbed before it is cut,
    so a secret straddling the cut is caught whole; a trailing fragment that begins a
    secret form is dropped too."""
    text = scrub(text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    for form in _forms:
        for size in range(min(len(form) - 1, len(cut)), MIN_FRAGMENT - 1, -1):
            if cut.endswith(form[:size]):
                cut = cut[:-size]
                break
    return cut + "…"

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
# Shorter values would redact ordinary words; a credential this short is no secret anyway.
MIN_SECRET_LENGTH = 4
# A cut excerpt may end inside a secret: a trailing fragment at least this long that
# begins one of the forms is dropped too.
MIN_FRAGMENT = 4


def encodings(value: str) -> set[str]:
    """The forms `value` takes on the wire: raw, URL and form encoded, base64 (padded or
    not, standard and URL-safe alphabets), and those base64 forms URL-encoded."""
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    raw = value.encode("utf-8", "surrogatepass")
    for b64 in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        for form in (b64, b64.rstrip("=")):
            forms.update({form, quote(form, safe=""), quote_plus(form)})
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Scrubber:
    """Known secret forms and one compiled pattern over all of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        """Know `value` (and its encodings) from now on."""
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            new = encodings(value) - self._forms
            if not new:
                return
            forms = self._forms | new
            ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial hits
            # Case-insensitive: percent-escapes come in either case, and redacting a
            # look-alike costs nothing.
            self._pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)
            self._forms = forms

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)

    def contains_secret(self, text: str) -> bool:
        pattern = self._pattern
        return pattern is not None and pattern.search(text) is not None

    def excerpt(self, text: str, limit: int) -> str:
        """A scrubbed excerpt of at most about `limit` characters. Scrubbed before it is
        cut, so a secret straddling the cut is caught whole; a trailing fragment that
        begins a secret form is dropped as well."""
        text = self.scrub(text)
        if len(text) <= limit:
            return text
        cut = text[:limit]
        lowered = cut.casefold()
        for form in self._forms:
            folded = form.casefold()
            for size in range(min(len(folded) - 1, len(cut)), MIN_FRAGMENT - 1, -1):
                if lowered.endswith(folded[:size]):
                    cut, lowered = cut[:-size], lowered[:-size]
                    break
        return cut + "…"


# The process's one scrubber: `config.Secret` registers every credential here.
SCRUBBER = Scrubber()
register = SCRUBBER.register
scrub = SCRUBBER.scrub
contains_secret = SCRUBBER.contains_secret
excerpt = SCRUBBER.excerpt


def register_basic(user: str, password: str) -> None:
    """An HTTP Basic credential: the token on the wire is base64 of ``user:password``."""
    SCRUBBER.register(f"{user}:{password}")

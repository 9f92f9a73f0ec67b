"""The one secret scrubber: every configured credential, in every encoding it travels in.

Vendor text (error bodies, values that become labels, messages that reach a log) may quote
what we sent: the raw key, its form or URL encoding, the base64 of a Basic token with or
without padding. Every `Secret` registers itself here when it is made, and clients register
the derived forms they send (a Basic token); `scrub` replaces all of them.
"""

from __future__ import annotations

import base64
import codecs
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
        return self.without_trailing_fragment(text[:limit]) + "…"

    def without_trailing_fragment(self, cut: str) -> str:
        """`cut`, scrubbed text cut short, without a trailing piece that begins a secret
        form: the rest of the secret was beyond the cut."""
        lowered = cut.casefold()
        for form in self._forms:
            folded = form.casefold()
            for size in range(min(len(folded) - 1, len(cut)), MIN_FRAGMENT - 1, -1):
                if lowered.endswith(folded[:size]):
                    cut, lowered = cut[:-size], lowered[:-size]
                    break
        return cut


# Byte order marks of the encodings a vendor's error body may come in, longest first.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")  # C0, DEL and C1 (\x9b is a CSI)


def first_line_excerpt(body: bytes, limit: int, window: int = 65536) -> str:
    """The first non-blank line of a vendor's error body, fit for a log line and the
    status page: at most about `limit` characters, control characters blanked, every
    secret scrubbed before anything is cut (at the line's end or at `limit`), and a
    trailing piece of a secret dropped, as when a key is wrapped onto the next line.

    Decoded by its byte order mark, else as UTF-8; NULs are removed before the scrub,
    so that a UTF-16 body without a mark, read as UTF-8, still shows its key whole."""
    head = body[:window]
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
    text = head.decode(encoding, "replace").replace("\x00", "")
    text = SCRUBBER.scrub(text)
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line]
    if not kept:
        return ""
    first = kept[0]
    if len(kept) > 1:
        first = SCRUBBER.without_trailing_fragment(first).rstrip()
    return SCRUBBER.excerpt(_CONTROL.sub(" ", first), limit)


# The process's one scrubber: `config.Secret` registers every credential here.
SCRUBBER = Scrubber()
register = SCRUBBER.register
scrub = SCRUBBER.scrub
contains_secret = SCRUBBER.contains_secret
excerpt = SCRUBBER.excerpt


def register_basic(user: str, password: str) -> None:
    """An HTTP Basic credential: the token on the wire is base64 of ``user:password``."""
    SCRUBBER.register(f"{user}:{password}")

"""The one secret scrubber: every configured credential, in every encoding it travels in.

Vendor text (error bodies, values that become labels, messages that reach a log) may quote
what we sent: the raw key, its form or URL encoding, the base64 of a Basic token with or
without padding. Every `Secret` registers itself here when it is made, and clients register
the derived forms they send (a Basic token); `scrub` replaces all of them.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import html
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes, quote_plus

REDACTED = "<redacted>"
# Shorter values would redact ordinary words; a credential this short is no secret anyway.
MIN_SECRET_LENGTH = 4
# A cut excerpt may end inside a secret: a trailing fragment at least this long that
# begins one of the forms is dropped too.
MIN_FRAGMENT = 4
# Pieces of secrets cut off the end of one text at the most (`without_trailing_fragment`).
FRAGMENT_PASSES = 4

# Byte order marks of the encodings a vendor's error body may come in, longest first.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# The bidirectional embeddings, overrides and isolates (U+202E shows what follows
# backwards), and with C0, DEL and C1 (\x9b is a CSI) every character no vendor string
# is shown with: each the inside of a regex character class.
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
# Invisible format characters that no text needs shown: the soft hyphen, zero-width
# spaces, the word joiner, the BOM (`Wai\u00adting` read exactly as `Waiting` on a
# page). Not the zero-width joiners and direction marks: emoji and right-to-left text
# are written with them.
INVISIBLE = "\u00ad\u180e\u200b\u2060-\u2064\ufeff"
UNSHOWABLE = "\x00-\x1f\x7f-\x9f" + BIDI_CONTROLS + INVISIBLE


def encodings(value: str) -> set[str]:
    """The forms `value` takes on the wire: raw, URL and form encoded, base64 (padded or
    not, standard and URL-safe alphabets), and those base64 forms URL-encoded; and as
    an HTML or XML error page quotes it (`markup_forms`)."""
    forms = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    raw = value.encode("utf-8", "surrogatepass")
    if len(value) <= _MARKUP_LONGEST:  # credentials, not a 64 KiB secret file
        # Every byte percent-encoded, and in hex (probe 8 saw both reach the log whole).
        forms.update({"".join(f"%{byte:02X}" for byte in raw), raw.hex()})
        # As `_normalized` reads a text: `Kennwort²` is read `Kennwort2` there.
        forms.add(_FORMAT_CHARS.sub("", unicodedata.normalize("NFKC", value)))
    for b64 in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        for form in (b64, b64.rstrip("=")):
            forms.update({form, quote(form, safe=""), quote_plus(form)})
    forms.update(markup_forms(value))
    forms.update(mojibake_forms(value))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


# The single-byte codecs a vendor's error page may be written in instead of UTF-8.
_SINGLE_BYTE_CODECS = ("cp1252", "latin-1")


def mojibake_forms(value: str) -> set[str]:
    """A non-ASCII `value` as it reads after a trip through another codec: echoed in
    cp1252 and read by us as UTF-8 (`Schl\ufffdssel`: probe 5 saw 12 of a key's 13
    characters so), our UTF-8 read by the vendor as cp1252 and echoed back
    (`SchlÃ¼ssel`), and percent-encoded in cp1252."""
    if value.isascii():
        return set()
    forms: set[str] = set()
    raw = value.encode("utf-8", "surrogatepass")
    for codec in _SINGLE_BYTE_CODECS:
        with contextlib.suppress(UnicodeDecodeError):  # cp1252 leaves five bytes undefined
            forms.add(raw.decode(codec))
        try:
            single = value.encode(codec)
        except UnicodeEncodeError:  # a character the codec lacks: it cannot send this form
            continue
        forms.add(single.decode("utf-8", "replace"))
        forms.update({quote_from_bytes(single, safe=""), quote_plus(single, safe="")})
    return forms


# How markup writes the characters it must escape: `&`, `<` and `>` always as these, the
# quotes in each of the ways HTML and XML writers do (Python's html.escape, .NET's
# HtmlEncode and XmlWriter), or not at all.
# Keys, secrets and passwords are far shorter: the forms of a 64 KiB secret file made
# the scrubber's pattern take 4-5 s to build.
_MARKUP_LONGEST = 1024
_MARKUP_QUOTES = {'"': ("&quot;", "&#34;", "&#x22;"), "'": ("&#x27;", "&#39;", "&apos;")}


def markup_forms(value: str) -> set[str]:
    """`value` as an HTML or XML page quotes it: a Glance error page quoted a key of
    `Tz9&Qm<Rk>84'Lp` as `Tz9&amp;Qm&lt;Rk&gt;84&#x27;Lp`, whole, to the log and pages."""
    if len(value) > _MARKUP_LONGEST or not any(c in value for c in "&<>\"'"):
        return set()
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    forms = {escaped}
    for quote_char, styles in _MARKUP_QUOTES.items():
        forms |= {form.replace(quote_char, style) for form in forms for style in styles}
    return forms


# JSON's escapes of one character, as `json.dumps` and .NET's encoders write them;
# surrogates are left escaped, so that what is read back is always encodable.
_JSON_ESCAPE = re.compile(r"\\u(?!d[89a-f])([0-9a-f]{4})|\\([\\\"/bfnrt])", re.IGNORECASE)
_JSON_NAMED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_BLANKS = " \t"
# Readings of one text tried in turn (`Scrubber.scrub`).
_READINGS = 3


def _json_char(match: re.Match[str]) -> str:
    code, char = match.groups()
    if code is not None:
        return chr(int(code, 16))
    return _JSON_NAMED.get(char, char)


def _unwrapped(text: str) -> str:
    """`text` with its line breaks, and the blanks on either side of each, taken out
    (where a vendor wrapped a long text); `text` itself if it has none. By splitting,
    not by a regex: `[ \t]*\n` backtracked through every run of blanks, quadratic (39 s
    for 64 KiB of them)."""
    if "\n" not in text and "\r" not in text:
        return text
    first, *inner, last = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join(
        (first.rstrip(_BLANKS), *(line.strip(_BLANKS) for line in inner), last.lstrip(_BLANKS))
    )


# Characters of Unicode's format category a vendor may put inside a secret without
# changing how it looks: zero-width spaces and joiners, the soft hyphen, the BOM.
_FORMAT_CHARS = re.compile(f"[{INVISIBLE}\u200c-\u200f]+")


def _normalized(text: str) -> str:
    """`text` as it looks: NFKC (full-width letters, a no-break space, read as their
    plain selves) and without invisible format characters; `text` itself, the same
    object, if that changes nothing (ASCII text never changes)."""
    if text.isascii():
        return text
    result = _FORMAT_CHARS.sub("", unicodedata.normalize("NFKC", text))
    return text if result == text else result


def _readings(text: str) -> Iterator[str]:
    """`text` as read with its escapes decoded, with its lines joined, and both ways
    round (a break may fall inside an escape), each also as it looks (`_normalized`,
    so that `&shy;` or `\\u200b` inside a secret hide nothing): each that differs."""
    for reading in _plain_readings(text):
        if reading is not text:
            yield reading
        normalized = _normalized(reading)
        if normalized is not reading:
            yield normalized


def _plain_readings(text: str) -> Iterator[str]:
    yield text
    unescaped = _unescaped(text)
    if unescaped is not text:
        yield unescaped
    unwrapped = _unwrapped(text)
    if unwrapped is not text:
        yield unwrapped
        joined_first = _unescaped(unwrapped)
        if joined_first is not unwrapped:
            yield joined_first
    if unescaped is not text:
        decoded_first = _unwrapped(unescaped)
        if decoded_first is not unescaped:
            yield decoded_first


# Rounds of decoding: an escape escaped again (`&amp;#38;`), and again. Each round that
# changes the text makes it shorter, so this bounds the work, not the result.
_UNESCAPE_ROUNDS = 4


def _unescaped(text: str) -> str:
    """`text` with its HTML character references and JSON escapes read, a few times over
    (an escape escaped again, `&amp;#38;`); `text` itself, the same object, if it has
    none."""
    result = text
    for _ in range(_UNESCAPE_ROUNDS):
        before = result
        if "&" in result:
            result = html.unescape(result)
        if "\\" in result:
            result = _JSON_ESCAPE.sub(_json_char, result)
        if result == before:
            break
    return text if result == text else result


class Scrubber:
    """Known secret forms, matched by two patterns compiled when next needed: one for the
    configured credentials, which only grows, and one for the session credentials that
    holders replace (a Rescue login's cookie), so a new login recompiles only the small
    second one.

    Each pattern is a trie of its forms, not an alternation of them: at each position of
    the text the regex engine follows one branch instead of trying every form, so
    scrubbing costs about the same with 2 credentials or 20,000 forms of them.
    Compiling waits for the next scrub, so registering every account's secrets at
    start-up compiles once, not once per secret.
    """

    def __init__(self) -> None:
        # Re-entrant: compiling allocates, so the garbage collector may run a finalizer
        # that logs mid-compile, and that log line is scrubbed here again. A plain lock
        # then waited on itself for ever. What a nested scrub compiles is what the outer
        # one would, so either may store it.
        self._lock = threading.RLock()
        self._kept: frozenset[str] = frozenset()
        # Credentials the vendor hands out and later replaces, by holder: a new one
        # replaces the old, so they do not pile up for ever.
        self._held: dict[str, frozenset[str]] = {}
        self._kept_forms: Forms | None = NO_FORMS
        self._held_forms: Forms | None = NO_FORMS

    def register(self, value: str) -> None:
        """Know `value` (and its encodings) from now on."""
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            new = encodings(value) - self._kept
            if new:
                self._kept |= new
                self._kept_forms = None

    def hold(self, holder: str, values: Iterable[str]) -> None:
        """Know `values` as `holder`'s current session credentials, in place of its last
        ones (none forgets them)."""
        forms = frozenset().union(*(encodings(v) for v in values if len(v) >= MIN_SECRET_LENGTH))
        with self._lock:
            if self._held.get(holder, frozenset()) == forms:
                return
            if forms:
                self._held[holder] = forms
            else:
                self._held.pop(holder, None)
            self._held_forms = None

    def _current(self) -> tuple[Forms, Forms]:
        kept, held = self._kept_forms, self._held_forms
        if kept is not None and held is not None:
            return kept, held
        with self._lock:
            if self._kept_forms is None:
                self._kept_forms = compile_forms(self._kept)
            if self._held_forms is None:
                self._held_forms = compile_forms(frozenset().union(*self._held.values()))
            return self._kept_forms, self._held_forms

    def scrub(self, text: str) -> str:
        # A reading that shows a secret the text itself does not (one wrapped onto the
        # next line, or escaped) is scrubbed first: scrubbed as it is, a shorter secret
        # inside it (another account's) was cut out, and what was left of the longer one
        # was in no reading any more, so it showed.
        hiding, any_shown = self._hiding_reading(text)
        if hiding is not None:
            text = _CONTROL.sub(" ", self._scrub_forms(hiding))
        else:
            text = self._scrub_forms(text)
            if not any_shown:
                return text  # no reading of it shows a secret: none of the scrubbed will
        # A secret written with escapes no form foresees (`&#38;` for `&` in a page,
        # `\u0026` in JSON as .NET writes it), or wrapped onto the next line: the text
        # is shown as read that way, scrubbed, and with the control characters that
        # reading may have made (`\u0000`) blanked. A few times over, for a second
        # secret another way.
        for _ in range(_READINGS):
            revealing = next(filter(self._has_form, _readings(text)), None)
            if revealing is None:
                break
            text = _CONTROL.sub(" ", self._scrub_forms(revealing))
        return text

    def _hiding_reading(self, text: str) -> tuple[str | None, bool]:
        """The first reading of `text` in which a secret form shows that `text` itself
        does not hold, if one does; and whether any reading shows one at all."""
        plain: set[str] | None = None
        for reading in _readings(text):
            found = self._found(reading)
            if found:
                if plain is None:
                    plain = self._found(text)
                if not found <= plain:
                    return reading, True
        return None, plain is not None

    def shows_more(self, reading: str, text: str) -> bool:
        """Whether `reading` of `text` holds a secret form that `text` itself does not."""
        return not self._found(reading) <= self._found(text)

    def _found(self, text: str) -> set[str]:
        return {
            match
            for forms in self._current()
            if forms.pattern is not None
            for match in map(str.casefold, forms.pattern.findall(text))
        }

    def _scrub_forms(self, text: str) -> str:
        for forms in self._current():
            if forms.pattern is not None and text:
                text = forms.pattern.sub(REDACTED, text)
        return text

    def contains_secret(self, text: str) -> bool:
        return self._has_form(text) or any(map(self._has_form, _readings(text)))

    def _has_form(self, text: str) -> bool:
        return any(
            forms.pattern is not None and forms.pattern.search(text) is not None
            for forms in self._current()
        )

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
        current = self._current()
        folded = fold(cut)  # the same positions as `cut`
        # Another form's beginning may be left in front of the cut, so a few passes; not
        # more: a line of nothing but a key's first four characters again and again is a
        # vendor repeating what it knows, not a key we cut, and one pass a piece made it
        # quadratic (2 s on the loop for a 64 KiB line).
        for _ in range(FRAGMENT_PASSES):
            start = min_start(fragment_start(forms, folded) for forms in current)
            if start is None:
                break
            cut, folded = cut[:start], folded[:start]
        return cut


def min_start(starts: Iterable[int | None]) -> int | None:
    found = [start for start in starts if start is not None]
    return min(found) if found else None


@dataclass(frozen=True)
class Forms:
    """Secret forms, compiled: the trie (for fragments), its pattern, and the length of
    the longest form."""

    trie: Trie
    pattern: re.Pattern[str] | None
    longest: int


NO_FORMS = Forms({}, None, 0)


def compile_forms(forms: Iterable[str]) -> Forms:
    # Folded, matched ignoring case: percent-escapes come in either case, and redacting
    # a look-alike costs nothing.
    folded = [fold(form) for form in forms]
    trie = build_trie(folded)
    pattern = re.compile(trie_regex(trie), re.IGNORECASE) if trie else None
    return Forms(trie, pattern, max(map(len, folded), default=0))


class _CharFold(dict[int, str]):
    """For `str.translate`: each character's lower case where that is one character,
    else the character as it is (`str.lower` makes "İ" two characters, and then indexes
    into the folded text were not indexes into the text: a cut there never shrank).
    Remembered for the Basic Multilingual Plane only, so a vendor sending every code
    point cannot grow it past 65,536 entries."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        lowered = char.lower()
        folded = lowered if len(lowered) == 1 else char
        if code < 0x10000:
            self[code] = folded
        return folded


_FOLD = _CharFold()


def fold(text: str) -> str:
    """`text` lower-cased a character at a time, the same length as `text`."""
    return text.translate(_FOLD)


# A trie of folded forms: each character leads to the rest; "" marks a form's end.
Trie = dict[str, "Trie"]


def build_trie(words: Iterable[str]) -> Trie:
    root: Trie = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return root


def trie_regex(node: Trie) -> str:
    """A regex matching the longest word of `node` at a position. A chain of single
    children is one literal, so the nesting is only as deep as the branch points."""
    branches = []
    for char, child in sorted(node.items()):
        if not char:
            continue
        literal = char
        while len(child) == 1 and "" not in child:
            ((char, child),) = child.items()
            literal += char
        branches.append(re.escape(literal) + trie_regex(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    # Greedy: a longer form is tried before a shorter one ending here.
    return f"(?:{body})?" if "" in node else body


def fragment_start(forms: Forms, folded: str) -> int | None:
    """Where the longest tail of `folded`, at least MIN_FRAGMENT long, that is a proper
    beginning of some form starts, if one is. Only a tail shorter than the longest form
    can be one, so a long text costs no more than a short one."""
    first = max(0, len(folded) - forms.longest + 1)
    for start in range(first, len(folded) - MIN_FRAGMENT + 1):
        node: Trie | None = forms.trie
        for char in folded[start:]:
            node = node.get(char) if node is not None else None
            if node is None:
                break
        if node is not None and any(node.keys() - {""}):
            return start
    return None


_CONTROL = re.compile(f"[{UNSHOWABLE}]+")


_HTML_START = re.compile(r"<!doctype\s+html|<html[\s>]", re.IGNORECASE)


def _html_title(text: str) -> str | None:
    """The text of the first `<title>` element, by `find`: a lazy regex over a page of
    unclosed `<title>`s took 2.7-4.8 s, on the loop."""
    lower = text.lower()
    start = lower.find("<title")
    opened = -1 if start < 0 else lower.find(">", start)
    end = -1 if opened < 0 else lower.find("</title", opened)
    return None if end < 0 else text[opened + 1 : end]


# A tag, but not our own mark of a scrubbed secret; no nested quantifier: linear.
_TAG = re.compile(f"(?!{re.escape(REDACTED)})<[^<>]*>")


def _without_blocks(text: str, name: str) -> str:
    """`text` without its `<name ...>...</name>` blocks (scripts, styles), by `find`, as
    `_html_title`; an unclosed one takes the rest of the text with it."""
    lower, kept, at = text.lower(), [], 0
    while (start := lower.find(f"<{name}", at)) >= 0:
        kept.append(text[at:start])
        end = lower.find(f"</{name}", start)
        if end < 0:
            return "".join(kept)
        at = lower.find(">", end)
        at = len(text) if at < 0 else at + 1
    kept.append(text[at:])
    return "".join(kept)


def _html_text(text: str) -> str:
    """What a browser would show of an HTML page, roughly: its text without tags,
    scripts and styles, entities read, white space collapsed. For an error page with no
    `<title>` (`<h1>Service Unavailable</h1><p>Maintenance until 18:00</p>`), whose
    first line is markup only."""
    for name in ("script", "style"):
        text = _without_blocks(text, name)
    shown = " ".join(html.unescape(_TAG.sub(" ", text)).split())
    # A secret split by a tag (`sec<b>ret</b>`) shows joined up only without the spaces
    # (and a shorter one inside it must not be scrubbed first, as with a wrapped line).
    joined = " ".join(html.unescape(_TAG.sub("", text)).split())
    return SCRUBBER.scrub(joined if SCRUBBER.shows_more(joined, shown) else shown)


def first_line_excerpt(body: bytes, limit: int, window: int = 65536) -> str:
    """The first non-blank line of a vendor's error body, or the title of an HTML page
    (an ASP.NET error page names the exception there; its first line is `<!DOCTYPE
    html>`), or the text of one without a title, fit for a log line and the status
    page: at most about `limit` characters, control characters blanked, every secret
    scrubbed before anything is cut (at the line's end or at `limit`), and a trailing
    piece of a secret dropped, as when a key is wrapped onto the next line.

    Decoded by its byte order mark, else as UTF-8; NULs are removed before the scrub,
    so that a UTF-16 body without a mark, read as UTF-8, still shows its key whole."""
    head = body[:window]
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
    raw = head.decode(encoding, "replace").replace("\x00", "")
    text = SCRUBBER.scrub(raw)
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line]
    if not kept:
        return ""
    is_html = _HTML_START.match(kept[0]) is not None
    title = _html_title(text) if is_html else None
    if title is not None and title.strip():
        # Its entities read (a secret among them is then scrubbed raw), its lines joined
        # (`excerpt` scrubs once more: joined, "pass\nphrase" may be a secret).
        named = " ".join(SCRUBBER.scrub(html.unescape(title)).split())
        return SCRUBBER.excerpt(_CONTROL.sub(" ", named), limit)
    if is_html and title is None:
        shown = _html_text(raw)  # read before any scrub: tags may split a secret
        if shown:
            return SCRUBBER.excerpt(_CONTROL.sub(" ", shown), limit)
    first = kept[0]
    if len(kept) > 1:
        first = SCRUBBER.without_trailing_fragment(first).rstrip()
    return SCRUBBER.excerpt(_CONTROL.sub(" ", first).strip(), limit)


# The process's one scrubber: `config.Secret` registers every credential here.
SCRUBBER = Scrubber()
register = SCRUBBER.register
hold = SCRUBBER.hold
scrub = SCRUBBER.scrub
contains_secret = SCRUBBER.contains_secret
excerpt = SCRUBBER.excerpt


def register_basic(user: str, password: str) -> None:
    """An HTTP Basic credential: the token on the wire is base64 of ``user:password``."""
    SCRUBBER.register(f"{user}:{password}")

"""A reply's Content-Encoding undone here, a bounded piece at a time, its end checked.

aiohttp's own decoding took a gzip stream cut before its end for a whole body (probe 8:
a Rescue reply missing its last rows was counted as if those sessions had ended), and
inflated each network read on the event loop before the size cap saw it (a 1 MiB gzip
of 1 GiB of zeros held scrapes up to 250 ms). Here each step inflates at most `PIECE`
bytes, so the caller checks its cap and lets the loop run between pieces, and a stream
that has not reached its end when the body does is `CutShort`.

Only what we ask for (`ACCEPT_ENCODING`) is decoded: gzip (several members too) and
deflate (zlib-wrapped, or raw as some servers send it); identity passes as it is.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

ACCEPT_ENCODING = "gzip, deflate"
PIECE = 1 << 20  # bytes inflated at most per step
# gzip members in one body at the most, as aiohttp allows: each costs a new inflater,
# and a body of 20-byte empty members was never capped by its decoded size.
MAX_MEMBERS = 1024
# What a server may put after the end of a compressed stream without it being another
# stream: a line break, blanks, zero padding (aiohttp took a gzip body and a newline).
_PADDING = b"\r\n\t \x00"
# Names for messages: "br" alone would mean little to whoever reads the log.
_SPOKEN = {"br": "brotli", "x-gzip": "gzip"}


class Undecodable(Exception):
    """The body is not in the coding it declares, or in one we never ask for."""

    def __init__(self, coding: str) -> None:
        super().__init__(coding)
        self.coding = _SPOKEN.get(coding, coding)


class CutShort(Exception):
    """The body ended before its compressed stream did."""

    def __init__(self, coding: str) -> None:
        super().__init__(coding)
        self.coding = _SPOKEN.get(coding, coding)


class _Inflater:
    """One coding: gzip or deflate, by zlib."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._gzip = coding in ("gzip", "x-gzip")
        self._raw = False  # deflate sent without its zlib wrapper
        self._started = False  # some input came
        self._members = 1
        self._zlib = self._new()

    def _new(self) -> zlib._Decompress:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        if not self._started:
            self._started = True
            if not self._gzip and not _zlib_header(data):  # deflate without its wrapper
                self._raw = True
                self._zlib = self._new()
        while data:
            if self._zlib.eof:
                if not data.strip(_PADDING):
                    return  # padding after the last stream
                if not self._gzip or self._members >= MAX_MEMBERS:
                    raise Undecodable(self.coding)  # bytes after the end of the stream
                self._members += 1
                self._zlib = self._new()  # a further gzip member
            try:
                yield self._zlib.decompress(data, PIECE)
                while self._zlib.unconsumed_tail:
                    yield self._zlib.decompress(self._zlib.unconsumed_tail, PIECE)
            except zlib.error:
                raise Undecodable(self.coding) from None
            data = self._zlib.unused_data

    def finish(self) -> None:
        if self._started and not self._zlib.eof:
            raise CutShort(self.coding)


class BodyDecoder:
    """Undo `Content-Encoding: header` (codings listed in the order they were applied)
    as the body arrives; `Undecodable` at once for a coding we do not decode."""

    def __init__(self, header: str | None) -> None:
        codings = [c.strip().lower() for c in (header or "").split(",")]
        self._stages = [
            _Inflater(coding) if coding in ("gzip", "x-gzip", "deflate") else _refuse(coding)
            for coding in reversed(codings)
            if coding not in ("", "identity")
        ]

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Pieces of the decoded body, each at most `PIECE` bytes once inflated."""
        return self._through(0, data)

    def finish(self) -> None:
        """The body is over: `CutShort` if a compressed stream is not."""
        for stage in self._stages:
            stage.finish()

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            if data:
                yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)


def _refuse(coding: str) -> _Inflater:
    raise Undecodable(coding)


def _zlib_header(data: bytes) -> bool:
    """Whether `data` begins as a zlib stream does (RFC 1950: method 8, check bits)."""
    if len(data) < 2:
        return (data[0] & 0x0F) == 8
    return (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0

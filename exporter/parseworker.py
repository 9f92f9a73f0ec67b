"""Big replies parsed in a child process, so that not even the GIL is shared with scrapes.

A parse in a worker thread still takes the GIL from the event loop at every switch
interval, so a half-second parse slows every scrape it overlaps (bench/RESULTS.md). One
child process (`python -m exporter.parseworker`, started with the first big reply and
again after it died) parses replies of `PROCESS_BYTES` and more: the parser (a picklable
pure function of the body) and the body go down its stdin, the result comes back up its
stdout in pieces, and each piece is unpickled between two yields to the loop.

A result that is a long list of records should implement `Pieces` (`split` in the child,
`join` here; `RecordsInPieces` does it for a dataclass with one tuple of records), so that
no single unpickling holds the loop for long; anything else comes back whole. The child
inherits stderr (its rare crash is visible in the exporter's log stream) and nothing else:
no configuration, no secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Protocol, Self, TypeVar, cast, runtime_checkable

from .errors import ParseError
from .heap import tune_garbage_collector

T = TypeVar("T")

# Replies at least this large go to the child; below it a thread is cheaper than the trip.
PROCESS_BYTES = 4 * 1024 * 1024
# The body goes down the pipe in slices of at most this much, each awaited: no second
# copy of a big body sits in the transport's buffer.
_SLICE = 1 << 20
# The package's own parent directory, first on the child's path: the child imports
# exactly this exporter, installed or not.
_ROOT = str(Path(__file__).resolve().parent.parent)
# Frame: one kind byte and a payload length.
_HEADER = struct.Struct(">cQ")
_JOB, _BODY = b"J", b"B"
_KIND, _PIECE, _DONE, _PARSE_ERROR, _CRASH = b"T", b"P", b"D", b"E", b"X"


@runtime_checkable
class Pieces(Protocol):
    """A result that travels in pieces: `split` runs in the child, `join` here."""

    def split(self) -> Iterable[object]: ...

    @classmethod
    def join(cls, pieces: list[Any]) -> Self: ...


class RecordsInPieces:
    """`Pieces` for a frozen dataclass whose bulk is one tuple of records: the rest of it
    first (the head), then the records, `PIECE` to a piece."""

    # The field holding the records, and how many make one piece: about a millisecond to
    # unpickle (a subclass with costlier records sets fewer).
    RECORDS: ClassVar[str] = "records"
    PIECE: ClassVar[int] = 2000

    def split(self) -> Iterator[object]:
        records: tuple[object, ...] = getattr(self, self.RECORDS)
        yield dataclasses.replace(cast(Any, self), **{self.RECORDS: ()})
        for start in range(0, len(records), self.PIECE):
            yield records[start : start + self.PIECE]

    @classmethod
    def join(cls, pieces: list[Any]) -> Self:
        head, *parts = pieces
        if not isinstance(head, cls):
            raise TypeError(f"the first piece of a {cls.__name__} is its head")
        joined: Self = dataclasses.replace(
            cast(Any, head), **{cls.RECORDS: tuple(chain.from_iterable(parts))}
        )
        return joined


class WorkerFailed(Exception):
    """The child died, or answered out of protocol; its message names no vendor data."""


def picklable(parser: Callable[[bytes], Any]) -> bytes | None:
    """The parser pickled (a module-level function or a partial of one), or None: a
    lambda or closure cannot travel, and is parsed in a thread instead."""
    try:
        return pickle.dumps(parser)
    except (pickle.PicklingError, AttributeError, TypeError):
        return None


class ParseWorker:
    """The parent's side: one child, one job at a time, restarted when it fails."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.jobs = 0  # parses done by a child, for tests and the benchmark

    async def parse(self, pickled_parser: bytes, body: bytes | Sequence[bytes]) -> Any:
        """The parser's result for `body` (given whole or as the chunks it arrived in);
        ParseError as the parser raised it; WorkerFailed if the child could not do it."""
        chunks = (body,) if isinstance(body, bytes) else body
        async with self._lock:
            process = await self._started()
            try:
                result = await self._exchange(process, pickled_parser, chunks)
            except ParseError:
                raise
            except BaseException:
                # Cancelled (the cycle deadline), died or out of step: what the child
                # is doing is unknown, so it goes, and the next job starts another.
                await self._stop()
                raise
            self.jobs += 1
            return result

    async def close(self) -> None:
        async with self._lock:
            await self._stop()

    async def _started(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": _ROOT + (os.pathsep + path if path else "")}
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "exporter.parseworker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise WorkerFailed(f"parse worker did not start ({type(exc).__name__})") from None
        return self._process

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    async def _exchange(
        self,
        process: asyncio.subprocess.Process,
        pickled_parser: bytes,
        chunks: Sequence[bytes],
    ) -> Any:
        stdin, stdout = process.stdin, process.stdout
        if stdin is None or stdout is None:  # never: both are pipes
            raise WorkerFailed("parse worker has no pipes")
        try:
            stdin.write(_HEADER.pack(_JOB, len(pickled_parser)) + pickled_parser)
            stdin.write(_HEADER.pack(_BODY, sum(map(len, chunks))))
            for chunk in chunks:
                view = memoryview(chunk)
                for start in range(0, len(chunk), _SLICE):
                    stdin.write(view[start : start + _SLICE])
                    await stdin.drain()
            await stdin.drain()
            kind, payload = await _read_frame(stdout)
            if kind == _PARSE_ERROR:
                raise ParseError(payload.decode("utf-8", "replace"))
            if kind == _CRASH:
                raise WorkerFailed(f"parser raised {payload.decode('ascii', 'replace')}")
            if kind != _KIND:
                raise WorkerFailed("parse worker answered out of protocol")
            joiner = cast(type[Pieces] | None, pickle.loads(payload))  # noqa: S301 - our child
            pieces: list[Any] = []
            while True:
                kind, payload = await _read_frame(stdout)
                if kind == _DONE:
                    break
                if kind != _PIECE:
                    raise WorkerFailed("parse worker answered out of protocol")
                pieces.append(pickle.loads(payload))  # noqa: S301 - our own child's pickle
                await asyncio.sleep(0)  # one piece at a time: scrapes go in between
        except (ConnectionError, asyncio.IncompleteReadError, BrokenPipeError):
            raise WorkerFailed("parse worker died") from None
        if joiner is None:
            if len(pieces) != 1:
                raise WorkerFailed("parse worker answered out of protocol")
            return pieces[0]
        return joiner.join(pieces)


async def _read_frame(stream: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind, size = _HEADER.unpack(await stream.readexactly(_HEADER.size))
    return kind, await stream.readexactly(size)


# -- the child ----------------------------------------------------------------------------


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    if len(data) != size:
        return None  # the parent went away
    return data


def _send(stream: BinaryIO, kind: bytes, payload: bytes) -> None:
    stream.write(_HEADER.pack(kind, len(payload)))
    stream.write(payload)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Jobs until stdin closes: each a parser and a body, answered as frames."""
    while True:
        frames = []
        for _ in (_JOB, _BODY):
            header = _read_exactly(stdin, _HEADER.size)
            if header is None:
                return
            _, size = _HEADER.unpack(header)
            payload = _read_exactly(stdin, size)
            if payload is None:
                return
            frames.append(payload)
        parser = pickle.loads(frames[0])  # noqa: S301 - sent by our own parent
        try:
            result = parser(frames[1])
        except ParseError as exc:
            _send(stdout, _PARSE_ERROR, str(exc).encode("utf-8", "replace"))
        except Exception as exc:  # a parser bug: named to the parent, the child goes on
            _send(stdout, _CRASH, type(exc).__name__.encode("ascii", "replace"))
        else:
            if isinstance(result, Pieces):
                _send(stdout, _KIND, pickle.dumps(type(result)))
                for piece in result.split():
                    _send(stdout, _PIECE, pickle.dumps(piece, pickle.HIGHEST_PROTOCOL))
            else:
                _send(stdout, _KIND, pickle.dumps(None))
                _send(stdout, _PIECE, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
            _send(stdout, _DONE, b"")
        stdout.flush()
        del frames, parser


if __name__ == "__main__":
    # A Ctrl-C in a terminal reaches the whole process group: the parent decides when
    # this child ends (by closing its stdin), so no traceback of ours shows up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The child is long-lived and builds a reply's records in bulk, as the daemon does:
    # with Python's thresholds a 100,000-row Rescue table set off 337 collections
    # (605 ms to parse, 512 ms with these).
    tune_garbage_collector()
    serve(sys.stdin.buffer, sys.stdout.buffer)

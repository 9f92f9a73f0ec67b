"""The parse worker process: a real child, real pipes, the real SecureVideo parser."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pickle
import signal
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from aiohttp import web

from exporter import parseworker
from exporter.admission import Admission
from exporter.errors import ParseError, UpstreamError
from exporter.heap import YOUNG_THRESHOLD
from exporter.http import Upstream, new_client_session
from exporter.parseworker import ParseWorker, RecordsInPieces, WorkerFailed, picklable
from exporter.selfmetrics import SelfMetrics
from exporter.vendors.rescue.parser import SessionList, parse_sessions
from exporter.vendors.securevideo.parser import HistoryPage, parse_history

from .support import serve_app


def history(count: int, odd: bool = False) -> bytes:
    records: list[Any] = [
        {
            "SessionId": i,
            "BillableTs": "2026-03-10T15:00:00",
            "DurationMinutes": i % 90,
            "WaitTime": 1,
            "BillableStatusCd": "BILL",
            "ReportableMeetingProvider": "Zoom",
        }
        for i in range(count)
    ]
    if odd:
        records[3]["WaitTime"] = "soon"  # one bad record: the general path, one skip
    return json.dumps(records).encode()


def fails_oddly(body: bytes) -> None:
    raise KeyError("a parser bug")


def refuses(body: bytes) -> None:
    raise ParseError("History reply is not JSON (at byte 3)")


def child_pid(body: bytes) -> int:
    return os.getpid()


def collector_settings(body: bytes) -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


@dataclass(frozen=True)
class Counted:
    """A result that travels in pieces, counting them."""

    pieces: int

    def split(self) -> list[object]:
        return [self, *range(self.pieces)]

    @classmethod
    def join(cls, pieces: list[Any]) -> Counted:
        return Counted(len(pieces) - 1)


def counted(body: bytes) -> Counted:
    return Counted(len(body) // 1000)


def dumped(parser: Any) -> bytes:
    pickled = picklable(parser)
    assert pickled is not None
    return pickled


PIECE_RECORDS = HistoryPage.PIECE


def rescue_table(rows: int) -> bytes:
    lines = ["OK", "", "ID|Status|Waiting Time|"]
    lines += [
        f"{1000 + i}|{('Waiting', 'Active', 'Closed')[i % 3]}|{i % 600}|" for i in range(rows)
    ]
    lines.append("7|Waiting|not a number|")  # a value the parser counts as invalid
    return "\r\n".join(lines).encode() + b"\r\n"


def test_records_in_pieces_split_into_a_head_and_slices_and_join_back() -> None:
    page = parse_sessions(rescue_table(2 * SessionList.PIECE + 3))
    pieces = list(page.split())
    head, *parts = pieces
    assert isinstance(head, SessionList) and head.sessions == ()
    assert head.invalid_values == page.invalid_values == 1
    assert [len(p) for p in parts] == [SessionList.PIECE, SessionList.PIECE, 4]  # type: ignore[arg-type]
    assert SessionList.join(pieces) == page
    with pytest.raises(TypeError, match="head"):
        SessionList.join(parts)
    assert issubclass(HistoryPage, RecordsInPieces) and HistoryPage.RECORDS == "records"


async def test_a_rescue_table_comes_back_whole_and_equal_in_pieces() -> None:
    body = rescue_table(5 * SessionList.PIECE + 1)
    worker = ParseWorker()
    try:
        result = await worker.parse(dumped(parse_sessions), body)
    finally:
        await worker.close()
    assert isinstance(result, SessionList)
    assert result == parse_sessions(body)
    assert len(result.sessions) == 5 * SessionList.PIECE + 2


async def test_a_page_comes_back_whole_and_equal_in_pieces() -> None:
    body = history(3 * PIECE_RECORDS + 7, odd=True)
    worker = ParseWorker()
    try:
        page = await worker.parse(dumped(partial(parse_history, max_records=10**6)), body)
    finally:
        await worker.close()
    assert isinstance(page, HistoryPage)
    assert page == parse_history(body, 10**6)
    assert (len(page.records), page.skipped) == (3 * PIECE_RECORDS + 6, 1)
    assert worker.jobs == 1


async def test_pieces_are_joined_by_the_result_type() -> None:
    worker = ParseWorker()
    try:
        assert await worker.parse(dumped(counted), b"x" * 5000) == Counted(5)
    finally:
        await worker.close()


async def test_one_child_serves_job_after_job_and_a_parse_error_keeps_it() -> None:
    worker = ParseWorker()
    try:
        first = await worker.parse(dumped(child_pid), b"")
        with pytest.raises(ParseError, match=r"not JSON \(at byte 3\)"):
            await worker.parse(dumped(refuses), b"{")
        assert await worker.parse(dumped(child_pid), b"") == first
        assert first != os.getpid()
    finally:
        await worker.close()


async def test_the_child_sets_its_garbage_collector_as_the_daemon_does() -> None:
    # It builds a reply's records in bulk: with Python's first threshold (700), one
    # parse of a 100,000-row table made 337 collections.
    worker = ParseWorker()
    try:
        (young, _, _), frozen = await worker.parse(dumped(collector_settings), b"")
    finally:
        await worker.close()
    assert young == YOUNG_THRESHOLD
    assert frozen > 0


async def test_a_parser_bug_is_named_and_the_next_job_gets_a_new_child() -> None:
    worker = ParseWorker()
    try:
        first = await worker.parse(dumped(child_pid), b"")
        with pytest.raises(WorkerFailed, match="KeyError"):
            await worker.parse(dumped(fails_oddly), b"")
        assert await worker.parse(dumped(child_pid), b"") != first
    finally:
        await worker.close()


async def test_a_killed_child_fails_one_job_and_is_replaced() -> None:
    worker = ParseWorker()
    try:
        first = await worker.parse(dumped(child_pid), b"")
        os.kill(first, signal.SIGKILL)
        with pytest.raises(WorkerFailed, match="died"):
            await worker.parse(dumped(child_pid), b"x" * 100)
        assert await worker.parse(dumped(child_pid), b"") not in (first, os.getpid())
    finally:
        await worker.close()


async def test_a_cancelled_job_stops_its_child() -> None:
    worker = ParseWorker()
    try:
        first = await worker.parse(dumped(child_pid), b"")
        # A body far bigger than a pipe's buffer: the job is still sending when cancelled.
        job = asyncio.create_task(worker.parse(dumped(child_pid), b"x" * (64 << 20)))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # gone: killed and reaped
        assert await worker.parse(dumped(child_pid), b"") != first
    finally:
        await worker.close()


def test_lambdas_and_closures_do_not_travel() -> None:
    assert picklable(lambda body: body) is None
    assert picklable(partial(parse_history, max_records=5)) is not None


async def _upstream_reply(
    worker: ParseWorker | None,
    parser: Any,
    body: bytes,
    monkeypatch: pytest.MonkeyPatch,
    threshold: int,
) -> Any:
    monkeypatch.setattr("exporter.http.PROCESS_BYTES", threshold)

    async def reply(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/h", reply)
    async with serve_app(app) as url, new_client_session() as session:
        upstream = Upstream(
            session,
            vendor="v",
            account="a",
            timeout=5,
            admission=Admission(1),
            metrics=SelfMetrics(),
            max_body_bytes=1 << 30,
            wall_time=lambda: 0.0,
            parse_worker=worker,
        )
        fetched = await upstream.fetch("op", "GET", url + "/h")
        return await upstream.parse_off_loop("op", parser, fetched.body)


async def test_upstream_sends_big_replies_to_the_worker_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = b"x" * (300 * 1024)  # over OFF_LOOP_BYTES: never parsed on the loop
    worker = ParseWorker()
    try:
        assert await _upstream_reply(worker, child_pid, body, monkeypatch, 1024) != os.getpid()
        # Below the threshold, or a lambda: a thread of this process.
        assert await _upstream_reply(worker, child_pid, body, monkeypatch, 1 << 30) == os.getpid()
        assert (
            await _upstream_reply(worker, lambda b: os.getpid(), body, monkeypatch, 1024)
            == os.getpid()
        )
        assert worker.jobs == 1
    finally:
        await worker.close()


async def test_upstream_maps_a_worker_parse_error_and_falls_back_when_it_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = b"x" * (300 * 1024)
    worker = ParseWorker()
    try:
        with pytest.raises(UpstreamError) as info:
            await _upstream_reply(worker, refuses, body, monkeypatch, 1024)
        assert info.value.reason == "parse"

        async def broken(pickled: bytes, body: bytes) -> Any:
            raise WorkerFailed("parse worker died")

        monkeypatch.setattr(worker, "parse", broken)
        # The reply is not lost: parsed in a thread of this process instead.
        assert await _upstream_reply(worker, child_pid, body, monkeypatch, 1024) == os.getpid()
    finally:
        await worker.close()


def test_the_child_answers_a_job_as_frames() -> None:
    """`serve` itself, in this process: a job in, its frames out, then a clean end."""
    import io

    job = (
        parseworker._HEADER.pack(b"J", len(pickle.dumps(counted)))
        + pickle.dumps(counted)
        + parseworker._HEADER.pack(b"B", 3000)
        + b"x" * 3000
    )
    out = io.BytesIO()
    parseworker.serve(io.BytesIO(job), out)
    data, kinds = out.getvalue(), []
    while data:
        kind, size = parseworker._HEADER.unpack(data[: parseworker._HEADER.size])
        kinds.append(kind)
        data = data[parseworker._HEADER.size + size :]
    assert kinds == [b"T", b"P", b"P", b"P", b"P", b"D"]

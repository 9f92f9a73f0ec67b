"""Hostile input: every parser, fed arbitrary bytes and mutated valid documents, either
parses or raises our `ParseError`: never another exception, never a hang (hypothesis
deadline), never memory out of proportion to the input (tracemalloc peak).

Valid documents are the vendor-doc samples and real simulator replies, fetched once over
loopback. Example counts are kept moderate so the file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.errors import ParseError
from exporter.simulators.clock import FakeClock
from exporter.simulators.glance import DEMO_API_KEY, DEMO_PARTNER_ID, GlanceSimulator
from exporter.simulators.rescue import RescueSimulator
from exporter.simulators.securevideo import (
    DEMO_API_KEY as SV_KEY,
)
from exporter.simulators.securevideo import (
    DEMO_API_SECRET as SV_SECRET,
)
from exporter.simulators.securevideo import (
    SecureVideoSimulator,
)
from exporter.vendors.glance import parser as glance
from exporter.vendors.rescue import parser as rescue
from exporter.vendors.securevideo import parser as securevideo

from .glance.harness import sample as glance_sample
from .rescue.test_parser import DOC_SAMPLE as RESCUE_DOC_SAMPLE
from .securevideo.harness import DOC_SAMPLE as SV_DOC_SAMPLE
from .support import serve_app

Parser = Callable[[bytes], object]
KOLKATA = ZoneInfo("Asia/Kolkata")
PARSERS: dict[str, Parser] = {
    "glance.counts": glance.parse_session_counts,
    "glance.active": glance.parse_active_sessions,
    "glance.group": glance.parse_group_sessions,
    "glance.user": glance.parse_user_sessions,
    "securevideo.history": securevideo.parse_history,
    "rescue.sessions": rescue.parse_sessions,
    "rescue.sessions.kolkata": lambda body: rescue.parse_sessions(body, KOLKATA),
    "rescue.login": rescue.parse_login,
}
# Turned into a short log text; must never raise at all.
NEVER_RAISE: dict[str, Parser] = {
    "securevideo.error": securevideo.parse_error_message,
}
GLANCE_OPS = (
    "PartnerActiveSessions",
    "PartnerSessionCounts",
    "PartnerSessionCountsEnding",
    "PartnerCompletedSessionsEnding",
    "PartnerUserSessions",
)


async def _fetch_replies() -> list[bytes]:
    clock = FakeClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC).timestamp())
    g = GlanceSimulator(clock, seed=1)
    s = SecureVideoSimulator(clock, seed=2)
    r = RescueSimulator(clock, seed=3, pipe_rate=0.2)
    base = {
        "partnerId": str(DEMO_PARTNER_ID),
        "apiKey": DEMO_API_KEY,
        "type": "",
        "status": "A",
        "startRange": "2026-03-10T00:00:00Z",
        "endRange": "2026-03-10T15:00:00Z",
        "sessionKey": "",
        "nResults": "5",
        "nextId": "0",
        "partnerUserId": "JDemo",
    }
    replies: list[bytes] = []
    async with (
        serve_app(g.app()) as g_url,
        serve_app(s.app()) as s_url,
        serve_app(r.app()) as r_url,
        aiohttp.ClientSession() as http,
    ):
        for op in GLANCE_OPS:
            async with http.post(
                f"{g_url}/services/activityservice.asmx/{op}", data=base
            ) as response:
                replies.append(await response.read())
        auth = "Basic " + base64.b64encode(f"{SV_KEY}:{SV_SECRET}".encode()).decode()
        for params in ({"startDt": "2026-03-09", "endDt": "2026-03-10"}, {"month": "2026-03-01"}):
            async with http.get(
                f"{s_url}/history", params=params, headers={"Authorization": auth}
            ) as response:
                replies.append(await response.read())
        async with http.get(f"{s_url}/history") as response:  # a JSON error object
            replies.append(await response.read())
        for endpoint in ("getSession.aspx", "getSession_v3.aspx"):
            async with http.post(
                f"{r_url}/API/{endpoint}",
                data={"authcode": r.auth_code, "node": "337366", "noderef": "NODE"},
            ) as response:
                replies.append(await response.read())
        async with http.post(
            f"{r_url}/API/login.aspx", data={"email": r.email, "pwd": r.password}
        ) as response:
            replies.append(await response.read())
    return replies


@cache
def documents() -> tuple[bytes, ...]:
    """The vendor-doc samples and one real reply of each simulator operation."""
    docs = [
        glance_sample(name)
        for name in (
            "PartnerActiveSessions",
            "PartnerCompletedSessions",
            "PartnerCompletedSessionsEnding",
            "PartnerSessionCounts",
            "PartnerSessionCountsEnding",
            "PartnerUserSessions",
        )
    ]
    docs += [SV_DOC_SAMPLE, RESCUE_DOC_SAMPLE]
    docs += asyncio.run(_fetch_replies())
    return tuple(docs)


def test_corpus_is_valid() -> None:
    """The mutations start from documents that really parse."""
    docs = documents()
    assert len(docs) == 19
    for doc in docs:
        understood = securevideo.parse_error_message(doc) is not None
        for parser in PARSERS.values():
            try:
                parser(doc)
            except ParseError:
                continue
            understood = True
        assert understood, doc[:80]


def run_all(body: bytes) -> None:
    for parser in PARSERS.values():
        with contextlib.suppress(ParseError):
            parser(body)
    for name, parser in NEVER_RAISE.items():
        result = parser(body)
        assert result is None or isinstance(result, str), name


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid document with a few edits: insertions, deletions, byte flips,
    duplicated slices, truncation; the kinds of damage a bad proxy or vendor does."""
    body = bytearray(draw(st.sampled_from(documents())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(body) - 1)))
        edit = draw(st.sampled_from(("insert", "delete", "flip", "duplicate", "truncate")))
        if edit == "insert":
            token = draw(
                st.one_of(
                    st.binary(max_size=12),
                    st.sampled_from(
                        [
                            b"|",
                            b"\r\n",
                            b"<",
                            b">",
                            b"</",
                            b"&",
                            b'"',
                            b"{",
                            b"[",
                            b"]",
                            b"}",
                            b",",
                            b"null",
                            b"-1",
                            b"1e999",
                            b"\x00",
                            b"\xff\xfe",
                            b"OK",
                            b"<![CDATA[",
                            b"<!--",
                            b"\\u0000",
                        ]
                    ),
                )
            )
            body[at:at] = token
        elif edit == "delete":
            del body[at : at + draw(st.integers(1, 40))]
        elif edit == "flip" and body:
            body[at] = draw(st.integers(0, 255))
        elif edit == "duplicate":
            body[at:at] = body[at : at + draw(st.integers(1, 200))]
        else:
            del body[at:]
    return bytes(body)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        [
            "2016-11-03T21:46:16.1",
            "2016-11-03T22:00:00Z",
            "9999-12-31T23:59:59",
            "0000-01-01T00:00:00",
            "2016-02-30T00:00:00",
            "Zoom",
            "BILL",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SV_FIELDS = (
    "SessionId",
    "ScheduleTs",
    "BillableTs",
    "DurationMinutes",
    "WaitTime",
    "BillableStatusCd",
    "ScheduleType",
    "UserId",
    "ReportableMeetingProvider",
)


@st.composite
def history_records(draw: st.DrawFn) -> bytes:
    """History arrays whose fields hold any JSON value: type confusion, not syntax."""
    records: list[Any] = []
    for _ in range(draw(st.integers(0, 5))):
        record = {
            name: draw(JSON_VALUES)
            for name in draw(st.lists(st.sampled_from(SV_FIELDS), unique=True, max_size=9))
        }
        records.append(record if draw(st.booleans()) else draw(JSON_VALUES))
    return json.dumps(records).encode()


CELL = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)


@st.composite
def rescue_tables(draw: st.DrawFn) -> bytes:
    """getSession tables with any header and cell text, including pipes and line ends."""
    header = draw(
        st.lists(
            st.sampled_from(
                (
                    "ID",
                    "Status",
                    "Entry",
                    "Technician",
                    "Start Time",
                    "Waiting Time",
                    "Custom Field 0",
                    "x",
                    "",
                )
            ),
            min_size=1,
            max_size=8,
        )
    )
    rows = draw(st.lists(st.lists(CELL, min_size=len(header), max_size=len(header)), max_size=5))
    end = draw(st.sampled_from(("\r\n", "\n", "\r", "")))
    lines = ["|".join(header) + "|"] + ["|".join(row) + "|" for row in rows]
    head = draw(st.sampled_from(("OK", "OK ", "OK\r\n\r\n", "NOTLOGGEDIN", "ERROR", "OKAY")))
    return (head + end + end.join(lines) + draw(st.sampled_from(("", end)))).encode()


@st.composite
def glance_documents(draw: st.DrawFn) -> bytes:
    """Well-formed Glance XML whose element text is anything at all."""
    root = draw(
        st.sampled_from(
            ("ArrayOfSessionCount", "ArrayOfActiveSession", "groupSessions", "userSessions")
        )
    )
    text = st.text(
        st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), max_size=20
    ).map(lambda t: t.replace("&", "&amp;").replace("<", "&lt;"))
    inner = "".join(
        f"<{tag}>{draw(text)}</{tag}>"
        for tag in draw(
            st.lists(
                st.sampled_from(
                    (
                        "id",
                        "type",
                        "status",
                        "count",
                        "averageDuration",
                        "startTime",
                        "nguests",
                        "duration",
                        "nextId",
                        "validUser",
                    )
                ),
                max_size=8,
            )
        )
    )
    item = draw(st.sampled_from(("sessionCount", "activeSession", "session")))
    wrap = f"<{item}>{inner}</{item}>"
    if root in ("groupSessions", "userSessions"):
        wrap = (
            f"<users><userSessions><sessions>{wrap}</sessions></userSessions></users>"
            if root == "groupSessions"
            else f"<sessions>{wrap}</sessions>"
        )
    return f'<{root} xmlns="{glance.NS}">{wrap * draw(st.integers(0, 3))}</{root}>'.encode()


# A hang shows up as a missed deadline; CI machines are slow, so it is generous.
FAST = settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(body: bytes) -> None:
    run_all(body)


@FAST
@given(mutated())
def test_mutated_documents(body: bytes) -> None:
    run_all(body)


@FAST
@given(history_records())
def test_securevideo_type_confusion(body: bytes) -> None:
    items = json.loads(body)
    if items and not any(isinstance(item, dict) for item in items):
        with pytest.raises(ParseError, match="none of them a JSON object"):
            securevideo.parse_history(body)  # no record at all: no History reply
        return
    page = securevideo.parse_history(body)  # an array: always parses, bad records skipped
    assert len(page.records) + page.skipped == len(items)


@FAST
@given(rescue_tables())
def test_rescue_tables(body: bytes) -> None:
    run_all(body)


@FAST
@given(glance_documents())
def test_glance_documents(body: bytes) -> None:
    run_all(body)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_memory_is_proportional_to_the_input(body: bytes) -> None:
    tracemalloc.start()
    try:
        run_all(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * len(body) + 2 * 2**20, (len(body), peak)


def test_pathological_inputs_stay_small_and_fast() -> None:
    """Known amplifiers: deep nesting, huge numbers, entity bombs, a wall of pipes."""
    bombs = [
        b"[" * 100_000 + b"]" * 100_000,
        b'[{"SessionId": ' + b"9" * 200_000 + b"}]",
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><ArrayOfSessionCount>&lol2;'
        b"</ArrayOfSessionCount>",
        b"<a>" * 50_000 + b"</a>" * 50_000,
        b"OK\r\nID|Status|\r\n" + b"|" * 500_000 + b"\r\n",
        b"OK\r\nID|Status|\r\n" + b"1|Waiting|\r\n" * 50_000,
    ]
    for body in bombs:
        tracemalloc.start()
        try:
            run_all(body)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 100 * len(body) + 4 * 2**20, (body[:40], peak)

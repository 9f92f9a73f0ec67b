"""Property tests of the SOAP parsers: any bytes, and any text in any SESSION_V3 field,
give records or our ParseError, never anything else."""

from __future__ import annotations

import contextlib
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.errors import ParseError
from exporter.vendors.rescue.parser import parse_soap_login, parse_soap_sessions

from .harness import CAPTURES, shared, soap

FAST = settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIELDS = (
    "iID",
    "bStatus",
    "sStatus",
    "iEntry",
    "sEntry",
    "iTechnician",
    "sTechnician",
    "sStartTime",
    "iWaitingTimeInSec",
    "bIsLead",
    "other",
)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)


def parse_both(body: bytes) -> None:
    try:
        result = parse_soap_sessions(body)
    except ParseError:
        pass
    else:
        for session in result.sessions:
            session.status.encode("utf-8")
            assert session.waiting_seconds is None or session.waiting_seconds >= 0
    with contextlib.suppress(ParseError):
        parse_soap_login(body)


@FAST
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(body: bytes) -> None:
    parse_both(body)


@FAST
@given(st.lists(st.lists(st.tuples(st.sampled_from(FIELDS), TEXT), max_size=8), max_size=4))
def test_any_field_text(sessions: list[list[tuple[str, str]]]) -> None:
    inner = "".join(
        "<SESSION_V3>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields) + "</SESSION_V3>"
        for fields in sessions
    )
    parse_both(soap(inner))


@FAST
@given(st.data())
def test_cut_or_flipped_captures(data: st.DataObject) -> None:
    body = shared(CAPTURES / "getSession_V3-soap-two.xml")
    cut = data.draw(st.integers(0, len(body)))
    flip = data.draw(st.integers(0, len(body) - 1))
    byte = data.draw(st.integers(0, 255))
    parse_both(body[:cut])
    parse_both(body[:flip] + bytes([byte]) + body[flip + 1 :])

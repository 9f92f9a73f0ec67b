"""New sessions are counted a batch at a time: the very same numbers as one at a time."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.simulators.clock import FakeClock
from exporter.vendors.securevideo import collector as collector_module
from exporter.vendors.securevideo.collector import SecureVideoCollector
from exporter.vendors.securevideo.parser import HistoryRecord

from .harness import Harness, harness, samples, total
from .test_collector_units import make, ts

NOW = ts("2026-03-10T12:00:00")
# Raw values: known ones, unknown ones that fit a small label limit or overflow it, a
# value cut for length, null and empty.
STATUSES = ("BILL", "COMP", "TRIA", "FREE", None, "", "X" * 300)
TYPES = ("OnDemand", "Scheduled", "Rescheduled", "Walk-in", None)
PROVIDERS = ("Zoom", "VSee", "Teams", "Webex", None, "Y" * 300)
MINUTES = st.one_of(st.none(), st.floats(0, 600), st.sampled_from([0.1, 1 / 3, 7.7]))
# Appointment offsets, seconds: early, late, and beyond plausible (a year off).
OFFSETS = st.one_of(st.none(), st.floats(-7200, 7200), st.just(400 * 86400.0))


@st.composite
def records(draw: st.DrawFn) -> list[HistoryRecord]:
    count = draw(st.integers(0, 40))
    result = []
    for sid in range(1, count + 1):
        billable = NOW - draw(st.floats(0, 86400))
        offset = draw(OFFSETS)
        result.append(
            HistoryRecord(
                session_id=sid,
                billable_ts=billable,
                duration_minutes=draw(MINUTES),
                wait_minutes=draw(MINUTES),
                billable_status=draw(st.sampled_from(STATUSES)),
                schedule_type=draw(st.sampled_from(TYPES)),
                provider=draw(st.sampled_from(PROVIDERS)),
                schedule_ts=None if offset is None else billable - offset,
            )
        )
    return result


async def _outcome(
    batches: list[list[HistoryRecord]], **fields: Any
) -> tuple[dict[Any, float], Counter[str]]:
    """The exposition and the reject reasons after feeding these batches, a cycle each."""
    async with harness(FakeClock(NOW)) as h:
        c, fake = make(h, started_at=0.0, limit=1, **fields)
        for batch in batches:
            fake.feed_records = batch
            await c.collect(h.upstream)
        return _counted(samples(c.families())), h.rejected


def _counted(exposition: dict[Any, float]) -> dict[Any, float]:
    # In progress is what the last reply says now, not a count: it differs by design.
    return {k: v for k, v in exposition.items() if k[0] != "securevideo_sessions_in_progress"}


@settings(max_examples=60, deadline=None)
@given(records())
def test_one_cycle_of_many_counts_as_one_cycle_each(batch: list[HistoryRecord]) -> None:
    together = asyncio.run(_outcome([batch]))
    apart = asyncio.run(_outcome([[record] for record in batch] or [[]]))
    # Bit for bit: histogram sums add the same values in the same order.
    assert together == apart


@settings(max_examples=30, deadline=None)
@given(records(), st.integers(1, 6))
def test_late_lengths_in_the_same_batch_as_new_sessions(
    batch: list[HistoryRecord], split: int
) -> None:
    # The first poll knows some sessions without their length; the second brings the
    # lengths of those and new sessions, interleaved: late observations and new counts
    # come in record order either way.
    first = [
        msgspec.structs.replace(r, duration_minutes=None, wait_minutes=None) for r in batch[::split]
    ]
    together = asyncio.run(_outcome([first, batch]))
    apart = asyncio.run(_outcome([first, *([record] for record in batch)]))
    assert together == apart


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness(FakeClock(NOW)) as result:
        yield result


async def test_a_cycle_cancelled_between_chunks_counts_what_it_remembered(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector_module, "APPLY_CHUNK", 4)
    c, fake = make(h, started_at=0.0)
    fake.feed_records = [
        HistoryRecord(
            session_id=sid,
            billable_ts=NOW - 60,
            duration_minutes=10.0,
            wait_minutes=1.0,
            billable_status="BILL",
            schedule_type="OnDemand",
            provider="Zoom",
        )
        for sid in range(1, 11)
    ]
    task = asyncio.ensure_future(c.collect(h.upstream))
    for _ in range(100):  # step the loop until the cycle pauses at its first chunk
        await asyncio.sleep(0)
        if _sessions(c) or task.done():
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _sessions(c) == 3  # the first chunk's, counted before it let others run
    # Remembered means counted: the next cycle counts the rest and only the rest.
    await c.collect(h.upstream)
    assert _sessions(c) == 10
    assert total(samples(c.families()), "securevideo_session_duration_seconds_count") == 10


def _sessions(c: SecureVideoCollector) -> float:
    return total(samples(c.families()), "securevideo_sessions_total")

"""The wait histogram's bookkeeping, poll by poll, on hand-made replies."""

from __future__ import annotations

from collections import Counter

import pytest

from exporter.clock import FakeClock
from exporter.logs import get_logger
from exporter.vendors.base import CollectorContext
from exporter.vendors.rescue.collector import RescueCollector
from exporter.vendors.rescue.parser import Session, SessionList

from .harness import account

T0 = 1_767_225_600.0


def make() -> tuple[RescueCollector, FakeClock, Counter[str]]:
    clock, rejects = FakeClock(T0), Counter[str]()
    ctx = CollectorContext(clock=clock, log=get_logger(), label_value_limit=5,
                           reject=lambda reason, n: rejects.update({reason: n}),
                           started_at=T0)
    return RescueCollector(account(), ctx), clock, rejects


def poll(collector: RescueCollector, at: float, *sessions: tuple[str, str, int | None]) -> None:
    reply = SessionList("OK", tuple(Session(id=i, status=s, waiting_seconds=w)
                                    for i, s, w in sessions))
    collector.apply(collector.account.nodes[0], reply, T0 + at)


def observed(collector: RescueCollector, outcome: str | None = None) -> tuple[int, float]:
    """(count, sum) of the waits observed, of one outcome or of all."""
    count, total = 0, 0.0
    for s in collector.waits.family(("hd",)).samples:
        if outcome not in (None, s.labels["outcome"]):
            continue
        if s.name == "rescue_session_wait_seconds_count":
            count += int(s.value)
        elif s.name == "rescue_session_wait_seconds_sum":
            total += s.value
    return count, total


def test_wait_ends_when_status_changes() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 105, ("1", "Waiting", 15))
    assert observed(c) == (0, 0.0)
    poll(c, 110, ("1", "Active", 2))
    assert observed(c) == (1, 15.0)  # from 90 (first sight minus Waiting Time) to 105
    poll(c, 115, ("1", "Active", 7))
    poll(c, 120)
    assert observed(c) == (1, 15.0)


def test_vanished_waiting_session_is_observed_once_and_forgotten() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 3), ("2", "Waiting", 0))
    poll(c, 110)
    assert observed(c) == (2, 3.0)
    assert c.nodes["337366"].waiting == {}
    poll(c, 120)
    assert observed(c) == (2, 3.0)


def test_leaving_and_coming_back_between_polls_is_two_waits() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 130, ("1", "Waiting", 5))  # re-queued at 125
    assert observed(c) == (1, 10.0)
    poll(c, 140, ("1", "Active", 1))
    assert observed(c) == (2, 15.0)


def test_waiting_time_jitter_of_a_second_is_one_wait() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 0))
    poll(c, 105, ("1", "Waiting", 4))  # the vendor rounded down
    poll(c, 110, ("1", "Active", 1))
    assert observed(c) == (1, 5.0)


def test_unknown_waiting_time_counts_from_first_sight() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", None))
    poll(c, 160, ("1", "Waiting", None))
    poll(c, 170, ("1", "Closed by waiting customer", None))
    assert observed(c) == (1, 60.0)


def test_aliased_waiting_status_is_followed() -> None:
    c, _, _ = make()
    c.canonical["aguardando"] = "Waiting"
    poll(c, 100, ("1", "Aguardando", 20))
    poll(c, 110, ("1", "Ativo", 1))
    assert observed(c) == (1, 20.0)


def test_duplicate_rows_count_once() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Active", 20), ("1", "Active", 20), ("2", "Active", 5))
    assert c.nodes["337366"].counts[("Active",)] == 2
    assert c.nodes["337366"].oldest_change == {"Active": T0 + 80}


@pytest.mark.parametrize("english", ["waiting", "WAITING", "Waiting"])
def test_english_statuses_match_whatever_their_case(english: str) -> None:
    c, _, rejects = make()
    poll(c, 100, ("1", english, 1))
    assert c.nodes["337366"].counts[("Waiting",)] == 1
    assert not rejects


def test_a_slow_reply_does_not_split_a_continuing_wait() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 0))
    # Asked at 110, Rescue measured 10 s, the reply arrived 3 s later: the same wait.
    reply = SessionList("OK", (Session(id="1", status="Waiting", waiting_seconds=10),))
    c.apply(c.account.nodes[0], reply, T0 + 113, asked=T0 + 110)
    poll(c, 120, ("1", "Active", 7))
    count, total = observed(c)
    assert count == 1
    assert total == 13.0  # from its start (T0 + 100) to the last sighting in Waiting

"""The wait histogram's bookkeeping, poll by poll, on hand-made replies."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from structlog.testing import capture_logs

from exporter.logs import get_logger
from exporter.simulators.clock import FakeClock
from exporter.vendors.rescue.collector import (
    GONE_FOR,
    MAX_GONE,
    MAX_SAVED_GONE,
    STATE_VERSION,
    RescueCollector,
)
from exporter.vendors.rescue.parser import Session, SessionList

from ..support import ContextFactory, collector_context
from .harness import account

T0 = 1_767_225_600.0


def make() -> tuple[RescueCollector, FakeClock, Counter[str]]:
    clock, rejects = FakeClock(T0), Counter[str]()
    ctx = collector_context(clock, rejects, label_limit=5, started_at=T0, log=get_logger())
    return RescueCollector(account(), ctx), clock, rejects


def poll(collector: RescueCollector, at: float, *sessions: tuple[str, str, int | None]) -> None:
    reply = SessionList(
        "OK", tuple(Session(id=i, status=s, waiting_seconds=w) for i, s, w in sessions)
    )
    asyncio.run(collector.apply(collector.account.nodes[0], reply, T0 + at))


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


def test_a_wait_missing_from_a_reply_with_unreadable_rows_is_observed_once() -> None:
    # Its row was shifted (a `|` typed into a custom field) for one poll: observed as
    # gone (`other`) then, and again (`answered`) when it was read again.
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    shifted = SessionList("OK", (Session(id="2", status="Active"),), shifted_rows=1)
    asyncio.run(c.apply(c.account.nodes[0], shifted, T0 + 105))
    assert observed(c) == (0, 0.0)
    poll(c, 110, ("1", "Active", 2))
    assert observed(c) == (1, 10.0) == observed(c, "answered")  # from 90 to 100
    # A second reply in a row without it: gone, as from any reply.
    poll(c, 120, ("3", "Waiting", 0))
    asyncio.run(c.apply(c.account.nodes[0], shifted, T0 + 125))
    asyncio.run(c.apply(c.account.nodes[0], shifted, T0 + 130))
    assert observed(c, "other") == (1, 0.0)


class SteppedClock(FakeClock):
    """A FakeClock whose wall time can step without its monotonic time (NTP, a VM)."""

    def step(self, seconds: float) -> None:
        self._now += seconds


class Replies:
    """A stand-in Rescue client: each poll of the one node answers the next reply."""

    def __init__(self, *replies: tuple[tuple[str, str, int], ...]) -> None:
        self._replies = [
            SessionList(
                "OK", tuple(Session(id=i, status=s, waiting_seconds=w) for i, s, w in reply)
            )
            for reply in replies
        ]

    async def get_sessions(self, upstream: object, node: object) -> SessionList:
        return self._replies.pop(0)


@pytest.mark.parametrize("step", [-300.0, 300.0])
def test_a_wall_clock_step_between_polls_neither_splits_nor_shrinks_a_wait(
    step: float,
) -> None:
    clock, rejects = SteppedClock(T0), Counter[str]()
    ctx = collector_context(clock, rejects, started_at=T0, log=get_logger())
    c = RescueCollector(account(), ctx)
    # Rescue's own clock runs on: Waiting Time 60 s, then 120 s, then answered.
    c.client = Replies(
        (("1", "Waiting", 60),),
        (("1", "Waiting", 120),),  # type: ignore[assignment]
        (("1", "Active", 0),),
    )
    for advance, stepped in ((0.0, 0.0), (60.0, step), (60.0, 0.0)):
        clock.advance(advance)
        clock.step(stepped)
        asyncio.run(c.collect(None))  # type: ignore[arg-type]  # the stand-in needs none
    assert observed(c) == observed(c, "answered") == (1, 120.0)


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


def test_a_wait_left_out_of_one_reply_and_back_is_observed_once() -> None:
    # The vendor left it out of one reply; its Waiting Time says it never left Waiting.
    # It was observed as `other` when it went, and again when answered.
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 110)
    assert observed(c) == observed(c, "other") == (1, 10.0)
    poll(c, 120, ("1", "Waiting", 30))
    assert c.nodes["337366"].waiting["1"].start == T0 + 90
    poll(c, 130, ("1", "Active", 2))
    poll(c, 140)
    assert observed(c) == (1, 10.0)
    assert set(c.nodes["337366"].gone) == {"1"}  # ended: remembered a while, once


def test_a_status_flapping_without_a_new_waiting_time_is_one_wait() -> None:
    # Found by a probe: two rows of one session (neither lead) came in the other order
    # each poll, Waiting then Active; Waiting Time kept counting from one start. Each
    # pair of polls observed the wait again: four times in nine polls.
    c, _, _ = make()
    for i in range(9):
        status = "Waiting" if i % 2 == 0 else "Active"
        poll(c, 100 + 2 * i, ("1", status, 30 + 2 * i))
    assert observed(c) == observed(c, "answered") == (1, 30.0)


def test_a_session_queued_again_during_one_slow_reply_is_a_second_wait() -> None:
    # Found by a review: the start was compared with the last sighting's read time, so a
    # session queued again at 113, behind a reply asked at 120 and read at 133, was
    # taken for the answered wait and never observed.
    c, _, _ = make()
    for asked, read, status, waited in (
        (100, 101, "Waiting", 10),
        (110, 111, "Active", 9),
        (120, 133, "Waiting", 19),  # measured at 132: queued again at 113
        (140, 141, "Active", 1),
    ):
        reply = SessionList("OK", (Session(id="1", status=status, waiting_seconds=waited),))
        asyncio.run(c.apply(c.account.nodes[0], reply, T0 + read, asked=T0 + asked))
    assert observed(c, "answered") == (2, 10.0 + 19.0)


def test_a_waiting_time_that_stands_still_is_one_wait_not_one_a_poll() -> None:
    # Probe 13: a stalled back end (or a cached reply) gave the same Waiting Time each
    # poll; each start read later than the last, so every poll began a new wait and
    # observed the last as `other`: count and sum grew without bound.
    c, _, _ = make()
    for at in range(100, 160, 5):
        poll(c, at, ("1", "Waiting", 100))
    poll(c, 160, ("1", "Active", 2))
    assert observed(c) == observed(c, "answered") == (1, 100.0)  # was (12, 1200.0)


def test_a_session_queued_again_during_a_slow_reply_before_a_quick_one_is_a_second_wait() -> None:
    # Found by a review of the test above's fix: the last sighting's reply took 10 s, this
    # one 0.1 s; judged by this one's transit alone, the wait begun at 105 was merged.
    c, _, _ = make()
    for asked, read, status, waited in (
        (100, 110, "Waiting", 50),
        (115, 115.1, "Waiting", 10),  # queued again at 105, while the last reply travelled
        (120, 120.1, "Active", 1),
    ):
        reply = SessionList("OK", (Session(id="1", status=status, waiting_seconds=waited),))
        asyncio.run(c.apply(c.account.nodes[0], reply, T0 + read, asked=T0 + asked))
    assert (observed(c, "other"), observed(c, "answered")) == ((1, 50.0), (1, 10.0))


def test_a_session_queued_again_after_it_was_answered_is_a_second_wait() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 110, ("1", "Active", 5))
    poll(c, 130, ("1", "Waiting", 4))  # its Waiting Time restarted: queued again
    poll(c, 140, ("1", "Active", 1))
    assert observed(c) == observed(c, "answered") == (2, 10.0 + 4.0)


def test_a_vanished_wait_is_remembered_through_a_node_gone_for_one_reply() -> None:
    # Found by a review: one INVALIDPARAM_NODE reply dropped the vanished waits, and the
    # wait below was observed twice.
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 110)
    c.forget_current("337366")  # one INVALIDPARAM_NODE reply
    poll(c, 130, ("1", "Waiting", 40))  # back, waiting since 90: the same wait
    poll(c, 140, ("1", "Active", 2))
    assert observed(c) == (1, 10.0)


def test_a_session_back_in_a_new_wait_after_it_vanished_is_a_second_wait() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 110)
    poll(c, 130, ("1", "Waiting", 5))  # waiting since 125, after it went
    poll(c, 140, ("1", "Active", 1))
    assert observed(c) == (2, 15.0)
    assert observed(c, "answered") == (1, 5.0)  # from 125, not from 90


def test_a_vanished_wait_is_forgotten_after_a_while() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 110)
    poll(c, 110 + GONE_FOR)
    assert c.nodes["337366"].gone == {}
    # Back, its Waiting Time reaching before it went: followed as a wait of its own.
    poll(c, 120 + GONE_FOR, ("1", "Waiting", 30 + int(GONE_FOR)))
    poll(c, 130 + GONE_FOR, ("1", "Active", 2))
    assert observed(c) == (2, 10.0 + 30.0 + GONE_FOR)


def test_vanished_waits_are_remembered_up_to_a_bound_the_latest_kept() -> None:
    c, _, _ = make()
    for start in range(0, MAX_GONE + 5, 1000):
        poll(c, 100, *((str(i), "Waiting", 0) for i in range(start, start + 1000)))
        poll(c, 101)
    gone = c.nodes["337366"].gone
    assert len(gone) == MAX_GONE
    assert "10999" in gone and "999" not in gone


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
    assert observed(c) == (1, 4.0)  # one wait, as long as Rescue said at its last sighting


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
    asyncio.run(c.apply(c.account.nodes[0], reply, T0 + 113, asked=T0 + 110))
    poll(c, 120, ("1", "Active", 7))
    count, total = observed(c)
    assert count == 1
    # As long as Rescue measured it at its last sighting: not 13 s, from its start
    # (T0 + 100) to when the slow reply came.
    assert total == 10.0


def rows(collector: RescueCollector, at: float, *sessions: Session) -> None:
    asyncio.run(collector.apply(collector.account.nodes[0], SessionList("OK", sessions), T0 + at))


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("Connecting", "answered"),
        ("Active", "answered"),
        ("On Hold", "answered"),
        ("Closed by active customer", "answered"),
        ("Closed by technician", "answered"),
        ("Closed by waiting customer", "abandoned"),
        ("Timed out", "timed_out"),
        ("Transferring", "transferred"),
        ("Transferred", "transferred"),
        ("Offline", "other"),
        ("Closed by customer", "other"),
        ("Something new", "other"),
        ("Ativas", "answered"),
        ("Encerrado pelo cliente que estava esperando", "abandoned"),
    ],
)
def test_the_status_a_wait_ends_in_gives_its_outcome(status: str, outcome: str) -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10))
    poll(c, 105, ("1", status, 2))
    assert observed(c, outcome) == (1, 10.0)  # from 90 to the last sighting in Waiting
    assert observed(c) == (1, 10.0)


def test_vanishing_and_requeueing_are_other() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10), ("2", "Waiting", 10))
    poll(c, 130, ("2", "Waiting", 5))  # 1 vanished; 2 re-queued at 125
    assert observed(c, "other") == (2, 20.0)


def test_every_outcome_is_zero_filled_and_a_node_gone_for_now_keeps_them() -> None:
    c, _, _ = make()
    poll(c, 100)
    outcomes = {s.labels["outcome"] for s in c.waits.family(("hd",)).samples}
    assert outcomes == {"answered", "abandoned", "timed_out", "transferred", "other"}
    before = c.waits.family(("hd",)).samples
    c.forget_current("337366")
    assert "337366" not in c.nodes
    assert c.waits.family(("hd",)).samples == before


def test_the_lead_row_counts_and_the_others_feed_the_technicians_gauge() -> None:
    c, _, _ = make()
    rows(
        c,
        100,
        Session(id="1", status="Active", technician="Second", waiting_seconds=3),
        Session(id="1", status="Waiting", technician="Lead", waiting_seconds=30, is_lead=True),
        Session(id="2", status="Active", technician="Only", waiting_seconds=8),
        Session(id="2", status="Active", technician="Helper", waiting_seconds=1),
    )
    state = c.nodes["337366"]
    assert state.counts[("Waiting",)] == 1 and state.counts[("Active",)] == 1
    assert state.technicians == 2
    assert set(state.waiting) == {"1"}  # followed once, from the lead row
    assert state.waiting["1"].start == T0 + 70
    (sample,) = [
        s for f in c.families() if f.name == "rescue_session_technicians" for s in f.samples
    ]
    assert sample.value == 2 and sample.labels == {"account": "helpdesk", "node": "337366"}


def test_unknown_statuses_are_counted_announced_once_and_gauged() -> None:
    c, _, rejects = make()
    with capture_logs() as logs:
        poll(c, 100, ("1", "Novo status", 1), ("2", "Novo status", 1), ("3", "Outro", 1))
        poll(c, 105, ("1", "Novo status", 1), ("4", "Outro", 1))
    assert rejects["unknown_status"] == 4  # each session once: 1 again is not counted
    (warning,) = [e for e in logs if e["event"] == "rescue_status_unrecognized"]
    assert (warning["statuses"], warning["count"]) == (["Novo status", "Outro"], 2)
    assert "status_aliases" in warning["hint"] and "api: soap" in warning["hint"]
    (gauge,) = [
        s
        for f in c.families()
        if f.name == "session_exporter_unrecognized_status_values"
        for s in f.samples
    ]
    assert gauge.value == 2 and gauge.labels == {"vendor": "rescue", "account": "helpdesk"}
    assert c.nodes["337366"].counts[("Novo status",)] == 1  # kept, as a label value


def test_an_unknown_status_on_a_soap_account_is_not_told_to_use_soap() -> None:
    # Found by a probe: the hint said "or use api: soap" to an account that did.
    clock, rejects = FakeClock(T0), Counter[str]()
    ctx = collector_context(clock, rejects, started_at=T0, log=get_logger())
    c = RescueCollector(account(api="soap"), ctx)
    with capture_logs() as logs:
        poll(c, 100, ("1", "SESSION_SOMETHING_NEW", 1))
    (warning,) = [e for e in logs if e["event"] == "rescue_status_unrecognized"]
    assert warning["hint"] == "set status_aliases (they map bStatus values too)"


def test_a_reply_of_many_unknown_statuses_is_one_warning() -> None:
    c, _, _ = make()
    with capture_logs() as logs:
        poll(c, 100, *((str(i), f"Estado {i}", 1) for i in range(2000)))
    (warning,) = [e for e in logs if e["event"] == "rescue_status_unrecognized"]
    assert warning["count"] == 1000  # MAX_UNRECOGNIZED kept, as label values
    assert warning["statuses"] == [f"Estado {i}" for i in range(5)]


def test_built_in_aliases_are_understood_without_config() -> None:
    c, _, rejects = make()
    poll(
        c,
        100,
        ("1", "Ativas", 1),
        ("2", "Encerrado pelo cliente ativo", 1),
        ("3", "Encerrado pelo cliente que estava esperando", 1),
    )
    counts = c.nodes["337366"].counts
    assert (
        counts[("Active",)]
        == counts[("Closed by active customer",)]
        == counts[("Closed by waiting customer",)]
        == 1
    )
    assert not rejects


def test_statuses_match_whatever_their_unicode_form_and_spacing(
    make_context: ContextFactory,
) -> None:
    ctx, rejects = make_context(FakeClock(T0), label_limit=5, started_at=T0)
    c = RescueCollector(
        account(status_aliases={"Fechado pelo técnico": "Closed by technician"}), ctx
    )
    decomposed = "Fechado pelo te\u0301cnico"  # the accent as a combining mark (NFD)
    poll(
        c,
        100,
        ("1", decomposed, 1),
        ("2", "Encerrado  pelo\u00a0cliente ativo", 1),
        ("3", " WAITING ", 1),
    )
    counts = c.nodes["337366"].counts
    assert counts[("Closed by technician",)] == counts[("Closed by active customer",)] == 1
    assert counts[("Waiting",)] == 1
    assert not rejects


def test_configured_aliases_win_over_built_in_ones(make_context: ContextFactory) -> None:
    ctx, _ = make_context(FakeClock(T0), label_limit=5, started_at=T0)
    c = RescueCollector(account(status_aliases={"Ativas": "On Hold"}), ctx)
    poll(c, 100, ("1", "Ativas", 1))
    assert c.nodes["337366"].counts[("On Hold",)] == 1


def test_label_values_are_capped_scrubbed_and_overflow_counted_once() -> None:
    clock, rejects = FakeClock(T0), Counter[str]()
    ctx = collector_context(clock, rejects, label_limit=2, started_at=T0, log=get_logger())
    c = RescueCollector(account(labels=["technician", "channel"]), ctx)
    rows(
        c,
        100,
        Session(id="1", status="x" * 100_000, technician="code-123", channel="c" * 500),
        Session(id="2", status="Novo", technician="Ana"),
        Session(id="3", status="Mais um", technician="Wei"),
    )
    labels = {key for key in c.nodes["337366"].counts}
    values = {v for key in labels for v in key}
    assert "code-123" not in values  # a technician named like the auth code
    assert all(len(v) <= 64 for v in values)
    # Session 1's status and channel are cut: one record, counted once (probe 13).
    assert rejects["label_truncated"] == 1
    # Session 3's status and technician, each the third distinct, fold into other: one
    # record, reported once by the labels (the collector no longer counts overflow too).
    assert rejects["label_overflow"] == 1
    assert ("other", "", "other") in labels  # (status, channel, technician)


def test_with_both_labels_statuses_are_zero_filled_per_channel_and_per_technician() -> None:
    # Per pair, 50 channels and 50 technicians were 19 x 2,501 = 47,519 series: over
    # max_series_per_account, and the account vanished from /metrics while up.
    clock, rejects = FakeClock(T0), Counter[str]()
    ctx = collector_context(clock, rejects, label_limit=60, started_at=T0, log=get_logger())
    c = RescueCollector(account(labels=["channel", "technician"]), ctx)
    rows(
        c,
        100,
        *(
            Session(id=str(i), status="Active", channel=f"c{i // 50}", technician=f"t{i % 50}")
            for i in range(2500)
        ),
    )
    counts = c.nodes["337366"].counts  # (status, channel, technician)
    assert len(counts) == 19 * (1 + 50 + 50) + 2500
    assert counts[("Waiting", "c7", "")] == 0 and counts[("Waiting", "", "t7")] == 0
    assert ("Waiting", "c7", "t7") not in counts
    assert counts[("Active", "c7", "t7")] == 1
    assert sum(counts.values()) == 2500


def test_state_keeps_outcomes_and_a_version_1_state_hands_over_its_waits() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10), ("2", "Waiting", 5))
    poll(c, 105, ("1", "Timed out", 1), ("2", "Waiting", 10))
    saved = c.state()
    assert saved["version"] == STATE_VERSION == 5
    d, _, _ = make()
    d.restore(saved)
    assert observed(d, "timed_out") == (1, 10.0)
    old = {**saved, "version": 1, "waits": [[["337366"], [0] * (len(d.waits.bounds) + 1), 0.0]]}
    e, _, _ = make()
    e.restore(old)
    assert observed(e) == (0, 0.0)  # a histogram without outcomes restarts
    poll(e, 110, ("2", "Active", 1))
    assert observed(e, "answered") == (1, 10.0)  # the wait in progress (95 to 105) carried over


def restarted(c: RescueCollector, clock: FakeClock) -> RescueCollector:
    """A collector restored from `c`'s state through JSON, as --storage.path does."""
    d, d_clock, _ = make()
    d_clock.set(clock.time())
    d.restore(json.loads(json.dumps(c.state())))
    return d


def test_a_wait_gone_before_a_restart_and_back_after_it_is_observed_once() -> None:
    # Noticed in a closing note: ended waits were remembered in memory only, so a
    # session left out of the last reply before a restart and listed again after it,
    # still in the same wait, was observed twice.
    c, clock, _ = make()
    poll(c, 100, ("1", "Waiting", 10), ("2", "Waiting", 5))
    poll(c, 110, ("2", "Active", 1))  # 1 vanished (other), 2 answered
    assert observed(c) == (2, 15.0)
    clock.set(T0 + 115)
    d = restarted(c, clock)
    assert observed(d) == (2, 15.0)
    poll(d, 120, ("1", "Waiting", 30), ("2", "Waiting", 25))  # both since before they went
    poll(d, 130, ("1", "Active", 2), ("2", "Active", 2))
    assert observed(d) == (2, 15.0)
    # A wait that starts after its session went is a new one, restarted or not.
    poll(d, 140, ("2", "Waiting", 3))
    poll(d, 150, ("2", "Active", 1))
    assert observed(d) == (3, 18.0)


def test_ended_waits_are_saved_with_their_waiting_time_and_restored_for_a_while() -> None:
    c, clock, _ = make()
    poll(c, 100, ("1", "Waiting", 10), ("2", "Waiting", None))
    poll(c, 110)
    gone = c.state()["gone"]["337366"]
    assert gone == {"1": [T0 + 90, T0 + 100, 10], "2": [T0 + 100, T0 + 100]}
    clock.set(T0 + 100 + GONE_FOR - 1)
    assert set(restarted(c, clock).state()["gone"]["337366"]) == {"1", "2"}
    clock.set(T0 + 100 + GONE_FOR + 1)  # a restart after they would have been forgotten
    assert restarted(c, clock).state()["gone"] == {}


def test_the_latest_ended_waits_are_saved_up_to_a_bound() -> None:
    c, _, _ = make()
    count = MAX_SAVED_GONE + 500
    poll(c, 100, *((str(i), "Waiting", 0) for i in range(count)))
    poll(c, 101)
    saved = c.state()["gone"]["337366"]
    assert len(c.nodes["337366"].gone) == count
    assert list(saved) == [str(i) for i in range(500, count)]


def test_a_version_3_state_is_restored_without_ended_waits() -> None:
    c, _, _ = make()
    poll(c, 100, ("1", "Waiting", 10), ("2", "Waiting", 5))
    poll(c, 110, ("2", "Waiting", 15))
    saved = c.state()
    version_3 = {key: value for key, value in saved.items() if key != "gone"}
    d, _, _ = make()
    d.restore({**version_3, "version": 3})
    assert d.state()["waiting"] == saved["waiting"]
    assert observed(d) == observed(c) == (1, 10.0)


async def test_a_long_reply_lets_the_loop_in_and_shows_only_whole_polls() -> None:
    from exporter.vendors.base import APPLY_CHUNK

    c, _, _ = make()
    node = c.account.nodes[0]
    waiting = Session(id="1", status="Waiting", waiting_seconds=0)
    await c.apply(node, SessionList("OK", (waiting,)), T0 + 100)
    before = c.nodes["337366"]
    big = SessionList(
        "OK", tuple(Session(id=str(i), status="Active") for i in range(3 * APPLY_CHUNK))
    )
    task = asyncio.create_task(c.apply(node, big, T0 + 110))
    turns = 0
    while not task.done():
        await asyncio.sleep(0)  # each turn here is a turn a scrape would get
        turns += 1
        if not task.done():
            assert c.nodes["337366"] is before  # half a reply is never shown
    await task
    assert turns >= 3
    assert c.nodes["337366"].counts[("Active",)] == 3 * APPLY_CHUNK
    assert observed(c) == (1, 0.0)  # session 1 left Waiting: its wait is observed once


def test_a_label_cut_or_folded_is_reported_once_per_session_not_every_poll() -> None:
    # Probe 13: a session listed at every poll reported its long technician name, and
    # every name past label_value_limit, again at every poll.
    clock, rejects = FakeClock(T0), Counter[str]()
    ctx = collector_context(clock, rejects, label_limit=5, started_at=T0, log=get_logger())
    c = RescueCollector(account(labels=["technician"]), ctx)
    rows = [
        Session(id=str(i), status="Active", technician=f"Technician {i:02d} " + "Q" * 100)
        for i in range(1, 9)
    ]
    for at in range(100, 160, 10):
        clock.advance(10)
        asyncio.run(c.apply(c.account.nodes[0], SessionList("OK", tuple(rows)), T0 + at))
    # Eight cut names, once each; three of them past the limit of five, once each.
    assert (rejects["label_truncated"], rejects["label_overflow"]) == (8, 3)
    rows.append(Session(id="9", status="Active", technician="T" * 100))
    asyncio.run(c.apply(c.account.nodes[0], SessionList("OK", tuple(rows)), T0 + 170))
    assert (rejects["label_truncated"], rejects["label_overflow"]) == (9, 4)  # a new session

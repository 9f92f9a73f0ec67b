"""RejectedOnce: a rejected record counted once, however many replies hold it."""

from __future__ import annotations

from collections import Counter

from exporter.rejections import LIMIT, RejectedOnce, handed_back


def counting() -> tuple[RejectedOnce, Counter[str]]:
    counted: Counter[str] = Counter()

    def reject(reason: str, count: int) -> None:
        counted[reason] += count

    return RejectedOnce(reject, retention=3600.0, limit=3), counted


def test_an_id_is_counted_once_per_reason_and_ids_without_one_every_time() -> None:
    once, counted = counting()
    for now in (0.0, 60.0, 120.0):
        once.reject("invalid_record", [("feed", 1), ("feed", 2)], now, without_id=1)
        once.reject("invalid_value", [("feed", 1)], now)
    assert counted == {"invalid_record": 2 + 3, "invalid_value": 1}


def test_the_same_id_twice_in_one_reply_is_two_records() -> None:
    once, counted = counting()
    once.reject("invalid_record", [("feed", 1), ("feed", 1)], 0.0)
    once.reject("invalid_record", [("feed", 1)], 60.0)
    assert counted == {"invalid_record": 2}


def test_a_rejection_not_seen_for_the_retention_is_counted_again() -> None:
    once, counted = counting()
    once.reject("invalid_record", [("feed", 1)], 0.0)
    once.reject("invalid_record", [("feed", 1)], 3000.0)  # seen again: kept longer
    once.reject("invalid_record", [("feed", 1)], 6500.0)
    assert counted["invalid_record"] == 1
    once.reject("invalid_record", [("feed", 1)], 6500.0 + 3601.0)
    assert counted["invalid_record"] == 2


def test_past_the_limit_new_rejections_are_counted_not_dropped() -> None:
    once, counted = counting()
    once.reject("invalid_record", [("feed", i) for i in range(5)], 0.0)
    assert len(once) == 3
    once.reject("invalid_record", [("feed", i) for i in range(5)], 60.0)
    assert counted["invalid_record"] == 5 + 2  # the two not remembered, again


def test_a_reply_splits_its_totals_into_ids_and_the_rest() -> None:
    once, counted = counting()
    totals = {"invalid_record": 3, "implausible_value": 1, "invalid_value": 0}
    ids = [("invalid_record", 7), ("implausible_value", 8)]
    once.reply("active", totals, ids, 0.0)
    once.reply("active", totals, ids, 60.0)
    once.reply("user", totals, ids, 60.0)  # another query's record
    assert counted == {"invalid_record": 3 + 2 + 3, "implausible_value": 1 + 1}


def test_a_parser_hands_back_no_more_ids_than_can_be_remembered() -> None:
    # The rest count as records without an id: a parse worker's result of 100,000 bad
    # rows stays small.
    assert handed_back(list(range(LIMIT + 5))) == tuple(range(LIMIT))

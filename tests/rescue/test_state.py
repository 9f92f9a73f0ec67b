"""Rescue state across a restart (--storage.path): followed waits and the wait histogram
carry over, so a wait seen before the restart and ended during it is observed once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from exporter.families import WAIT_BUCKETS
from exporter.simulators.rescue import GROUP_ID
from exporter.vendors.rescue.collector import RescueCollector

from .harness import BOTH, NODES, Rig, expected_waits, histogram, poll_for, rig


def through_json(state: dict[str, Any] | None) -> dict[str, Any]:
    assert state is not None
    result = json.loads(json.dumps(state))
    assert isinstance(result, dict)
    return result


async def test_restart_observes_waits_that_ended_while_down_once() -> None:
    async with rig(seed=3) as r:
        first = r.collector(nodes=BOTH)
        polls = await poll_for(r, first, 300)
        saved = through_json(first.state())
        assert saved["waiting"][str(GROUP_ID)], "the test needs waits in progress at the stop"
        r.clock.advance(40)  # down: waits end, others begin and end unseen
        second = r.collector(nodes=BOTH)
        second.restore(saved)
        polls += await poll_for(r, second, 300)
        ended_while_down = [w for w in r.sim.waits() if w[1] <= polls[59] < w[2] <= polls[60]]
        assert ended_while_down
        for node, (node_id, ref) in NODES.items():
            expected = expected_waits(r, node_id, ref, polls)
            count, total = histogram(second, node)
            assert count == len(expected)
            assert total == pytest.approx(sum(expected))


async def test_unconfigured_nodes_are_dropped_from_a_restored_state() -> None:
    async with rig(seed=3) as r:
        first = r.collector(nodes=BOTH)
        await poll_for(r, first, 120)
        saved = through_json(first.state())
        only_group = r.collector()
        only_group.restore(saved)
        state = through_json(only_group.state())
        assert set(state["waiting"]) == {str(GROUP_ID)}
        assert {labels[0] for labels, _, _ in state["waits"]} == {str(GROUP_ID)}


async def test_restored_waits_are_no_current_gauges() -> None:
    async with rig(seed=3) as r:
        first = r.collector()
        await poll_for(r, first, 60)
        second = r.collector()
        second.restore(through_json(first.state()))
        names = {s.name for f in second.families() for s in f.samples}
        assert "rescue_sessions" not in names
        # Saved again before any poll, the waits are not lost.
        assert through_json(second.state())["waiting"] == through_json(first.state())["waiting"]


async def test_changed_buckets_restart_the_histogram() -> None:
    async with rig(seed=3) as r:
        first = r.collector()
        await poll_for(r, first, 300)
        assert histogram(first, str(GROUP_ID))[0] > 0
        second = r.collector(wait_buckets=[1, 2, 3])
        second.restore(through_json(first.state()))
        assert histogram(second, str(GROUP_ID)) == (0.0, 0.0)
        assert through_json(second.state())["waiting"]


async def restored_with(r: Rig, waits: Callable[[float], dict[str, Any]]) -> RescueCollector:
    """A collector restored from a minute's state whose group node follows `waits(now)`,
    which it saves again as it was given."""
    first = r.collector()
    await poll_for(r, first, 60)
    state = through_json(first.state())
    state["waiting"] = {str(GROUP_ID): waits(r.clock.time())}
    second: RescueCollector = r.collector()
    second.restore(state)
    assert through_json(second.state())["waiting"] == state["waiting"]
    return second


async def test_a_wait_followed_for_over_a_week_is_restored() -> None:
    # A poll follows a wait for as long as it lasts; restore asked for a week at most,
    # and refused the whole state (every node's waits and the histogram) for one such.
    async with rig(seed=3) as r:
        await restored_with(r, lambda now: {"7": [now - 8 * 86400, now - 60]})


async def test_a_wait_already_observed_is_not_observed_again_after_a_restart() -> None:
    async with rig(seed=3) as r:
        second = await restored_with(
            r, lambda now: {"7": [now - 100, now - 60, True], "8": [now - 100, now - 60]}
        )
        before = histogram(second, str(GROUP_ID))[0]
        await poll_for(r, second, 5)  # one poll, listing neither: both went while down
        assert histogram(second, str(GROUP_ID))[0] == before + 1


async def test_a_wait_that_ended_while_down_is_rescues_own_waiting_time() -> None:
    # Probe 7: saved as [start, last seen], a wait in progress lost its last Waiting
    # Time, and one that ended while no exporter ran was observed from its start to the
    # reply's arrival: longer by the reply's time (4 s here).
    async with rig(seed=3, reply_seconds=4.0) as r:
        first = r.collector()
        await poll_for(r, first, 120)
        followed = first.nodes[str(GROUP_ID)].waiting
        last_waited = {sid: wait.waited for sid, wait in followed.items()}
        assert last_waited and None not in last_waited.values()
        saved = through_json(first.state())
        r.clock.advance(120)  # down: some of those waits end
        second = r.collector()
        second.restore(saved)
        count_before, total_before = histogram(second, str(GROUP_ID))
        await poll_for(r, second, 5)
        ended = last_waited.keys() - second.nodes[str(GROUP_ID)].waiting.keys()
        assert ended, "the test needs a wait that ended while down"
        count, total = histogram(second, str(GROUP_ID))
        assert count - count_before == len(ended)
        assert total - total_before == pytest.approx(sum(last_waited[s] or 0.0 for s in ended))


BAD_STATES: list[tuple[str, Any]] = [
    ("version", "1"),
    ("waiting", []),
    ("waiting", {str(GROUP_ID): [1, 2]}),
    ("waiting", {str(GROUP_ID): {"7": [1.0]}}),
    ("waiting", {str(GROUP_ID): {"7": [1.0, "later"]}}),
    ("waiting", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, 1]}}),  # observed: `true` only
    ("waiting", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, True, True]}}),
    ("waiting", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, 0, 3.0]}}),  # observed: a boolean
    ("waiting", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, False, -3.0]}}),  # a Waiting Time < 0
    ("waiting", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, False, float("nan")]}}),
    # Found by a probe: a start of 0 was observed as a wait of 57 years.
    ("waiting", {str(GROUP_ID): {"7": [0.0, 1.7e9]}}),
    ("waiting", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 400 * 86400]}}),  # a 400-day wait
    ("waiting", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 - 5]}}),  # last seen before its start
    ("waiting", {str(GROUP_ID): {"7": [4.0e9, 4.0e9 + 5]}}),  # seen in 2096
    ("waits", [[[str(GROUP_ID), "answered"], [10**400] + [0] * len(WAIT_BUCKETS), 3.0]]),
    ("waits", [[[str(GROUP_ID)], [1, 2], 3.0]]),
    ("waits", [[[GROUP_ID], [0] * 11, 3.0]]),
    ("waits", None),
    ("gone", []),
    ("gone", {str(GROUP_ID): [1, 2]}),
    ("gone", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, "ten"]}}),
    ("gone", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, -1]}}),
    ("gone", {str(GROUP_ID): {"7": [1.7e9, 1.7e9 + 5, 10, 4]}}),
    ("gone", {str(GROUP_ID): {"7": [0.0, 1.7e9]}}),
    ("gone", {str(GROUP_ID): {"7": [4.0e9, 4.0e9 + 5]}}),  # seen in 2096
]


@pytest.mark.parametrize(("key", "value"), BAD_STATES)
async def test_a_state_that_does_not_fit_is_refused_and_changes_nothing(
    key: str, value: Any
) -> None:
    async with rig(seed=3) as r:
        first = r.collector()
        await poll_for(r, first, 60)
        state = through_json(first.state())
        state[key] = value
        fresh: RescueCollector = r.collector()
        before = through_json(fresh.state())
        with pytest.raises(ValueError):
            fresh.restore(state)
        assert through_json(fresh.state()) == before

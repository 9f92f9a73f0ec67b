"""The vendor-wide request slots: taken at once while free, then handed to the oldest
cycle first, and never lost to a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from exporter.admission import Admission


async def _settle() -> None:
    """Let every runnable task run until it waits again (no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


class Holders:
    """Tasks that each take a slot at a priority and hold it until released."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.order: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, priority: float) -> None:
        self.gates[name] = asyncio.Event()
        self.tasks[name] = asyncio.create_task(self._hold(name, priority))

    async def _hold(self, name: str, priority: float) -> None:
        async with self.admission.slot(priority):
            self.order.append(name)
            await self.gates[name].wait()

    async def release(self, name: str) -> None:
        assert name in self.order, f"{name} holds no slot; in order: {self.order}"
        self.gates[name].set()
        await self.tasks[name]
        await _settle()


async def test_free_slots_are_taken_at_once_and_the_next_request_waits() -> None:
    holders = Holders(Admission(2))
    for name in ("a", "b", "c"):
        holders.start(name, 0.0)
    await _settle()
    assert holders.order == ["a", "b"]
    await holders.release("a")
    assert holders.order == ["a", "b", "c"]
    await holders.release("b")
    await holders.release("c")


async def test_waiters_are_served_oldest_cycle_first_then_in_arrival_order() -> None:
    holders = Holders(Admission(1))
    holders.start("busy", 0.0)
    await _settle()
    # Asked for in this order, by cycles that started at these times.
    for name, started in (("late", 30.0), ("early", 10.0), ("mid-1", 20.0), ("mid-2", 20.0)):
        holders.start(name, started)
    await _settle()
    for name in ("busy", "early", "mid-1", "mid-2"):
        await holders.release(name)
    assert holders.order == ["busy", "early", "mid-1", "mid-2", "late"]
    await holders.release("late")


async def test_a_cancelled_waiter_gives_up_its_place_without_losing_a_slot() -> None:
    holders = Holders(Admission(1))
    holders.start("busy", 0.0)
    holders.start("gone", 1.0)
    holders.start("next", 2.0)
    await _settle()
    holders.tasks["gone"].cancel()
    await _settle()
    await holders.release("busy")
    assert holders.order == ["busy", "next"]
    await holders.release("next")
    # Both slots' worth of work done, and the one slot is free again.
    holders.start("after", 3.0)
    await _settle()
    assert holders.order[-1] == "after"
    await holders.release("after")


async def test_a_waiter_cancelled_after_being_handed_the_slot_passes_it_on() -> None:
    admission = Admission(1)
    holders = Holders(admission)
    held = admission.slot(0.0)
    await held.__aenter__()
    holders.start("handed", 1.0)
    holders.start("next", 2.0)
    await _settle()
    # Leaving hands the slot to "handed" without running it; cancelled before it
    # resumes, it must pass the slot to "next", not lose it.
    await held.__aexit__(None, None, None)
    holders.tasks["handed"].cancel()
    await _settle()
    assert holders.order == ["next"]
    await holders.release("next")


def test_an_admission_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        Admission(0)

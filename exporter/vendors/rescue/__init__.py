"""LogMeIn Rescue: live session counts by status and queue wait times from getSession."""

from __future__ import annotations

from typing import Any

from ...clock import Clock
from ..base import AccountCollector, CollectorContext, Simulator, Vendor
from .collector import RescueCollector
from .config import parse_account
from .simulator import RescueSimulator


def _new_collector(account: Any, ctx: CollectorContext) -> AccountCollector:
    return RescueCollector(account, ctx)


def _new_simulator(clock: Clock, seed: int) -> Simulator:
    return RescueSimulator(clock, seed)


VENDOR = Vendor(
    name="rescue",
    default_base_url="https://secure.logmeinrescue.com",
    parse_account=parse_account,
    new_collector=_new_collector,
    new_simulator=_new_simulator,
)

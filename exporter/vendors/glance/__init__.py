"""Glance Activity Service: current, today's and completed sessions."""

from __future__ import annotations

from typing import Any

from ...clock import Clock
from ..base import AccountCollector, CollectorContext, Simulator, Vendor
from .collector import GlanceCollector
from .config import GlanceAccount, parse_account
from .simulator import GlanceSimulator


def _new_collector(account: Any, ctx: CollectorContext) -> AccountCollector:
    if not isinstance(account, GlanceAccount):
        raise TypeError(f"expected a GlanceAccount, got {type(account).__name__}")
    return GlanceCollector(account, ctx)


def _new_simulator(clock: Clock, seed: int) -> Simulator:
    return GlanceSimulator(clock, seed)


VENDOR = Vendor(
    name="glance",
    default_base_url="https://www.glance.net",
    parse_account=parse_account,
    new_collector=_new_collector,
    new_simulator=_new_simulator,
)

__all__ = ["VENDOR", "GlanceAccount", "GlanceCollector", "GlanceSimulator"]

"""Glance Activity Service: current, today's and completed sessions."""

from __future__ import annotations

from ..base import Vendor
from .collector import GlanceCollector
from .config import GlanceAccount, parse_account
from .metrics import FAMILIES

VENDOR = Vendor(
    name="glance",
    default_base_url="https://www.glance.net",
    parse_account=parse_account,
    new_collector=GlanceCollector,
    families=FAMILIES,
)

__all__ = ["VENDOR", "GlanceAccount", "GlanceCollector"]

"""LogMeIn Rescue: live session counts by status and queue wait times from getSession."""

from __future__ import annotations

from ..base import Vendor
from .collector import RescueCollector
from .config import parse_account
from .metrics import FAMILIES

VENDOR = Vendor(
    name="rescue",
    default_base_url="https://secure.logmeinrescue.com",
    parse_account=parse_account,
    new_collector=RescueCollector,
    families=FAMILIES,
)

__all__ = ["VENDOR"]

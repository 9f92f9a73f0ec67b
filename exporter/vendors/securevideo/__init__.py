"""SecureVideo: the History API (connected sessions, durations, waits, monthly usage)."""

from __future__ import annotations

from ..base import Vendor
from .collector import SecureVideoCollector
from .config import parse_account
from .metrics import FAMILIES

VENDOR = Vendor(
    name="securevideo",
    default_base_url="https://api.securevideo.com",
    parse_account=parse_account,
    new_collector=SecureVideoCollector,
    families=FAMILIES,
)

__all__ = ["VENDOR"]

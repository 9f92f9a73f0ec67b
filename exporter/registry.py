"""The vendor registry: the only place the core learns which vendors exist.

Adding a vendor is one package under `exporter/vendors/` and one line here.
"""

from __future__ import annotations

from .vendors.base import Vendor
from .vendors.glance import VENDOR as GLANCE
from .vendors.rescue import VENDOR as RESCUE
from .vendors.securevideo import VENDOR as SECUREVIDEO

VENDORS: dict[str, Vendor] = {v.name: v for v in (GLANCE, SECUREVIDEO, RESCUE)}

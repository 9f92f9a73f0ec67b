from __future__ import annotations

from exporter.logs import configure


def pytest_configure() -> None:
    configure("debug", "logfmt")

from __future__ import annotations

import pytest

from exporter.logs import configure


def pytest_configure() -> None:
    configure("debug", "logfmt")


def require_tool(name: str) -> None:
    """Skip when a real tool (promtool, prometheus, amtool) is absent, except in CI,
    where .ci/run installs it and a skip would hide a broken check."""
    import os
    import shutil

    import pytest

    if shutil.which(name) is None:
        if os.environ.get("SESSION_EXPORTER_REQUIRE_TOOLS"):
            pytest.fail(f"{name} is required here but not installed")
        pytest.skip(f"{name} not installed")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/ from the current code (review the diff)")

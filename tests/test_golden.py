"""The metric contract, pinned: the demo world at a fixed seed and clock, rendered after a
few cycles, byte for byte against `tests/golden/`. A renamed metric or label, a changed
HELP text or bucket bound fails here and shows in review as a diff of the golden file.

Regenerate after an intended change with `pytest tests/test_golden.py --update-golden`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.loop import Daemon
from exporter.registry import VENDORS
from exporter.simulators import SIMULATORS
from exporter.simulators.clock import FakeClock
from exporter.simulators.demo import start_world

GOLDEN = Path(__file__).resolve().parent / "golden"
CYCLES = 4
# The one line that depends on the machine, not on the code.
_BUILD_INFO = re.compile(rb"^session_exporter_build_info\{[^}]*\} 1\.0$", re.MULTILINE)


async def render_demo(openmetrics: bool) -> bytes:
    clock = FakeClock()
    world = await start_world(SIMULATORS, clock, seed=1)
    try:
        config = parse_config(world.config_data(interval="60s"), VENDORS)
        daemon = Daemon(config, VENDORS, clock=clock, seed=1)
        await daemon.start(schedule=False)
        try:
            for _ in range(CYCLES):
                await daemon.collect_all_once()
                clock.advance(60)
            snapshot = daemon.snapshot
        finally:
            await daemon.stop()
    finally:
        await world.close()
    body = snapshot.openmetrics if openmetrics else snapshot.text
    return _BUILD_INFO.sub(b'session_exporter_build_info{python_version="X",version="X"} 1.0', body)


@pytest.mark.parametrize(
    ("name", "openmetrics"), [("demo.txt", False), ("demo.openmetrics.txt", True)]
)
async def test_exposition_matches_the_golden_file(
    name: str, openmetrics: bool, request: pytest.FixtureRequest
) -> None:
    body = await render_demo(openmetrics)
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        golden.write_bytes(body)
    assert golden.exists(), f"{golden} is missing: run pytest --update-golden"
    expected = golden.read_bytes()
    if body != expected:
        # The first differing lines, not two whole expositions.
        got, want = body.decode().splitlines(), expected.decode().splitlines()
        diff = [f"-{w}\n+{g}" for w, g in zip(want, got, strict=False) if w != g][:10]
        pytest.fail(
            f"{name} differs from the golden file (run --update-golden if "
            f"intended; {len(got)} vs {len(want)} lines):\n" + "\n".join(diff)
        )


async def test_the_golden_render_is_repeatable() -> None:
    assert await render_demo(False) == await render_demo(False)

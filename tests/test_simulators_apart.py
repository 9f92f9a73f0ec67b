"""The product apart from its test doubles: the exporter never loads `exporter.simulators`
unless `--demo` asks for it."""

from __future__ import annotations

import subprocess
import sys

CHECK = (
    "import sys\n"
    "import exporter.cli, exporter.registry, exporter.loop, exporter.server, exporter.probe\n"
    "from exporter.cli import build_parser\n"
    "build_parser().parse_args([])\n"
    "loaded = sorted(m for m in sys.modules if m.startswith('exporter.simulators'))\n"
    "assert not loaded, loaded\n"
)


def test_the_exporter_does_not_import_the_simulators() -> None:
    # A fresh interpreter: this test process has long imported the simulators itself.
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_vendor_has_a_simulator() -> None:
    from exporter.registry import VENDORS
    from exporter.simulators import SIMULATORS

    assert list(SIMULATORS) == list(VENDORS)  # same order: the demo seeds follow it

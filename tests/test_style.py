"""The style bar the project holds itself to: ruff and ruff format clean, mypy --strict
clean."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from .support import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


COMMANDS = {
    "ruff": ("ruff", "check", "."),
    "ruff-format": ("ruff", "format", "--check", "."),
    "mypy": ("mypy", "--strict", "exporter", "tests", "bench"),
}


@pytest.mark.parametrize("tool", sorted(COMMANDS))
def test_clean(tool: str) -> None:
    module = tool.partition("-")[0]
    if importlib.util.find_spec(module) is None:  # a style check that cannot run must not pass
        skip_or_fail(f"{module} not installed (pip install -e '.[test]')")
    result = run(*COMMANDS[tool])
    assert result.returncode == 0, result.stdout + result.stderr

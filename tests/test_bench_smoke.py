"""Each benchmark script runs once in --quick mode: proof that it still works, not a timing.

The figures of a quick run mean nothing (tiny sizes, and the scrape bench runs its wrk
jobs all at once); only a clean exit and the shape of the report are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .support import require_tool

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, *args: str, timeout: float = 120) -> str:
    # Unbuffered so that a failure shows the lines printed before it.
    result = subprocess.run(
        [sys.executable, "-u", str(BENCH / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_scrape_bench_runs() -> None:
    require_tool("wrk")
    out = run_bench("scrape.py")
    for kind in ("ceiling", "exporter", "naive"):
        assert f"| {kind}" in out
    assert "series: 5,005" in out
    assert "target: exporter >= 90%" in out


def test_ingest_bench_runs() -> None:
    out = run_bench("ingest.py")
    for reply in ("Glance page", "SecureVideo history", "Rescue table"):
        assert reply in out
    assert "target: parse + collect within 2x" in out


def test_accounts_bench_runs() -> None:
    out = run_bench("accounts.py")
    assert "6 accounts, default settings" in out
    assert "| 6/6 |" in out, "every account must be up after its cycle"
    assert "(1.00x)" in out, "requests must scale exactly with the accounts"
    assert "capacity: one process handles 6 accounts" in out


def test_accounts_bench_runs_the_daemons_own_scheduler() -> None:
    out = run_bench("accounts.py", "--scheduled", "0.15")  # 9 s: every first cycle ends
    for vendor in ("glance", "securevideo", "rescue"):
        assert f"| {vendor} " in out
    assert "6 accounts, 0.15 min:" in out
    assert "6/6 up at the end" in out
    assert "0 accounts left out for max_exposition_bytes" in out
    assert "renders: " in out
    assert "target: every cycle finished within its interval: MET" in out


def test_render_bench_runs() -> None:
    out = run_bench("render.py")
    assert "| accounts | changed | whole ms | incremental ms" in out
    assert "| 6        | 1       |" in out


def test_memory_bench_runs() -> None:
    out = run_bench("memory.py")
    assert "counted 8,334 sessions" in out
    assert "target: peak RSS under 200 MB" in out


def test_scrape_under_ingest_bench_runs() -> None:
    out = run_bench("scrape_under_ingest.py", timeout=240)  # eight exporters, one by one
    for case in (
        "idle (Rescue, 10 rows)",
        "Glance feed",
        "Rescue getSession",
        "SecureVideo History",
        "--storage.path",
        "new Rescue ids",
    ):
        assert case in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "ms" not in line]
    # Every busy case really ingested: the exporter sent requests during its window.
    assert all(int(row.split("|")[3]) > 0 for row in rows[1:]), out
    assert "target: p99 within 3x and max within 10x of idle" in out


def test_state_save_bench_runs() -> None:
    out = run_bench("state_save.py")
    for path in ("| old ", "| new ", "| new, whole save "):
        assert path in out
    assert "| 1,000 " in out and "| 4,000 " in out

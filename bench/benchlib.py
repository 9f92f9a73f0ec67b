"""Shared by the bench scripts: the --quick flag, machine facts, and ratio tables.

Every figure a script prints is set against a baseline measured in the same run, on the
same machine, so that results from different machines can be compared by their ratios.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, a second or two: proves the script works (CI)",
    )
    return parser


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def header(title: str) -> None:
    print(f"# {title}")
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}  commit: {commit()}")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A markdown table, ready to paste into RESULTS.md."""
    text = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in text)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in text:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def best(run: Callable[[], object], repeats: int) -> float:
    """Seconds of the fastest of `repeats` runs: the least disturbed by the rest of the
    machine."""
    return best_interleaved({"run": run}, repeats)["run"]


def best_interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """`best` of each run, the runs taken in turn within each repeat: a ratio between two
    of them then compares runs made in the same minutes, which on a shared VM can
    differ by 2x from one minute to the next."""
    times = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name] = min(times[name], time.perf_counter() - started)
    return times


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"


async def stdin_closed() -> None:
    """Return once our stdin reaches EOF: a child server's "stop" from its parent, and
    also what happens if the parent dies."""
    import asyncio
    import sys

    loop = asyncio.get_running_loop()
    closed = loop.create_future()

    def on_stdin() -> None:
        if not closed.done() and not os.read(sys.stdin.fileno(), 4096):
            closed.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    try:
        await closed
    finally:
        loop.remove_reader(sys.stdin.fileno())


@contextmanager
def child(args: list[str], ready_timeout: float) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child server that prints one line when ready (yielded with it), stopped by closing
    its stdin, killed if it will not stop. A deadline rather than a bare readline: a child
    that hangs must not hang us."""
    import selectors

    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(ready_timeout):
                raise RuntimeError(f"{args[1:4]} not ready within {ready_timeout:g}s")
        line = proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"{args[1:4]} exited with {proc.wait()}")
        yield proc, line
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

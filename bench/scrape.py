"""Scrape path: wrk against /metrics of the exporter, a bare aiohttp handler serving the
same bytes (the ceiling), and a naive exporter that renders with
`prometheus_client.generate_latest()` on every scrape, each with and without gzip.

Each server runs alone in a child process (`serve KIND PORT`), so that wrk measures one
event loop at a time. Run: `python bench/scrape.py [--quick]`.
"""

from __future__ import annotations

import gzip
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from benchlib import arguments, header, ratio, table

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from exporter.families import CounterSet, HistogramSet

# One account's state: its counter, its histogram and its gauge values.
Holder = tuple["CounterSet", "HistogramSet", dict[tuple[str, ...], float]]

SERIES = 5000
KINDS = ("ceiling", "exporter", "naive")


# -- the metric state: about SERIES sample lines, shaped like the exporter's own ------------


def state(target: int = SERIES) -> list[Holder]:
    """Collector-like state objects whose families add up to about `target` samples."""
    from exporter.families import DURATION_BUCKETS, CounterSet, HistogramSet

    holders: list[Holder] = []
    samples, n = 0, 0
    while samples < target:
        account = f"account-{n:03d}"
        counter = CounterSet(
            "glance_sessions_completed_total",
            "Completed sessions.",
            ("account", "session_type", "status"),
        )
        for t in "CGV":
            for s in "ACDEJKLQTUWX":
                counter.inc((account, t, s), float(n + 1))
        histogram = HistogramSet(
            "glance_session_duration_seconds",
            "Session duration.",
            ("account", "session_type"),
            DURATION_BUCKETS,
        )
        for t in "CGV":
            for d in range(0, 7200, 97):
                histogram.observe((account, t), float(d))
        gauges: dict[tuple[str, ...], float] = {
            (account, node, status): float(i)
            for node in ("337366", "4411")
            for i, status in enumerate(
                ("Waiting", "Active", "Connecting", "On Hold", "Closed by technician")
            )
        }
        holders.append((counter, histogram, gauges))
        samples += 36 + 3 * (len(DURATION_BUCKETS) + 3) + len(gauges)
        n += 1
    return holders


def families(holders: list[Holder]) -> Iterator[Metric]:
    from exporter.families import gauge

    for counter, histogram, gauges in holders:
        yield counter.family()
        yield histogram.family()
        yield gauge("rescue_sessions", "Current sessions.", ("account", "node", "status"), gauges)


# -- the three servers -----------------------------------------------------------------


def serve(kind: str, port: int) -> None:
    from aiohttp import web
    from prometheus_client.exposition import generate_latest

    from exporter.config import Config
    from exporter.families import merge_families
    from exporter.loop import Daemon
    from exporter.registry import VENDORS
    from exporter.server import build_app
    from exporter.snapshot import render, wants_gzip

    holders = state()
    snapshot = render(families(holders))

    if kind == "exporter":
        daemon = Daemon(Config(), VENDORS)
        daemon.snapshot = snapshot

        async def no_reload() -> None:
            return None

        app = build_app(daemon, no_reload)
    elif kind == "ceiling":

        async def bare(request: web.Request) -> web.Response:
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                return web.Response(body=snapshot.text_gzip, headers={"Content-Encoding": "gzip"})
            return web.Response(body=snapshot.text)

        app = web.Application()
        app.router.add_get("/metrics", bare)
    else:

        class Registry:
            """What a naive exporter does: build the families from state on every scrape."""

            def collect(self) -> list[Metric]:
                # One family per name, as one registry holding every account would have.
                return merge_families(families(holders))

        registry = Registry()

        async def naive(request: web.Request) -> web.Response:
            body = generate_latest(registry)
            if wants_gzip(request.headers.get("Accept-Encoding", "")):
                return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip"})
            return web.Response(body=body)

        app = web.Application()
        app.router.add_get("/metrics", naive)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True)


# -- the driver ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline: float = 30.0) -> bytes:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return bytes(reply.read())
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready within {deadline}s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _millis(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, connections: int, seconds: int, gzipped: bool) -> dict[str, float]:
    # A 10 s timeout rather than wrk's 2 s: the naive exporter's queue gets that long, and
    # its requests should count as slow, not vanish as errors.
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    if gzipped:
        command[1:1] = ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _millis(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _millis(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx or 3xx responses" in out:
        raise RuntimeError(f"wrk saw HTTP errors:\n{out}")
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(n) for n in socket.groups()) if socket else 0
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors}


def main() -> int:
    parser = arguments(__doc__ or "")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    connections, seconds = (10, 1) if args.quick else (args.connections, args.seconds)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    header(f"scrape path: wrk -t1 -c{connections} -d{seconds}s --latency against /metrics")
    ports = {kind: free_port() for kind in KINDS}
    procs = {
        kind: subprocess.Popen([sys.executable, __file__, "serve", kind, str(port)])
        for kind, port in ports.items()
    }
    urls = {kind: f"http://127.0.0.1:{port}/metrics" for kind, port in ports.items()}
    jobs = [(kind, gzipped) for gzipped in (False, True) for kind in KINDS]
    try:
        bodies = {kind: wait_ready(urls[kind], procs[kind]) for kind in KINDS}
        if args.quick:
            # Only proves that everything runs: all at once, so the figures mean nothing.
            with ThreadPoolExecutor(len(jobs)) as pool:
                futures = {
                    job: pool.submit(wrk, urls[job[0]], connections, seconds, job[1])
                    for job in jobs
                }
                results = {job: future.result() for job, future in futures.items()}
        else:
            # One at a time: the idle servers cost nothing while another is measured.
            results = {job: wrk(urls[job[0]], connections, seconds, job[1]) for job in jobs}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=10)
    body = bodies["exporter"]
    assert body == bodies["ceiling"] == bodies["naive"], "the three must serve the same bytes"
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(f"series: {series:,}, body: {len(body):,} bytes ({len(gzip.compress(body)):,} gzipped)")
    rows = []
    for gzipped in (False, True):
        base = results["ceiling", gzipped]
        for kind in KINDS:
            r = results[kind, gzipped]
            rows.append(
                [
                    kind,
                    "gzip" if gzipped else "plain",
                    r["rps"],
                    ratio(r["rps"], base["rps"]),
                    r["p50"],
                    r["p99"],
                    ratio(r["p99"], base["p99"]),
                    int(r["errors"]),
                ]
            )
    table(
        [
            "server",
            "encoding",
            "req/s",
            "vs ceiling",
            "p50 ms",
            "p99 ms",
            "p99 vs ceiling",
            "socket errors",
        ],
        rows,
    )
    worst = min(results["exporter", g]["rps"] / results["ceiling", g]["rps"] for g in (False, True))
    print(
        f"target: exporter >= 90% of the ceiling's req/s: "
        f"{'MET' if worst >= 0.9 else 'NOT MET'} (worst {worst:.0%})"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())

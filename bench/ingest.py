"""Ingest: records per second through parse, and through parse + collect, against the
bare parse of the same bytes (`lxml.etree.fromstring`, `json.loads`, `str.split`).

The bytes come from the simulators (a Glance completed-sessions page of 1000, a
SecureVideo History reply of 50,000 records) or in the simulator's format (a Rescue
getSession table of 5,000 rows). "Collect" is one real `collector.collect()` whose
`Upstream` hands back those bytes instead of going to the network, so client, parser,
dedupe, counters and histograms all run; a fresh collector each time makes every record
new. Rescue Start Time texts are remembered across replies (a poll's sessions are mostly
the last poll's), so its "parse + collect" is that steady state, and "new Start Times"
reads every one afresh. Rescue's "bare parse, rows kept" is the same split keeping every
row, as the other two bare parses keep what they read: the floor of any reader that
keeps its fields (the target is still measured against the bare parse).
Run: `python bench/ingest.py [--quick] [--only NAME] [--profile] [--default-gc]`;
`--profile` prints where a parse + collect spends its time (cProfile, the reply parsed
inline so the profile sees it), by own time, and the per-record cost of each function.
Each time is the best of 15 runs, the three stages of a reply taken in turn. The garbage
collector is set as the daemon sets it (`exporter.heap`), unless `--default-gc`.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import pstats
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from benchlib import arguments, best_interleaved, header, ratio, table
from lxml import etree
from multidict import CIMultiDict, CIMultiDictProxy

from exporter.config import parse_config
from exporter.heap import tune_garbage_collector
from exporter.http import Reply, Upstream
from exporter.logs import configure, get_logger
from exporter.registry import VENDORS
from exporter.selfmetrics import SelfMetrics
from exporter.simulators.clock import FakeClock
from exporter.vendors.base import CollectorContext

T = TypeVar("T")

NOW = 1_767_225_600.0 + 40 * 86400  # mid-February 2026: 40 days of simulated past


class CannedUpstream(Upstream):
    """An Upstream that answers from memory: the network is not what is measured here."""

    def __init__(self, answer: Callable[[str, Mapping[str, str]], bytes]) -> None:
        # Only what `error()` and `parse()` use; fetch() below never touches a session.
        self.vendor, self.account = "bench", "bench"
        self._metrics = SelfMetrics()
        self._answer = answer
        self.history = None  # no status page here
        self.clock_skew = None  # no Date headers: our clock is the vendor's
        self.dated_replies = 0
        self._max_body = 1 << 30  # parsers read the body cap from the Upstream
        # Parsed in this process (a thread for big replies): the CPU cost of a parse is
        # what is measured, not a trip to the parse worker process.
        self._parse_worker = None
        # --profile: parsed inline, because cProfile sees only the thread it runs in.
        self.inline = False

    async def parse_off_loop(
        self, operation: str, parser: Callable[[bytes], T], body: bytes | tuple[bytes, ...]
    ) -> T:
        if self.inline:
            return self.parse(
                operation, parser, body if isinstance(body, bytes) else b"".join(body)
            )
        return await super().parse_off_loop(operation, parser, body)

    async def fetch(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | bytes | None = None,
        params: Mapping[str, str] | None = None,
        **_: Any,
    ) -> Reply:
        form = data if isinstance(data, Mapping) else None  # no stand-in sends raw bytes
        body = self._answer(operation, form or params or {})
        # Framed as a server frames it: Rescue warns of a text reply that is not.
        headers = CIMultiDictProxy(CIMultiDict({"Content-Length": str(len(body))}))
        return Reply.of(200, body, headers)

    async def stream(
        self,
        operation: str,
        url: str,
        consume: Callable[[AsyncIterator[bytes]], Awaitable[T]],
        *,
        params: Mapping[str, str] | None = None,
        **_: Any,
    ) -> T:
        body = self._answer(operation, params or {})

        async def chunks() -> AsyncIterator[bytes]:
            for at in range(0, len(body), 65536):
                yield body[at : at + 65536]

        return await consume(chunks())


# One event loop for every collect, as the daemon runs one for its lifetime: a loop per
# collect (`asyncio.run`) also made and joined a thread pool each time, 1.4 ms of a Glance
# page's 36 ms that the daemon never pays.
LOOP = asyncio.new_event_loop()


def run(collect: Awaitable[None]) -> None:
    LOOP.run_until_complete(collect)


def context(clock: FakeClock, started_at: float = 0.0) -> CollectorContext:
    return CollectorContext(
        clock=clock,
        log=get_logger(component="bench"),
        label_value_limit=50,
        reject=lambda reason, count: None,
        started_at=started_at,
    )


def account(vendor: str, fields: dict[str, Any]) -> Any:
    config = parse_config({vendor: [{"name": "bench", **fields}]}, VENDORS)
    return config.accounts[0]


# -- Glance --------------------------------------------------------------------------------


def glance_bodies(size: int) -> dict[str, bytes]:
    """Replies of the Glance simulator, taken from its own HTTP handler over loopback."""
    from exporter.simulators.glance import GlanceSimulator

    clock = FakeClock(NOW)
    # Enough arrivals that one page holds `size` completed sessions.
    sim = GlanceSimulator(clock, 1, history=max(size, 10) * 120.0, rate=1 / 60)
    base = {
        "partnerId": str(sim.partner_id),
        "apiKey": sim.api_key,
        "sessionKey": "",
        "startRange": _utc(NOW - 30 * 86400),
        "endRange": _utc(NOW),
    }
    requests = {
        "page": ("PartnerCompletedSessionsEnding", {**base, "nResults": str(size), "nextId": "0"}),
        "empty": (
            "PartnerCompletedSessionsEnding",
            {**base, "nResults": "1", "nextId": str(10**9)},
        ),
        "active": ("PartnerActiveSessions", base),
        "counts": ("PartnerSessionCounts", {**base, "type": "", "status": "C"}),
        "ending": ("PartnerSessionCountsEnding", {**base, "type": ""}),
    }
    return asyncio.run(
        _fetch_all(
            sim.app(),
            {
                name: (f"/services/activityservice.asmx/{op}", params)
                for name, (op, params) in requests.items()
            },
        )
    )


def _utc(timestamp: float) -> str:
    from exporter.vendors.glance.client import utc

    return utc(timestamp)


async def _fetch_all(app: Any, requests: dict[str, tuple[str, dict[str, str]]]) -> dict[str, bytes]:
    import aiohttp
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            bodies = {}
            for name, (path, params) in requests.items():
                async with session.post(base + path, data=params) as reply:
                    assert reply.status == 200, (name, reply.status, await reply.text())
                    bodies[name] = await reply.read()
            return bodies
    finally:
        await runner.cleanup()


def bench_glance(size: int, repeats: int) -> list[list[object]]:
    from exporter.vendors.glance.client import COMPLETED_ENDING
    from exporter.vendors.glance.collector import GlanceCollector
    from exporter.vendors.glance.parser import parse_group_sessions

    bodies = glance_bodies(size)
    page = bodies["page"]
    records = len(parse_group_sessions(page).sessions)
    assert records == size, f"the simulator gave {records} sessions, not {size}"
    acct = account(
        "glance", {"partner_id": 1, "api_key": "k", "users": [], "today_statuses": ["C"]}
    )
    clock = FakeClock(NOW)

    def answer(operation: str, form: Mapping[str, str]) -> bytes:
        if operation == COMPLETED_ENDING:
            return page if form.get("nextId") == "0" else bodies["empty"]
        return bodies[
            {
                "PartnerActiveSessions": "active",
                "PartnerSessionCounts": "counts",
                "PartnerSessionCountsEnding": "ending",
            }[operation]
        ]

    upstream = CannedUpstream(answer)
    # The page's sessions ended up to 33 hours ago (`history` above): the feed must begin
    # before them, as a completed session a day outside the range read is skipped.
    began = NOW - 2 * 86400

    def collect() -> None:
        collector = GlanceCollector(acct, context(clock, began))
        run(collector.collect(upstream))

    check = GlanceCollector(acct, context(clock, began))
    run(check.collect(upstream))
    counted = sum(check.completed.values.values())
    assert counted == records, f"collected {counted} of {records}"
    return _rows(
        "Glance page",
        records,
        len(page),
        bare=lambda: etree.fromstring(page),
        parse=lambda: parse_group_sessions(page),
        collect=collect,
        repeats=repeats,
        upstream=upstream,
    )


# -- SecureVideo ---------------------------------------------------------------------------


def securevideo_body(size: int) -> bytes:
    """A History reply as the simulator serves it (json.dumps of its World's records)."""
    from datetime import UTC, datetime, timedelta

    from exporter.simulators.securevideo_world import World

    days = max(1, size // 4500 + 1)  # the world connects about 5,000 sessions a day
    world = World(1, NOW - days * 86400)
    world.advance_to(NOW)
    today = datetime.fromtimestamp(NOW, UTC).date()
    records = world.query(NOW, start=today - timedelta(days=days), end=today)
    assert len(records) >= size, f"only {len(records)} records in {days} days"
    return json.dumps(records[-size:]).encode()


def bench_securevideo(size: int, repeats: int) -> list[list[object]]:
    from exporter.vendors.securevideo.client import FEED
    from exporter.vendors.securevideo.collector import SecureVideoCollector
    from exporter.vendors.securevideo.parser import parse_history

    body = securevideo_body(size)
    records = len(parse_history(body).records)
    acct = account("securevideo", {"api_key": "k", "api_secret": "s", "feed_days": 31})
    clock = FakeClock(NOW)
    # The month query is answered empty: this measures the feed, which carries the records.
    upstream = CannedUpstream(lambda op, params: body if op == FEED else b"[]")

    def collect() -> None:
        run(SecureVideoCollector(acct, context(clock)).collect(upstream))

    check = SecureVideoCollector(acct, context(clock))
    run(check.collect(upstream))
    assert check.tracked_sessions > records * 0.9, "most records must be counted"
    return _rows(
        "SecureVideo history",
        records,
        len(body),
        bare=lambda: json.loads(body),
        parse=lambda: parse_history(body),
        collect=collect,
        repeats=repeats,
        upstream=upstream,
    )


# -- Rescue --------------------------------------------------------------------------------


def rescue_body(size: int) -> bytes:
    """A getSession (v1) table of `size` rows in the simulator's reply shape."""
    from exporter.simulators.rescue import CHANNELS, COLUMNS, TECHNICIANS
    from exporter.vendors.rescue.statuses import STATUSES

    rng = random.Random(1)
    lines = ["OK", "", "|".join(COLUMNS[1]) + "|"]
    for i in range(size):
        channel, tech = rng.choice(CHANNELS), rng.choice(TECHNICIANS)
        row = {
            "ID": str(1663112 + i),
            "Status": rng.choice(STATUSES),
            "Entry ID": str(channel.id),
            "Entry": channel.name,
            "Technician ID": str(tech.id),
            "Technician": tech.name,
            "Start Time": f"2/{rng.randint(1, 28)}/2026 {rng.randint(1, 12)}:"
            f"{rng.randint(0, 59):02d} {rng.choice(('AM', 'PM'))}",
            "Waiting Time": str(rng.randint(0, 3600)),
            "Custom Field 0": f"Customer {rng.randint(1, 999)}",
            "Custom Field 1": f"T-{rng.randint(1000, 9999)}",
            "Language": rng.choice(("en", "pt", "de")),
        }
        lines.append("|".join(row.get(c, "") for c in COLUMNS[1]) + "|")
    return ("\r\n".join(lines) + "\r\n").encode()


def bench_rescue(size: int, repeats: int) -> list[list[object]]:
    from exporter.vendors.rescue import parser as rescue_parser
    from exporter.vendors.rescue.collector import RescueCollector
    from exporter.vendors.rescue.parser import parse_sessions

    body = rescue_body(size)
    records = len(parse_sessions(body).sessions)
    assert records == size
    acct = account("rescue", {"auth_code": "c", "nodes": [{"id": 337366}]})
    clock = FakeClock(NOW)
    upstream = CannedUpstream(lambda op, form: body)

    def bare() -> None:
        for line in body.decode().split("\r\n"):
            line.split("|")

    def bare_kept() -> list[list[str]]:
        # The floor of any reader that keeps its fields, as `json.loads` and
        # `etree.fromstring` keep theirs: the bare parse drops each row as it goes, so
        # its memory is reused while hot, and freeing the rows costs it nothing.
        return [line.split("|") for line in body.decode().split("\r\n")]

    def collect() -> None:
        run(RescueCollector(acct, context(clock)).collect(upstream))

    def collect_new_start_times() -> None:
        # The reply repeats, so its Start Times are remembered from the run before (as
        # when a poll's sessions are the last poll's); here each is read afresh.
        rescue_parser._STARTS.clear()
        collect()

    return _rows(
        "Rescue table",
        records,
        len(body),
        bare=bare,
        parse=lambda: parse_sessions(body),
        collect=collect,
        repeats=repeats,
        upstream=upstream,
        more={
            "parse + collect, new Start Times": collect_new_start_times,
            "bare parse, rows kept": bare_kept,
        },
    )


# -- report --------------------------------------------------------------------------------


PROFILE = False  # --profile
PROFILE_LINES = 18


def _rows(
    name: str,
    records: int,
    size: int,
    *,
    bare: Callable[[], object],
    parse: Callable[[], object],
    collect: Callable[[], object],
    repeats: int,
    upstream: CannedUpstream,
    more: Mapping[str, Callable[[], object]] | None = None,
) -> list[list[object]]:
    if PROFILE:
        _profile(name, records, collect, upstream)
    times = best_interleaved(
        {"bare parse": bare, "parse": parse, "parse + collect": collect, **(more or {})},
        repeats,
    )
    return [
        [
            f"{name} ({records:,} records, {size / 1e6:.1f} MB)" if i == 0 else "",
            stage,
            records / t,
            t * 1000,
            ratio(t, times["bare parse"]),
        ]
        for i, (stage, t) in enumerate(times.items())
    ]


def _profile(
    name: str, records: int, collect: Callable[[], object], upstream: CannedUpstream
) -> None:
    """One parse + collect under cProfile: the functions by own time, per record."""
    upstream.inline = True
    profiler = cProfile.Profile()
    try:
        collect()  # warm: first-call costs (imports, caches) are not per record
        profiler.runcall(collect)
    finally:
        upstream.inline = False
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]  # set by Stats, not in the stubs
    print(
        f"## profile: {name}, {records:,} records, {total * 1000:.0f} ms under cProfile "
        f"({total / records * 1e6:.1f} us a record)"
    )
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )[:PROFILE_LINES]
    table(
        ["function", "calls", "own ms", "own us/record", "share"],
        [
            [_where(func), calls, own * 1000, own / records * 1e6, f"{own / total:.0%}"]
            for func, (_, calls, own, _, _) in rows
        ],
    )
    print()


def _where(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name  # a builtin
    short = path.split("/exporter/", 1)[-1] if "/exporter/" in path else path.rsplit("/", 1)[-1]
    return f"{short}:{line}({name})"


def _glance(quick: bool, repeats: int) -> list[list[object]]:
    return bench_glance(50 if quick else 1000, repeats)


def _securevideo(quick: bool, repeats: int) -> list[list[object]]:
    return bench_securevideo(500 if quick else 50_000, repeats)


def _rescue(quick: bool, repeats: int) -> list[list[object]]:
    return bench_rescue(100 if quick else 5000, repeats)


BENCHES: dict[str, Callable[[bool, int], list[list[object]]]] = {
    "glance": _glance,
    "securevideo": _securevideo,
    "rescue": _rescue,
}


def main() -> int:
    global PROFILE
    parser = arguments(__doc__ or "")
    parser.add_argument(
        "--only",
        choices=sorted(BENCHES),
        action="append",
        help="this vendor's reply only (repeatable)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile one parse + collect per reply"
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's garbage collector settings, not the daemon's",
    )
    args = parser.parse_args()
    PROFILE = args.profile
    configure("warn", "logfmt")
    if not args.default_gc:
        # As `session-exporter` does once started: what is measured is its ingest, and
        # the collector's thresholds decide how often a big reply's records are walked.
        tune_garbage_collector()
    repeats = 2 if args.quick else 15
    header("ingest: records/s through the parsers and collectors vs the bare parse")
    print(
        f"garbage collector: {'Python defaults' if args.default_gc else 'as the daemon'} "
        f"(thresholds {gc.get_threshold()})"
    )
    try:
        rows = [
            row
            for name, bench in BENCHES.items()
            if not args.only or name in args.only
            for row in bench(args.quick, repeats)
        ]
    finally:
        LOOP.run_until_complete(LOOP.shutdown_default_executor())
        LOOP.close()
    table(["reply", "stage", "records/s", "ms", "time vs bare"], rows)
    worst = max(float(str(r[4]).rstrip("x")) for r in rows if r[1] == "parse + collect")
    print(
        f"target: parse + collect within 2x of the bare parse: "
        f"{'MET' if worst <= 2 else 'NOT MET'} (worst {worst:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

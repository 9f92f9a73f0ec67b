"""Render cost at many accounts: what one render of the snapshot costs once 1% of the
accounts have finished a cycle since the last one, at 200 and 2,000 accounts.

The accounts are the demo world's (one of each vendor, after a few cycles at a fixed seed
and clock, as tests/test_golden.py renders them), copied under new account names, so each
carries a real account's families and sizes. The exporter's own families hold one health
and request series per account, as they do in the daemon.

- "whole" (the baseline, what every render did before): re-encode the changed accounts
  and all of the exporter's own series, stitch, and `gzip.compress` both whole bodies.
- "incremental" (what `Renderer.render_now` does): re-encode and deflate the changed
  accounts and their own series, stitch the cached pieces (`snapshot.assemble`).
- "own series": the part of each spent encoding the exporter's own series.

A changed account is encoded afresh, every family of it (the worst case: the renderer
reuses the encoding of families unchanged since the account's last cycle).

Run: `python bench/render.py [--quick] [--accounts 200,2000] [--changed 0.01]`.
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass

from benchlib import arguments, best, header, ratio, table
from prometheus_client.core import Metric

from exporter.config import parse_config
from exporter.logs import configure
from exporter.loop import Daemon
from exporter.registry import VENDORS
from exporter.selfmetrics import SelfMetrics
from exporter.simulators import SIMULATORS
from exporter.simulators.clock import FakeClock
from exporter.simulators.demo import start_world
from exporter.snapshot import Chunk, Chunks, Snapshot, assemble, render_chunks

CYCLES = 4


@dataclass
class Template:
    vendor: str
    name: str
    families: list[Metric]
    requests: dict[str, float]  # operation -> requests counted for the account


async def demo_accounts() -> list[Template]:
    clock = FakeClock()
    world = await start_world(SIMULATORS, clock, seed=1)
    try:
        daemon = Daemon(
            parse_config(world.config_data(interval="60s"), VENDORS), VENDORS, clock=clock, seed=1
        )
        await daemon.start(schedule=False)
        try:
            for _ in range(CYCLES):
                await daemon.collect_all_once()
                clock.advance(60)
            return [
                Template(
                    vendor,
                    name,
                    list(runner.collector.families()),
                    {
                        labels[2]: value
                        for labels, value in daemon.metrics.requests.values.items()
                        if labels[:2] == (vendor, name)
                    },
                )
                for (vendor, name), runner in daemon.runners.items()
            ]
        finally:
            await daemon.stop()
    finally:
        await world.close()


def renamed(families: list[Metric], old: str, new: str) -> list[Metric]:
    """The families with every `account="old"` label set to `new`."""
    copies = []
    for family in families:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [
            s._replace(labels={**s.labels, "account": new}) if s.labels.get("account") == old else s
            for s in family.samples
        ]
        copies.append(copy)
    return copies


@dataclass
class World:
    accounts: list[list[Metric]]
    metrics: SelfMetrics


def world(templates: list[Template], n: int) -> World:
    metrics = SelfMetrics()
    accounts = []
    for i in range(n):
        template = templates[i % len(templates)]
        name = f"{template.name}-{i:04d}"
        accounts.append(renamed(template.families, template.name, name))
        health = metrics.account((template.vendor, name))
        health.up, health.last_success, health.collect_duration = True, 1.0e9, 0.5
        health.first_cycle_done = True
        for operation, count in template.requests.items():
            for _ in range(int(count)):
                metrics.upstream_request(template.vendor, name, operation)
    return World(accounts, metrics)


def whole_assemble(parts: list[Chunks]) -> tuple[bytes, bytes, bytes, bytes]:
    """What `snapshot.assemble` did before: stitch, then gzip both whole bodies."""

    def stitch(chunks: list[tuple[Chunk, ...]]) -> bytes:
        headers: dict[bytes, bytes] = {}
        samples: dict[bytes, list[bytes]] = {}
        for part in chunks:
            for chunk in part:
                if chunk.name not in headers:
                    headers[chunk.name], samples[chunk.name] = chunk.header, []
                samples[chunk.name].append(chunk.body)
        return b"".join(headers[n] + b"".join(bodies) for n, bodies in samples.items())

    text = stitch([p.text for p in parts])
    om = stitch([p.openmetrics for p in parts]) + b"# EOF\n"
    return text, gzip.compress(text, 6, mtime=0), om, gzip.compress(om, 6, mtime=0)


@dataclass
class Result:
    accounts: int
    changed: int
    whole: float
    incremental: float
    own_whole: float
    own_incremental: float
    encode_one: float
    encode_again: float  # the same account, unchanged since its last encoding
    plain_bytes: int
    whole_gzip_bytes: int
    incremental_gzip_bytes: int


def measure(w: World, share: float, repeat: int) -> Result:
    parts: list[Chunks] = [render_chunks(families) for families in w.accounts]
    keys = w.metrics.accounts()
    own = dict(
        zip(
            keys, (render_chunks(f) for f in w.metrics.account_families(keys).values()), strict=True
        )
    )
    changed = max(1, round(len(parts) * share))
    # Spread over the accounts, as cycles end spread over the interval.
    picked = list(range(0, len(parts), len(parts) // changed))[:changed]

    def cycles_ended() -> None:
        """The picked accounts' families encoded again, as after their cycles, and one
        more request counted for each (so their own series changed too)."""
        for i in picked:
            parts[i] = render_chunks(w.accounts[i])
            w.metrics.upstream_request(*keys[i], "bench")

    def own_whole() -> Chunks:
        return render_chunks(w.metrics.families())

    def whole() -> object:  # before: every own series re-encoded, both bodies gzipped
        cycles_ended()
        return whole_assemble([*parts, own_whole()])

    def own_incremental() -> list[Chunks]:
        changed_keys = [keys[i] for i in picked]
        for key, families in w.metrics.account_families(changed_keys).items():
            own[key] = render_chunks(families)
        return [render_chunks(w.metrics.shared_families()), *own.values()]

    def incremental() -> Snapshot:  # now: as `Renderer.render_now`
        cycles_ended()
        return assemble([*parts, *own_incremental()])

    snapshot = incremental()
    assert gzip.decompress(snapshot.text_gzip) == snapshot.text
    assert snapshot.text == whole_assemble([*parts, own_whole()])[0]
    return Result(
        len(parts),
        changed,
        best(whole, repeat),
        best(incremental, repeat),
        best(own_whole, repeat),
        best(own_incremental, repeat),
        best(lambda: render_chunks(w.accounts[0]), repeat * 3),
        best(lambda: render_chunks(w.accounts[0], parts[0]), repeat * 3),
        len(snapshot.text),
        len(gzip.compress(snapshot.text, 6, mtime=0)),
        len(snapshot.text_gzip),
    )


def main() -> int:
    parser = arguments(__doc__ or "")
    parser.add_argument(
        "--accounts", default="200,2000", help="account counts to measure, comma-separated"
    )
    parser.add_argument(
        "--changed",
        type=float,
        default=0.01,
        help="share of the accounts re-encoded before each render",
    )
    args = parser.parse_args()
    configure("warn", "logfmt")
    counts = [6] if args.quick else [int(n) for n in args.accounts.split(",")]
    repeat = 1 if args.quick else 3
    header(
        f"render: {args.changed:.0%} of the accounts changed before each render, best of {repeat}"
    )
    templates = asyncio.run(demo_accounts())
    rows = []
    for n in counts:
        r = measure(world(templates, n), args.changed, repeat)
        rows.append(
            [
                r.accounts,
                r.changed,
                r.whole * 1000,
                r.incremental * 1000,
                ratio(r.incremental, r.whole),
                r.own_whole * 1000,
                r.own_incremental * 1000,
                r.encode_one * 1000,
                r.encode_again * 1000,
                f"{r.plain_bytes / 1e6:.1f}",
                f"{r.whole_gzip_bytes / 1e6:.2f}",
                f"{r.incremental_gzip_bytes / 1e6:.2f} "
                f"({ratio(r.incremental_gzip_bytes, r.whole_gzip_bytes)})",
            ]
        )
    table(
        [
            "accounts",
            "changed",
            "whole ms",
            "incremental ms",
            "vs whole",
            "own series whole ms",
            "own series incremental ms",
            "encode 1 account ms",
            "again, unchanged ms",
            "text MB",
            "whole gzip MB",
            "incremental gzip MB",
        ],
        rows,
    )
    print(
        "ms per render, changed accounts' encoding included; whole: every own series "
        "re-encoded and both bodies gzipped whole (as before); incremental: as "
        "Renderer.render_now"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

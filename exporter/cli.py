"""Command line: Prometheus-style flags, wiring, signals."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import __version__
from .clock import SystemClock
from .config import SECRET_FIELDS, ConfigError, load_config, parse_config
from .connections import CappedTCPSite, ConnectionCap, default_limit
from .heap import tune_garbage_collector
from .logs import configure, get_logger
from .loop import Daemon
from .probe import UnknownAccount, as_json, exit_status, format_line, run_probe, select
from .registry import VENDORS
from .reloader import ConfigReloader
from .server import WebOptions, build_app
from .storage import StateStore
from .webconfig import WebConfigError, WebSecurity

if TYPE_CHECKING:  # the test doubles are imported by --demo alone, when it runs
    from .simulators.demo import DemoWorld

DEFAULT_PORT = 9786
# A connection with no request for this long is closed: one that never finishes its
# headers too (aiohttp arms this timer when a connection opens, and only a complete
# request disarms it). aiohttp's default, an hour, let idle sockets pile up until accept
# failed (EMFILE) and scrapes timed out. Longer than a 60 s scrape interval, so that
# Prometheus keeps its connection.
IDLE_CONNECTION_SECONDS = 75.0
# What --demo.wrong-key puts in place of a demo credential: a secret like any other (the
# page must show it redacted), and fixed, so tests can look for it.
DEMO_WRONG_KEY = "demo-wrong-key-7Yq2"
log = get_logger(component="main")


def app_runner(
    app: web.Application, idle_seconds: float = IDLE_CONNECTION_SECONDS
) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=2.0,
        keepalive_timeout=idle_seconds,
    )


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise argparse.ArgumentTypeError("use I/N, e.g. 0/3") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError("need 0 <= I < N")
    return index, count


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("use a whole number, e.g. 256") from None
    if value < 1:
        raise argparse.ArgumentTypeError("need at least 1")
    return value


def telemetry_path(text: str) -> str:
    if (
        not text.startswith("/")
        or text.startswith("/accounts/")
        or text in ("/", "/config", "/-/healthy", "/-/ready", "/-/reload")
    ):
        raise argparse.ArgumentTypeError("a path of its own starting with /, e.g. /metrics")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="session-exporter",
        description="Prometheus exporter for Glance, SecureVideo and LogMeIn Rescue sessions.",
    )
    p.add_argument(
        "--config.file",
        dest="config_file",
        default="config.yaml",
        help="path of the YAML config (default: %(default)s)",
    )
    p.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the config file and exit (status 2 when invalid)",
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=None,
        type=listen_address,
        help=f"address to listen on (default :{DEFAULT_PORT}; "
        f"127.0.0.1:{DEFAULT_PORT} with --demo)",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        type=telemetry_path,
        help="path of the metrics endpoint (default: %(default)s)",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        help="exporter-toolkit web config: TLS and basic auth",
    )
    p.add_argument(
        "--web.max-connections",
        dest="max_connections",
        default=None,
        type=positive_int,
        help="most client connections open at once; at the limit a new one closes the "
        "oldest idle one (default: a quarter of the open-file limit, at most "
        "1024 and at least 8)",
    )
    p.add_argument(
        "--log.level", dest="log_level", default="info", choices=("debug", "info", "warn", "error")
    )
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=("logfmt", "json"))
    p.add_argument(
        "--shard",
        dest="shard",
        type=parse_shard,
        default=None,
        help="I/N: poll only the accounts whose stable hash falls in shard I of N",
    )
    p.add_argument(
        "--storage.path",
        dest="storage_path",
        default=None,
        help="SQLite file that keeps feed cursors, dedupe state and counters "
        "across restarts (default: none, counters start from zero)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="run against built-in vendor simulators on loopback; no config needed",
    )
    p.add_argument(
        "--demo.fault-rate",
        dest="demo_fault_rate",
        default="0.02",
        help="share of simulator replies that fail in the demo: one number for "
        "every vendor, or per vendor as glance=0.1,rescue=0 "
        "(default %(default)s)",
    )
    p.add_argument(
        "--demo.wrong-key",
        dest="demo_wrong_key",
        default="",
        type=vendor_list,
        help="add a demo account with a wrong key for these vendors "
        "(comma-separated, e.g. glance), to see a failing account",
    )
    p.add_argument("--version", action="version", version=f"session-exporter {__version__}")
    p.epilog = "Run 'session-exporter probe --help' to test accounts once and exit."
    return p


def build_probe_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="session-exporter probe",
        description="Run one collection cycle of each configured account (or of the "
        "accounts named) against its vendor, print one line per account and "
        "exit 1 if any failed. Nothing is saved and nothing is served.",
    )
    p.add_argument(
        "accounts",
        nargs="*",
        metavar="vendor/name",
        help="accounts to probe (default: every configured account)",
    )
    p.add_argument(
        "--config.file",
        dest="config_file",
        default="config.yaml",
        help="path of the YAML config (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead")
    p.add_argument(
        "--shard",
        dest="shard",
        type=parse_shard,
        default=None,
        help="I/N: only the accounts of shard I of N",
    )
    p.add_argument(
        "--log.level", dest="log_level", default="warn", choices=("debug", "info", "warn", "error")
    )
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=("logfmt", "json"))
    p.add_argument(
        "--demo", action="store_true", help="probe the built-in simulators' demo accounts"
    )
    p.add_argument(
        "--demo.wrong-key",
        dest="demo_wrong_key",
        default="",
        type=vendor_list,
        help="with --demo: add a demo account with a wrong key for these vendors",
    )
    return p


def vendor_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in VENDORS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown vendor {unknown[0]!r}; known: {', '.join(VENDORS)}"
        )
    return names


def add_wrong_key_accounts(data: dict[str, Any], vendors: Sequence[str]) -> None:
    """A copy of each vendor's first demo account whose first credential is wrong: the
    simulator refuses it as the vendor would, so the status page has a failure to show."""
    for vendor in vendors:
        accounts = data.get(vendor) or []
        if not accounts:
            continue
        bad = dict(accounts[0])
        bad["name"] = f"{bad['name']}-wrong-key"
        field = next(f for f in SECRET_FIELDS if f in bad)
        bad[field] = DEMO_WRONG_KEY
        accounts.append(bad)


def split_address(address: str) -> tuple[str | None, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not host:port: {address!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"no such port: {number}")
    return (host or None), number


def listen_address(text: str) -> str:
    split_address(text)  # refuse it at parse time, as a usage error
    return text


# While a worker thread parses or encodes a big reply, the event loop gets the GIL back
# after at most this long (Python's default is 5 ms): scrapes wait less behind ingest.
SWITCH_INTERVAL = 0.001


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.setswitchinterval(SWITCH_INTERVAL)
    if argv[:1] == ["probe"]:
        probe_args = build_probe_parser().parse_args(argv[1:])
        configure(probe_args.log_level, probe_args.log_format)
        raise SystemExit(asyncio.run(probe(probe_args)))
    args = build_parser().parse_args(argv)
    configure(args.log_level, args.log_format)
    if args.config_check:
        try:
            config = load_config(args.config_file, VENDORS, shard=args.shard)
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        print(f"{args.config_file}: OK, {len(config.accounts)} account(s)")
        return
    try:
        raise SystemExit(asyncio.run(serve(args)))
    except KeyboardInterrupt:
        raise SystemExit(0) from None


async def probe(args: argparse.Namespace) -> int:
    world: DemoWorld | None = None
    try:
        if args.demo:
            from .simulators import SIMULATORS
            from .simulators.demo import start_world

            world = await start_world(SIMULATORS, SystemClock())
            data = world.config_data()
            add_wrong_key_accounts(data, args.demo_wrong_key)
            config = parse_config(data, VENDORS, source="demo", shard=args.shard)
        else:
            config = load_config(args.config_file, VENDORS, shard=args.shard)
        config = select(config, args.accounts)
    except (ConfigError, UnknownAccount) as exc:
        print(f"probe: {exc}", file=sys.stderr)
        if world is not None:
            await world.close()
        return 2
    try:
        results = await run_probe(config, VENDORS)
    finally:
        if world is not None:
            await world.close()
    if args.json:
        print(json.dumps(as_json(results), indent=1, ensure_ascii=False))
    else:
        for result in results:
            print(format_line(result))
        good = sum(r.ok for r in results)
        print(f"{good} of {len(results)} account(s) ok")
    return exit_status(results)


async def serve(args: argparse.Namespace) -> int:
    clock = SystemClock()
    world: DemoWorld | None = None
    try:
        web_security = WebSecurity.load(args.web_config_file) if args.web_config_file else None
        if args.demo:
            from .simulators import SIMULATORS
            from .simulators.demo import parse_fault_rates, start_world

            rates = parse_fault_rates(args.demo_fault_rate, SIMULATORS)
            world = await start_world(SIMULATORS, clock, fault_rates=rates)
            data = world.config_data()
            add_wrong_key_accounts(data, args.demo_wrong_key)
            config = parse_config(data, VENDORS, source="demo", shard=args.shard)
        else:
            config = load_config(args.config_file, VENDORS, shard=args.shard)
    except (ConfigError, WebConfigError, ValueError) as exc:
        log.error("invalid configuration", error=str(exc))
        return 2

    try:
        store = StateStore(args.storage_path) if args.storage_path else None
    except sqlite3.Error as exc:
        log.error("cannot open --storage.path", path=args.storage_path, error=str(exc))
        return 2
    daemon = Daemon(config, VENDORS, clock=clock, store=store)

    reloader = ConfigReloader(
        lambda: load_config(args.config_file, VENDORS, shard=args.shard), daemon
    )

    async def reload_config() -> str | None:
        if world is not None:
            return None  # the demo's config is generated, there is nothing to re-read
        return await reloader.reload()

    default_host = "127.0.0.1" if args.demo else ""
    host, port = split_address(args.listen_address or f"{default_host}:{DEFAULT_PORT}")
    cap = ConnectionCap(args.max_connections or default_limit())
    # The cap counts every request in flight, even those the web config turns away.
    middlewares = (cap.middleware(),) + ((web_security.middleware(),) if web_security else ())
    app = build_app(daemon, reload_config, WebOptions(args.telemetry_path), middlewares)
    runner = app_runner(app)
    await daemon.start()
    await runner.setup()
    tune_garbage_collector()
    try:
        site = CappedTCPSite(
            runner,
            host,
            port,
            cap,
            ssl_context=web_security.ssl_context() if web_security else None,
        )
        await site.start()
    except OSError as exc:
        log.error("cannot listen", address=f"{host or ''}:{port}", error=exc.strerror)
        await daemon.stop()
        await runner.cleanup()
        return 1
    # The port bound, not the one asked for: with port 0 the system picks it (tests).
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info(
        "listening",
        address=f"{host or ''}:{bound}",
        version=__version__,
        accounts=len(config.accounts),
        max_connections=cap.limit,
        demo=args.demo,
        tls=bool(web_security and web_security.tls_enabled),
    )

    watcher = asyncio.create_task(web_security.watch()) if web_security else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[str | None]] = set()

    def on_sighup() -> None:
        task = asyncio.create_task(reload_config())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await stop.wait()
    log.info("shutting down")
    if watcher is not None:
        watcher.cancel()
    with suppress(Exception):
        await runner.cleanup()
    await daemon.stop()
    if world is not None:
        await world.close()
    return 0

"""The status page, the per-account detail and the config in force, as HTML and JSON.

`build_view` takes a snapshot of the daemon's state (no I/O); everything else is a pure
function of that view, so the pages are tested without a server. Pages work without
JavaScript, fit a phone, refresh themselves, and escape every value: account names come
from the config, messages from vendors (already scrubbed, scrubbed again here).
"""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote

from . import __version__, scrub
from .config import Config, Secret
from .history import CycleRecord, Failure, RequestRecord
from .loop import AccountRunner, Daemon
from .sanitize import printable
from .selfmetrics import StateFailure

T = TypeVar("T")
REFRESH_SECONDS = 15
UP, FAILING, STALE, NOT_POLLED = "up", "failing", "stale", "not yet polled"


@dataclass(frozen=True)
class AccountView:
    vendor: str
    name: str
    state: str
    last_success: float | None
    last_failure: Failure | None
    consecutive_failures: int
    next_poll: float | None
    last_duration: float | None
    requests: int
    failures: int
    series: int | None  # None while the account's next render is pending
    hint: str | None  # what to check now, if anything
    cycles: tuple[CycleRecord, ...]  # newest first
    # Its state could not be restored or saved (--storage.path), until a save succeeds
    # (a failed restore for an hour at least).
    state_failure: StateFailure | None = None

    @property
    def path(self) -> str:
        return f"/accounts/{quote(self.vendor, safe='')}/{quote(self.name, safe='')}"


@dataclass(frozen=True)
class StatusView:
    now: float
    started_at: float
    telemetry_path: str
    reload_ok: bool
    accounts: tuple[AccountView, ...]
    reload_error: str = ""

    @property
    def up(self) -> int:
        return sum(a.state == UP for a in self.accounts)


# -- from the daemon -------------------------------------------------------------------


def _totals(values: Mapping[tuple[str, ...], float]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for labels, value in values.items():
        key = (labels[0], labels[1])
        totals[key] = totals.get(key, 0) + int(value)
    return totals


def _series(daemon: Daemon, runner: AccountRunner) -> int | None:
    if not daemon.is_fresh(runner):
        return 0
    if runner.chunks is None:
        return None
    # One sample a line in the text format; headers are kept apart from the bodies.
    return sum(chunk.body.count(b"\n") for chunk in runner.chunks.text)


def state_of(first_cycle_done: bool, up: bool, has_success: bool, fresh: bool) -> str:
    if not first_cycle_done:
        return NOT_POLLED
    if up and fresh:
        return UP
    if has_success and not fresh:
        return STALE  # its series are gone from /metrics until it recovers
    return FAILING


def build_view(daemon: Daemon, telemetry_path: str) -> StatusView:
    requests = _totals(daemon.metrics.requests.values)
    failures = _totals(daemon.metrics.failures.values)
    accounts = []
    for key, runner in daemon.runners.items():
        health = daemon.metrics.account(key)
        fresh = daemon.is_fresh(runner)
        state = state_of(health.first_cycle_done, health.up, health.last_success is not None, fresh)
        history = runner.history
        last = history.last
        # Why it is missing from /metrics, if it is; else the last cycle's hint: its
        # failure's, or what a good cycle saw (unknown statuses).
        hint = daemon.renderer.left_out.get(key) or (last.hint if last is not None else None)
        accounts.append(
            AccountView(
                vendor=key[0],
                name=key[1],
                state=state,
                last_success=health.last_success,
                last_failure=history.last_failure,
                consecutive_failures=runner.failures,
                next_poll=history.next_poll,
                last_duration=health.collect_duration,
                requests=requests.get(key, 0),
                failures=failures.get(key, 0),
                series=_series(daemon, runner),
                hint=hint,
                cycles=tuple(reversed(history.cycles)),
                state_failure=health.state_failure,
            )
        )
    return StatusView(
        now=daemon.clock.time(),
        started_at=daemon.started_at,
        telemetry_path=telemetry_path,
        reload_ok=daemon.metrics.reload_ok,
        accounts=tuple(accounts),
        reload_error=daemon.metrics.reload_error,
    )


# -- formatting ------------------------------------------------------------------------


def e(value: object) -> str:
    """Escape for HTML text and attribute values, after the secret scrubber."""
    return html.escape(scrub.scrub(str(value)), quote=True)


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def format_time(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _time_html(when: float | None, now: float, future: bool = False) -> str:
    if when is None:
        return "never" if not future else "not scheduled"
    if future:
        lead = f"in {format_age(when - now)}" if when > now else "due now"
    else:
        lead = f"{format_age(now - when)} ago"
    return f'{e(lead)} <time datetime="{e(iso(when))}">({e(format_time(when))})</time>'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


STYLE = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#6e7781}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
max-width:72rem;padding:0 .8rem 2rem;overflow-wrap:break-word}
h3{font-size:1rem;margin:1rem 0 .3rem}section{border-top:1px solid rgba(110,119,129,.3)}
h1{font-size:1.4rem;margin:.8rem 0 .2rem}h2{font-size:1.1rem;margin:0 0 .4rem}
nav a{margin-right:1rem}main{margin-top:.8rem}.summary{font-size:1.1rem;font-weight:600}
.accounts{display:grid;gap:.8rem;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr))}
article{border:1px solid var(--muted);border-left-width:.4rem;border-radius:.4rem;
padding:.6rem .8rem}
.up{border-left-color:var(--ok)}.failing{border-left-color:var(--bad)}
.stale{border-left-color:var(--warn)}.not-yet-polled{border-left-color:var(--muted)}
.badge{font-size:.8rem;padding:.05rem .45rem;border-radius:1rem;color:#fff;
background:var(--muted);white-space:nowrap;vertical-align:middle}
.up .badge{background:var(--ok)}.failing .badge{background:var(--bad)}
.stale .badge{background:var(--warn)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.4rem 0 0}
dt{color:var(--muted)}dd{margin:0}
.problem{margin:.3rem 0}.hint{margin:.3rem 0;padding:.3rem .5rem;border-radius:.3rem;
background:rgba(154,103,0,.15)}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid rgba(110,119,129,.3);
vertical-align:top}td.n{text-align:right;white-space:nowrap}
.banner{padding:.4rem .6rem;background:rgba(207,34,46,.15);border-radius:.3rem}
footer{margin-top:1.5rem;color:var(--muted);font-size:.85rem}
"""


def _page(title: str, body: str, refresh: bool = True) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">\n' if refresh else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{meta}<title>{e(title)}</title>\n<style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _nav(view: StatusView) -> str:
    return (
        "<nav>"
        '<a href="/">Status</a>'
        f'<a href="{e(view.telemetry_path)}">Metrics</a>'
        '<a href="/config">Config</a>'
        '<a href="/-/healthy">Health</a>'
        '<a href="/-/ready">Readiness</a>'
        "</nav>"
    )


def _summary(view: StatusView) -> str:
    total = len(view.accounts)
    counts = {
        state: sum(a.state == state for a in view.accounts)
        for state in (FAILING, STALE, NOT_POLLED)
    }
    extra = "".join(f", {n} {state}" for state, n in counts.items() if n)
    return f"{view.up} of {total} account{'s' if total != 1 else ''} up{extra}"


def _problem(failure: Failure, now: float) -> str:
    return (
        f'<p class="problem"><strong>{e(failure.reason)}</strong> in '
        f"<code>{e(failure.operation)}</code>: {e(failure.message)} "
        f"<small>({e(format_age(now - failure.at))} ago)</small></p>"
    )


def _state_problem(failure: StateFailure | None, now: float) -> str:
    if failure is None:
        return ""
    what = "not saved" if failure.operation == "save" else "not restored: it started afresh"
    return (
        f'<p class="problem"><strong>State {e(what)}</strong> (--storage.path): '
        f"{e(failure.message)} <small>({e(format_age(now - failure.at))} ago)</small></p>"
    )


def _hint(hint: str | None) -> str:
    return f'<p class="hint"><strong>Check:</strong> {e(hint)}</p>' if hint else ""


def _facts(account: AccountView, now: float) -> str:
    rows = [
        ("Last success", _time_html(account.last_success, now)),
        ("Consecutive failures", e(account.consecutive_failures)),
        ("Next poll", _time_html(account.next_poll, now, future=True)),
        ("Last cycle", e(_duration(account.last_duration))),
        ("Requests / failures", f"{e(account.requests)} / {e(account.failures)}"),
        ("Series exported", e("…" if account.series is None else account.series)),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _card(account: AccountView, now: float, link: bool = True) -> str:
    css = account.state.replace(" ", "-")
    title = f"{e(account.vendor)} / {e(account.name)}"
    if link:
        title = f'<a href="{e(account.path)}">{title}</a>'
    failure = account.last_failure
    problem = ""
    if failure is not None and account.state != UP:
        problem = _problem(failure, now)
    elif failure is not None:
        problem = (
            f'<p class="problem"><small>Last failure: {e(failure.reason)} in '
            f"<code>{e(failure.operation)}</code>, "
            f"{e(format_age(now - failure.at))} ago</small></p>"
        )
    return (
        f'<article class="{e(css)}"><h2>{title} '
        f'<span class="badge">{e(account.state)}</span></h2>'
        f"{problem}{_state_problem(account.state_failure, now)}{_hint(account.hint)}"
        f"{_facts(account, now)}</article>"
    )


def _footer(view: StatusView) -> str:
    return (
        f"<footer>session-exporter {e(__version__)}, up "
        f"{e(format_age(view.now - view.started_at))}; generated "
        f"{e(format_time(view.now))}; refreshes every {REFRESH_SECONDS}s.</footer>"
    )


def _banner(view: StatusView) -> str:
    if view.reload_ok:
        return ""
    why = f": {e(view.reload_error)}" if view.reload_error else " (see the log)"
    return (
        f'<p class="banner">The last config reload failed{why}. The previous config is '
        "still in force.</p>"
    )


def render_status(view: StatusView) -> str:
    cards = "".join(_card(a, view.now) for a in view.accounts)
    if not cards:
        cards = "<p>No accounts configured.</p>"
    body = (
        f"<header><h1>session-exporter</h1>"
        f'<p class="summary">{e(_summary(view))}</p>{_nav(view)}</header>'
        f'{_banner(view)}<main class="accounts">{cards}</main>{_footer(view)}'
    )
    return _page(f"session-exporter: {view.up}/{len(view.accounts)} up", body)


# -- one account -------------------------------------------------------------------------


def _request_row(r: RequestRecord) -> str:
    status = "—" if r.status is None else str(r.status)
    records = "—" if r.records is None else str(r.records)
    error = f"{e(r.reason)}: {e(r.error)}" if r.reason else ""
    return (
        f"<tr><td><code>{e(r.operation)}</code></td><td>{e(r.method)}</td>"
        f'<td class="n">{e(status)}</td><td class="n">{e(r.bytes)}</td>'
        f'<td class="n">{e(_duration(r.duration))}</td><td class="n">{e(records)}</td>'
        f"<td>{error}</td></tr>"
    )


def _cycle(cycle: CycleRecord, now: float) -> str:
    outcome = "ok" if cycle.ok else (cycle.failure.reason if cycle.failure else "running")
    head = (
        f"<h3>{_time_html(cycle.started, now)} · {e(outcome)} · "
        f"{e(_duration(cycle.duration))} · {e(cycle.request_count)} request(s) · "
        f"{e(cycle.records_parsed)} record(s) parsed</h3>"
    )
    parts = [head]
    if cycle.failure is not None:
        parts.append(_problem(cycle.failure, now))
    parts.append(_hint(cycle.hint))
    if cycle.rejected:
        items = "".join(
            f"<li><code>{e(reason)}</code>: {e(count)}</li>"
            for reason, count in sorted(cycle.rejected.items())
        )
        parts.append(f"<p>Records rejected:</p><ul>{items}</ul>")
    else:
        parts.append("<p>No records rejected.</p>")
    if cycle.requests:
        rows = "".join(_request_row(r) for r in cycle.requests)
        parts.append(
            '<div class="scroll"><table><thead><tr><th>Operation</th><th>Method</th>'
            "<th>HTTP</th><th>Bytes</th><th>Time</th><th>Records</th><th>Error</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></div>"
        )
    if cycle.requests_dropped:
        parts.append(f"<p>… and {e(cycle.requests_dropped)} more request(s).</p>")
    return "<section>" + "".join(parts) + "</section>"


def render_detail(view: StatusView, account: AccountView) -> str:
    cycles = "".join(_cycle(c, view.now) for c in account.cycles) or "<p>No cycle yet.</p>"
    body = (
        f"<header><h1>{e(account.vendor)} / {e(account.name)}</h1>{_nav(view)}"
        f'<p><a href="{e(account.path)}.json">JSON</a></p></header>'
        f"{_card(account, view.now, link=False)}"
        f"<h2>Last {len(account.cycles)} cycle(s), newest first</h2>{cycles}"
        f"{_footer(view)}"
    )
    return _page(f"{account.vendor}/{account.name}: {account.state}", body)


def _failure_json(failure: Failure | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {
        "operation": failure.operation,
        "reason": failure.reason,
        "message": failure.message,
        "hint": failure.hint,
        "time": failure.at,
    }


def _request_json(r: RequestRecord) -> dict[str, Any]:
    return {
        "operation": r.operation,
        "method": r.method,
        "status": r.status,
        "bytes": r.bytes,
        "duration_seconds": r.duration,
        "records": r.records,
        "reason": r.reason,
        "error": r.error,
        "clock_skew_seconds": r.clock_skew,
    }


def scrubbed(data: T) -> T:
    """Every string inside `data` scrubbed: JSON gets the same guarantee as the pages."""
    return cast(T, _scrub_any(data))


def _scrub_any(data: object) -> object:
    if isinstance(data, str):
        return scrub.scrub(data)
    if isinstance(data, dict):
        return {_scrub_any(k): _scrub_any(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_scrub_any(v) for v in data]
    return data


def detail_json(view: StatusView, account: AccountView, with_cycles: bool = True) -> dict[str, Any]:
    """An account as JSON; `with_cycles=False` for the landing page, which has no room
    for them (built and scrubbed for 2,000 accounts, then dropped, they held the event
    loop 1.6 s a request)."""
    cycles = account.cycles if with_cycles else ()
    summary = scrubbed(
        {
            "vendor": account.vendor,
            "name": account.name,
            "state": account.state,
            "last_success": account.last_success,
            "consecutive_failures": account.consecutive_failures,
            "next_poll": account.next_poll,
            "last_cycle_duration_seconds": account.last_duration,
            "requests": account.requests,
            "failures": account.failures,
            "series": account.series,
            "hint": account.hint,
            "last_failure": _failure_json(account.last_failure),
            "state_failure": None
            if account.state_failure is None
            else dataclasses.asdict(account.state_failure),
            "cycles": [
                {
                    "started": c.started,
                    "duration_seconds": c.duration,
                    "ok": c.ok,
                    "requests": [_request_json(r) for r in c.requests],
                    "requests_not_kept": c.requests_dropped,
                    "records_parsed": c.records_parsed,
                    "rejected": dict(c.rejected),
                    "failure": _failure_json(c.failure),
                    "hint": c.hint,
                }
                for c in cycles
            ],
            "time": view.now,
        }
    )
    if not with_cycles:
        del summary["cycles"]
    return summary


# -- the config in force -------------------------------------------------------------------


def display_value(value: object) -> str:
    """A config value as text; every `Secret` shows as redacted, whatever holds it."""
    if isinstance(value, Secret):
        return scrub.REDACTED
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{display_value(k)}: {display_value(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(display_value(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "{" + ", ".join(f"{k}: {display_value(v)}" for k, v in _fields(value)) + "}"
    # Scrubbed and with control and bidi characters blanked, as vendor strings are shown:
    # a `users` entry of "evil\u202egnp.exe" showed its override raw (probe 6).
    return printable(str(value))


def _fields(obj: object) -> Iterable[tuple[str, object]]:
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        yield f.name, getattr(obj, f.name)


def config_tables(config: Config) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(field, value)]) for `global` and every account, secrets redacted."""
    tables = [("global", [(k, display_value(v)) for k, v in _fields(config.global_)])]
    for account in config.accounts:
        rows: list[tuple[str, str]] = []
        for name, value in _fields(account):
            if name == "common":
                rows.extend((k, display_value(v)) for k, v in _fields(value))
            else:
                rows.append((name, display_value(value)))
        tables.append((f"{account.common.vendor} / {account.common.name}", rows))
    return tables


def render_config(view: StatusView, config: Config) -> str:
    sections = []
    for title, rows in config_tables(config):
        body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
        sections.append(
            f'<section><h2>{e(title)}</h2><div class="scroll"><table>{body}</table></div></section>'
        )
    source = (
        f"<p>Loaded from <code>{e(config.source or 'built-in')}</code>; secrets show as "
        f"{e(scrub.REDACTED)}.</p>"
    )
    body = (
        f"<header><h1>Config in force</h1>{_nav(view)}</header>{_banner(view)}{source}"
        + "".join(sections)
        + _footer(view)
    )
    return _page("session-exporter: config", body, refresh=False)


def config_json(config: Config) -> dict[str, Any]:
    return scrubbed(
        {
            "source": config.source,
            "sections": [{"title": t, "fields": dict(rows)} for t, rows in config_tables(config)],
        }
    )

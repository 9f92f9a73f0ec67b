"""The status pages as pure functions of a view: states, escaping, secrets, the config."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest

from exporter import hints, scrub, statuspage
from exporter.config import parse_config
from exporter.history import (
    CYCLES_KEPT,
    REQUESTS_KEPT,
    AccountHistory,
    CycleRecord,
    Failure,
    RequestRecord,
    count_records,
    safe_text,
)
from exporter.registry import VENDORS
from exporter.selfmetrics import StateFailure
from exporter.statuspage import (
    FAILING,
    NOT_POLLED,
    STALE,
    UP,
    AccountView,
    StatusView,
    config_tables,
    detail_json,
    format_age,
    render_config,
    render_detail,
    render_status,
    state_of,
)

NOW = 1_767_225_600.0
SECRET = "page-secret-Zq81x"
scrub.register(SECRET)


def account(
    state: str = UP,
    name: str = "acme",
    failure: Failure | None = None,
    hint: str | None = None,
    cycles: tuple[CycleRecord, ...] = (),
) -> AccountView:
    return AccountView(
        vendor="glance",
        name=name,
        state=state,
        last_success=NOW - 90,
        last_failure=failure,
        consecutive_failures=0 if state == UP else 3,
        next_poll=NOW + 30,
        last_duration=0.25,
        requests=120,
        failures=4,
        series=191,
        hint=hint,
        cycles=cycles,
    )


def view(*accounts: AccountView, reload_ok: bool = True) -> StatusView:
    return StatusView(
        now=NOW,
        started_at=NOW - 3600,
        telemetry_path="/metrics",
        reload_ok=reload_ok,
        accounts=accounts,
    )


def text_of(page: str) -> str:
    """Roughly what a person reads: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize(
    ("done", "up", "success", "fresh", "state"),
    [
        (False, False, False, False, NOT_POLLED),
        (True, True, True, True, UP),
        (True, False, True, True, FAILING),  # failing, last data still served
        (True, False, False, False, FAILING),  # never worked
        (True, False, True, False, STALE),  # failing so long its series were dropped
    ],
)
def test_state(done: bool, up: bool, success: bool, fresh: bool, state: str) -> None:
    assert state_of(done, up, success, fresh) == state


def test_ages() -> None:
    assert [format_age(s) for s in (0, 59.4, 61, 3600 + 120, 3 * 86400 + 7200)] == [
        "0s",
        "59s",
        "1m 1s",
        "1h 2m",
        "3d 2h",
    ]


def test_summary_states_links_and_refresh() -> None:
    failure = Failure(
        "PartnerActiveSessions",
        "auth",
        "HTTP 500: Invalid partnerId or apiKey.",
        hints.for_failure("glance", "PartnerActiveSessions", "auth", ""),
        NOW - 5,
    )
    page = render_status(
        view(account(), account(FAILING, "bad", failure, failure.hint), account(NOT_POLLED, "new"))
    )
    text = text_of(page)
    assert "1 of 3 accounts up, 1 failing, 1 not yet polled" in text
    assert '<meta http-equiv="refresh" content="15">' in page
    assert 'name="viewport"' in page
    assert "<script" not in page
    for href in (
        "/metrics",
        "/config",
        "/accounts/glance/acme",
        "/accounts/glance/bad",
        "/-/healthy",
        "/-/ready",
    ):
        assert f'href="{href}"' in page
    # The failing account says what failed, where, and what to check.
    assert "auth in PartnerActiveSessions : HTTP 500: Invalid partnerId or apiKey." in " ".join(
        text.split()
    )
    assert "Glance refused partner_id or api_key" in text
    assert "1m 30s ago (2025-12-31 23:58:30 UTC)" in " ".join(text.split())
    assert "in 30s" in text and "191" in text and "120 / 4" in text


def test_every_value_is_escaped_and_scrubbed() -> None:
    evil = f'<script>alert(1)</script> "quoted" & {SECRET}'
    failure = Failure("op<b>", "vendor_error", evil, f"check <i>{SECRET}</i>", NOW)
    request = RequestRecord("op<b>", "POST", 500, 10, 0.1, "vendor_error", evil, None)
    cycle = CycleRecord(
        started=NOW - 1,
        duration=0.2,
        ok=False,
        requests=[request],
        rejected={"<bad>": 1},
        failure=failure,
        hint=failure.hint,
    )
    bad = account(FAILING, "x", failure, failure.hint, (cycle,))
    for page in (render_status(view(bad)), render_detail(view(bad), bad)):
        assert "<script>" not in page and "<b>" not in page and "<i>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert SECRET not in page
        assert scrub.REDACTED not in page.replace(html.escape(scrub.REDACTED), "")
        assert html.escape(scrub.REDACTED) in page
    assert SECRET not in str(detail_json(view(bad), bad))


def test_vendor_text_shown_has_its_control_and_bidi_characters_blanked() -> None:
    # Found by a probe: an lxml error quoting a hostile namespace carried U+202E, C1
    # controls and a line end to every page; the log line escaped them already.
    message = f"malformed XML: namespace 'x\u202ey\x9bz\x85w\nv' {SECRET}"
    assert safe_text(message) == f"malformed XML: namespace 'x y z w v' {scrub.REDACTED}"


def test_detail_shows_each_cycle_and_request() -> None:
    history = AccountHistory()
    history.begin(NOW - 10)
    history.request(RequestRecord("getSession", "POST", 200, 2048, 0.05))
    history.parsed("getSession", 17)
    history.rejected("shifted_row", 2)
    history.end(NOW - 9, 1.0, None, None)
    history.begin(NOW - 5)
    history.request(RequestRecord("getSession", "POST", 200, 30, 0.04))
    failure = Failure(
        "getSession",
        "vendor_error",
        "INVALIDPARAM_NODE for NODE 1",
        hints.for_failure("rescue", "getSession", "vendor_error", "INVALIDPARAM_NODE for NODE 1"),
        NOW - 4,
    )
    history.failed("getSession", failure.reason, failure.message)
    history.end(NOW - 4, 0.5, failure, failure.hint)
    acc = account(FAILING, "helpdesk", failure, failure.hint, tuple(reversed(history.cycles)))
    page = render_detail(view(acc), acc)
    text = " ".join(text_of(page).split())
    assert "Last 2 cycle(s), newest first" in text
    assert text.index("INVALIDPARAM_NODE") < text.index("shifted_row")  # newest first
    assert "getSession POST 200 2048 50 ms 17" in text
    assert "shifted_row : 2" in text
    assert "vendor_error: INVALIDPARAM_NODE for NODE 1" in text  # on its request
    assert "Rescue does not know this node" in text
    assert 'href="/accounts/glance/helpdesk.json"' in page
    data = detail_json(view(acc), acc)
    assert [c["ok"] for c in data["cycles"]] == [False, True]
    assert data["cycles"][1]["records_parsed"] == 17
    assert data["cycles"][1]["rejected"] == {"shifted_row": 2}
    assert data["cycles"][0]["requests"][0]["reason"] == "vendor_error"
    assert data["last_failure"]["hint"] == failure.hint
    # The landing page's summary: the same account without its cycles, never built (for
    # 2,000 accounts, building and scrubbing them held the event loop 1.6 s a request).
    requests_built: list[object] = []
    request_json = statuspage._request_json

    def counted(request: RequestRecord) -> dict[str, object]:
        requests_built.append(request)
        return request_json(request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(statuspage, "_request_json", counted)
        summary = detail_json(view(acc), acc, with_cycles=False)
    assert summary == {k: v for k, v in data.items() if k != "cycles"}
    assert requests_built == []


def test_history_is_bounded() -> None:
    history = AccountHistory()
    for i in range(CYCLES_KEPT + 5):
        history.begin(NOW + i)
        for _ in range(REQUESTS_KEPT + 3):
            history.request(RequestRecord("page", "GET", 200, 1, 0.01))
        history.end(NOW + i, 0.1, None, None)
    assert len(history.cycles) == CYCLES_KEPT
    assert history.cycles[0].started == NOW + 5
    last = history.cycles[-1]
    assert len(last.requests) == REQUESTS_KEPT and last.request_count == REQUESTS_KEPT + 3


def test_records_are_counted_without_knowing_the_vendor() -> None:
    from dataclasses import dataclass

    @dataclass
    class Page:
        next_id: int | None
        sessions: list[int]

    assert count_records([1, 2, 3]) == 3
    assert count_records(Page(None, [1, 2])) == 2
    assert count_records("OK") is None and count_records(7) is None


def test_a_state_failure_is_shown_on_the_card_and_in_the_json() -> None:
    failure = StateFailure("save", NOW - 120, "OperationalError: database or disk is full")
    shown = dataclasses.replace(account(), state_failure=failure)
    page = " ".join(text_of(render_status(view(shown))).split())
    assert "State not saved (--storage.path): OperationalError: database or disk is full" in page
    assert "(2m 0s ago)" in page
    restored = dataclasses.replace(shown, state_failure=StateFailure("restore", NOW, "x"))
    assert "State not restored: it started afresh" in text_of(render_detail(view(), restored))
    assert detail_json(view(shown), shown)["state_failure"] == {
        "operation": "save",
        "at": NOW - 120,
        "message": "OperationalError: database or disk is full",
    }
    assert "State not" not in render_status(view(account()))
    assert detail_json(view(), account())["state_failure"] is None


def test_reload_failure_banner() -> None:
    assert "last config reload failed (see the log)" in render_status(
        view(account(), reload_ok=False)
    )
    assert "last config reload failed" not in render_status(view(account()))
    failed = StatusView(
        now=NOW,
        started_at=NOW,
        telemetry_path="/metrics",
        reload_ok=False,
        accounts=(account(),),
        reload_error="glance[0].base_url: must not carry a <#fragment>",
    )
    assert (
        "The last config reload failed: glance[0].base_url: must not carry a "
        "&lt;#fragment&gt;. The previous config is still in force." in render_status(failed)
    )


def test_config_page_shows_every_field_and_no_secret(tmp_path: object) -> None:
    secrets = {
        name: f"{name}-Vq{i}x9-secret" for i, name in enumerate(("gk", "svk", "svs", "rac", "rpw"))
    }
    data = {
        "global": {"interval": "30s"},
        "glance": [{"name": "g", "partner_id": 1, "api_key": secrets["gk"], "users": ["JDemo"]}],
        "securevideo": [{"name": "s", "api_key": secrets["svk"], "api_secret": secrets["svs"]}],
        "rescue": [
            {"name": "r", "auth_code": secrets["rac"], "nodes": [{"id": 5}]},
            {
                "name": "r2",
                "email": "ops@example.com",
                "password": secrets["rpw"],
                "nodes": [{"id": 6, "ref": "CHANNEL"}],
            },
        ],
    }
    config = parse_config(data, VENDORS)
    tables = dict(config_tables(config))
    assert tables["global"] and dict(tables["global"])["interval"] == "30"
    glance = dict(tables["glance / g"])
    assert glance["api_key"] == scrub.REDACTED and glance["partner_id"] == "1"
    assert glance["users"] == "[JDemo]" and glance["base_url"].startswith("https://")
    assert dict(tables["securevideo / s"])["api_secret"] == scrub.REDACTED
    rescue = dict(tables["rescue / r2"])
    assert rescue["password"] == scrub.REDACTED and rescue["email"] == "ops@example.com"
    assert rescue["nodes"] == "[{id: 6, ref: CHANNEL}]" and rescue["auth_code"] == "—"
    page = render_config(view(), config)
    for value in secrets.values():
        assert value not in page
    assert "ops@example.com" in page and "label_value_limit" in page


@pytest.mark.parametrize("vendor", sorted(VENDORS))
@pytest.mark.parametrize(
    "reason",
    [
        "auth",
        "body_too_large",
        "connection",
        "http_2xx",
        "http_3xx",
        "http_4xx",
        "http_5xx",
        "internal",
        "limit_exceeded",
        "parse",
        "rate_limited",
        "timeout",
        "vendor_error",
        "x",
    ],
)
def test_every_failure_has_a_hint(vendor: str, reason: str) -> None:
    # Found by a probe: a SecureVideo error object in a 200, and a 204, had none.
    assert hints.for_failure(vendor, "op", reason, "")


def test_a_config_value_is_shown_without_control_or_bidi_characters() -> None:
    # Found by a probe: a Glance `users` entry "evil\u202egnp.exe" reached /config with
    # its right-to-left override raw, showing as "evilexe.png".
    from exporter.statuspage import display_value

    shown = display_value(("evil\u202egnp.exe", "a\x1b[2Jb"))
    assert "\u202e" not in shown and "\x1b" not in shown
    assert shown == "[evil gnp.exe, a [2Jb]"

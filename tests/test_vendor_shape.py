"""Every vendor follows one shape: the same restore checks, the same declarations."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.config import parse_config
from exporter.logs import get_logger
from exporter.registry import VENDORS
from exporter.simulators.clock import FakeClock
from exporter.statecheck import saved_histogram, state_version
from exporter.vendors.base import AccountCollector, CollectorContext


def ignore_rejects(reason: str, count: int) -> None:
    """Rejected records are not what these tests look at."""


MINIMAL: dict[str, dict[str, Any]] = {
    "glance": {"name": "a", "partner_id": 1, "api_key": "k-glance"},
    "securevideo": {"name": "a", "api_key": "k-sv", "api_secret": "s-sv"},
    "rescue": {"name": "a", "auth_code": "c-rescue", "nodes": [{"id": 1}]},
}


def collector(vendor: str) -> AccountCollector:
    (account,) = parse_config({vendor: [MINIMAL[vendor]]}, VENDORS).accounts
    ctx = CollectorContext(
        clock=FakeClock(),
        log=get_logger(test=True),
        label_value_limit=5,
        reject=ignore_rejects,
        started_at=0.0,
    )
    return VENDORS[vendor].new_collector(account, ctx)


def test_state_version_accepts_only_the_listed_whole_numbers() -> None:
    assert state_version({"version": 2}, (1, 2)) == 2
    for bad in (True, 3, "2", None, 2.0):
        with pytest.raises(ValueError, match="expected 2"):
            state_version({"version": bad}, (1, 2))


def test_saved_histogram_checks_entries_whatever_the_buckets() -> None:
    good = {"h": [[["x"], [1, 0, 2], 3.5]], "h_bounds": [1.0, 2.0]}
    assert saved_histogram(good, "h", 1, (1.0, 2.0), "h_bounds") == good["h"]
    assert saved_histogram(good, "h", 1, (1.0, 5.0), "h_bounds") is None  # buckets changed
    damaged = {"h": [[["x"], [1, -1], 3.5]], "h_bounds": [9.0]}
    with pytest.raises(ValueError):
        saved_histogram(damaged, "h", 1, (1.0, 2.0), "h_bounds")


@pytest.mark.parametrize("vendor", list(MINIMAL))
def test_every_vendor_round_trips_its_own_state(vendor: str) -> None:
    fresh = collector(vendor)
    state = fresh.state()
    assert state is not None and isinstance(state["version"], int)
    collector(vendor).restore(state)


@pytest.mark.parametrize("vendor", list(MINIMAL))
@pytest.mark.parametrize("version", [True, 0, 99, "1"])
def test_every_vendor_refuses_a_state_of_another_version(vendor: str, version: object) -> None:
    state = collector(vendor).state()
    assert state is not None
    with pytest.raises(ValueError, match="state version"):
        collector(vendor).restore({**state, "version": version})


@pytest.mark.parametrize(
    ("vendor", "attribute"),
    [("glance", "max_records"), ("securevideo", "max_records"), ("rescue", "max_rows")],
)
def test_every_client_takes_the_reply_limit_from_the_context(vendor: str, attribute: str) -> None:
    # global.max_records_per_reply reached SecureVideo and Rescue only; Glance kept its
    # parser's own default whatever the config said.
    (account,) = parse_config({vendor: [MINIMAL[vendor]]}, VENDORS).accounts
    ctx = CollectorContext(
        clock=FakeClock(),
        log=get_logger(test=True),
        label_value_limit=5,
        reject=ignore_rejects,
        started_at=0.0,
        max_records_per_reply=7,
    )
    built = VENDORS[vendor].new_collector(account, ctx)
    assert getattr(built.client, attribute) == 7  # type: ignore[attr-defined]


def test_a_glance_state_keyed_by_the_old_account_name_restores_under_the_new_one() -> None:
    # Up to state version 2 Glance saved its series with the account name inside the
    # key; restored after a rename, they must carry the new name, as in every vendor.
    fresh = collector("glance")
    state = fresh.state()
    assert state is not None and state["version"] == 3
    old = {
        **state,
        "version": 2,
        "completed": [
            [["old-name", *labels], 5.0 if labels == ["C", "C"] else value]
            for labels, value in state["completed"]
        ],
        "durations": [
            [["old-name", *labels], counts, total] for labels, counts, total in state["durations"]
        ],
        "waits": [
            [["old-name", *labels], counts, total] for labels, counts, total in state["waits"]
        ],
    }
    restored = collector("glance")
    restored.restore(old)
    completed = next(f for f in restored.families() if f.name == "glance_sessions_completed")
    accounts = {s.labels["account"] for s in completed.samples}
    assert accounts == {"a"}
    assert any(
        s.labels == {"account": "a", "session_type": "C", "status": "C"} and s.value == 5.0
        for s in completed.samples
    )


@pytest.mark.parametrize("vendor", list(MINIMAL))
def test_every_collector_takes_its_client_by_injection(vendor: str) -> None:
    import inspect

    (account,) = parse_config({vendor: [MINIMAL[vendor]]}, VENDORS).accounts
    ctx = CollectorContext(
        clock=FakeClock(),
        log=get_logger(test=True),
        label_value_limit=5,
        reject=ignore_rejects,
        started_at=0.0,
    )
    parameter = inspect.signature(VENDORS[vendor].new_collector).parameters["client"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    stand_in = object()
    built = VENDORS[vendor].new_collector(account, ctx, client=stand_in)  # type: ignore[call-arg]
    assert built.client is stand_in  # type: ignore[attr-defined]

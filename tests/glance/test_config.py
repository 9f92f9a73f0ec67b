from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.config import AccountCommon, ConfigError, Fields, GlobalConfig, Secret, parse_config
from exporter.families import DURATION_BUCKETS
from exporter.vendors.glance import VENDOR
from exporter.vendors.glance.config import GlanceAccount, parse_account

COMMON = AccountCommon("glance", "acme", "https://www.glance.net", 60.0, 20.0, 300.0)


def parse(**data: Any) -> GlanceAccount:
    fields = Fields(data, "glance[0]")
    account = parse_account(fields, COMMON, GlobalConfig())
    fields.check_unknown()
    return account


def test_defaults() -> None:
    account = parse(partner_id=12345, api_key="topsecret-42")
    assert account.partner_id == 12345
    assert account.api_key == Secret("topsecret-42")
    assert account.users == ()
    assert account.timezone == "UTC"
    assert account.lookback == 0
    assert account.feed_overlap == 600
    assert account.duration_buckets == DURATION_BUCKETS
    assert account.today_statuses == ("A", "C")
    assert "topsecret" not in repr(account)


def test_every_field() -> None:
    account = parse(
        partner_id="7",
        api_key="k",
        users=["JDemo", 42],
        timezone="Europe/Paris",
        lookback="2h",
        feed_overlap="15m",
        duration_buckets=[10, 60.5],
        today_statuses=["C", "C"],
    )
    assert account.users == ("JDemo", "42")
    assert account.zone.key == "Europe/Paris"
    assert (account.lookback, account.feed_overlap) == (7200, 900)
    assert account.duration_buckets == (10.0, 60.5)
    assert account.today_statuses == ("C",)
    assert parse(partner_id=1, api_key="k", today_statuses=[]).today_statuses == ()


def test_api_key_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLANCE_KEY", "from-env")
    assert parse(partner_id=1, api_key="${GLANCE_KEY}").api_key.reveal() == "from-env"
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert parse(partner_id=1, api_key_file=str(key_file)).api_key.reveal() == "from-file"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"api_key": "k"}, "glance[0].partner_id: required"),
        ({"partner_id": 0, "api_key": "k"}, "glance[0].partner_id: must be at least 1"),
        ({"partner_id": "abc", "api_key": "k"}, "glance[0].partner_id: must be a whole number"),
        # Digits to `str.isdigit`, not to us: int() refuses the first and reads the next as 3.
        ({"partner_id": "²", "api_key": "k"}, "glance[0].partner_id: must be a whole number"),
        ({"partner_id": "٣", "api_key": "k"}, "glance[0].partner_id: must be a whole number"),
        ({"partner_id": 1}, "glance[0].api_key: required"),
        ({"partner_id": 1, "api_key": "k", "timezone": "Mars/Olympus"}, "glance[0].timezone:"),
        ({"partner_id": 1, "api_key": "k", "timezone": "../../etc/passwd"}, "glance[0].timezone:"),
        ({"partner_id": 1, "api_key": "k", "users": "JDemo"}, "glance[0].users: must be a list"),
        ({"partner_id": 1, "api_key": "k", "users": ["a", "a"]}, "glance[0].users: lists a user"),
        ({"partner_id": 1, "api_key": "k", "users": ["", "b"]}, "glance[0].users[0]:"),
        ({"partner_id": 1, "api_key": "k", "users": ["x" * 256]}, "glance[0].users[0]:"),
        ({"partner_id": 1, "api_key": "k", "lookback": "soon"}, "glance[0].lookback:"),
        ({"partner_id": 1, "api_key": "k", "feed_overlap": "-5m"}, "glance[0].feed_overlap:"),
        # Found by a review: an overlap of 31 days never moved the cursor.
        ({"partner_id": 1, "api_key": "k", "feed_overlap": "2d"}, "glance[0].feed_overlap:"),
        (
            {"partner_id": 1, "api_key": "k", "duration_buckets": [60, 30]},
            "glance[0].duration_buckets:",
        ),
        (
            {"partner_id": 1, "api_key": "k", "duration_buckets": [0, 30]},
            "glance[0].duration_buckets: bounds must be positive",
        ),
        (
            {"partner_id": 1, "api_key": "k", "duration_buckets": [30, float("nan")]},
            "glance[0].duration_buckets[1]: must be a finite number",
        ),
        (
            {"partner_id": 1, "api_key": "k", "today_statuses": ["W"]},
            "glance[0].today_statuses[0]: must be A or C",
        ),
        ({"partner_id": 1, "api_key": "k", "nickname": "x"}, "glance[0].nickname: unknown field"),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(**data)
    assert str(info.value).startswith(error)


def test_through_the_core_config() -> None:
    config = parse_config(
        {
            "glance": [
                {
                    "name": "acme",
                    "partner_id": 5,
                    "api_key": "k",
                    "interval": "30s",
                    "users": ["JDemo"],
                }
            ]
        },
        {"glance": VENDOR},
    )
    (account,) = config.accounts
    assert isinstance(account, GlanceAccount)
    assert account.common.base_url == "https://www.glance.net"
    assert account.common.interval == 30
    assert account.users == ("JDemo",)

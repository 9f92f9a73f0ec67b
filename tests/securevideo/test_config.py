from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.config import ConfigError, parse_config
from exporter.families import DURATION_BUCKETS, WAIT_BUCKETS
from exporter.vendors.securevideo import VENDOR
from exporter.vendors.securevideo.config import SecureVideoAccount


def parse(**fields: Any) -> SecureVideoAccount:
    entry = {"name": "clinic", **fields}
    (acct,) = parse_config({"securevideo": [entry]}, {"securevideo": VENDOR}).accounts
    assert isinstance(acct, SecureVideoAccount)
    return acct


def test_defaults() -> None:
    acct = parse(api_key="ident", api_secret="secret")
    assert acct.common.base_url == "https://api.securevideo.com"
    assert (acct.api_key.reveal(), acct.api_secret.reveal()) == ("ident", "secret")
    assert (acct.host_user_id, acct.participant_email) == (None, None)
    assert acct.feed_days == 2 and acct.month_interval == 300.0
    assert acct.in_progress_max_age == 0.0
    assert (acct.duration_buckets, acct.wait_buckets) == (DURATION_BUCKETS, WAIT_BUCKETS)


def test_all_fields_and_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "sv"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("SV_API_KEY", "from-env")
    acct = parse(
        api_key="${SV_API_KEY}",
        api_secret_file=str(secret_file),
        host_user_id=5,
        participant_email="a@b.c",
        feed_days=3,
        duration_buckets=[60, 600],
        wait_buckets=[30],
        month_interval="10m",
        in_progress_max_age="12h",
    )
    assert (acct.api_key.reveal(), acct.api_secret.reveal()) == ("from-env", "from-file")
    assert (acct.host_user_id, acct.participant_email, acct.feed_days) == (5, "a@b.c", 3)
    assert acct.duration_buckets == (60.0, 600.0) and acct.wait_buckets == (30.0,)
    assert (acct.month_interval, acct.in_progress_max_age) == (600.0, 43200.0)
    assert "from-file" not in repr(acct) and "from-env" not in repr(acct)


def test_explicit_nulls_are_accepted_for_optional_fields() -> None:
    acct = parse(api_key="k", api_secret="s", host_user_id=None, participant_email=None)
    assert acct.host_user_id is None and acct.participant_email is None


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"api_secret": "s"}, "securevideo[0].api_key", "required"),
        ({"api_key": "k"}, "securevideo[0].api_secret", "required"),
        (
            {"api_key": "k", "api_secret": "s", "api_secret_file": "/x"},
            "securevideo[0].api_secret",
            "not both",
        ),
        (
            {"api_key": "k", "api_secret": "s", "feed_days": 0},
            "securevideo[0].feed_days",
            "at least 1",
        ),
        (
            {"api_key": "k", "api_secret": "s", "feed_days": 32},
            "securevideo[0].feed_days",
            "at most 31",
        ),
        (
            {"api_key": "k", "api_secret": "s", "host_user_id": "five"},
            "securevideo[0].host_user_id",
            "whole number",
        ),
        (
            {"api_key": "k", "api_secret": "s", "duration_buckets": [60, 30]},
            "securevideo[0].duration_buckets",
            "increasing",
        ),
        (
            {"api_key": "k", "api_secret": "s", "month_interval": "soon"},
            "securevideo[0].month_interval",
            "not a duration",
        ),
        (
            {"api_key": "k", "api_secret": "s", "api_sceret": "typo"},
            "securevideo[0].api_sceret",
            "unknown field",
        ),
    ],
)
def test_errors_name_the_field(fields: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(**fields)
    assert caught.value.path == path
    assert message in caught.value.message


def test_a_config_error_never_shows_the_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(api_key="visible-key", api_secret="visible-secret", feed_days=0)
    assert "visible" not in str(caught.value)

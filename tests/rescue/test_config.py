from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.config import ConfigError, parse_config
from exporter.families import WAIT_BUCKETS
from exporter.vendors.rescue import VENDOR

from .harness import account


def parse(entry: dict[str, Any]) -> Any:
    config = parse_config({"rescue": [{"name": "hd", **entry}]}, {"rescue": VENDOR})
    return config.accounts[0]


NODES = [{"id": 337366, "ref": "NODE"}]


def test_defaults() -> None:
    acc = parse({"auth_code": "abc", "nodes": NODES})
    assert acc.common.base_url == "https://secure.logmeinrescue.com"
    assert acc.auth_code.reveal() == "abc"
    assert acc.api_version == 1 and acc.timezone == "UTC"
    assert acc.labels == () and dict(acc.status_aliases) == {}
    assert acc.wait_buckets == WAIT_BUCKETS
    assert not acc.uses_login
    assert acc.api == "text" and not acc.uses_soap
    assert acc.allow_credentials_in_url is False
    assert "abc" not in repr(acc)


@pytest.mark.parametrize("api", ["soap", "soap11"])
def test_soap_and_the_url_credentials_opt_in(api: str) -> None:
    acc = parse({"auth_code": "abc", "nodes": NODES, "api": api, "allow_credentials_in_url": True})
    assert acc.uses_soap and acc.api == api
    assert acc.allow_credentials_in_url is True


def test_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    acc = parse(
        {
            "email": "ops@example.com",
            "password_file": str(secret),
            "nodes": [{"id": 1, "ref": "CHANNEL"}, {"id": 2}],
            "api_version": 3,
            "timezone": "America/Sao_Paulo",
            # The same status twice with one meaning, and English meaning itself: harmless.
            "status_aliases": {
                "Aguardando": "Waiting",
                "Ativo": "Active",
                "ATIVO": "Active",
                "waiting": "Waiting",
            },
            "labels": ["technician", "channel"],
            "wait_buckets": [5, 60],
        }
    )
    assert acc.uses_login and acc.email == "ops@example.com"
    assert acc.password.reveal() == "s3cret"
    assert [(n.id, n.ref) for n in acc.nodes] == [(1, "CHANNEL"), (2, "NODE")]
    assert acc.labels == ("channel", "technician")
    assert acc.wait_buckets == (5.0, 60.0)
    assert acc.status_aliases["Aguardando"] == "Waiting"


def test_auth_code_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESCUE_CODE", "from-env")
    assert parse({"auth_code": "${RESCUE_CODE}", "nodes": NODES}).auth_code.reveal() == "from-env"


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        ({"nodes": NODES}, "rescue[0]", "credentials required"),
        (
            {"auth_code": "a", "email": "e@x", "password": "p", "nodes": NODES},
            "rescue[0]",
            "not both",
        ),
        ({"email": "e@x", "nodes": NODES}, "rescue[0].password", "required"),
        ({"password": "p", "nodes": NODES}, "rescue[0].email", "required"),
        ({"auth_code": "a"}, "rescue[0].nodes", "required"),
        ({"auth_code": "a", "nodes": []}, "rescue[0].nodes", "required"),
        ({"auth_code": "a", "nodes": [{"ref": "NODE"}]}, "rescue[0].nodes[0].id", "required"),
        (
            {"auth_code": "a", "nodes": [{"id": 1, "ref": "GROUP"}]},
            "rescue[0].nodes[0].ref",
            "one of",
        ),
        (
            {"auth_code": "a", "nodes": [{"id": 1, "rf": "NODE"}]},
            "rescue[0].nodes[0].rf",
            "unknown",
        ),
        (
            {"auth_code": "a", "nodes": [{"id": 1}, {"id": 1, "ref": "CHANNEL"}]},
            "rescue[0].nodes[1].id",
            "twice",
        ),
        ({"auth_code": "a", "nodes": NODES, "api_version": 4}, "rescue[0].api_version", "1, 2"),
        # Probe 11: SOAP has one operation, so a version beside it was silently ignored.
        (
            {"auth_code": "a", "nodes": NODES, "api": "soap", "api_version": 3},
            "rescue[0].api_version",
            "api: text only",
        ),
        (
            {"auth_code": "a", "nodes": NODES, "timezone": "Mars/Olympus"},
            "rescue[0].timezone",
            "unknown time zone",
        ),
        (
            {"auth_code": "a", "nodes": NODES, "status_aliases": {"Aguardando": "Queued"}},
            "rescue[0].status_aliases.Aguardando",
            "not a status",
        ),
        # Probe 10: statuses match whatever their case, so the second silently won, and
        # a real `Ativas` (Active) session was counted as Waiting.
        (
            {
                "auth_code": "a",
                "nodes": NODES,
                "status_aliases": {"ativas": "Active", "Ativas ": "Waiting"},
            },
            "rescue[0].status_aliases.Ativas ",
            "same statuses as 'ativas'",
        ),
        (
            {"auth_code": "a", "nodes": NODES, "status_aliases": {"waiting": "Active"}},
            "rescue[0].status_aliases.waiting",
            "'Waiting' is a documented status",
        ),
        (
            {"auth_code": "a", "nodes": NODES, "status_aliases": {" ": "Waiting"}},
            "rescue[0].status_aliases. ",
            "empty status",
        ),
        (
            {"auth_code": "a", "nodes": NODES, "labels": ["customer"]},
            "rescue[0].labels[0]",
            "one of",
        ),
        (
            {"auth_code": "a", "nodes": NODES, "labels": ["channel", "channel"]},
            "rescue[0].labels",
            "twice",
        ),
        (
            {"auth_code": "a", "nodes": NODES, "wait_buckets": [60, 5]},
            "rescue[0].wait_buckets",
            "increasing",
        ),
        ({"auth_code": "a", "nodes": NODES, "authcode": "typo"}, "rescue[0].authcode", "unknown"),
        ({"auth_code": "a", "nodes": NODES, "api": "rest"}, "rescue[0].api", "one of"),
        (
            {"auth_code": "a", "nodes": NODES, "allow_credentials_in_url": "yes"},
            "rescue[0].allow_credentials_in_url",
            "true or false",
        ),
    ],
)
def test_errors_name_the_field(entry: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(entry)
    assert info.value.path == path
    assert message in info.value.message


def test_secrets_never_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"auth_code": "topsecret", "email": "e@x", "password": "pw-secret", "nodes": NODES})
    assert "topsecret" not in str(info.value) and "pw-secret" not in str(info.value)


def test_harness_account_builds() -> None:
    assert account().nodes[0].label == "337366"

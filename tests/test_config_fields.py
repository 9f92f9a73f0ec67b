"""One declaration per config field: the dataclass field carries its default, kind, bounds
and doc; the parser reads them; the example config documents every one."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from exporter.config import KINDS, ConfigError, Fields, GlobalConfig, declared, parse_config
from exporter.registry import VENDORS
from exporter.vendors.glance.config import GlanceAccount
from exporter.vendors.rescue.config import RescueAccount
from exporter.vendors.securevideo.config import SecureVideoAccount

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
ACCOUNTS: dict[str, type[Any]] = {
    "glance": GlanceAccount,
    "securevideo": SecureVideoAccount,
    "rescue": RescueAccount,
}
# The smallest valid account of each vendor.
MINIMAL: dict[str, dict[str, Any]] = {
    "glance": {"name": "a", "partner_id": 1, "api_key": "k-glance"},
    "securevideo": {"name": "a", "api_key": "k-sv", "api_secret": "s-sv"},
    "rescue": {"name": "a", "auth_code": "c-rescue", "nodes": [{"id": 1}]},
}


@pytest.mark.parametrize("cls", [GlobalConfig, *ACCOUNTS.values()])
def test_every_field_is_declared_once_with_a_kind_and_a_doc(cls: type[Any]) -> None:
    names = {f.name for f in dataclasses.fields(cls)} - {"common"}
    specs = declared(cls)
    assert {f.name for f in specs} == names
    for spec in specs:
        assert spec.metadata["kind"] in KINDS, spec.name
        assert spec.metadata["doc"].strip(), f"{cls.__name__}.{spec.name} has no doc"


def test_the_parsed_defaults_are_the_declared_defaults() -> None:
    assert parse_config({"glance": [MINIMAL["glance"]]}, VENDORS).global_ == GlobalConfig()
    for vendor, cls in ACCOUNTS.items():
        (account,) = parse_config({vendor: [MINIMAL[vendor]]}, VENDORS).accounts
        for spec in declared(cls):
            if spec.default is not dataclasses.MISSING and spec.metadata["kind"] != "secret":
                assert getattr(account, spec.name) == spec.default, (vendor, spec.name)


def documented_keys(text: str) -> dict[str, set[str]]:
    """Keys per top-level section, commented-out examples (``# key: value``) included."""
    sections: dict[str, set[str]] = {}
    current: set[str] = set()
    for line in text.splitlines():
        top = re.match(r"^([a-z_]+):", line)
        if top:
            current = sections.setdefault(top.group(1), set())
            continue
        key = re.match(r"^\s+(?:- )?(?:#\s*)?(?:- )?\{?([a-z_]+):", line)
        if key:
            current.add(key.group(1))
    return sections


def test_the_example_config_documents_every_field() -> None:
    keys = documented_keys(EXAMPLE.read_text(encoding="utf-8"))
    assert {f.name for f in declared(GlobalConfig)} <= keys["global"]
    for vendor, cls in ACCOUNTS.items():
        for spec in declared(cls):
            names = {spec.name, f"{spec.name}_file"}
            assert names & keys[vendor], f"config.example.yaml: {vendor}.{spec.name}"


def test_the_example_config_parses() -> None:
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for entries in (data[v] for v in ACCOUNTS):
        for entry in entries:  # the secrets are ${ENV} and *_file references
            for key in [k for k in entry if k.endswith("_file") or k in ("api_key", "password")]:
                entry.pop(key)
    data["glance"][0]["api_key"] = "k"
    data["securevideo"][0]["api_key"] = "k"
    data["securevideo"][0]["api_secret"] = "s"
    data["rescue"][0]["auth_code"] = "c"
    data["rescue"][1]["password"] = "p"
    config = parse_config(data, VENDORS)
    assert len(config.accounts) == 4


@pytest.mark.parametrize("vendor", list(ACCOUNTS))
def test_every_vendor_checks_buckets_the_same_way(vendor: str) -> None:
    for name in ("wait_buckets", "duration_buckets"):
        if name not in {f.name for f in declared(ACCOUNTS[vendor])}:
            continue
        for bounds, message in (
            ([0, 5], "bounds must be positive seconds"),
            ([60, 5], "must be a non-empty, strictly increasing list"),
        ):
            with pytest.raises(ConfigError) as info:
                parse_config({vendor: [{**MINIMAL[vendor], name: bounds}]}, VENDORS)
            assert info.value.path == f"{vendor}[0].{name}"
            assert info.value.message == message


@pytest.mark.parametrize(
    "vendor", [v for v, c in ACCOUNTS.items() if "timezone" in {f.name for f in declared(c)}]
)
def test_every_vendor_checks_time_zones_the_same_way(vendor: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({vendor: [{**MINIMAL[vendor], "timezone": "Mars/Olympus"}]}, VENDORS)
    assert info.value.path == f"{vendor}[0].timezone"
    assert info.value.message == (
        "unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Lisbon)"
    )


def test_the_shared_helpers_accept_what_they_should() -> None:
    fields = Fields({"b": [1, 2.5], "z": "Europe/Lisbon"}, "x")
    assert fields.buckets("b", (9.0,)) == (1.0, 2.5)
    assert fields.buckets("missing", (9.0,)) == (9.0,)
    assert fields.timezone("z", "UTC") == "Europe/Lisbon"
    assert fields.timezone("missing", "UTC") == "UTC"


def test_an_int_with_choices_names_them() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"rescue": [{**MINIMAL["rescue"], "api_version": 4}]}, VENDORS)
    assert str(info.value) == "rescue[0].api_version: must be 1, 2 or 3"

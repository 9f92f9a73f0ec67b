"""Rescue account fields: credentials, nodes, and the knobs the vendor docs leave open."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from zoneinfo import ZoneInfo

from ...config import (
    AccountCommon,
    ConfigError,
    Fields,
    GlobalConfig,
    Secret,
    read_declared,
    setting,
)
from ...families import WAIT_BUCKETS
from .statuses import NODE_REFS, STATUSES, status_key

EXTRA_LABELS = ("channel", "technician")
API_VERSIONS = (1, 2, 3)
# `text`: getSession*.aspx form POSTs (the doc's main API); `soap`: API.asmx getSession_V3
# in SOAP 1.2 (as the captures are), `soap11` the same in SOAP 1.1. SOAP's `bStatus` is
# language-independent, so it needs no aliases.
APIS = ("text", "soap", "soap11")


@dataclass(frozen=True)
class Node:
    id: int
    ref: str  # NODE or CHANNEL

    @property
    def label(self) -> str:
        return str(self.id)


@dataclass(frozen=True)
class RescueAccount:
    common: AccountCommon
    nodes: tuple[Node, ...] = setting(kind="custom", doc="technician groups and channels")
    auth_code: Secret | None = setting(None, kind="secret", doc="preferred credential")
    email: str | None = setting(None, kind="optional_str", doc="login, with password")
    password: Secret | None = setting(None, kind="secret", doc="login, with email")
    api_version: int = setting(1, kind="int", choices=API_VERSIONS, doc="text API only: 1, 2 or 3")
    timezone: str = setting("UTC", kind="timezone", doc='zone of the "Start Time" column')
    status_aliases: Mapping[str, str] = setting(
        kind="custom",
        factory=lambda: MappingProxyType({}),
        doc="localised status strings -> the doc's English ones",
    )
    labels: tuple[str, ...] = setting(
        (), kind="custom", doc="opt-in extra labels: channel, technician"
    )
    wait_buckets: tuple[float, ...] = setting(WAIT_BUCKETS, kind="buckets", doc="seconds")
    api: str = setting(
        "text", kind="choice", choices=APIS, doc="text, soap (SOAP 1.2) or soap11 (SOAP 1.1)"
    )
    # Only with this opt-in may a 405 to a POST be retried as a GET carrying the auth code
    # or password in its query string (where proxies and vendor logs keep it).
    allow_credentials_in_url: bool = setting(
        False, kind="bool", doc="let a 405 be retried as a GET"
    )

    @property
    def uses_login(self) -> bool:
        return self.auth_code is None

    @property
    def uses_soap(self) -> bool:
        return self.api != "text"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse_account(fields: Fields, common: AccountCommon, global_: GlobalConfig) -> RescueAccount:
    account = read_declared(
        RescueAccount,
        fields,
        common=common,
        parsers={
            "nodes": _parse_nodes,
            "status_aliases": lambda f: MappingProxyType(_parse_aliases(f)),
            "labels": _parse_labels,
        },
    )
    _check_credentials(fields, account.auth_code, account.email, account.password)
    if account.uses_soap and fields.has("api_version"):
        # SOAP has one operation (getSession_V3): a version given with it would be
        # silently ignored, and the user believes it is in force.
        raise ConfigError(_path(fields, "api_version"), "applies to api: text only")
    return account


def _path(fields: Fields, name: str) -> str:
    return f"{fields.path}.{name}" if fields.path else name


def _check_credentials(
    fields: Fields, auth_code: Secret | None, email: str | None, password: Secret | None
) -> None:
    login = email is not None or password is not None
    if auth_code is not None and login:
        raise ConfigError(fields.path, "give either auth_code or email + password, not both")
    if auth_code is None and not login:
        raise ConfigError(
            fields.path, "credentials required: auth_code (preferred) or email + password"
        )
    if login and email is None:
        raise ConfigError(_path(fields, "email"), "required with password")
    if login and password is None:
        raise ConfigError(_path(fields, "password"), "required with email (or password_file)")


def _parse_nodes(fields: Fields) -> tuple[Node, ...]:
    nodes: list[Node] = []
    seen: set[int] = set()
    for item in fields.items("nodes"):
        node = Node(id=item.int("id", minimum=1), ref=item.choice("ref", NODE_REFS, "NODE"))
        if node.id in seen:
            # The `node` label carries the id only, so a NODE and a CHANNEL with the same id
            # would write the same series.
            raise ConfigError(_path(item, "id"), f"node {node.id} is listed twice")
        seen.add(node.id)
        item.check_unknown()
        nodes.append(node)
    if not nodes:
        raise ConfigError(_path(fields, "nodes"), "required: at least one {id, ref} entry")
    return tuple(nodes)


def _parse_aliases(fields: Fields) -> dict[str, str]:
    """Statuses are matched whatever their case, Unicode form and spacing (`status_key`):
    two aliases that match alike but mean two statuses, or one that gives a documented
    status another meaning, would count sessions as the wrong status, silently."""
    aliases = fields.str_map("status_aliases")
    documented = {status_key(status): status for status in STATUSES}
    meant: dict[str, tuple[str, str]] = {}
    for local, english in aliases.items():
        path = _path(fields, f"status_aliases.{local}")
        if english not in STATUSES:
            raise ConfigError(path, f"{english!r} is not a status the Rescue docs list")
        key = status_key(local)
        if not key:
            raise ConfigError(path, "an empty status matches no session")
        if documented.get(key, english) != english:
            raise ConfigError(
                path, f"{documented[key]!r} is a documented status: it cannot mean {english!r}"
            )
        other, other_english = meant.setdefault(key, (local, english))
        if other_english != english:
            raise ConfigError(
                path,
                f"matches the same statuses as {other!r} (case, accents and spacing aside), "
                f"which means {other_english!r}, not {english!r}",
            )
    return aliases


def _parse_labels(fields: Fields) -> tuple[str, ...]:
    labels = fields.str_list("labels")
    for i, label in enumerate(labels):
        if label not in EXTRA_LABELS:
            raise ConfigError(
                f"{_path(fields, 'labels')}[{i}]", f"must be one of {', '.join(EXTRA_LABELS)}"
            )
    if len(set(labels)) != len(labels):
        raise ConfigError(_path(fields, "labels"), "lists a label twice")
    # A fixed order keeps label names stable whatever order the user wrote.
    return tuple(label for label in EXTRA_LABELS if label in labels)

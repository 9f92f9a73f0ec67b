"""Rescue account fields: credentials, nodes, and the knobs the vendor docs leave open."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...config import AccountCommon, ConfigError, Fields, GlobalConfig, Secret
from ...families import WAIT_BUCKETS
from .statuses import NODE_REFS, STATUSES

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
    nodes: tuple[Node, ...]
    auth_code: Secret | None = None
    email: str | None = None
    password: Secret | None = None
    api_version: int = 1
    timezone: str = "UTC"
    status_aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    labels: tuple[str, ...] = ()
    wait_buckets: tuple[float, ...] = WAIT_BUCKETS
    api: str = "text"  # text, soap (SOAP 1.2) or soap11 (SOAP 1.1)
    # Only with this opt-in may a 405 to a POST be retried as a GET carrying the auth code
    # or password in its query string (where proxies and vendor logs keep it).
    allow_credentials_in_url: bool = False

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
    auth_code = fields.secret("auth_code", required=False)
    email = fields.optional_str("email")
    password = fields.secret("password", required=False)
    _check_credentials(fields, auth_code, email, password)
    return RescueAccount(
        common=common,
        nodes=_parse_nodes(fields),
        auth_code=auth_code,
        email=email,
        password=password,
        api_version=_parse_api_version(fields),
        timezone=_parse_timezone(fields),
        status_aliases=MappingProxyType(_parse_aliases(fields)),
        labels=_parse_labels(fields),
        wait_buckets=fields.float_list("wait_buckets", WAIT_BUCKETS),
        api=fields.choice("api", APIS, "text"),
        allow_credentials_in_url=fields.bool("allow_credentials_in_url", False),
    )


def _path(fields: Fields, name: str) -> str:
    return f"{fields.path}.{name}" if fields.path else name


def _check_credentials(
    fields: Fields, auth_code: Secret | None, email: str | None, password: Secret | None
) -> None:
    login = email is not None or password is not None
    if auth_code is not None and login:
        raise ConfigError(fields.path, "give either auth_code or email + password, not both")
    if auth_code is None and not login:
        raise ConfigError(fields.path, "credentials required: auth_code (preferred) "
                                       "or email + password")
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


def _parse_api_version(fields: Fields) -> int:
    version = fields.int("api_version", 1)
    if version not in API_VERSIONS:
        raise ConfigError(_path(fields, "api_version"), "must be 1, 2 or 3")
    return version


def _parse_timezone(fields: Fields) -> str:
    name = fields.str("timezone", "UTC")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(_path(fields, "timezone"),
                          f"unknown time zone {name!r} (use an IANA name such as "
                          "Europe/Lisbon)") from None
    return name


def _parse_aliases(fields: Fields) -> dict[str, str]:
    aliases = fields.str_map("status_aliases")
    for local, english in aliases.items():
        if english not in STATUSES:
            raise ConfigError(_path(fields, f"status_aliases.{local}"),
                              f"{english!r} is not a status the Rescue docs list")
    return aliases


def _parse_labels(fields: Fields) -> tuple[str, ...]:
    labels = fields.str_list("labels")
    for i, label in enumerate(labels):
        if label not in EXTRA_LABELS:
            raise ConfigError(f"{_path(fields, 'labels')}[{i}]",
                              f"must be one of {', '.join(EXTRA_LABELS)}")
    if len(set(labels)) != len(labels):
        raise ConfigError(_path(fields, "labels"), "lists a label twice")
    # A fixed order keeps label names stable whatever order the user wrote.
    return tuple(label for label in EXTRA_LABELS if label in labels)

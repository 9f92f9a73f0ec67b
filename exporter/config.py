"""YAML config -> typed, validated config.

Every error names the path of the offending field (``glance[0].partner_id: required``),
so that a user can find it without reading a traceback. Vendor packages read their own
account fields through `Fields`, which keeps the path bookkeeping in one place.
"""

from __future__ import annotations

import builtins
import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from . import scrub
from .accounts import AccountCommon as AccountCommon  # re-exported for vendor packages
from .accounts import AccountConfig as AccountConfig
from .textfile import MAX_CONFIG_FILE_BYTES, MAX_SECRET_FILE_BYTES, read_text
from .yamlfile import FieldError, load_yaml, where_and_why

SECRET_FIELDS = ("api_key", "api_secret", "password", "auth_code")

T = TypeVar("T")


class ConfigError(ValueError):
    """A config problem, with the dotted path of the field at fault."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class Secret:
    """A credential that never shows itself in repr, str, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        scrub.register(value)  # from now on, no vendor text can carry it to a log or label

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# The longest duration any setting takes: beyond it (or NaN, or infinite) is a typo, and
# `interval: inf` polled once, `lookback: 1e12` crashed every cycle.
MAX_DURATION = 366 * 86400.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(text: str) -> float:
    """Prometheus-style durations: ``90s``, ``5m``, ``1h30m``; a bare number is seconds."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):  # "nan", "inf" and "1e999" are floats to Python
            raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)")
        return number
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)")
    return total


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Fields:
    """Typed access to one YAML mapping, raising `ConfigError` with the field's path."""

    def __init__(self, data: Any, path: builtins.str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(path, "must be a mapping")
        self._data: Mapping[str, Any] = data
        self.path = path
        self._read: set[str] = set()

    def _path(self, name: builtins.str) -> builtins.str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: builtins.str) -> builtins.bool:
        return self._data.get(name) is not None

    def _get(self, name: builtins.str, required: builtins.bool) -> Any:
        self._read.add(name)
        value = self._data.get(name)
        if value is None and required:
            raise ConfigError(self._path(name), "required")
        return value

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        value = self._get(name, default is None)
        if value is None:
            if default is None:  # _get has refused a missing required field already
                raise ConfigError(self._path(name), "required")
            return default
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(self._path(name), "must be a string")
        return str(value)

    def optional_str(self, name: builtins.str) -> builtins.str | None:
        return self.str(name) if self.has(name) else self._get(name, False)

    def int(
        self,
        name: builtins.str,
        default: builtins.int | None = None,
        minimum: builtins.int | None = None,
    ) -> builtins.int:
        value = self._get(name, default is None)
        if value is None:
            if default is None:  # _get has refused a missing required field already
                raise ConfigError(self._path(name), "required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            digits = value.strip() if isinstance(value, str) else ""
            # ASCII only: `isdigit` is true of "²" (which int() refuses) and of "٣"
            # (which it reads as 3).
            if digits.isascii() and digits.isdigit():
                value = int(digits)
            else:
                raise ConfigError(self._path(name), "must be a whole number")
        if minimum is not None and value < minimum:
            raise ConfigError(self._path(name), f"must be at least {minimum}")
        return int(value)

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self._get(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self._path(name), "must be true or false")
        return value

    def duration(
        self, name: builtins.str, default: builtins.float, minimum: builtins.float = 0.0
    ) -> builtins.float:
        value = self._get(name, False)
        if value is None:
            return default
        try:
            seconds = float(value) if isinstance(value, int | float) else parse_duration(str(value))
        except (ValueError, OverflowError) as exc:
            raise ConfigError(self._path(name), str(exc)) from None
        if math.isnan(seconds):
            raise ConfigError(self._path(name), "is not a number")
        if seconds > MAX_DURATION:  # inf too
            raise ConfigError(self._path(name), f"must be at most {MAX_DURATION / 86400:g} days")
        if seconds < minimum:
            raise ConfigError(self._path(name), f"must be at least {minimum:g}s")
        return seconds

    def fraction(self, name: builtins.str, default: builtins.float) -> builtins.float:
        """A share from 0 up to (not including) 1: ``0.1`` or ``10%``."""
        value = self._get(name, False)
        if value is None:
            return default
        number: builtins.float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str) and value.strip().endswith("%"):
            with suppress(ValueError):
                number = float(value.strip()[:-1]) / 100
        if number is None or not 0 <= number < 1:
            raise ConfigError(
                self._path(name), "must be a fraction from 0 to below 1, such as 0.1 or 10%"
            )
        return number

    def choice(
        self, name: builtins.str, choices: tuple[builtins.str, ...], default: builtins.str
    ) -> builtins.str:
        value = self.str(name, default)
        if value not in choices:
            raise ConfigError(self._path(name), f"must be one of {', '.join(choices)}")
        return value

    def list(self, name: builtins.str) -> builtins.list[Any]:
        value = self._get(name, False)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self._path(name), "must be a list")
        return value

    def str_list(self, name: builtins.str) -> tuple[builtins.str, ...]:
        items = self.list(name)
        for i, item in enumerate(items):
            if not isinstance(item, str | int) or isinstance(item, bool):
                raise ConfigError(f"{self._path(name)}[{i}]", "must be a string")
        return tuple(str(item) for item in items)

    def float_list(
        self, name: builtins.str, default: tuple[builtins.float, ...]
    ) -> tuple[builtins.float, ...]:
        if not self.has(name):
            self._read.add(name)
            return default
        items = self.list(name)
        result = []
        for i, item in enumerate(items):
            if (
                isinstance(item, bool)
                or not isinstance(item, int | float)
                or not (math.isfinite(item))
            ):
                raise ConfigError(f"{self._path(name)}[{i}]", "must be a finite number")
            result.append(float(item))
        if not result or result != sorted(set(result)):
            raise ConfigError(self._path(name), "must be a non-empty, strictly increasing list")
        return tuple(result)

    def buckets(
        self, name: builtins.str, default: tuple[builtins.float, ...]
    ) -> tuple[builtins.float, ...]:
        """Histogram bucket bounds in seconds: positive, strictly increasing. The one
        bucket check every vendor uses."""
        bounds = self.float_list(name, default)
        if bounds[0] <= 0:
            raise ConfigError(self._path(name), "bounds must be positive seconds")
        return bounds

    def timezone(self, name: builtins.str, default: builtins.str) -> builtins.str:
        """An IANA time zone name; the one zone check every vendor uses."""
        zone = self.str(name, default)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                self._path(name),
                f"unknown time zone {zone!r} (use an IANA name such as Europe/Lisbon)",
            ) from None
        return zone

    def str_map(self, name: builtins.str) -> dict[builtins.str, builtins.str]:
        value = self._get(name, False)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(self._path(name), "must be a mapping")
        for key, item in value.items():
            if not isinstance(item, str):
                raise ConfigError(f"{self._path(name)}.{key}", "must be a string")
        return {str(k): v for k, v in value.items()}

    def sub(self, name: builtins.str) -> Fields:
        self._read.add(name)
        value = self._data.get(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(self._path(name), "must be a mapping")
        return Fields(value, self._path(name))

    def items(self, name: builtins.str) -> Iterator[Fields]:
        for i, item in enumerate(self.list(name)):
            yield Fields(item, f"{self._path(name)}[{i}]")

    def secret(self, name: builtins.str, required: builtins.bool = True) -> Secret | None:
        """A credential given inline, as ``${ENV}``, or through ``<name>_file``."""
        inline, file_name = self._get(name, False), f"{name}_file"
        from_file = self._get(file_name, False)
        if inline is not None and from_file is not None:
            raise ConfigError(self._path(name), f"give either {name} or {file_name}, not both")
        if from_file is not None:
            path = Path(str(from_file))
            try:
                text = read_text(path, MAX_SECRET_FILE_BYTES).strip()
            except OSError as exc:
                raise ConfigError(self._path(file_name), f"cannot read: {exc.strerror}") from None
            except ValueError:
                # Not UTF-8, or a NUL in the path. Never the exception itself: a
                # UnicodeDecodeError carries the file's bytes, the secret.
                raise ConfigError(
                    self._path(file_name), "cannot read: not a UTF-8 text file, or a bad path"
                ) from None
            if not text:
                raise ConfigError(self._path(file_name), "file is empty")
            return Secret(text)
        if inline is None:
            if required:
                raise ConfigError(self._path(name), f"required (or {file_name})")
            return None
        if not isinstance(inline, str | int) or isinstance(inline, bool):
            raise ConfigError(self._path(name), "must be a string")
        return Secret(self._expand_env(name, str(inline)))

    def _expand_env(self, name: builtins.str, text: builtins.str) -> builtins.str:
        def replace(match: re.Match[builtins.str]) -> builtins.str:
            value = os.environ.get(match.group(1))
            if value is None:
                raise ConfigError(
                    self._path(name), f"environment variable {match.group(1)} is not set"
                )
            return value

        value = _ENV_REF.sub(replace, text)
        if not value:
            raise ConfigError(self._path(name), "is empty")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                # Bytes of the environment that are not UTF-8 (Python keeps them as lone
                # surrogates): no vendor would take them, and scrubbing them crashed.
                raise ConfigError(self._path(name), "is not valid UTF-8") from None
        return value

    def base_url(self, name: builtins.str, default: builtins.str) -> builtins.str:
        url = self.str(name, default).rstrip("/")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            raise ConfigError(self._path(name), "is not a URL (host or port)") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(self._path(name), "must be an http(s) URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ConfigError(self._path(name), "plain http is only allowed for loopback hosts")
        if parts.username or parts.password or parts.query:
            raise ConfigError(self._path(name), "must not carry credentials or a query string")
        if "#" in url:
            # urlsplit drops the fragment from every path joined to it: the requests
            # would go somewhere other than what the config shows.
            raise ConfigError(self._path(name), "must not carry a #fragment")
        if " " in url or not url.isprintable():  # every other space is unprintable
            raise ConfigError(self._path(name), "must not hold spaces or control characters")
        return url

    def check_unknown(self) -> None:
        """Reject typos: a field nobody read is a field the user misspelled."""
        for key in self._data:
            if key not in self._read:
                raise ConfigError(self._path(str(key)), "unknown field")


# -- declarations: one per field, read by one generic parser ------------------------------

# What `setting(kind=...)` fields are read as; each kind is one `Fields` method.
KINDS = (
    "duration",
    "optional_duration",
    "int",
    "optional_int",
    "fraction",
    "bool",
    "str",
    "optional_str",
    "choice",
    "secret",
    "buckets",
    "timezone",
    "custom",
)


def setting(
    default: Any = MISSING,
    *,
    kind: str,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[Any, ...] = (),
    factory: Callable[[], Any] | None = None,
) -> Any:
    """One config field's whole declaration: its default (none: required), how it is
    read (`kind`), its bounds and its doc. The dataclass field's type is its type.
    `custom` fields are parsed by the vendor's own function (see `read_declared`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown setting kind {kind!r}")
    metadata = {"kind": kind, "doc": doc, "min": minimum, "max": maximum, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _read_setting(fields: Fields, spec: dataclasses.Field[Any]) -> Any:
    name, meta, kind = spec.name, spec.metadata, spec.metadata["kind"]
    # A required field (no default) has its reader raise "required"; factories build the
    # default only when the field is absent.
    default: Any = None if spec.default is MISSING else spec.default
    minimum, maximum = meta["min"], meta["max"]
    value: Any
    if kind == "duration":
        value = fields.duration(name, default, minimum=minimum or 0.0)
    elif kind == "optional_duration":
        value = _optional_duration(fields, name, default)
    elif kind in ("int", "optional_int"):
        if kind == "optional_int" and not fields.has(name):
            fields.optional_str(name)  # marks an explicit null as read, so not "unknown"
            return None
        value = fields.int(name, default, minimum=None if minimum is None else int(minimum))
        if meta["choices"] and value not in meta["choices"]:
            *rest, last = (str(c) for c in meta["choices"])
            raise ConfigError(fields._path(name), f"must be {', '.join(rest)} or {last}")
    elif kind == "fraction":
        value = fields.fraction(name, default)
    elif kind == "bool":
        value = fields.bool(name, default)
    elif kind == "str":
        value = fields.str(name, default)
    elif kind == "optional_str":
        value = fields.optional_str(name)
    elif kind == "choice":
        value = fields.choice(name, meta["choices"], default)
    elif kind == "secret":
        value = fields.secret(name, required=spec.default is MISSING)
    elif kind == "buckets":
        value = fields.buckets(name, default)
    elif kind == "timezone":
        value = fields.timezone(name, default)
    else:
        raise TypeError(f"field {name}: kind {kind} has no generic reader")
    if maximum is not None and value is not None and value > maximum:
        raise ConfigError(fields._path(name), f"must be at most {maximum:g}")
    return value


def declared(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The declared (`setting`) fields of a config dataclass, in order."""
    return [f for f in dataclasses.fields(cls) if "kind" in f.metadata]


def read_declared(
    cls: type[T],
    fields: Fields,
    *,
    parsers: Mapping[str, Callable[[Fields], Any]] | None = None,
    **given: Any,
) -> T:
    """Build `cls` from `fields`: each `setting` field through its kind, in declaration
    order; `custom` fields through `parsers[name]`; undeclared ones (``common``) from
    `given`. Errors carry the field's path, as every `Fields` error does."""
    values = dict(given)
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name in given:
            continue
        kind = spec.metadata.get("kind")
        if kind is None:
            raise TypeError(f"{cls.__name__}.{spec.name}: neither declared nor given")
        if kind == "custom":
            values[spec.name] = (parsers or {})[spec.name](fields)
        else:
            values[spec.name] = _read_setting(fields, spec)
    return cls(**values)


@dataclass(frozen=True)
class GlobalConfig:
    interval: float = setting(
        60.0, kind="duration", minimum=1.0, doc="default poll interval of every account"
    )
    timeout: float = setting(20.0, kind="duration", minimum=0.1, doc="per upstream request")
    stale_after: float = setting(
        300.0,
        kind="duration",
        minimum=1.0,
        doc="an account's series disappear when its data is older",
    )
    jitter: float = setting(
        0.1, kind="fraction", doc="+/- share of the interval (a fraction, or 10%)"
    )
    max_backoff: float = setting(
        600.0, kind="duration", minimum=1.0, doc="cap of the exponential backoff after failures"
    )
    # Sized for 2,000 accounts at a 60 s interval (README "Benchmarks and capacity"): a
    # vendor's shared bound, and each account's share of it, so that one slow account
    # cannot hold every slot of its vendor.
    max_concurrency: int = setting(
        128, kind="int", minimum=1, doc="upstream requests in flight at once, per vendor"
    )
    max_concurrency_per_account: int = setting(
        4,
        kind="int",
        minimum=1,
        doc="upstream requests in flight at once, per account (within max_concurrency)",
    )
    max_body_bytes: int = setting(
        16 * 1024 * 1024, kind="int", minimum=1024, doc="replies larger than this are refused"
    )
    label_value_limit: int = setting(
        50, kind="int", minimum=1, doc="distinct unknown vendor values per label before other"
    )
    # Bounds on what one hostile or broken vendor can cost (README "Reliability").
    label_value_max_length: int = setting(
        64, kind="int", minimum=8, maximum=1024, doc="longer vendor strings are cut"
    )
    max_records_per_reply: int = setting(
        100_000, kind="int", minimum=1, doc="a reply with more records fails"
    )
    max_pages_per_cycle: int = setting(
        200, kind="int", minimum=1, doc="a feed paging further stops there"
    )
    max_remembered_ids: int = setting(250_000, kind="int", minimum=1, doc="dedupe ids per account")
    max_series_per_account: int = setting(
        20_000, kind="int", minimum=1, doc="an account with more series is left out"
    )
    max_exposition_bytes: int = setting(
        128 * 1024 * 1024,
        kind="int",
        minimum=65536,
        doc="the largest accounts are left out above this",
    )
    # None: 90% of the shorter of interval and stale_after, but never below timeout.
    cycle_timeout: float | None = setting(
        None, kind="optional_duration", doc="deadline of one whole cycle"
    )


@dataclass(frozen=True)
class Config:
    global_: GlobalConfig = field(default_factory=GlobalConfig)
    accounts: tuple[AccountConfig, ...] = ()
    source: str = ""


class AccountParser(Protocol):
    """What the config needs of a vendor (a `vendors.base.Vendor` is one): how to read
    its account fields. Narrower than `Vendor`, so this module never imports it."""

    @property
    def default_base_url(self) -> str: ...

    @property
    def parse_account(self) -> Callable[[Fields, AccountCommon, GlobalConfig], AccountConfig]: ...


JSON_SUFFIX = ".json"
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")  # \Z: `$` takes a final "\n"


def _optional_duration(fields: Fields, name: str, default: float | None = None) -> float | None:
    if not fields.has(name):
        fields.duration(name, 0.0)  # marks the (null) field read
        return default
    return fields.duration(name, 0.0, minimum=0.1)


def parse_global(fields: Fields) -> GlobalConfig:
    g = read_declared(GlobalConfig, fields)
    fields.check_unknown()
    return g


def parse_config(
    data: Any,
    vendors: Mapping[str, AccountParser],
    source: str = "",
    shard: tuple[int, int] | None = None,
) -> Config:
    root = Fields(data if data is not None else {}, "")
    global_ = parse_global(root.sub("global"))
    accounts: list[AccountConfig] = []
    seen: set[tuple[str, str]] = set()
    for vendor_name, vendor in vendors.items():
        if isinstance(data, dict) and vendor_name in data and data[vendor_name] is None:
            # `securevideo:` and nothing under it: a file cut short (read while written).
            raise ConfigError(vendor_name, "lists no account (a file cut short?)")
        for fields in root.items(vendor_name):
            name = fields.str("name")
            if not _ACCOUNT_NAME.match(name):
                raise ConfigError(fields._path("name"), "use 1-64 letters, digits, _ . : -")
            if name.endswith(JSON_SUFFIX):
                # /accounts/<vendor>/<name>.json is the account's page as JSON.
                raise ConfigError(
                    fields._path("name"), f"must not end in {JSON_SUFFIX} (its page's JSON is)"
                )
            if (vendor_name, name) in seen:
                raise ConfigError(fields._path("name"), f"duplicate account name {name!r}")
            seen.add((vendor_name, name))
            common = AccountCommon(
                vendor=vendor_name,
                name=name,
                base_url=fields.base_url("base_url", vendor.default_base_url),
                interval=fields.duration("interval", global_.interval, minimum=1.0),
                timeout=fields.duration("timeout", global_.timeout, minimum=0.1),
                stale_after=fields.duration("stale_after", global_.stale_after, minimum=1.0),
                cycle_timeout=_optional_duration(fields, "cycle_timeout", global_.cycle_timeout),
            )
            accounts.append(vendor.parse_account(fields, common, global_))
            fields.check_unknown()
    root.check_unknown()
    if not accounts:
        # An empty file (or one read while written) reloaded into nothing: every series
        # gone and every saved state deleted. Refused, the old config stays in force.
        raise ConfigError("", f"defines no account (under {', '.join(vendors)})")
    if shard is not None:
        accounts = [a for a in accounts if in_shard(a.common, *shard)]
    return Config(global_=global_, accounts=tuple(accounts), source=source)


def in_shard(account: AccountCommon, index: int, count: int) -> bool:
    """Stable across processes and Python versions (unlike hash()), so replicas agree."""
    import zlib

    digest = zlib.crc32(f"{account.vendor}/{account.name}".encode())
    return digest % count == index


def load_config(
    path: str | Path, vendors: Mapping[str, AccountParser], shard: tuple[int, int] | None = None
) -> Config:
    try:
        text = read_text(path, MAX_CONFIG_FILE_BYTES)
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    except ValueError:
        # Never the exception itself: a UnicodeDecodeError carries the file's bytes.
        raise ConfigError("", f"cannot read config file {path}: not UTF-8 text") from None
    try:
        data = load_yaml(text)
    except FieldError as exc:
        raise ConfigError(exc.path, exc.problem) from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML{where_and_why(exc)}") from None
    except (RecursionError, ValueError):  # nested thousands deep; a 5,000-digit number
        raise ConfigError(
            "", f"{path} is not valid YAML (too deep, or a number too long)"
        ) from None
    return parse_config(data, vendors, source=str(path), shard=shard)

"""The Glance account config: the vendor fields after the common ones."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...config import AccountCommon, ConfigError, Fields, GlobalConfig, Secret
from ...families import DURATION_BUCKETS, WAIT_BUCKETS

# PartnerSessionCounts takes a `status` of "A" (active) or "C" (completed), one per call.
TODAY_STATUSES = ("A", "C")
# partnerUserId is "any string of up to 255 characters" (web services conventions).
MAX_USER_ID = 255


@dataclass(frozen=True)
class GlanceAccount:
    common: AccountCommon
    partner_id: int
    api_key: Secret
    users: tuple[str, ...] = ()
    timezone: str = "UTC"
    lookback: float = 0.0
    feed_overlap: float = 600.0
    duration_buckets: tuple[float, ...] = DURATION_BUCKETS
    wait_buckets: tuple[float, ...] = WAIT_BUCKETS
    today_statuses: tuple[str, ...] = TODAY_STATUSES

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _path(fields: Fields, name: str) -> str:
    return f"{fields.path}.{name}" if fields.path else name


def parse_account(fields: Fields, common: AccountCommon, global_: GlobalConfig) -> GlanceAccount:
    partner_id = fields.int("partner_id", minimum=1)
    api_key = fields.secret("api_key")
    assert api_key is not None  # required=True never returns None

    users = fields.str_list("users")
    for i, user in enumerate(users):
        if not user.strip() or len(user) > MAX_USER_ID:
            raise ConfigError(f"{_path(fields, 'users')}[{i}]", "must be 1-255 characters")
    if len(set(users)) != len(users):
        raise ConfigError(_path(fields, "users"), "lists a user twice")

    timezone = fields.str("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            _path(fields, "timezone"), f"unknown time zone {timezone!r} (use an IANA name)"
        ) from None

    buckets = fields.float_list("duration_buckets", DURATION_BUCKETS)
    if buckets[0] <= 0:
        raise ConfigError(_path(fields, "duration_buckets"), "bounds must be positive seconds")
    wait_buckets = fields.float_list("wait_buckets", WAIT_BUCKETS)
    if wait_buckets[0] <= 0:
        raise ConfigError(_path(fields, "wait_buckets"), "bounds must be positive seconds")

    # An explicit empty list turns PartnerSessionCounts off; a missing field means both.
    given = fields.has("today_statuses")
    statuses = fields.str_list("today_statuses") if given else TODAY_STATUSES
    fields.list("today_statuses")  # mark it read even when it is null
    for i, status in enumerate(statuses):
        if status not in TODAY_STATUSES:
            raise ConfigError(f"{_path(fields, 'today_statuses')}[{i}]", "must be A or C")

    return GlanceAccount(
        common=common,
        partner_id=partner_id,
        api_key=api_key,
        users=users,
        timezone=timezone,
        lookback=fields.duration("lookback", 0.0),
        feed_overlap=fields.duration("feed_overlap", 600.0),
        duration_buckets=buckets,
        wait_buckets=wait_buckets,
        today_statuses=tuple(dict.fromkeys(statuses)),
    )

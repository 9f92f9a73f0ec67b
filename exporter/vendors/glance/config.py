"""The Glance account config: the vendor fields after the common ones."""

from __future__ import annotations

from dataclasses import dataclass
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
from ...families import DURATION_BUCKETS, WAIT_BUCKETS

# PartnerSessionCounts takes a `status` of "A" (active) or "C" (completed), one per call.
TODAY_STATUSES = ("A", "C")
# partnerUserId is "any string of up to 255 characters" (web services conventions).
MAX_USER_ID = 255


def _parse_users(fields: Fields) -> tuple[str, ...]:
    users = fields.str_list("users")
    for i, user in enumerate(users):
        if not user.strip() or len(user) > MAX_USER_ID:
            raise ConfigError(f"{_path(fields, 'users')}[{i}]", "must be 1-255 characters")
    if len(set(users)) != len(users):
        raise ConfigError(_path(fields, "users"), "lists a user twice")
    return users


def _parse_today_statuses(fields: Fields) -> tuple[str, ...]:
    # An explicit empty list turns PartnerSessionCounts off; a missing field means both.
    given = fields.has("today_statuses")
    statuses = fields.str_list("today_statuses") if given else TODAY_STATUSES
    fields.list("today_statuses")  # mark it read even when it is null
    for i, status in enumerate(statuses):
        if status not in TODAY_STATUSES:
            raise ConfigError(f"{_path(fields, 'today_statuses')}[{i}]", "must be A or C")
    return tuple(dict.fromkeys(statuses))


@dataclass(frozen=True)
class GlanceAccount:
    common: AccountCommon
    partner_id: int = setting(kind="int", minimum=1, doc="your Glance group id")
    api_key: Secret = setting(kind="secret", doc="the group's API key")
    users: tuple[str, ...] = setting(
        (), kind="custom", doc="per-user gauges for these partnerUserIds"
    )
    timezone: str = setting("UTC", kind="timezone", doc='what "today" means for *_today')
    lookback: float = setting(
        0.0, kind="duration", doc="count sessions completed this long before start-up"
    )
    # At most a day: a read is one window of at most 31 days and must reach past the
    # cursor it starts an overlap behind (an overlap of 31 days never moved it).
    feed_overlap: float = setting(
        600.0, kind="duration", maximum=86400.0, doc="re-read this much of the completed feed"
    )
    duration_buckets: tuple[float, ...] = setting(DURATION_BUCKETS, kind="buckets", doc="seconds")
    wait_buckets: tuple[float, ...] = setting(WAIT_BUCKETS, kind="buckets", doc="seconds")
    today_statuses: tuple[str, ...] = setting(
        TODAY_STATUSES, kind="custom", doc="PartnerSessionCounts statuses, A and C"
    )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _path(fields: Fields, name: str) -> str:
    return f"{fields.path}.{name}" if fields.path else name


def parse_account(fields: Fields, common: AccountCommon, global_: GlobalConfig) -> GlanceAccount:
    return read_declared(
        GlanceAccount,
        fields,
        common=common,
        parsers={"users": _parse_users, "today_statuses": _parse_today_statuses},
    )

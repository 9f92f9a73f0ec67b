"""SecureVideo account fields (the core has already read name, base_url and the timings)."""

from __future__ import annotations

from dataclasses import dataclass

from ... import scrub
from ...config import AccountCommon, ConfigError, Fields, GlobalConfig, Secret
from ...families import DURATION_BUCKETS, WAIT_BUCKETS

# The History API has no pagination: a month of a busy account is already a big reply,
# so the rolling feed is kept to at most a month of days.
MAX_FEED_DAYS = 31


@dataclass(frozen=True)
class SecureVideoAccount:
    common: AccountCommon
    api_key: Secret
    api_secret: Secret
    host_user_id: int | None = None
    participant_email: str | None = None
    feed_days: int = 2
    duration_buckets: tuple[float, ...] = DURATION_BUCKETS
    wait_buckets: tuple[float, ...] = WAIT_BUCKETS
    month_interval: float = 300.0
    # 0 disables: DurationMinutes stays null both while connected and when SecureVideo
    # never learns the end time, so users may cap how old an "in progress" session can be.
    in_progress_max_age: float = 0.0
    # Count sessions that connected this long before start-up (0: from start-up on).
    lookback: float = 0.0


def _optional_int(fields: Fields, name: str, minimum: int) -> int | None:
    if fields.has(name):
        return fields.int(name, minimum=minimum)
    fields.optional_str(name)  # marks an explicit null as read, so it is not "unknown"
    return None


def parse_account(
    fields: Fields, common: AccountCommon, global_: GlobalConfig
) -> SecureVideoAccount:
    api_key = fields.secret("api_key")
    api_secret = fields.secret("api_secret")
    assert api_key is not None and api_secret is not None  # required=True raises instead
    # The Authorization header carries base64("key:secret"): a vendor quoting it back, in
    # any encoding, must be scrubbed like the two halves are.
    scrub.register_basic(api_key.reveal(), api_secret.reveal())
    feed_days = fields.int("feed_days", 2, minimum=1)
    if feed_days > MAX_FEED_DAYS:
        raise ConfigError(f"{fields.path}.feed_days", f"must be at most {MAX_FEED_DAYS}")
    return SecureVideoAccount(
        common=common,
        api_key=api_key,
        api_secret=api_secret,
        host_user_id=_optional_int(fields, "host_user_id", minimum=0),
        participant_email=fields.optional_str("participant_email"),
        feed_days=feed_days,
        duration_buckets=fields.float_list("duration_buckets", DURATION_BUCKETS),
        wait_buckets=fields.float_list("wait_buckets", WAIT_BUCKETS),
        month_interval=fields.duration("month_interval", 300.0),
        in_progress_max_age=fields.duration("in_progress_max_age", 0.0),
        lookback=fields.duration("lookback", 0.0),
    )

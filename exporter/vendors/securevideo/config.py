"""SecureVideo account fields (the core has already read name, base_url and the timings)."""

from __future__ import annotations

from dataclasses import dataclass

from ... import scrub
from ...config import AccountCommon, Fields, GlobalConfig, Secret, read_declared, setting
from ...families import DURATION_BUCKETS, WAIT_BUCKETS

# The History API has no pagination: a month of a busy account is already a big reply,
# so the rolling feed is kept to at most a month of days.
MAX_FEED_DAYS = 31


@dataclass(frozen=True)
class SecureVideoAccount:
    common: AccountCommon
    api_key: Secret = setting(kind="secret", doc="API identifier (HTTP Basic user)")
    api_secret: Secret = setting(kind="secret", doc="API secret key (HTTP Basic password)")
    host_user_id: int | None = setting(
        None, kind="optional_int", minimum=0, doc="only sessions hosted by this user"
    )
    participant_email: str | None = setting(
        None, kind="optional_str", doc="only sessions with this participant"
    )
    feed_days: int = setting(
        2, kind="int", minimum=1, maximum=MAX_FEED_DAYS, doc="UTC days the live feed covers"
    )
    duration_buckets: tuple[float, ...] = setting(
        DURATION_BUCKETS, kind="buckets", doc="seconds; also for consult seconds"
    )
    wait_buckets: tuple[float, ...] = setting(
        WAIT_BUCKETS, kind="buckets", doc="seconds; also for start delay seconds"
    )
    month_interval: float = setting(
        300.0, kind="duration", doc="how often the month-to-date usage query runs"
    )
    # 0 disables: DurationMinutes stays null both while connected and when SecureVideo
    # never learns the end time, so users may cap how old an "in progress" session can be.
    in_progress_max_age: float = setting(
        0.0, kind="duration", doc="stop counting a session in progress after"
    )
    # Count sessions that connected this long before start-up (0: from start-up on).
    lookback: float = setting(
        0.0, kind="duration", doc="count sessions that connected this long before start-up"
    )


def parse_account(
    fields: Fields, common: AccountCommon, global_: GlobalConfig
) -> SecureVideoAccount:
    account = read_declared(SecureVideoAccount, fields, common=common)
    # The Authorization header carries base64("key:secret"): a vendor quoting it back, in
    # any encoding, must be scrubbed like the two halves are.
    scrub.register_basic(account.api_key.reveal(), account.api_secret.reveal())
    return account

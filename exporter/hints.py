"""One sentence of what to check, for the failures a new user meets first.

One table, read top to bottom: the first rule whose vendor, reason and message pattern
all match gives the hint. The same sentence goes into the "collection failed" log line,
the status page and the probe output, so an operator sees one story wherever they look.
Rules match our own reason vocabulary and the vendors' documented codes, never a free
vendor text we have not seen in the documents or the captures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .history import CLOCK_SKEW_LIMIT, CycleRecord, Failure


@dataclass(frozen=True)
class Rule:
    hint: str
    reason: str | None = None  # None: any reason
    vendor: str | None = None  # None: any vendor
    message: re.Pattern[str] | None = None  # searched in the (scrubbed) message
    operation: str | None = None


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


RULES: tuple[Rule, ...] = (
    # Rescue's documented return codes (getSession, login).
    Rule(
        "Rescue does not know this node: check nodes[].id and its ref (NODE for a "
        "technician group, CHANNEL for a channel) in the Administration Center.",
        reason="vendor_error",
        vendor="rescue",
        message=_re(r"INVALIDPARAM_NODE"),
    ),
    Rule(
        "The Rescue login expired or was not accepted: check email and password (or use "
        "an auth_code); an expiry during a cycle is retried once by itself.",
        reason="auth",
        vendor="rescue",
        message=_re(r"NOTLOGGEDIN"),
    ),
    Rule(
        "Rescue refused the credentials: check auth_code (regenerate it in the "
        "Administration Center; it belongs to one user) or email and password.",
        reason="auth",
        vendor="rescue",
        message=_re(r"INVALID"),
    ),
    Rule(
        "The Rescue user behind these credentials is deleted or disabled: use an "
        "active user's credentials.",
        reason="auth",
        vendor="rescue",
        message=_re(r"USER_DELETED_OR_DISABLED"),
    ),
    Rule(
        "Too many Rescue logins (about ten per three minutes are allowed): use an "
        "auth_code, or one exporter per Rescue user, or a longer interval.",
        reason="rate_limited",
        vendor="rescue",
        message=_re(r"LIMITREACHED"),
    ),
    # Credentials of the other vendors.
    Rule(
        "Glance refused partner_id or api_key: check both (the key belongs to that "
        "partner id) in the Glance account settings.",
        reason="auth",
        vendor="glance",
    ),
    Rule(
        "SecureVideo refused the API credentials: check api_key (the API identifier) "
        "and api_secret (the API secret key).",
        reason="auth",
        vendor="securevideo",
    ),
    Rule(
        "The vendor refused the credentials: check this account's key, secret or password.",
        reason="auth",
    ),
    # The network between us and the vendor (http.py words these messages).
    Rule(
        "The vendor's TLS certificate is expired or not yet valid, or this host's clock "
        "is wrong: check the clock (NTP) first.",
        reason="connection",
        message=_re(r"TLS.*(expired|not yet valid)"),
    ),
    Rule(
        "TLS to the vendor failed: check base_url's host name, the CA certificates "
        "(SSL_CERT_FILE) and any proxy that intercepts TLS.",
        reason="connection",
        message=_re(r"\bTLS\b|certificate|SSL"),
    ),
    Rule(
        "A proxy asks for authentication (HTTP 407): let the vendor's host through "
        "the proxy, or give the proxy its credentials.",
        message=_re(r"\b407\b"),
    ),
    Rule(
        "A proxy refused the connection: check the proxy's address and that it allows "
        "the vendor's host.",
        reason="connection",
        message=_re(r"proxy"),
    ),
    Rule(
        "The connection was refused: check base_url (host and port) and firewall "
        "rules on the way to the vendor.",
        reason="connection",
        message=_re(r"refused"),
    ),
    Rule(
        "The connection was closed or reset before the reply was read: usually passes; "
        "if it persists, check proxies, load balancers and their idle timeouts on the way.",
        reason="connection",
        message=_re(r"reset by peer|closed the connection|Broken pipe|aborted"),
    ),
    Rule(
        "The vendor's host name does not resolve: check base_url and this host's DNS.",
        reason="connection",
        message=_re(r"name resolution|not known|resolve|getaddrinfo"),
    ),
    Rule(
        "The whole cycle ran past cycle_timeout (at most 90% of interval, never below "
        "timeout) before its requests were done: the requests below say which was still "
        "waiting, and whether any bytes had come. Raise interval (or cycle_timeout) for a "
        "slow vendor; check that base_url answers if nothing came.",
        reason="timeout",
        operation="cycle",
    ),
    Rule(
        "No reply in time: check that base_url is reachable from this host, or raise "
        "timeout (or cycle_timeout).",
        reason="timeout",
    ),
    Rule(
        "The vendor asks us to slow down: raise interval, or lower the number of "
        "accounts sharing one vendor login.",
        reason="rate_limited",
    ),
    Rule(
        "The reply could not be read: check that base_url is the vendor's API and not "
        "a login page or a proxy's error page.",
        reason="parse",
    ),
    Rule(
        "A reply was larger than global.max_body_bytes: raise it if the volume is real.",
        reason="body_too_large",
    ),
    Rule(
        "A reply or cycle went over a bound (max_records_per_reply, max_remembered_ids): "
        "raise it if the volume is real.",
        reason="limit_exceeded",
    ),
    Rule(
        "The vendor's server failed: usually passes by itself; check the vendor's "
        "status page if it persists.",
        reason="http_5xx",
    ),
    Rule(
        "The vendor refused the request (HTTP 4xx): check base_url and, for Rescue, api_version.",
        reason="http_4xx",
    ),
    Rule(
        "The vendor redirected the request (HTTP 3xx), which is never followed: check "
        "base_url (https, the API's host, no single sign-on page in between).",
        reason="http_3xx",
    ),
    Rule("A bug in session-exporter: please report it with the log line.", reason="internal"),
    Rule(
        "The vendor answered with an error of its own: its words are in the error; check "
        "the account's settings with the vendor if it persists.",
        reason="vendor_error",
    ),
    # Last: every failure line carries a hint (a 204 from a vendor had none).
    Rule(
        "See the error; the account's page (/accounts/<vendor>/<name>) shows each request "
        "of its last cycles.",
    ),
)

# Rejections that point at a config or host problem rather than a bad record.
REJECT_HINTS: tuple[tuple[str, str], ...] = (
    (
        "unknown_status",
        "Rescue returned statuses in another language: set the API "
        "user's language to English, or map them with status_aliases.",
    ),
    (
        "implausible_value",
        "Some times were out of range: check this host's clock (NTP) and the account's timezone.",
    ),
    (
        "label_overflow",
        "More distinct label values than label_value_limit, or label combinations than a "
        "quarter of max_series_per_account: raise it, or drop an opt-in label.",
    ),
)


def for_failure(vendor: str, operation: str, reason: str, message: str) -> str | None:
    for rule in RULES:
        if rule.reason is not None and rule.reason != reason:
            continue
        if rule.vendor is not None and rule.vendor != vendor:
            continue
        if rule.operation is not None and rule.operation != operation:
            continue
        if rule.message is not None and not rule.message.search(message):
            continue
        return rule.hint
    return None


def for_observations(
    rejected: Mapping[str, int], clock_skew: float | None, skew_limit: float
) -> str | None:
    """A hint for a cycle that worked but saw something a person should fix."""
    if clock_skew is not None and abs(clock_skew) > skew_limit:
        return (
            f"The vendor's clock and this host's differ by {abs(clock_skew):.0f}s: "
            "check this host's clock (NTP); today's counts and ages depend on it."
        )
    for reason, hint in REJECT_HINTS:
        if rejected.get(reason):
            return hint
    return None


def for_cycle(vendor: str, cycle: CycleRecord | None, failure: Failure | None) -> str | None:
    """The one hint a finished cycle carries: its failure's; else a refused request's (a
    cycle can succeed past an unknown Rescue node); else what a good cycle saw."""
    if failure is not None:
        return failure.hint
    if cycle is None:
        return None
    for request in cycle.requests:
        if request.reason is not None:
            hint = for_failure(vendor, request.operation, request.reason, request.error or "")
            if hint is not None:
                return hint
            break
    return for_observations(cycle.rejected, cycle.largest_clock_skew, CLOCK_SKEW_LIMIT)

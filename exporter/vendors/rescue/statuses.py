"""The vendor's vocabulary: session statuses and return codes as the getSession doc lists them."""

from __future__ import annotations

# Kept verbatim (metric contract): dashboards map them to words, not us.
STATUSES: tuple[str, ...] = (
    "Aborted",
    "Active",
    "Closed by active customer",
    "Closed by customer",
    "Closed by technician",
    "Closed by waiting customer",
    "Connecting",
    "Disconnected",
    "Not available",
    "Offline",
    "On Hold",
    "Rebooted",
    "Rebooting",
    "Reconnecting",
    "Timed out",
    "Timed out: closed by technician",
    "Transferred",
    "Transferring",
    "Waiting",
)

WAITING = "Waiting"

OK = "OK"
GET_SESSION_CODES = frozenset({
    "OK", "ERROR", "NOTLOGGEDIN", "INVALIDPARAM_NODE", "INVALID_SECRETAUTHCODE",
    "USER_DELETED_OR_DISABLED",
})
LOGIN_CODES = frozenset({"OK", "ERROR", "INVALID", "LIMITREACHED", "USER_DELETED_OR_DISABLED"})

NODE_REFS = ("NODE", "CHANNEL")

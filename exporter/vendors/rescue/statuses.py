"""The vendor's vocabulary, each table once: the doc's statuses, the localised values real
replies carry, the SOAP enum, the wait outcomes, and the return codes of both APIs."""

from __future__ import annotations

import unicodedata
from types import MappingProxyType

from ...outcomes import ABANDONED, ANSWERED, TIMED_OUT, TRANSFERRED
from ...outcomes import OTHER as OTHER_OUTCOME

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

# Localised values seen in real replies (../shared/vendor-captures), the text API being
# answered in the account's language while its header stays English. Users add the rest
# with `status_aliases`, which win over these.
BUILTIN_STATUS_ALIASES = MappingProxyType(
    {
        # pt-BR capture of 2024-06-18
        "Ativas": "Active",
        "Encerrado pelo cliente ativo": "Closed by active customer",
        "Encerrado pelo cliente que estava esperando": "Closed by waiting customer",
    }
)

# `Is Lead Technician` values meaning yes, whatever the language (lower case). The
# captures show `yes` and `sim` for the lead row and an empty field for the others.
LEAD_VALUES = frozenset({"yes", "sim", "true"})

# SOAP `bStatus` (language-independent) -> the doc's English status. Every enum value a
# public client of the API types is placed; SESSION_WAITING/Waiting and
# SESSION_PICKEDUP/Active were seen on the wire, the rest is our reading of the names
# (NOTES.md, "SOAP statuses"). Values not listed are kept verbatim and counted as
# unrecognised, as unknown text statuses are.
SOAP_STATUSES = MappingProxyType(
    {
        "SESSION_STARTING": "Connecting",
        "SESSION_CONNECTING": "Connecting",
        "SESSION_WAITING": "Waiting",
        "SESSION_OFFLINE": "Offline",
        "SESSION_PICKEDUP": "Active",
        "SESSION_CLOSEDBYCUSTOMER": "Closed by customer",
        "SESSION_CLOSEDBYTECHNICIAN": "Closed by technician",
        "SESSION_TRANSFERINGBUTNOTPICKEDUP": "Transferring",
        "SESSION_REVOKED": "Closed by technician",
        "SESSION_CLOSED_TRANSFERREDANOTHERTECH_WITHOUTPICKUP": "Transferred",
        "SESSION_CUSTOMERLEFTSESSION_WASNOTPICKEDUP": "Closed by waiting customer",
        "SESSION_WAITINGTIMEOUT_PICKEDUP": "Timed out",
        "SESSION_WAITINGTIMEOUT_NOTPICKEDUP": "Timed out",
        "SESSION_SYSTEMTIMEOUT_PICKEDUP": "Timed out",
        "SESSION_SYSTEMTIMEOUT_NOTPICKEDUP": "Timed out",
        "SESSION_ABORTED_TECHDELETEDORDISABLED": "Aborted",
        "SESSION_CLOSED_TRANSFERREDANOTHERTECH": "Transferred",
        "SESSION_REBOOTING": "Rebooting",
        "SESSION_CONNECTIONPROBLEM": "Reconnecting",
        "SESSION_ONHOLD": "On Hold",
        "SESSION_ONHOLDBUTCUSTOMERLEFT": "Closed by customer",
        "SESSION_TIMEOUT_SESSIONIDLETECHSIDE": "Timed out",
        "SESSION_CUSTOMERLEFTSESSION_DURINGTRANSFER_WITHOUTPICKUP": "Closed by waiting customer",
        "SESSION_CUSTOMERLEFTSESSION_DURINGTRANSFER": "Closed by customer",
        "SESSION_CLOSEDBYWAITINGCUSTOMER": "Closed by waiting customer",
        "SESSION_CLOSEDBYACTIVECUSTOMER": "Closed by active customer",
        "SESSION_CLOSED_DURINGRECONNECTING": "Disconnected",
        "SESSION_CLOSED_DURINGREBOOTING": "Rebooted",
        "SESSION_UACCESS_EXPIRED_WASPICKEDUPBEFORE": "Timed out",
        "SESSION_UACCESS_EXPIRED_NOTPICKEDUPBEFORE": "Timed out",
        "SESSION_UACCESS_REVOKEDBYCUSTOMER_WASPICKEDUPBEFORE": "Closed by customer",
        "SESSION_UACCESS_REVOKEDBYCUSTOMER_NOTPICKEDUPBEFORE": "Closed by customer",
        "SESSION_UACCESS_REVOKEDBYADMIN_WASPICKEDUPBEFORE": "Aborted",
        "SESSION_UACCESS_REVOKEDBYADMIN_NOTPICKEDUPBEFORE": "Aborted",
        "SESSION_TERMSANDCONDITIONSDECLINED": "Closed by customer",
        "SESSION_TIMEOUT_TECHCONNECTIONLOSTORSESSIONWASNOTCLOSEDBYTECH": "Timed out: closed by technician",  # noqa: E501
        "SESSION_STATUS_NOT_SUPPORTED_VALUE": "Not available",
    }
)

# Wait outcomes (issue 14): what the status a session moved to when it left Waiting says.
# Every documented status placed. Statuses not listed (Waiting itself, an unknown or
# unaliased value) and a session that vanished from the list are `other`.
OUTCOME_OF_STATUS = MappingProxyType(
    {
        # A technician took it: the picked-up states and the ones only a picked-up session has.
        "Connecting": ANSWERED,
        "Active": ANSWERED,
        "On Hold": ANSWERED,
        "Reconnecting": ANSWERED,
        "Rebooting": ANSWERED,
        "Rebooted": ANSWERED,
        "Closed by active customer": ANSWERED,
        "Closed by technician": ANSWERED,
        "Timed out: closed by technician": ANSWERED,
        # The customer gave up while waiting.
        "Closed by waiting customer": ABANDONED,
        "Timed out": TIMED_OUT,
        "Transferring": TRANSFERRED,
        "Transferred": TRANSFERRED,
        # Says nothing about whether anyone answered.
        "Aborted": OTHER_OUTCOME,
        "Closed by customer": OTHER_OUTCOME,
        "Disconnected": OTHER_OUTCOME,
        "Not available": OTHER_OUTCOME,
        "Offline": OTHER_OUTCOME,
    }
)


def outcome_of(status: str | None) -> str:
    """The outcome of a wait that ended in `status` (None: the session left the list)."""
    return OUTCOME_OF_STATUS.get(status, OTHER_OUTCOME) if status is not None else OTHER_OUTCOME


OK = "OK"
GET_SESSION_CODES = frozenset(
    {
        "OK",
        "ERROR",
        "NOTLOGGEDIN",
        "INVALIDPARAM_NODE",
        "INVALID_SECRETAUTHCODE",
        "USER_DELETED_OR_DISABLED",
    }
)
LOGIN_CODES = frozenset({"OK", "ERROR", "INVALID", "LIMITREACHED", "USER_DELETED_OR_DISABLED"})

# SOAP result codes -> the text API's return values, so both share one failure mapping.
SOAP_GET_SESSION_CODES = MappingProxyType(
    {
        "getSession_OK": "OK",
        "getSession_Error": "ERROR",
        "getSession_NotLoggedIn": "NOTLOGGEDIN",
        "getSession_InvalidParam_NodeID": "INVALIDPARAM_NODE",
        "getSession_Invalid_SecretAuthCode": "INVALID_SECRETAUTHCODE",
        "getSession_User_Deleted_Or_Disabled": "USER_DELETED_OR_DISABLED",
    }
)
# SOAP `loginResult` values, by the same naming as getSession's (the doc shows the call,
# not its results): each mapped to the text login's return value.
SOAP_LOGIN_CODES = MappingProxyType(
    {
        "login_OK": "OK",
        "login_Error": "ERROR",
        "login_Failed": "INVALID",
        "login_Invalid": "INVALID",
        "login_InvalidEmailOrPassword": "INVALID",
        "login_LimitReached": "LIMITREACHED",
        "login_User_Deleted_Or_Disabled": "USER_DELETED_OR_DISABLED",
    }
)

NODE_REFS = ("NODE", "CHANNEL")

API_NAMESPACE = "https://secure.logmeinrescue.com/API/API.asmx"
SOAP11_NAMESPACE = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NAMESPACE = "http://www.w3.org/2003/05/soap-envelope"


def status_key(status: str) -> str:
    """What two spellings of one status share: the same letters whatever their case,
    Unicode form (an accent composed or not) and spacing (doubled, or a no-break space)."""
    return " ".join(unicodedata.normalize("NFKC", status).split()).casefold()

"""The vocabulary tables: every value known from the documents and captures placed once."""

from __future__ import annotations

import re

from exporter.outcomes import OUTCOMES
from exporter.vendors.rescue.statuses import (
    BUILTIN_STATUS_ALIASES,
    OUTCOME_OF_STATUS,
    SOAP_GET_SESSION_CODES,
    SOAP_STATUSES,
    STATUSES,
    WAITING,
    outcome_of,
)

from .harness import SHARED, shared

README = SHARED / "vendor-captures/README.md"


def captured_enum_values() -> set[str]:
    text = shared(README).decode()
    section = text[text.index("`bStatus` values") : text.index("Seen on the wire")]
    return set(re.findall(r"SESSION_[A-Z_]+", section))


def test_every_enum_value_of_the_captures_readme_is_placed_on_a_documented_status() -> None:
    values = captured_enum_values()
    assert len(values) == 37
    assert values == set(SOAP_STATUSES)
    assert set(SOAP_STATUSES.values()) <= set(STATUSES)
    assert SOAP_STATUSES["SESSION_WAITING"] == "Waiting"  # seen on the wire
    assert SOAP_STATUSES["SESSION_PICKEDUP"] == "Active"


def test_every_soap_result_code_of_the_readme_is_mapped() -> None:
    text = shared(README).decode()
    assert set(re.findall(r"getSession_[A-Za-z_]+(?=`)", text)) - {
        "getSession_V3",
        "getSession_v3",
    } == set(SOAP_GET_SESSION_CODES)


def test_every_documented_status_but_waiting_has_an_outcome() -> None:
    assert set(OUTCOME_OF_STATUS) == set(STATUSES) - {WAITING}
    assert set(OUTCOME_OF_STATUS.values()) == set(OUTCOMES)
    assert outcome_of(None) == outcome_of(WAITING) == outcome_of("Novo") == "other"


def test_built_in_aliases_are_the_captured_strings_and_point_at_documented_statuses() -> None:
    assert set(BUILTIN_STATUS_ALIASES) == {
        "Ativas",
        "Encerrado pelo cliente ativo",
        "Encerrado pelo cliente que estava esperando",
    }
    assert set(BUILTIN_STATUS_ALIASES.values()) <= set(STATUSES)
    pt = shared(SHARED / "vendor-captures/rescue/getSession_v3-pt-BR.txt").decode()
    assert all(f"|{alias}|" in pt for alias in BUILTIN_STATUS_ALIASES)

"""Sample lines written as prometheus_client's encoders write them, ten times faster.

prometheus_client's OpenMetrics encoder runs its label-value escaping character by
character: 30-37 us a sample for both formats, which made encoding most of a render at
2,000 accounts (bench/render.py). For the samples our collectors make (a value, labels
with names in the legacy character set, no timestamp, exemplar or native histogram) both
of its formats write the same line, `name{label="value",...} value`, labels sorted by
name, values by `floatToGoString`: `sample_lines` writes it once for both. Anything else
returns None and is left to the library, and the headers always are (`headers`).
`tests/test_encoding.py` holds the two to the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import cast

from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

# The library's number format (Go's, as Prometheus writes numbers); untyped there.
_number = cast(Callable[[float], str], floatToGoString)
# The legacy label-name set: a sample name outside it is escaped by the OpenMetrics
# encoder (even a `:`), a label name outside it is quoted.
_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# Samples the text encoder moves into a family of their own after the others.
_OWN_FAMILY_SUFFIXES = ("_created", "_gsum", "_gcount")


class _One:
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> list[Metric]:
        return [self._family]


@lru_cache(maxsize=4096)
def headers(name: str, documentation: str, kind: str, unit: str) -> tuple[bytes, bytes]:
    """A family's "# HELP/# TYPE/# UNIT" lines in the text and OpenMetrics formats, as
    the library writes them for the family with no samples. The same for every account,
    so bounded and cached."""
    empty = Metric(name, documentation, kind, unit)
    om: bytes = generate_openmetrics(_One(empty))  # type: ignore[no-untyped-call]
    return generate_latest(_One(empty)), om.removesuffix(b"# EOF\n")


@lru_cache(maxsize=1024)
def _legacy(name: str) -> bool:
    return _LEGACY_NAME.match(name) is not None


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def sample_lines(family: Metric) -> bytes | None:
    """The family's sample lines, the same in both formats, or None when one of its
    samples needs what only the library does."""
    own_family = tuple(family.name + suffix for suffix in _OWN_FAMILY_SUFFIXES)
    lines: list[str] = []
    for sample in family.samples:
        name = sample.name
        if (
            sample.value is None
            or sample.timestamp is not None
            or sample.exemplar is not None
            or sample.native_histogram is not None
            or not _legacy(name)
            or name in own_family
        ):
            return None
        labels = sample.labels
        if labels:
            if not all(map(_legacy, labels)):
                return None
            pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{pairs}}} {_number(sample.value)}\n")
        else:
            lines.append(f"{name} {_number(sample.value)}\n")
    return "".join(lines).encode()

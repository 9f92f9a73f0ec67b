"""Our sample lines are the library's, byte for byte, in both formats; whatever we do
not write ourselves is left to the library (exporter/encoding.py)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.encoding import headers, sample_lines
from exporter.snapshot import _Families, render, render_chunks

LABEL_NAMES = st.sampled_from(["account", "status", "provider", "le_not", "_x", "a1"])
# Every odd character the escaping must handle, and far beyond ASCII.
LABEL_VALUES = st.text(
    st.sampled_from(["a", "Z", '"', "\\", "\n", "{", "}", ",", "=", " ", "é", "😀", "\t", "#"]),
    max_size=12,
) | st.text(max_size=8)
VALUES = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**18), 10**18).map(float)


@st.composite
def families(draw: st.DrawFn) -> Metric:
    names = draw(st.lists(LABEL_NAMES, unique=True, max_size=3))
    kind = draw(st.sampled_from(["counter", "gauge", "histogram"]))
    doc = draw(st.text(max_size=20))
    rows = draw(
        st.lists(
            st.tuples(st.lists(LABEL_VALUES, min_size=len(names), max_size=len(names)), VALUES),
            max_size=4,
        )
    )
    family: Metric
    if kind == "counter":
        family = CounterMetricFamily("x_events", doc, labels=names)
        for values, value in rows:
            family.add_metric(values, abs(value) if not math.isnan(value) else value)
    elif kind == "gauge":
        family = GaugeMetricFamily("x_level", doc, labels=names)
        for values, value in rows:
            family.add_metric(values, value)
    else:
        family = HistogramMetricFamily("x_wait_seconds", doc, labels=names, unit="seconds")
        bounds = draw(st.lists(st.floats(0.001, 1e9), unique=True, max_size=3))
        for values, value in rows:
            buckets = [(str(b), float(i)) for i, b in enumerate(sorted(bounds))]
            family.add_metric(
                values,
                [*buckets, ("+Inf", float(len(bounds)))],
                abs(value) if math.isfinite(value) else 0.0,
            )
    return family


def library(family: Metric) -> tuple[bytes, bytes]:
    om: bytes = generate_openmetrics(_Families([family]))  # type: ignore[no-untyped-call]
    return generate_latest(_Families([family])), om.removesuffix(b"# EOF\n")


@settings(max_examples=300, deadline=None)
@given(families())
def test_sample_lines_and_headers_are_the_library_bytes(family: Metric) -> None:
    body = sample_lines(family)
    assert body is not None  # every family here is one we write ourselves
    text_header, om_header = headers(family.name, family.documentation, family.type, family.unit)
    assert (text_header + body, om_header + body) == library(family)


@settings(max_examples=100, deadline=None)
@given(st.lists(families(), max_size=4))
def test_a_render_is_the_library_render(found: list[Metric]) -> None:
    chunks = render_chunks(found)
    snapshot = render(found)
    names = {f.name for f in found}
    expected_text = b"".join(library(f)[0] for f in found) if len(names) == len(found) else None
    if expected_text is not None:
        assert snapshot.text == expected_text
        assert snapshot.openmetrics == b"".join(library(f)[1] for f in found) + b"# EOF\n"
    assert len(chunks.text) == len(names)


def test_what_we_do_not_write_is_left_to_the_library() -> None:
    stamped = GaugeMetricFamily("x_level", "Level.", labels=["account"])
    stamped.add_metric(["a"], 1.0, timestamp=1_700_000_000.5)
    created = CounterMetricFamily("x_events", "Events.", labels=["account"], created=5.0)
    created.add_metric(["a"], 2.0, created=7.0)
    colon = GaugeMetricFamily("x:level", "Level.")
    colon.add_metric([], 1.0)
    odd_label = Metric("x_level", "Level.", "gauge")
    odd_label.add_sample("x_level", {"odd-name": "v"}, 1.0)
    for family in (stamped, created, colon, odd_label):
        assert sample_lines(family) is None
        chunks = render_chunks([family])
        text, om = library(family)
        assert chunks.text[0].header + chunks.text[0].body == text
        assert chunks.openmetrics[0].header + chunks.openmetrics[0].body == om

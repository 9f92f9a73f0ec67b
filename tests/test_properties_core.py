"""Property tests of the core's defences: whatever a vendor sends, the scrubber leaves no
registered secret, text always encodes, numbers never raise, labels stay bounded."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import scrub
from exporter.families import BoundedLabel, HistogramSet
from exporter.http import parse_retry_after
from exporter.sanitize import clean_text, strict_int

SECRETS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=6, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    secret=SECRETS,
    before=st.text(max_size=50),
    after=st.text(max_size=50),
    encoding=st.sampled_from(["raw", "quote", "quote_plus", "b64", "b64_unpadded"]),
)
def test_no_registered_secret_survives_in_any_encoding(
    secret: str, before: str, after: str, encoding: str
) -> None:
    scrubber = scrub.Scrubber()  # its own: random secrets must not redact other tests' text
    scrubber.register(secret)
    raw = secret.encode()
    form = {
        "raw": secret,
        "quote": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "b64": base64.b64encode(raw).decode(),
        "b64_unpadded": base64.b64encode(raw).decode().rstrip("="),
    }[encoding]
    assert form not in scrubber.scrub(before + form + after)
    assert form not in scrubber.excerpt(before + form + after, len(before) + len(form) // 2)


# Letters whose lower case is longer ("İ") or context-dependent ("Σ") beside plain ones.
CASE_TRAPS = st.text(
    alphabet=st.sampled_from("\u0130\u03a3\u03c3\u03c2\u00df\u1e9e\u212a\ufb00aZ -"),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS, before=st.one_of(CASE_TRAPS, st.text(max_size=30)), data=st.data())
def test_a_secrets_beginning_at_the_cut_is_dropped_and_nothing_before_it(
    secret: str, before: str, data: st.DataObject
) -> None:
    scrubber = scrub.Scrubber()
    scrubber.register(secret)
    size = data.draw(st.integers(scrub.MIN_FRAGMENT, len(secret) - 1))
    text = before + secret[:size]
    kept = scrubber.without_trailing_fragment(text)
    assert text.startswith(kept)
    assert len(kept) <= len(before)  # the piece went, and maybe more of a look-alike


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_vendor_text_always_encodes_and_labels_stay_bounded(text: str) -> None:
    clean_text(text).encode("utf-8")
    label = BoundedLabel((), limit=3, max_length=16)
    value = label(text)
    value.encode("utf-8")
    assert len(value) <= 16


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "x" * 40, "y" * 40]), st.integers(1, 4)),
        max_size=12,
    )
)
def test_labelling_a_value_for_many_records_is_labelling_each_in_turn(
    calls: list[tuple[str, int]],
) -> None:
    def bounded() -> tuple[BoundedLabel, list[str]]:
        reports: list[str] = []
        label = BoundedLabel(
            ("a",), limit=1, max_length=16, reject=lambda reason, n: reports.extend([reason] * n)
        )
        return label, reports

    many, many_reports = bounded()
    each, each_reports = bounded()
    for value, count in calls:
        assert {each(value) for _ in range(count)} == {many(value, count)}
    assert sorted(many_reports) == sorted(each_reports)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e9, allow_nan=False), max_size=20), max_size=4))
def test_observe_many_is_observe_of_each_value_to_the_last_bit(batches: list[list[float]]) -> None:
    one, many = (HistogramSet("h", "h", ("k",), (0.5, 1, 10, 1e6)) for _ in range(2))
    for batch in batches:
        for value in batch:
            one.observe(("v",), value)
        many.observe_many(("v",), batch)
    assert one.to_state() == many.to_state()  # counts, and sums bit for bit


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=6000))
def test_number_parsing_never_raises(text: str) -> None:
    result = strict_int(text)
    assert result is None or (result >= 0 and len(str(result)) <= 18)
    seconds = parse_retry_after(text, 1_767_225_600.0)
    assert seconds is None or seconds >= 0

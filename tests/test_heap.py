"""What the garbage collector walks: the objects kept per session or per request are
untracked, and the start-up objects are frozen. At 2,000 accounts, full collections
over them stopped the event loop for up to 2.5 s."""

from __future__ import annotations

import gc

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from exporter.heap import YOUNG_THRESHOLD, tune_garbage_collector
from exporter.history import CycleRecord, RequestRecord
from exporter.snapshot import render_chunks
from exporter.vendors.glance.parser import Session as GlanceSession
from exporter.vendors.rescue.parser import Session as RescueSession
from exporter.vendors.securevideo.collector import _Seen


def test_records_kept_per_session_or_request_are_not_tracked() -> None:
    request = RequestRecord("getSession", "POST", 200, 10, 0.1)
    cycle = CycleRecord(started=1.0, requests=[request])
    assert not gc.is_tracked(request)
    assert not gc.is_tracked(cycle)
    assert not gc.is_tracked(_Seen(1.0))
    for session_type in (GlanceSession, RescueSession):
        assert not session_type.__struct_config__.gc


def test_an_accounts_encoded_families_are_not_tracked_once_collected() -> None:
    # The most numerous objects of a daemon with thousands of accounts (29 chunks each).
    counter = CounterMetricFamily("demo_sessions", "Sessions.", labels=["account"])
    counter.add_metric(["a"], 3)
    gauge = GaugeMetricFamily("demo_waiting", "Waiting.", labels=["account"])
    gauge.add_metric(["a"], 1)
    chunks = render_chunks([counter, gauge])
    gc.collect()  # plain tuples and dicts of untracked objects are untracked by a pass
    assert len(chunks.text) == len(chunks.by_family) == 2
    assert not any(gc.is_tracked(chunk) for chunk in (*chunks.text, *chunks.openmetrics))
    assert not gc.is_tracked(chunks.text) and not gc.is_tracked(chunks.openmetrics)
    assert not any(gc.is_tracked(entry) for entry in chunks.by_family.values())
    assert not gc.is_tracked(chunks.by_family)


def test_a_cycle_record_stays_alive_while_held_and_its_requests_with_it() -> None:
    # Untracked holders of tracked lists are safe only if nothing is freed under them.
    cycle = CycleRecord(started=1.0)
    cycle.requests.append(RequestRecord("a", "GET", 200, 1, 0.1))
    gc.collect()
    assert [r.operation for r in cycle.requests] == ["a"]


def test_start_up_objects_are_frozen_and_young_collections_made_rarer() -> None:
    thresholds = gc.get_threshold()
    try:
        frozen = tune_garbage_collector()
        # This process's modules, classes and functions, at the least.
        assert frozen == gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (YOUNG_THRESHOLD, thresholds[1], thresholds[2])
        assert thresholds[0] < YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

"""Wait outcomes, several technicians and both transports: the real collector against the
simulator over loopback, time driven by a FakeClock, counts equal to the ground truth."""

from __future__ import annotations

from collections import Counter

import pytest

from exporter.outcomes import OUTCOMES
from exporter.simulators.rescue import GROUP_ID, PORTUGUESE, RescueSimulator
from exporter.vendors.rescue.collector import RescueCollector
from exporter.vendors.rescue.statuses import STATUSES, outcome_of

from .harness import BOTH, NODES, Rig, by_status, histogram, poll_for, rig, samples


def expected_outcomes(
    sim: RescueSimulator, node: int, ref: str, polls: list[float]
) -> dict[str, list[float]]:
    """The waits a poller at `polls` sees end, by the outcome that poller can tell: the
    status at the first poll after the wait, `other` when the session is gone by then or
    waiting again (a new wait), and its measured length (true start to last poll inside)."""
    sessions = {s.id: s for s in (*sim.finished, *sim.live)}
    result: dict[str, list[float]] = {outcome: [] for outcome in OUTCOMES}
    for sid, start, end, _ in sim.wait_outcomes(node, ref):
        inside = [p for p in polls if start <= p < end]
        after = [p for p in polls if p >= end]
        if not inside or not after:
            continue
        segment = sessions[sid].segment(after[0])
        seen = (
            None
            if segment is None or not sessions[sid].in_node(node, ref, after[0])
            else segment[0]
        )
        result[outcome_of(seen)].append(max(inside) - start)
    return result


def by_outcome(collector: RescueCollector, node: str) -> dict[str, tuple[float, float]]:
    return {outcome: histogram(collector, node, outcome) for outcome in OUTCOMES}


async def test_every_outcome_counted_exactly_per_node() -> None:
    async with rig(seed=3) as r:
        collector = r.collector(nodes=BOTH)
        polls = await poll_for(r, collector, 900)
        for node, (node_id, ref) in NODES.items():
            expected = expected_outcomes(r.sim, node_id, ref, polls)
            got = by_outcome(collector, node)
            for outcome in OUTCOMES:
                count, total = got[outcome]
                assert count == len(expected[outcome]), (node, outcome)
                assert total == pytest.approx(sum(expected[outcome])), (node, outcome)
            if node == str(GROUP_ID):
                assert all(expected[o] for o in OUTCOMES), expected  # every outcome occurs


async def test_with_polls_faster_than_any_status_every_true_outcome_is_seen() -> None:
    # Every status lasts 2 s or more and closed sessions linger, so polling each second
    # sees each wait end in the status it really moved to: observed = the world's truth.
    async with rig(seed=8) as r:
        collector = r.collector()
        polls = await poll_for(r, collector, 400, step=1)
        truth: Counter[str] = Counter()
        for _, start, end, outcome in r.sim.wait_outcomes():
            if polls[0] <= start and end <= polls[-1]:
                truth[outcome] += 1
        got = {o: int(c) for o, (c, _) in by_outcome(collector, str(GROUP_ID)).items()}
        # Waits already running at the first poll are measured too (from Waiting Time).
        running = Counter(
            outcome
            for _, start, end, outcome in r.sim.wait_outcomes()
            if start < polls[0] < end <= polls[-1]
        )
        assert got == {o: truth[o] + running[o] for o in OUTCOMES}
        assert all(got[o] > 0 for o in ("answered", "abandoned", "timed_out", "transferred"))


async def test_every_outcome_is_zero_filled_for_every_node() -> None:
    async with rig() as r:
        collector = r.collector(nodes=BOTH)
        await collector.collect(r.upstream)  # nothing ended yet
        for node in NODES:
            outcomes = {
                dict(labels)["outcome"]
                for (name, labels) in samples(collector)
                if name == "rescue_session_wait_seconds_count" and dict(labels)["node"] == node
            }
            assert outcomes == set(OUTCOMES)


async def test_second_technicians_count_once_and_feed_the_technicians_gauge() -> None:
    async with rig(seed=4) as r:
        collector = r.collector()
        seen_extra = 0
        for _ in range(60):
            await collector.collect(r.upstream)
            truth = r.sim.extra_technician_rows()
            seen_extra += truth
            got = samples(collector)[
                ("rescue_session_technicians", (("account", "helpdesk"), ("node", str(GROUP_ID))))
            ]
            assert got == truth
            counts = r.sim.status_counts()
            assert by_status(collector, str(GROUP_ID)) == {
                s: float(counts.get(s, 0)) for s in STATUSES
            }
            r.clock.advance(5)
        assert seen_extra > 0, "the seed does bring second technicians"


async def _same_polls(r: Rig, collectors: list[RescueCollector], seconds: int) -> None:
    for i in range(seconds // 5):
        if i:
            r.clock.advance(5)
        for c in collectors:
            await c.collect(r.upstream)


def _vendor_samples(collector: RescueCollector) -> dict[object, float]:
    return {
        k: v for k, v in samples(collector).items() if not k[0].startswith("rescue_get_fallbacks")
    }


@pytest.mark.parametrize("api", ["soap", "soap11"])
@pytest.mark.parametrize("language", ["en", "pt"])
async def test_text_and_soap_give_the_same_metrics(api: str, language: str) -> None:
    async with rig(seed=6) as r:
        r.sim.language = language
        aliases = {pt: en for en, pt in PORTUGUESE.items()} if language == "pt" else None
        text = r.collector(nodes=BOTH, status_aliases=aliases)
        soap = r.collector(nodes=BOTH, api=api)  # no aliases: bStatus is language-free
        await _same_polls(r, [text, soap], 600)
        assert _vendor_samples(soap) == _vendor_samples(text)
        assert histogram(soap, str(GROUP_ID))[0] > 10
        unrecognized = (
            "session_exporter_unrecognized_status_values",
            (("account", "helpdesk"), ("vendor", "rescue")),
        )
        assert samples(soap)[unrecognized] == 0.0
        assert r.sim.requests[-1].path == "/API/API.asmx"


async def test_soap_with_password_logs_in_and_relogs_after_expiry() -> None:
    async with rig() as r:
        collector = r.collector(
            api="soap", auth_code=None, email=r.sim.email, password=r.sim.password
        )
        await collector.collect(r.upstream)
        assert r.sim.logins == 1
        r.sim.expire_logins()
        r.clock.advance(5)
        await collector.collect(r.upstream)
        assert r.sim.logins == 2
        counts = r.sim.status_counts()
        assert by_status(collector, str(GROUP_ID)) == {s: float(counts.get(s, 0)) for s in STATUSES}


async def test_portuguese_text_with_built_in_aliases_only_is_loud_not_silent() -> None:
    async with rig(seed=2) as r:
        r.sim.language = "pt"
        collector = r.collector()
        await poll_for(r, collector, 120)
        counts = by_status(collector, str(GROUP_ID))
        truth = r.sim.status_counts()
        # The strings real replies showed are understood without any config ...
        assert counts["Active"] == truth["Active"] > 0
        # ... the others are kept, counted and announced.
        invented = {PORTUGUESE[s] for s in truth if s in PORTUGUESE} - {
            "Ativas",
            "Encerrado pelo cliente ativo",
            "Encerrado pelo cliente que estava esperando",
        }
        assert invented and invented <= set(counts)
        gauge = samples(collector)[
            (
                "session_exporter_unrecognized_status_values",
                (("account", "helpdesk"), ("vendor", "rescue")),
            )
        ]
        assert gauge == len(collector.unrecognized) >= len(invented)
        assert r.rejects["unknown_status"] > 0


@pytest.mark.parametrize("api", ["text", "soap"])
async def test_a_reply_over_max_records_per_reply_is_refused_keeping_the_last_values(
    api: str,
) -> None:
    from exporter.errors import UpstreamError

    from .harness import failures

    async with rig() as r:
        rows = len(r.sim.rows(GROUP_ID, "NODE", int(r.clock.time())))
        collector = r.collector(api=api, max_records=rows)
        await collector.collect(r.upstream)
        before = by_status(collector, str(GROUP_ID))
        collector.ctx.max_records_per_reply = collector.client.max_rows = rows - 1
        with pytest.raises(UpstreamError) as info:
            await collector.collect(r.upstream)
        assert info.value.reason == "limit_exceeded"
        assert failures(r.metrics) == {("getSession", "limit_exceeded"): 1}
        assert by_status(collector, str(GROUP_ID)) == before

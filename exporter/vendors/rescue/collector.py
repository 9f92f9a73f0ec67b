"""Per-node session gauges and the queue-wait histogram by outcome, from successive
getSession polls (text or SOAP: the parsers give the same records)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from ...errors import UpstreamError
from ...families import HistogramSet, gauge
from ...http import Upstream
from ...outcomes import OTHER as OTHER_OUTCOME
from ...outcomes import OUTCOMES
from ...sanitize import label_value, plausible_epoch, plausible_seconds
from ...statecheck import is_number, not_ahead, saved_histogram, state_version
from ..base import APPLY_CHUNK, AccountCollector, CollectorContext
from .client import GET_SESSION, LOGIN, RescueClient, UnknownNodeError
from .config import Node, RescueAccount
from .parser import Session, SessionList
from .statuses import BUILTIN_STATUS_ALIASES, STATUSES, WAITING, outcome_of, status_key

SESSIONS = "rescue_sessions"
OLDEST_CHANGE = "rescue_session_status_oldest_change_timestamp_seconds"
WAIT = "rescue_session_wait_seconds"
TECHNICIANS = "rescue_session_technicians"
UNRECOGNIZED = "session_exporter_unrecognized_status_values"
GET_FALLBACKS = "rescue_get_fallbacks_total"

SESSIONS_HELP = (
    "Current sessions of a Rescue node by getSession Status (every documented "
    "status zero-filled), polled in the background."
)
OLDEST_HELP = (
    "Poll time minus the largest getSession Waiting Time among the node's sessions "
    "in this Status: when the longest-standing one entered it. Polled in the "
    "background; absent when no session has the status."
)
WAIT_HELP = (
    "Time Rescue sessions spent in Waiting, from getSession Status and Waiting Time "
    "polled in the background; observed once when a session leaves Waiting or "
    "vanishes, by outcome (the status it moved to); a lower bound, precise to one "
    "poll interval."
)
TECHNICIANS_HELP = (
    "Technician rows beyond the first per session in the node's last "
    "getSession poll (extra technicians engaged), polled in the background."
)
UNRECOGNIZED_HELP = (
    "Distinct getSession status values, polled in the background, that are "
    "neither documented nor aliased (set status_aliases, or use api: soap)."
)
GET_FALLBACKS_HELP = (
    "Rescue requests, polled in the background, asked again with GET after "
    "the service answered their POST with 405 Method Not Allowed."
)
# Distinct unrecognised status values remembered (and warned about) per account.
MAX_UNRECOGNIZED = 1000
UNRECOGNIZED_SHOWN = 5  # of a reply's new unrecognised statuses, in its one warning

# Waiting Time comes in whole seconds, so a start estimate may drift by one between polls.
ROUNDING = 1.0
# A change of wall minus monotonic time beyond this between polls is a step of the wall
# clock, not a slew.
CLOCK_STEP = 2.0
# An ended wait is remembered this long past its last sighting, and at most this many
# per node (the oldest forgotten first), in case the session comes back still waiting.
GONE_FOR = 15 * 60.0
MAX_GONE = 10_000
# Of those, the latest saved per node (--storage.path): the state is written whole after
# every cycle, and 10,000 of them were 440 KB of it.
MAX_SAVED_GONE = 2_000

# Stop the cycle at once for these: every other node would fail the same way.
ACCOUNT_WIDE = frozenset({"auth", "rate_limited"})
# Bump when the shape of `state()` changes: a newer state, or an older one `restore` does
# not read, is then ignored.
# 2: the wait histogram has an `outcome` label. A version 1 state still hands over its
# waits in progress; its histogram, without outcomes, restarts.
# 3: a wait may carry a third element, `true`: observed already (`Wait.counted`).
# 4: `gone`, the ended waits remembered (`NodeState.gone`), so that a session back in
# the same wait after a restart is not observed again.
# 5: a wait in progress may carry the Waiting Time of its last sighting, as
# [start, last seen, observed, Waiting Time] (`_saved_wait`).
STATE_VERSION = 5


@dataclass
class Wait:
    start: float  # estimated moment the session entered Waiting
    last_seen: float  # the last poll that saw it Waiting
    # Its Waiting Time at that poll: how long it had waited by Rescue's own clock, which
    # no latency of ours lengthens. None when that poll gave none (or it was restored).
    waited: float | None = None
    # Missing from the last reply, which had rows it could not read: given one poll's
    # grace (`_follow_waits`).
    unread: bool = False
    # Already observed (when it left Waiting or the list) and back since, its Waiting
    # Time saying it never left Waiting: not observed a second time.
    counted: bool = False
    # When the poll of the last sighting was asked for (not saved: None once restored).
    # Rescue measured that reply's Waiting Time after it, so a new wait begins later.
    asked: float | None = None


@dataclass
class NodeState:
    polled_at: float
    counts: dict[tuple[str, ...], float] = field(default_factory=dict)
    oldest_change: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, Wait] = field(default_factory=dict)
    # Waits observed because they left Waiting or the list, by session id, in the order
    # they ended: a session Waiting again in a later reply with a Waiting Time reaching
    # before then is the same wait, already counted (`_follow_waits`).
    gone: dict[str, Wait] = field(default_factory=dict)
    technicians: float = 0.0  # rows beyond the first per session


_YEAR = 366 * 86400.0


def _saved_wait(wait: Wait) -> list[float | bool]:
    """[start, last seen], and `true` after them for a wait already observed; or, when
    the last sighting gave a Waiting Time, [start, last seen, observed, Waiting Time]:
    without it, a wait that ended while no exporter ran was observed from its start to
    that reply's arrival, longer by the reply's time."""
    if wait.waited is not None:
        return [wait.start, wait.last_seen, wait.counted, wait.waited]
    return [wait.start, wait.last_seen, True] if wait.counted else [wait.start, wait.last_seen]


def _wait_times(saved: object) -> tuple[float, float, bool, float | None]:
    """`_saved_wait` read back: start, last seen, whether it was observed already, and
    the Waiting Time of the last sighting or None."""
    if not (
        isinstance(saved, list)
        and len(saved) in (2, 3, 4)
        and all(is_number(t) for t in saved[:2])
        and (len(saved) == 2 or saved[2] is True or (len(saved) == 4 and saved[2] is False))
        and (len(saved) < 4 or (is_number(saved[3]) and plausible_seconds(saved[3], _YEAR)))
    ):
        raise ValueError(
            "state wait is not [start, last seen], [start, last seen, true] or "
            "[start, last seen, observed, Waiting Time]"
        )
    waited = float(saved[3]) if len(saved) == 4 else None
    return float(saved[0]), float(saved[1]), len(saved) >= 3 and saved[2] is True, waited


def _saved_gone(wait: Wait) -> list[float]:
    """[start, last seen], and the Waiting Time of that sighting after them if it gave
    one: what `_latest_start` needs."""
    if wait.waited is None:
        return [wait.start, wait.last_seen]
    return [wait.start, wait.last_seen, wait.waited]


def _gone_times(saved: object) -> tuple[float, float, float | None]:
    """`_saved_gone` read back: start, last seen, Waiting Time or None."""
    if not (
        isinstance(saved, list)
        and len(saved) in (2, 3)
        and all(is_number(t) for t in saved)
        and (len(saved) == 2 or saved[2] >= 0)
    ):
        raise ValueError("state ended wait is not [start, last seen] or with its Waiting Time")
    return float(saved[0]), float(saved[1]), float(saved[2]) if len(saved) == 3 else None


def _plausible_wait(start: float, last_seen: float, now: float) -> None:
    # A start of 0 was observed as a wait of 57 years, with nothing logged. A poll
    # follows a wait for as long as it lasts (a week and more, rarely), so only a start
    # of this century and at most a year are asked of it.
    if not (plausible_epoch(start) and plausible_seconds(last_seen - start, _YEAR)):
        raise ValueError("state wait is not a plausible [start, last seen]")
    not_ahead(last_seen, now, "wait last seen")


def _latest_start(wait: Wait) -> float:
    """The latest its start can be: its last sighting less the Waiting Time it gave then
    (it was measured at or before our reading it), or that sighting without one. A start
    read later than this is a new wait: compared with the sighting alone, a session
    queued again during one slow reply was taken for the same wait, and lost."""
    return wait.last_seen if wait.waited is None else wait.last_seen - wait.waited


def _began_since(wait: Wait, start: float, transit: float) -> bool:
    """Whether a Waiting session whose wait is read to begin at `start`, from a reply
    `transit` seconds in flight, began a new wait since `wait`: later than `wait` can
    have begun (`_latest_start`), and after the poll of its last sighting was asked for
    (Rescue measured that reply after it), give or take this reply's transit and a
    second. A start between the two says it was waiting then, by a status change that
    reply did not know of: a Waiting Time that stood still (a stalled back end, a cached
    reply) read that way made every poll a new wait, observed as `other`, for every
    Waiting session (probe 13). Restored, the sighting's asking is unknown: its reading
    stands in, a bound later by that reply's transit."""
    since = wait.last_seen if wait.asked is None else wait.asked
    return start > _latest_start(wait) + ROUNDING and start > since - transit - ROUNDING


def _forget_gone(gone: dict[str, Wait], now: float) -> None:
    """Drop the vanished waits last seen over `GONE_FOR` ago, and the oldest beyond
    `MAX_GONE`: in the order they went, which is the order of the dict."""
    stale = [sid for sid, wait in gone.items() if now - wait.last_seen > GONE_FOR]
    for sid in stale:
        del gone[sid]
    for sid in list(gone)[: max(0, len(gone) - MAX_GONE)]:
        del gone[sid]


def _saved_waits(
    saved: object, name: str, read: Callable[[object], Wait], now: float
) -> dict[str, dict[str, Wait]]:
    """A saved mapping of node -> session id -> wait, each wait read by `read` and
    checked; ValueError for anything that does not fit."""
    if not isinstance(saved, dict):
        raise ValueError(f"state {name} is not a mapping")
    restored: dict[str, dict[str, Wait]] = {}
    for label, waits in saved.items():
        if not isinstance(waits, dict):
            raise ValueError(f"state {name} entry is not a mapping")
        node_waits: dict[str, Wait] = {}
        for sid, saved_wait in waits.items():
            wait = read(saved_wait)
            _plausible_wait(wait.start, wait.last_seen, now)
            node_waits[sid] = wait
        restored[label] = node_waits
    return restored


def _read_waiting(saved: object) -> Wait:
    start, last_seen, counted, waited = _wait_times(saved)
    return Wait(start=start, last_seen=last_seen, waited=waited, counted=counted)


def _read_gone(saved: object) -> Wait:
    start, last_seen, waited = _gone_times(saved)
    return Wait(start=start, last_seen=last_seen, waited=waited, counted=True)


class RescueCollector(AccountCollector):
    def __init__(
        self,
        account: RescueAccount,
        ctx: CollectorContext,
        *,
        client: RescueClient | None = None,
    ) -> None:
        self.account = account
        self.ctx = ctx
        # Tests hand in a stand-in client here, as with every vendor's collector.
        self.client = client or RescueClient(account, ctx)
        self.status_label = ctx.label(STATUSES)
        self._once = ctx.rejected_once()
        self.extra_labels = {name: ctx.label() for name in account.labels}
        # English statuses match whatever their case, Unicode form and spacing
        # (`status_key`); aliases translate localised ones (the built-in ones from real
        # replies, then the account's, which win).
        self.canonical = {status_key(s): s for s in STATUSES}
        self.canonical.update({status_key(k): v for k, v in BUILTIN_STATUS_ALIASES.items()})
        self.canonical.update({status_key(k): v for k, v in account.status_aliases.items()})
        # Status values neither documented nor aliased, as label values (bounded).
        self.unrecognized: set[str] = set()
        self._newly_unrecognized: list[str] = []  # by this reply, for `_warn_unrecognized`
        self.nodes: dict[str, NodeState] = {}
        # Waits followed by an earlier process (--storage.path), per node, until that
        # node's first poll here takes them over. Kept apart from `nodes` so that no
        # gauge pretends to be current before a poll.
        self._restored_waits: dict[str, dict[str, Wait]] = {}
        # The vanished waits of a node gone for now (INVALIDPARAM_NODE), until it answers.
        self._kept_gone: dict[str, dict[str, Wait]] = {}
        self._clock_offset: float | None = None  # wall minus monotonic time, last poll
        self.waits = HistogramSet(
            WAIT, WAIT_HELP, ("account", "node", "outcome"), account.wait_buckets
        )

    async def collect(self, upstream: Upstream) -> None:
        self._follow_clock_steps()
        failure: UpstreamError | None = None
        unknown: UpstreamError | None = None
        collected = 0
        for node in self.account.nodes:
            asked = self.ctx.clock.time()
            try:
                reply = await self.client.get_sessions(upstream, node)
            except UnknownNodeError as exc:
                # A node the vendor does not know has no current sessions to show; it is
                # reported by the failure counter and this log line, without failing the
                # other nodes.
                self.ctx.log.warning(
                    "rescue_node_unknown", node=node.id, ref=node.ref, error=str(exc)
                )
                self.forget_current(node.label)
                unknown = exc
                continue
            except UpstreamError as exc:
                # A failed login fails every node alike: asked again for each, it could
                # use up the vendor's ten logins in three minutes in one cycle.
                if exc.reason in ACCOUNT_WIDE or exc.operation == LOGIN:
                    raise
                if len(self.account.nodes) > 1:
                    # Which node: the scheduler's one line for the cycle has the first
                    # failure only, and with one node it says all there is.
                    self.ctx.log.warning(
                        "rescue_node_failed", node=node.id, ref=node.ref, error=str(exc)
                    )
                failure = failure or exc
                continue
            await self.apply(node, reply, self.ctx.clock.time(), asked=asked)
            collected += 1
        if failure is not None:
            raise failure
        if unknown is not None and not collected:
            raise unknown  # no node left at all: the account is not up

    def _follow_clock_steps(self) -> None:
        """Waits are kept in wall time (the saved state needs it). When the wall clock
        steps between two polls (NTP, a resumed VM), they move with it: a wait spanning
        a step of -300 s was observed as 0 s, inside any service level, and one of
        +300 s as two waits."""
        offset = self.ctx.clock.time() - self.ctx.clock.monotonic()
        step = 0.0 if self._clock_offset is None else offset - self._clock_offset
        self._clock_offset = offset
        if abs(step) <= CLOCK_STEP:
            return
        for state in self.nodes.values():
            state.polled_at += step
            for wait in (*state.waiting.values(), *state.gone.values()):
                wait.start += step
                wait.last_seen += step

    def forget_current(self, node: str) -> None:
        """Drop what `node` shows now (its gauges), and keep its wait histogram and the
        waits in progress: one glitch of INVALIDPARAM_NODE reset the counts of waits that
        ended to zero (a counter reset to Prometheus), and lost the waits that ended
        during it (never observed). The waits are followed again, as restored ones are,
        when the node answers. A node is named in the config, so what is kept is bounded
        by it, as a stale node's is."""
        state = self.nodes.pop(node, None)
        if state is not None:
            self._restored_waits[node] = state.waiting
            self._kept_gone[node] = state.gone

    async def apply(
        self, node: Node, reply: SessionList, now: float, asked: float | None = None
    ) -> None:
        """Take one getSession reply, received at `now` for a request sent at `asked`.

        A long reply is counted in slices with scrapes served in between; the node's new
        state replaces the old one only once it is whole, so no render shows half a
        reply, and a cycle cancelled half-way leaves the last poll's state as it was."""
        totals = {
            "shifted_row": reply.shifted_rows,
            "invalid_record": reply.invalid_records,
            "invalid_value": reply.invalid_values,
            "implausible_value": reply.implausible_values,
        }
        self._once.reply(node.label, totals, reply.rejected_ids, now)
        sessions, extra_rows = await one_row_per_session(reply.sessions)
        state = NodeState(polled_at=now, technicians=extra_rows)
        # The blank combination keeps every node's statuses present (zero) even with
        # opt-in labels and no sessions; a blank label equals an absent one in PromQL.
        self._zero_fill(state, ("",) * len(self.extra_labels))
        waiting: list[Session] = []
        statuses: dict[str, str] = {}
        # This loop runs once per session (bench/ingest.py): the lookups are hoisted, and
        # a recognised status is looked up once per distinct raw value of this reply
        # (per reply, so case variants from a hostile vendor cannot grow it for good).
        counts, oldest = state.counts, state.oldest_change
        recognised: dict[str, str] = {}
        extra_names = tuple(self.extra_labels)
        combinations: set[tuple[str, ...]] = set()
        unknown: list[tuple[str, str]] = []  # (node, ID) of the sessions of such statuses
        for done, session in enumerate(sessions, 1):
            if done % APPLY_CHUNK == 0:
                await asyncio.sleep(0)
            raw = session.status
            status = recognised.get(raw)
            if status is None:
                english = self.canonical.get(status_key(raw))
                if english is not None:
                    recognised[raw] = status = english
                else:
                    status = self._unrecognized(raw, (node.label, session.id))
                    unknown.append((node.label, session.id))
            statuses[session.id] = status
            if extra_names:
                extras = tuple(
                    self._extra(name, session, (node.label, session.id)) for name in extra_names
                )
                if extras not in combinations:
                    combinations.add(extras)
                    for alone in _each_alone(extras):
                        self._zero_fill(state, alone)
                key = (status, *extras)
            else:
                key = (status,)  # the blank combination, zero-filled above
            counts[key] = counts.get(key, 0.0) + 1
            if session.waiting_seconds is not None:
                changed = now - session.waiting_seconds
                if status not in oldest or changed < oldest[status]:
                    oldest[status] = changed
            if status == WAITING:
                waiting.append(session)
        self._once.reject("unknown_status", unknown, now)
        self._warn_unrecognized()
        # From here to the end nothing awaits: the waits move on and the state is swapped
        # in one step.
        old = self.nodes.get(node.label)
        previous = old.waiting if old is not None else self._restored_waits.pop(node.label, {})
        state.gone = old.gone if old is not None else self._kept_gone.pop(node.label, {})
        for outcome in OUTCOMES:
            self.waits.touch((node.label, outcome))
        unreadable = reply.shifted_rows + reply.invalid_records > 0
        state.waiting = self._follow_waits(
            node.label,
            previous,
            state.gone,
            waiting,
            statuses,
            now,
            now if asked is None else asked,
            unreadable,
        )
        self.nodes[node.label] = state

    def _follow_waits(
        self,
        node: str,
        previous: dict[str, Wait],
        gone: dict[str, Wait],
        waiting: list[Session],
        statuses: dict[str, str],
        now: float,
        asked: float,
        unreadable: bool = False,
    ) -> dict[str, Wait]:
        """Carry each Waiting session's wait start across polls; observe finished waits,
        by the outcome the status they are in now says (`other` once gone from the list).
        A wait missing from a reply with `unreadable` rows may be one of them: it is
        carried for one poll, to be observed once, not as gone now and again later.

        A wait that ends is observed at once (as `other` when it vanished) and remembered
        in `gone` (updated in place): a session listed Waiting again, waiting since before
        it ended by its Waiting Time, is followed on as the one wait it is and not
        observed again. The vendor left it out of one reply, or two rows of the session
        (a lead and a second technician's) came in the other order and showed another
        status; a wait observed once per poll pair was counted four times in nine polls."""
        current: dict[str, Wait] = {}
        # This reply's time in transit: its Waiting Time was measured within it.
        transit = max(0.0, now - asked)
        for session in waiting:
            # Date the start from when we asked: Rescue measured Waiting Time somewhere
            # between asking and our reading the reply, so a slow reply never makes a
            # continuing wait look like a new one.
            start = asked - session.waiting_seconds if session.waiting_seconds is not None else None
            wait = previous.pop(session.id, None)
            if wait is None and session.id in gone:
                wait = gone.pop(session.id)
                if start is None or _began_since(wait, start, transit):
                    wait = None  # waiting again, since after it went: a new wait
            if wait is not None and start is not None and _began_since(wait, start, transit):
                # It left Waiting and came back between two polls: two waits, not one, and
                # where the first one went is unknown.
                self._observe(node, wait, OTHER_OUTCOME)
                wait = None
            if wait is None:
                # Waiting Time dates the start even for sessions queued before we started;
                # without it, the first sighting is the best lower bound we have.
                wait = Wait(start=start if start is not None else now, last_seen=now)
            wait.last_seen, wait.unread, wait.waited = now, False, session.waiting_seconds
            wait.asked = asked
            current[session.id] = wait
        for sid, wait in previous.items():  # left Waiting, or vanished from the list
            if sid not in statuses and unreadable and not wait.unread:
                wait.unread = True
                current[sid] = wait
                continue
            self._observe(
                node, wait, outcome_of(statuses[sid]) if sid in statuses else OTHER_OUTCOME
            )
            wait.unread = False
            gone[sid] = wait
        _forget_gone(gone, now)
        return current

    # -- durable state (--storage.path) ------------------------------------------------

    def state(self) -> dict[str, Any]:
        waiting = {label: waits for label, waits in self._restored_waits.items()}
        waiting.update({label: node.waiting for label, node in self.nodes.items()})
        gone = {label: waits for label, waits in self._kept_gone.items()}
        gone.update({label: node.gone for label, node in self.nodes.items()})
        return {
            "version": STATE_VERSION,
            "waiting": {
                label: {sid: _saved_wait(w) for sid, w in waits.items()}
                for label, waits in waiting.items()
            },
            "gone": {
                label: {sid: _saved_gone(w) for sid, w in list(waits.items())[-MAX_SAVED_GONE:]}
                for label, waits in gone.items()
                if waits
            },
            "waits": self.waits.to_state(),
            "wait_buckets": list(self.waits.bounds),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take over the waits an earlier process was following, and its histogram.

        A session that left Waiting while no exporter ran is observed at the first poll,
        measured to its last sighting, exactly as after a run of failed polls. Nodes no
        longer configured are dropped. Everything is checked before anything is applied:
        a state that does not fit raises ValueError."""
        version = state_version(state, (1, 2, 3, 4, STATE_VERSION))
        configured = {node.label for node in self.account.nodes}
        now = self.ctx.clock.time()
        waiting = _saved_waits(state.get("waiting"), "waiting", _read_waiting, now)
        restored = {label: waits for label, waits in waiting.items() if label in configured}
        saved_gone = state.get("gone", {}) if version >= 4 else {}
        kept_gone = _saved_waits(saved_gone, "gone", _read_gone, now)
        for gone in kept_gone.values():
            _forget_gone(gone, now)  # as it would have been kept, had we run
        width = len(self.waits.labelnames) - 1 - (version == 1)
        entries = saved_histogram(
            state,
            "waits",
            width,
            self.waits.bounds,
            "wait_buckets",
            self.ctx.max_series_per_account,
        )

        self._restored_waits = restored
        self._kept_gone = {label: w for label, w in kept_gone.items() if label in configured}
        if version == 1:
            self.ctx.log.warning(
                "rescue_wait_histogram_gained_outcome", hint="the wait histogram starts from zero"
            )
        elif entries is not None:
            self.waits.load_state(
                [e for e in entries if e[0][0] in configured and e[0][1] in OUTCOMES]
            )
        else:
            # Restarting the histogram is a counter reset to Prometheus; mixing counts
            # from two sets of bounds would be wrong.
            self.ctx.log.warning(
                "rescue_wait_buckets_changed", hint="the wait histogram starts from zero"
            )

    def _observe(self, node: str, wait: Wait, outcome: str) -> None:
        """Observe the wait as its last sighting measured it: the Waiting Time Rescue
        gave then, or, without one, from its start to that sighting (a slow reply made
        that up to its latency longer: 18 s for an 11 s wait behind an 8 s reply)."""
        if not wait.counted:
            waited = wait.waited if wait.waited is not None else wait.last_seen - wait.start
            self.waits.observe((node, outcome), max(0.0, waited))
            wait.counted = True

    def _zero_fill(self, state: NodeState, extras: tuple[str, ...]) -> None:
        for status in STATUSES:
            state.counts.setdefault((status, *extras), 0.0)

    def _unrecognized(self, raw: str, record: tuple[str, str]) -> str:
        """The label of a status neither documented nor aliased: kept as a (bounded,
        scrubbed) label value, but loudly: an account answering in another language
        would otherwise report zero Waiting, silently."""
        value = self.status_label(raw, record=record)
        seen, _ = label_value(raw, self.ctx.label_value_max_length)
        if seen not in self.unrecognized and len(self.unrecognized) < MAX_UNRECOGNIZED:
            self.unrecognized.add(seen)
            self._newly_unrecognized.append(seen)
        return value

    def _warn_unrecognized(self) -> None:
        """One warning per reply for the statuses it was the first to show: a reply of
        2,000 odd statuses wrote 1,000 lines."""
        new, self._newly_unrecognized = self._newly_unrecognized, []
        if new:
            self.ctx.log.warning(
                "rescue_status_unrecognized",
                status=new[0],
                statuses=new[:UNRECOGNIZED_SHOWN],
                count=len(new),
                # SOAP's bStatus is an enum: one the documents do not list is new to us.
                hint="set status_aliases (they map bStatus values too)"
                if self.account.uses_soap
                else "set status_aliases, or use api: soap",
            )

    def _extra(self, name: str, session: Session, record: tuple[str, str]) -> str:
        value = session.channel if name == "channel" else session.technician
        return self.extra_labels[name](value, record=record) if value else ""

    def families(self) -> Iterable[Metric]:
        account = self.account.common.name
        cutoff = self.ctx.clock.time() - self.account.common.stale_after
        fresh = {n: s for n, s in self.nodes.items() if s.polled_at >= cutoff}
        counts = {
            (account, node, *labels): value
            for node, state in fresh.items()
            for labels, value in state.counts.items()
        }
        oldest: dict[tuple[str, ...], float] = {
            (account, node, status): ts
            for node, state in fresh.items()
            for status, ts in state.oldest_change.items()
        }
        families: list[Metric] = [
            gauge(
                SESSIONS, SESSIONS_HELP, ("account", "node", "status", *self.account.labels), counts
            ),
            gauge(OLDEST_CHANGE, OLDEST_HELP, ("account", "node", "status"), oldest),
            self.waits.family((account,)),
            gauge(
                TECHNICIANS,
                TECHNICIANS_HELP,
                ("account", "node"),
                {(account, node): state.technicians for node, state in fresh.items()},
            ),
            gauge(
                UNRECOGNIZED,
                UNRECOGNIZED_HELP,
                ("vendor", "account"),
                {("rescue", account): float(len(self.unrecognized))},
            ),
        ]
        if not self.account.uses_soap:
            fallbacks = CounterMetricFamily(
                GET_FALLBACKS.removesuffix("_total"),
                GET_FALLBACKS_HELP,
                labels=("account", "operation"),
            )
            operations = (GET_SESSION, LOGIN) if self.account.uses_login else (GET_SESSION,)
            for operation in operations:
                fallbacks.add_metric(
                    [account, operation], float(self.client.get_fallbacks[operation])
                )
            families.append(fallbacks)
        return families


_SESSION_ID = attrgetter("id")


def _each_alone(extras: tuple[str, ...]) -> Iterable[tuple[str, ...]]:
    """Each non-blank opt-in label value of `extras` with the others blank: what the
    statuses are zero-filled for. Per channel and per technician, not per pair of them:
    19 statuses for each of 50 x 50 pairs and the blank one were 47,519 series, and the
    account was left out of `/metrics` (`too_many_series`) while it was up."""
    for i, value in enumerate(extras):
        if value:
            yield ("",) * i + (value,) + ("",) * (len(extras) - i - 1)


async def one_row_per_session(rows: Sequence[Session]) -> tuple[list[Session], int]:
    """One row per session id, and how many rows were beyond the first.

    A session has a row per technician; it is counted, and its wait followed, once, from
    its lead row (`Is Lead Technician`), or its first row when none is the lead. In
    slices, as `apply`: 100,000 rows take 30-70 ms here. Most replies have a row per
    session, told in one C loop over the ids."""
    if len(set(map(_SESSION_ID, rows))) == len(rows):
        return list(rows), 0
    chosen: dict[str, Session] = {}
    extra = 0
    for done, row in enumerate(rows, 1):
        if done % APPLY_CHUNK == 0:
            await asyncio.sleep(0)
        first = chosen.get(row.id)
        if first is None:
            chosen[row.id] = row
            continue
        extra += 1
        if row.is_lead and not first.is_lead:
            chosen[row.id] = row
    return list(chosen.values()), extra

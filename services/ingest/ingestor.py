"""Ingest: the only gate. Validate, de-duplicate, stamp recorded_at, append, then answer.

Checks run against the read model plus what this ingest appended that the aggregator has not
applied yet (the pending tail), so a duplicate sent twice in quick succession is still seen.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from duhub.convert import (
    MAX_EVENT_ID,
    InvalidEvent,
    chain_hash,
    event_from_pb,
    from_nanos,
)
from duhub.domain.events import Event
from duhub.domain.knowledge import Knowledge
from duhub.domain.model import Campaign, Problem, Unit
from duhub.log.base import EventLog, LogClosed, holds_all
from duhub.log.belongs import LogLost, ends_covering, refuse_lost
from duhub.projections.fold import fold
from duhub.projections.working_set import WorkingSet
from duhub.readmodel.knowledge import ReadModelKnowledge
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from services.ingest.resume import latest_stamp, own_records, take_in

log = logging.getLogger(__name__)

MAX_BATCH = 10_000
# How often a batch asks the read model how far the aggregator got, to let applied tail
# generations go. Only memory depends on it (lookups see the tail and the read model either
# way), and the query costs a round trip or two (~5 ms) that every batch paid.
PRUNE_EVERY = 1.0
# Events appended and not yet applied that ingest keeps (~470 bytes each with their places in
# the log, ~95 MB; the places were measured at ~126 bytes an event): past them,
# publishing is refused UNAVAILABLE until the aggregator catches up. With the workers down
# the tail grew for as long as they stayed down (245 MB an hour at 200 events/s).
MAX_PENDING = 200_000
# How long a starting ingest waits for the read model to apply the log before it says so.
SAY_WAITING_AFTER_S = 10.0


class BatchTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An event of a batch whose bytes are not a duhub.v1.Event (see services.ingest.request).

    It is answered REJECTED with the fault; the rest of its batch is unaffected.
    """

    event_id: str  # what could be read of it, for the answer ('' if nothing)
    field: str
    reason: str


class NotReady(RuntimeError):
    """Ingest does not yet know all the log holds, so it cannot check events against it."""


@dataclass(slots=True)
class _Generation:
    """Effects of appends not yet known applied, and the log end they reach."""

    ws: WorkingSet
    ends: dict[int, int]
    # (partition, offset) of each event it holds: a duplicate's answer names it.
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)


class _PendingTail:
    """Knowledge = newest generation, then the older one, then the read model.

    Two generations bound memory: the older one is dropped once the aggregator's positions
    pass its ends, and the newer one takes its place.
    """

    def __init__(self, base: Knowledge) -> None:
        self.base = base
        self.old: _Generation | None = None
        self.new = _Generation(WorkingSet(base), {})

    def knowledge(self) -> WorkingSet:
        return self.new.ws

    def size(self) -> int:
        """Return how many accepted events the tail holds."""
        return len(self.new.ws.digests) + (len(self.old.ws.digests) if self.old else 0)

    def position(self, event_id: str) -> tuple[int, int] | None:
        """Return where an appended, not yet let go, event stands in the log."""
        found = self.new.positions.get(event_id)
        if found is None and self.old is not None:
            found = self.old.positions.get(event_id)
        return found

    def absorb(
        self, batch: WorkingSet, ends: dict[int, int], positions: dict[str, tuple[int, int]]
    ) -> None:
        self.new.positions.update(positions)
        target = self.new.ws
        target.units.update(batch.units)
        target.campaigns.update(batch.campaigns)
        target.problems.update(batch.problems)
        target.letters |= batch.letters
        target.digests.update(batch.digests)
        target.seqs.update(batch.seqs)
        target.heads.update(batch.heads)
        for p, o in ends.items():
            self.new.ends[p] = max(self.new.ends.get(p, 0), o)

    def prune(self, applied: dict[int, int]) -> None:
        def done(g: _Generation) -> bool:
            return all(applied.get(p, 0) >= o for p, o in g.ends.items())

        if self.old is not None and done(self.old):
            # All of it is in the read model now: look there instead, and let it go.
            self.old = None
            self.new.ws.base = self.base
        if self.old is None and self.new.ends:
            if done(self.new):
                self.new = _Generation(WorkingSet(self.base), {})
            else:
                # Rotate: lookups go new -> old -> read model.
                self.old = self.new
                self.new = _Generation(WorkingSet(self.old.ws), {})


class _Current:
    """The read-model facts the batch being checked was prepared with (`Ingestor.commit`
    points it there): the bottom of the pending tail's lookups.

    Its methods are those of the knowledge it points to, bound when pointed (not a method
    that forwards each call: several lookups per event reach the bottom)."""

    unit: Callable[[str], Unit | None]
    campaign: Callable[[str], Campaign | None]
    problem: Callable[[str], Problem | None]
    has_letter: Callable[[str], bool]
    event_digest: Callable[[str], bytes | None]
    seq_owner: Callable[[str, int], str | None]
    source_head: Callable[[str], bytes | None]

    def __init__(self, current: ReadModelKnowledge) -> None:
        self.point(current)

    def point(self, current: ReadModelKnowledge) -> None:
        self.unit = current.unit
        self.campaign = current.campaign
        self.problem = current.problem
        self.has_letter = current.has_letter
        self.event_digest = current.event_digest
        self.seq_owner = current.seq_owner
        self.source_head = current.source_head


@dataclass(slots=True)
class Prepared:
    """A batch decoded, with what the read model knows of it fetched: ready for `commit`."""

    results: list[ipb.EventResult]
    decoded: list[tuple[int, pb.Event, Event]]
    knowledge: ReadModelKnowledge
    ticket: int  # drawn before the read model was asked
    now: int  # the hub's time when it took the batch: the events are decoded stamped with it


class Ingestor:
    """`publish` = `prepare` (decode, fetch from the read model; no lock, so a stream's next
    batch is prepared while this one is checked and appended) + `commit` (check in order,
    chain, append, wait for the log's acknowledgement)."""

    def __init__(
        self,
        log: EventLog,
        engine: Engine,
        clock: Callable[[], int] = time.time_ns,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.log = log
        self.engine = engine
        self.clock = clock
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._spare: list[ReadModelKnowledge] = []  # each keeps its units and campaigns cached
        self._spare_lock = threading.Lock()
        self._base = _Current(self._take())
        self._tail = _PendingTail(self._base)
        self._last_now = 0
        # Whether this process took in what the log holds beyond the read model (`_resume`)
        # since it started or an append failed.
        self._resumed = False
        self._pruned_at = float("-inf")
        self._tickets = itertools.count()
        self._pruned_mark = -1  # ticket drawn after reading the positions of the last prune
        self.ready = threading.Event()
        self.ready.set()
        # Clear while the reference hierarchy loads after a start (`duhub serve ingest`): a
        # client's event checked before its units are in would be rejected for good.
        self.open_to_clients = threading.Event()
        self.open_to_clients.set()
        # Set by the health monitor (duhub.bootstrap.watch_health): what it finds unreachable
        # ("log", "read model"); while not empty, publishing is refused at once (UNAVAILABLE).
        self.unreachable = ""
        # What of them it finds with a full disk ("the log's"): said so, not "unreachable".
        self.full = ""
        # Per partition, the offset the log has reached by all this process knows (the read
        # model's positions, its own appends): offsets only grow, so a record acknowledged
        # below it, or a log ending before it, means the log lost records.
        self._floor: dict[int, int] = {}
        # Why ingest refuses for good (the log lost records), and whom to tell: the process.
        self.failure = ""
        self.on_failure: Callable[[str], None] = lambda _: None

    def _take(self) -> ReadModelKnowledge:
        with self._spare_lock:
            return self._spare.pop() if self._spare else ReadModelKnowledge(self.engine)

    def release(self, prepared: Prepared) -> None:
        """Let go of a prepared batch that will not be committed."""
        self._give(prepared.knowledge)

    def _give(self, knowledge: ReadModelKnowledge) -> None:
        with self._spare_lock:
            if len(self._spare) < 4:
                self._spare.append(knowledge)

    def wait_until_caught_up(self, poll: float = 0.2) -> None:
        """Hold publishing until the read model has applied all the log held at the call.

        Run in a thread when ingest starts beside aggregate workers it does not drive.
        """
        self.ready.clear()
        target = self.log.end_offsets()
        say_at, said = time.monotonic() + SAY_WAITING_AFTER_S, False
        while True:
            applied = read_positions(self.engine)
            if all(holds_all(self.log, p, applied.get(p, 0), end) for p, end in target.items()):
                if said:
                    log.info("ingest: the read model has applied what the log held: opening")
                self.ready.set()
                return
            if not said and time.monotonic() >= say_at:
                # Once: health says NOT_SERVING, and only a line says what it waits for.
                behind = ", ".join(
                    f"partition {p} at {applied.get(p, 0)}, the log at {end}"
                    for p, end in target.items()
                    if not holds_all(self.log, p, applied.get(p, 0), end)
                )
                log.warning(
                    "ingest waits for the read model to apply what the log held at its start "
                    "(%s): are the aggregate workers running?",
                    behind,
                )
                said = True
            time.sleep(poll)

    def publish(
        self, events: Sequence[pb.Event | Unreadable], *, allow_reference: bool = False
    ) -> list[ipb.EventResult]:
        """Return one result per event, in order. ACCEPTED ones are durable in the log."""
        return self.commit(self.prepare(events), allow_reference=allow_reference)

    def prepare(self, events: Sequence[pb.Event | Unreadable]) -> Prepared:
        """Decode the events and fetch what the read model knows of them. Thread-safe."""
        if len(events) > MAX_BATCH:
            raise BatchTooLarge(f"events: more than {MAX_BATCH} events in one batch")
        results: list[ipb.EventResult] = []
        decoded: list[tuple[int, pb.Event, Event]] = []
        # Stamped as they are decoded, not again under the lock: `commit` stamps anew only
        # when another batch took a later time first (concurrent streams).
        now = self.clock()
        result_of, answer, take = ipb.EventResult, results.append, decoded.append
        for i, msg in enumerate(events):
            # An id too long to be valid is echoed cut short: answers stay small.
            result = result_of(event_id=msg.event_id[:MAX_EVENT_ID])
            answer(result)
            if isinstance(msg, Unreadable):
                _reject(result, msg.field, msg.reason)
                continue
            try:
                take((i, msg, event_from_pb(msg, recorded_at=now)))
            except InvalidEvent as e:
                _reject(result, e.field, e.reason)
        knowledge = self._take()
        ticket = next(self._tickets)
        try:
            knowledge.prefetch([e for _, _, e in decoded])
        except BaseException:
            self._give(knowledge)
            raise
        return Prepared(results, decoded, knowledge, ticket, now)

    def commit(self, prepared: Prepared, *, allow_reference: bool = False) -> list[ipb.EventResult]:
        """Check a prepared batch against all accepted before it, append what passes, and
        return one result per event, in order. ACCEPTED ones are durable in the log."""
        try:
            if self.failure:
                raise NotReady(self.failure)
            if self.unreachable or self.full:
                raise NotReady(self._not_ready())
            if not allow_reference and not self.open_to_clients.is_set():
                raise NotReady(self._opening())
            with self._lock:
                # Under the lock: a failed append (`_resync`) clears it for those waiting.
                if not self.ready.is_set():
                    raise NotReady("ingest is waiting for the read model to catch up with the log")
                self._commit(prepared, allow_reference)
        finally:
            self._give(prepared.knowledge)
        return prepared.results

    def _opening(self) -> str:
        """Why a starting ingest is not open yet: the read model still behind the log at its
        start is the aggregate workers' to mend (down, or catching up), not the reference's."""
        if not self.ready.is_set():
            return (
                "ingest is waiting for the read model to apply what the log held at its start "
                "(the aggregate workers are down or catching up); retry shortly"
            )
        return "ingest is loading the reference hierarchy; retry shortly"

    def _not_ready(self) -> str:
        """Why publishing is refused while a dependency is down (the health monitor's word)."""
        why = [f"the {self.unreachable} is unreachable"] if self.unreachable else []
        if self.full:
            why.append(f"{self.full} disk is full")
        return " and ".join(why) + "; retry later"

    def _commit(self, prepared: Prepared, allow_reference: bool) -> None:
        results, decoded = prepared.results, prepared.decoded
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            positions = read_positions(self.engine)
            self._raise_floor(positions)
            self._pruned_mark = next(self._tickets)
            self._tail.prune(positions)
            self._pruned_at = time.monotonic()
        pending = self._tail.size()
        if pending >= self.max_pending:
            raise NotReady(
                f"the read model is {pending} events behind what ingest appended (the "
                "aggregate workers are down or slow); retry later"
            )
        if prepared.ticket < self._pruned_mark:
            # Fetched before (or while) the positions of the last prune were read: it may miss
            # what the tail let go as applied. Fetch again, now.
            prepared.knowledge.prefetch([e for _, _, e in decoded])
        if not self._resumed:
            self._resume()
            self._resumed = True
        self._base.point(prepared.knowledge)
        # recorded_at never goes back in log order.
        now = self._last_now = max(prepared.now, self._last_now)
        restamp = now != prepared.now
        recorded_at = from_nanos(now)
        batch = WorkingSet(self._tail.knowledge())
        # (event's index, its id, its source, the record's value). The domain event's id and
        # source: the strings the tail's other maps hold too, not copies.
        accepted: list[tuple[int, str, str, bytes]] = []
        duplicates: list[tuple[int, str]] = []
        heads, source_head, new_event = batch.heads, batch.source_head, pb.Event
        for i, msg, event in decoded:
            if restamp:
                event = event.stamped(now)
            # Only the state the next checks need: the rollups are the aggregator's.
            verdict, _ = fold(event, batch, now, allow_reference=allow_reference, rollups=False)
            if verdict.kind == "accepted":
                source = event.source
                stored = new_event()
                stored.CopyFrom(msg)
                stored.recorded_at.CopyFrom(recorded_at)
                # Link the source's hash chain: a later edit, deletion, insertion or swap
                # of its events breaks a link that `duhub audit verify` finds.
                stored.prev_hash = source_head(source) or b""
                value = stored.SerializeToString()
                heads[source] = chain_hash(value)
                accepted.append((i, event.event_id, source, value))
            elif verdict.kind == "duplicate":
                results[i].result = ipb.RESULT_DUPLICATE
                duplicates.append((i, event.event_id))
            else:
                _reject(results[i], verdict.field, verdict.reason)
        positions: dict[str, tuple[int, int]] = {}
        if accepted:
            # Raises when not durable: nothing is acknowledged and the batch is forgotten.
            try:
                where = self.log.append(
                    [(source.encode(), value) for _, _, source, value in accepted]
                )
            except LogClosed:
                raise  # the process is stopping: nothing was appended, nothing to resync
            except BaseException:
                self._resync()
                raise
            self._check_acknowledged(where)
            ends: dict[int, int] = {}
            for (i, event_id, _, _), (partition, offset) in zip(accepted, where, strict=True):
                result = results[i]
                result.result = ipb.RESULT_ACCEPTED
                result.partition = partition
                result.offset = offset
                if offset >= ends.get(partition, 0):
                    ends[partition] = offset + 1
                positions[event_id] = (partition, offset)
            self._tail.absorb(batch, ends, positions)
            self._raise_floor(ends)
        for i, event_id in duplicates:
            # Where the original stands (the node may have lost the reply that said so, and
            # waits for it to show before querying): this batch, the tail, the read model.
            where = (
                positions.get(event_id)
                or self._tail.position(event_id)
                or prepared.knowledge.event_position(event_id)
            )
            if where is not None:
                results[i].partition, results[i].offset = where

    def _raise_floor(self, ends: dict[int, int]) -> None:
        for p, o in ends.items():
            if o > self._floor.get(p, 0):
                self._floor[p] = o

    def _check_acknowledged(self, where: Sequence[tuple[int, int]]) -> None:
        """Refuse the batch just appended (nothing acknowledged) when the log took it below
        offsets it held before: it lost records (a broker that lost its data, a topic made
        again), and the workers would take these for the ones applied there, uncounted."""
        starts: dict[int, int] = {}
        for p, o in where:
            starts[p] = min(o, starts.get(p, o))
        try:
            refuse_lost({p: self._floor.get(p, 0) for p in starts}, starts)
        except LogLost as e:
            self._fail(str(e))
            raise NotReady(self.failure) from None

    def _fail(self, why: str) -> None:
        """Refuse publishing from now on (the process stops: `on_failure`)."""
        if not self.failure:
            self.failure = why
            log.critical("ingest stops: %s", why)
            self.on_failure(why)

    def _resume(self) -> None:
        """Before this process's first append, and its first after a failed one (lock held):
        take in the log's latest stamp (this clock may be behind one another process, or this
        one before a restart, wrote), and this ingest's records the read model has not applied
        (behind an open Kafka-direct transaction, it cannot yet: `services/ingest/resume.py`)."""
        self._last_now = max(self._last_now, latest_stamp(self.log))
        batch = WorkingSet(self._tail.knowledge())
        ends: dict[int, int] = {}
        positions: dict[str, tuple[int, int]] = {}
        knowledge = self._take()
        self._base.point(knowledge)
        waiting: list[Event] = []
        try:
            for events, latest in own_records(self.log, read_positions(self.engine)):
                self._last_now = max(self._last_now, latest)
                knowledge.prefetch(events)
                waiting = take_in(waiting + events, batch, positions)
                for event in events:
                    ends[event.partition] = max(ends.get(event.partition, 0), event.offset + 1)
            take_in(waiting, batch, positions, last=True)  # as before: none should be left
        finally:
            self._give(knowledge)
        self._tail.absorb(batch, ends, positions)

    def _resync(self) -> None:
        """After a failed append (lock held): what it sent may be in the log all the same (a
        broker that took the records but whose acknowledgement came too late or was lost).
        The node sends those events again, and others meanwhile: checked against the pending
        tail, which lacks them, a resent one was accepted a second time (forking its source's
        hash chain) and a conflicting one (another rectification of the problem) accepted,
        then dead-lettered by the aggregator. So publishing waits (NotReady: UNAVAILABLE,
        which the outbox retries) until the read model holds all the log does, then checks
        against it with an empty tail."""
        self.ready.clear()
        threading.Thread(
            target=self._catch_up_after_failure, name="ingest-resync", daemon=True
        ).start()

    def _catch_up_after_failure(self, poll: float = 0.2) -> None:
        target: dict[int, int] | None = None
        warned = False
        while True:
            try:  # the log or the read model may be what failed: ask until they answer
                if target is None:
                    target = self.log.end_offsets()
                applied = read_positions(self.engine)
                # A log that came back without what the read model applied (a broker that
                # lost its data): what ingest accepts there would never be counted. Against
                # the log's end read after the positions, not `target`: other writers (an
                # ingest beside this one, Kafka-direct) append meanwhile and the workers
                # apply it, past `target` with nothing lost.
                refuse_lost(applied, ends_covering(self.log, applied))
                if all(holds_all(self.log, p, applied.get(p, 0), e) for p, e in target.items()):
                    break
            except LogLost as e:
                self._fail(str(e))
                return
            except Exception as e:  # noqa: BLE001
                if not warned:
                    log.warning("ingest: after a failed append, waiting for the log: %s", e)
                    warned = True
            time.sleep(poll)
        with self._lock:
            self._tail = _PendingTail(self._base)
            self._resumed = False
            # Batches prepared before now may hold read-model facts older than the tail
            # dropped: `_commit` fetches theirs again.
            self._pruned_mark = next(self._tickets)
            self._pruned_at = time.monotonic()
            self.ready.set()


def _reject(result: ipb.EventResult, field: str, reason: str) -> None:
    result.result = ipb.RESULT_REJECTED
    result.field = field
    result.reason = reason


def summarize(results: Sequence[ipb.EventResult]) -> ipb.PublishResponse:
    resp = ipb.PublishResponse(results=results)
    codes = [r.result for r in results]  # each read once, counted in C
    resp.accepted = codes.count(ipb.RESULT_ACCEPTED)
    resp.duplicate = codes.count(ipb.RESULT_DUPLICATE)
    resp.rejected = len(codes) - resp.accepted - resp.duplicate
    return resp

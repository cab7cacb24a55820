"""Ingest: the only gate. Validate, de-duplicate, stamp recorded_at, append, then answer.

Checks run against the read model plus what this ingest appended that the aggregator has not
applied yet (the pending tail), so a duplicate sent twice in quick succession is still seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from duhub.convert import MAX_EVENT_ID, InvalidEvent, chain_hash, event_from_pb, from_nanos
from duhub.domain.events import Event
from duhub.log.base import EventLog
from duhub.projections.fold import fold
from duhub.projections.working_set import WorkingSet
from duhub.readmodel.knowledge import ReadModelKnowledge
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb

MAX_BATCH = 10_000


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


class _PendingTail:
    """Knowledge = newest generation, then the older one, then the read model.

    Two generations bound memory: the older one is dropped once the aggregator's positions
    pass its ends, and the newer one takes its place.
    """

    def __init__(self, base: ReadModelKnowledge) -> None:
        self.base = base
        self.old: _Generation | None = None
        self.new = _Generation(WorkingSet(base), {})

    def knowledge(self) -> WorkingSet:
        return self.new.ws

    def absorb(self, batch: WorkingSet, ends: dict[int, int]) -> None:
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


class Ingestor:
    def __init__(
        self,
        log: EventLog,
        engine: Engine,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.log = log
        self.engine = engine
        self.clock = clock
        self._lock = threading.Lock()
        self._base = ReadModelKnowledge(engine)
        self._tail = _PendingTail(self._base)
        self._last_now = 0
        self.ready = threading.Event()
        self.ready.set()
        # Set by the health monitor (duhub.bootstrap.watch_health): what it finds unreachable
        # ("log", "read model"); while not empty, publishing is refused at once (UNAVAILABLE).
        self.unreachable = ""

    def wait_until_caught_up(self, poll: float = 0.2) -> None:
        """Hold publishing until the read model has applied all the log held at the call.

        Run in a thread when ingest starts beside aggregate workers it does not drive.
        """
        self.ready.clear()
        target = self.log.end_offsets()
        while True:
            applied = read_positions(self.engine)
            if all(applied.get(p, 0) >= end for p, end in target.items()):
                self.ready.set()
                return
            time.sleep(poll)

    def publish(
        self, events: Sequence[pb.Event | Unreadable], *, allow_reference: bool = False
    ) -> list[ipb.EventResult]:
        """Return one result per event, in order. ACCEPTED ones are durable in the log."""
        if len(events) > MAX_BATCH:
            raise BatchTooLarge(f"events: more than {MAX_BATCH} events in one batch")
        if not self.ready.is_set():
            raise NotReady("ingest is waiting for the read model to catch up with the log")
        if self.unreachable:
            raise NotReady(f"the {self.unreachable} is unreachable; retry later")
        results: list[ipb.EventResult] = []
        decoded: list[tuple[int, pb.Event, Event]] = []
        for i, msg in enumerate(events):
            # An id too long to be valid is echoed cut short: answers stay small.
            results.append(ipb.EventResult(event_id=msg.event_id[:MAX_EVENT_ID]))
            if isinstance(msg, Unreadable):
                _reject(results[i], msg.field, msg.reason)
                continue
            try:
                decoded.append((i, msg, event_from_pb(msg)))
            except InvalidEvent as e:
                _reject(results[i], e.field, e.reason)
        with self._lock:
            self._tail.prune(read_positions(self.engine))
            self._base.prefetch([e for _, _, e in decoded])
            now = self._last_now = max(self.clock(), self._last_now)
            batch = WorkingSet(self._tail.knowledge())
            accepted: list[tuple[int, bytes]] = []
            for i, msg, event in decoded:
                event = replace(event, recorded_at=now)
                verdict, _ = fold(event, batch, now, allow_reference=allow_reference)
                if verdict.kind == "accepted":
                    stored = pb.Event()
                    stored.CopyFrom(msg)
                    stored.recorded_at.CopyFrom(from_nanos(now))
                    # Link the source's hash chain: a later edit, deletion, insertion or swap
                    # of its events breaks a link that `duhub audit verify` finds.
                    stored.prev_hash = batch.source_head(msg.source) or b""
                    value = stored.SerializeToString()
                    batch.heads[msg.source] = chain_hash(value)
                    accepted.append((i, value))
                elif verdict.kind == "duplicate":
                    results[i].result = ipb.RESULT_DUPLICATE
                else:
                    _reject(results[i], verdict.field, verdict.reason)
            if accepted:
                decoded_by_index = {i: msg for i, msg, _ in decoded}
                # Raises when not durable: nothing is acknowledged and the batch is forgotten.
                where = self.log.append(
                    [(decoded_by_index[i].source.encode(), value) for i, value in accepted]
                )
                ends: dict[int, int] = {}
                for (i, _), (partition, offset) in zip(accepted, where, strict=True):
                    results[i].result = ipb.RESULT_ACCEPTED
                    results[i].partition = partition
                    results[i].offset = offset
                    ends[partition] = max(ends.get(partition, 0), offset + 1)
                self._tail.absorb(batch, ends)
        return results


def _reject(result: ipb.EventResult, field: str, reason: str) -> None:
    result.result = ipb.RESULT_REJECTED
    result.field = field
    result.reason = reason


def summarize(results: Sequence[ipb.EventResult]) -> ipb.PublishResponse:
    resp = ipb.PublishResponse(results=results)
    for r in results:
        if r.result == ipb.RESULT_ACCEPTED:
            resp.accepted += 1
        elif r.result == ipb.RESULT_DUPLICATE:
            resp.duplicate += 1
        else:
            resp.rejected += 1
    return resp

"""Apply a batch of log records to the read model: the step shared by every driver (the
embedded loop, the Faust app and replay). Positions commit with the rows they produced.

Effectively once: a record below a partition's committed position is skipped; the commit
checks that no other worker moved the positions meanwhile (else it retries from the read
model); an ingested event naming something not applied yet (it sits in another partition)
holds its partition back until it is, instead of being rejected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from duhub import metrics
from duhub.convert import (
    InvalidEvent,
    chain_hash,
    decode_event,
    event_from_pb,
    named_event_id,
    named_source,
    recorded_at,
)
from duhub.diskfull import db_name, disk_full, refuse_writes, writes_again
from duhub.domain.events import Event
from duhub.log.base import EventLog, LogRecord
from duhub.log.identity import Mark, record_hash
from duhub.log.origin import MAC_HEADER, ORIGIN_HEADER
from duhub.log.value_hint import value_hint
from duhub.projections.effects import Counted, Covered, Effect
from duhub.projections.fold import fold
from duhub.projections.working_set import WorkingSet
from duhub.readmodel.knowledge import ReadModelKnowledge
from duhub.readmodel.writer import (
    BatchRows,
    BatchSummary,
    DeadLetter,
    PositionConflict,
    batch_rows,
    read_marks,
    read_positions,
    render_copies,
    write_rows,
)

log = logging.getLogger(__name__)

# Commits a batch's rows with its positions: (rows, positions, dead letters, expected
# positions) -> what it changed. `write_rows` on an engine, or a writer process's.
RowsWriter = Callable[
    [BatchRows, Mapping[int, int], Sequence[DeadLetter], Mapping[int, int]], BatchSummary
]

# The effects that make figures (as opposed to state the rules look at).
FIGURES = (Counted, Covered)

ATTEMPTS = 20
# Fault fix (tests/integration/test_faults.py): while the read model is unreachable (a
# PostgreSQL restart) a batch waits and is tried again, up to this long, instead of the worker
# dying on the first refused connection.
DB_OUTAGE_LIMIT_S = 600.0
# An ingested event waits this long for what it names to be applied from another partition;
# past it the wait is not ordering but a broken log, and the event goes to the dead letters.
BLOCK_TIMEOUT_S = 300.0
# Passes over one batch for partitions waiting on each other (each pass is linear in the
# records still waiting); what is left waits for the next batch.
MAX_PASSES = 20
# Whether no partition but `partition` holds a record logged before `t` (epoch ns; records
# of the same time: `log_settled`) from the offsets `at` on, given the Kafka-direct records
# known to wait for the same (partition -> offset): (partition, t, at, waiting) -> bool. See
# `BatchApplier.__init__` and `log_settled`.
Settled = Callable[[int, int, Mapping[int, int], Mapping[int, int]], bool]
# Records left waiting by a batch are kept decoded for the next try, up to this many: in a
# backlog the same records are tried batch after batch until what they name is applied.
KEEP_DECODED = 50_000


@dataclass(slots=True)
class Applied:
    summary: BatchSummary
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    # Partitions held back at their position, waiting for an event of another partition.
    blocked: set[int] = field(default_factory=set)
    # Records whose positions this batch moved, and the recorded_at of their events (metrics).
    records: int = 0
    recorded_at: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Prepared:
    """A batch folded but not written: its rows and the positions it moves to."""

    start: dict[int, int]
    moved: dict[int, int]
    rows: BatchRows
    any_effects: bool
    out: Applied
    # What the batch added, for folding the next batch before this one is written.
    ws: WorkingSet
    records: Sequence[LogRecord]
    figures: bool
    # (partition, offset) -> what a dead letter's value looks like (`value_hint`), for its
    # log line once the batch commits.
    hints: dict[tuple[int, int], str] = field(default_factory=dict)

    def changes(self) -> dict[int, int]:
        """The positions this batch moves (partition -> next offset)."""
        return {p: o for p, o in self.moved.items() if o != self.start.get(p, 0)}

    def writes_nothing(self) -> bool:
        """Whether committing it would change nothing (every record waits)."""
        return not self.any_effects and not self.changes()


FORGED_NO_STAMP = (
    "claims ingest's origin, but the event has no recorded_at, which ingest stamps on every "
    "event (a Kafka-direct producer must not set this header)"
)


def _wait_out(
    e: Exception, since: float | None, stopping: threading.Event, *, full: bool = False
) -> float:
    """Wait a second through an outage of the read model that began at `since` (now when
    None) and return when it began; raise `e` once it has lasted DB_OUTAGE_LIMIT_S, or at
    once when the worker is stopping: the batch cannot commit meanwhile, and waiting held
    the stop past the 30 s a container gets (its partitions' next owner applies it from the
    positions in the read model). A full disk (`full`, said already) waits for room however
    long it lasts: the database answers, the operator is told, and stopping would take the
    whole hub down with it (ingest too, under `duhub up`) for a disk full overnight."""
    now = time.monotonic()
    since = now if since is None else since
    if stopping.is_set() or (not full and now - since > DB_OUTAGE_LIMIT_S):
        raise e
    if not full:
        log.warning("read model unreachable (%s); retrying", str(e).splitlines()[0])
    time.sleep(1.0)
    return since


def decode_record(rec: LogRecord) -> Event:
    """Return the domain event of a record; raise InvalidEvent for a malformed one, carrying
    the event_id its value names when it parsed (`InvalidEvent.event_id`)."""
    if not rec.value:  # a null (tombstone) or empty value: no event_id to name, nothing at all
        raise InvalidEvent("value", "no value (null or empty): not a serialized duhub.v1.Event")
    try:
        msg = decode_event(rec.value)
    except InvalidEvent as e:  # named where the bytes go wrong, e.g. "event: truncated ..."
        raise InvalidEvent("value", f"not a serialized duhub.v1.Event ({e.reason})") from None
    try:  # costs nothing unless raised (Python 3.11): the accepted event's path stays as it was
        if rec.origin_fault:  # claims ingest's origin without its MAC: not ingest's, not passed
            raise InvalidEvent(f"headers.{MAC_HEADER}", rec.origin_fault)
        if rec.ingested:
            if not msg.HasField("recorded_at"):
                # Ingest stamps every event: this one only says it is ingest's (a hub without
                # an origin key takes the header at its word). Named, or its time read as 1970
                # and the reason blamed a sound occurred_at.
                raise InvalidEvent(f"headers.{ORIGIN_HEADER}", FORGED_NO_STAMP)
            return event_from_pb(
                msg, stored_hash=chain_hash(rec.value), partition=rec.partition, offset=rec.offset
            )
        # Kafka-direct events carry no hub stamp (a client's value is ignored): the log's
        # append time stands in for it. Ingest never chained them.
        return event_from_pb(
            msg, recorded_at=rec.timestamp_ns, partition=rec.partition, offset=rec.offset
        )
    except InvalidEvent as e:  # its dead letter is filed under the id and source read here
        e.event_id, e.source = named_event_id(msg), named_source(msg)
        raise


class BatchApplier:
    def __init__(
        self,
        engine: Engine,
        on_dead: Callable[[LogRecord, DeadLetter], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        settled: Settled | None = None,
    ) -> None:
        """`settled` (a log of several partitions): a Kafka-direct event naming something not
        applied yet is judged only once every other partition is applied past its log time
        (it waits until then, as an ingested one does), so the verdict is the log's, not the
        order this worker happened to read the partitions in: a replay reaches the same one.
        Without it, such an event is rejected at once (one partition: nothing else to wait
        for)."""
        self.engine = engine
        self.settled = settled
        # The committed positions read before this batch's prefetch (what the read model
        # held for the partitions other workers apply), and those to take for the next one.
        self._view: dict[int, int] = {}
        self._next_view: dict[int, int] | None = None
        self.knowledge = ReadModelKnowledge(engine)
        self.on_dead = on_dead
        self.clock = clock
        self.positions: dict[int, int] = read_positions(engine)
        # Set when the worker stops: an outage of the read model is not waited out then.
        self.stopping = threading.Event()
        # When the read model's disk filled (monotonic), while it refuses this worker's writes.
        self.full_since: float | None = None
        # A batch command (`duhub replay`) sets it: a full disk stops it with the reason,
        # where a long-running hub waits for space (before, the replay retried for ever).
        self.full_is_final = False
        self._blocked_since: dict[tuple[int, int], float] = {}
        # partition -> offset of its Kafka-direct head left waiting for the other partitions
        # to pass its log time (see `log_settled`: two such of one millisecond), kept across
        # batches (the all-in-one hub and replay apply one partition at a time). Known only
        # while this applier applied nothing since: that may be what the head waited for.
        self._unsettled: dict[int, int] = {}
        # (partition, offset) -> the event of a record a batch left waiting. A record at a
        # place of the log never changes, so neither does its event.
        self._decoded: dict[tuple[int, int], Event] = {}

    def refresh(self) -> None:
        """Forget what this worker believes and read the committed positions again."""
        self.positions = read_positions(self.engine)

    def marks_when_reachable(self) -> dict[int, Mark]:
        """The read model's last record applied per partition (`read_marks`), waiting while
        it is unreachable, as a batch does: a partition delivering after a pause is looked at
        before it is applied, and a PostgreSQL outage then stopped the worker."""
        outage_since: float | None = None
        while True:
            try:
                return read_marks(self.engine)
            except (OperationalError, InterfaceError) as e:
                outage_since = _wait_out(e, outage_since, self.stopping)

    def refresh_when_reachable(self) -> None:
        """refresh(), waiting while the read model is unreachable, as a batch does: a worker
        that gains partitions in a PostgreSQL restart (another one stopped, or killed) starts
        them from the positions once it answers. Before, the refused connection stopped the
        worker (tests/integration/test_worker_rebalance_outage.py)."""
        outage_since: float | None = None
        while True:
            try:
                return self.refresh()
            except (OperationalError, InterfaceError) as e:
                outage_since = _wait_out(e, outage_since, self.stopping)

    def apply(self, records: Sequence[LogRecord], *, figures: bool = True) -> Applied:
        """Fold the records into the read model and commit them with their positions.

        With figures=False they add to the state (units, campaigns, problems, ids) but not to
        any figure: replay from a time counts only what was recorded since.
        """
        attempt = 0
        outage_since: float | None = None
        while attempt < ATTEMPTS:
            try:
                if outage_since is not None:
                    self.refresh()  # the commit may or may not have happened: ask
                out = self._apply_once(records, figures)
                self._written()
                return out
            except (PositionConflict, IntegrityError) as e:
                # Another worker applied some of these (a rebalance), or a concurrent batch
                # took an id first: start again from what is committed.
                log.info("batch conflicted (%s); retrying from the read model", e)
                time.sleep(min(0.01 * 2**attempt, 1.0))
                attempt += 1
                self.refresh()
            except (OperationalError, InterfaceError) as e:
                # The read model is unreachable, or its disk is full. Nothing of this batch
                # counts unless its positions committed: re-read them once it answers, and
                # apply from there.
                full = disk_full(e)
                if full and self.full_is_final:
                    raise
                if full:
                    self._disk_full(e)
                    # The unreachable database's clock starts when it is unreachable: a
                    # restart after a long full disk (PostgreSQL's after a full WAL) stopped
                    # the worker at its first refused connect.
                    _wait_out(e, None, self.stopping, full=True)
                    outage_since = None
                else:
                    outage_since = _wait_out(e, outage_since, self.stopping)
        raise RuntimeError(f"batch still conflicts after {ATTEMPTS} attempts")

    def _disk_full(self, e: Exception) -> None:
        """Say once per outage that the read model's disk is full (it answers, so it is not
        "unreachable"), and mark it so for the health checks and `duhub_dependency_up`."""
        if self.full_since is not None:
            return
        self.full_since = time.monotonic()
        why = str(getattr(e, "orig", None) or e).splitlines()[0]
        refuse_writes(self.engine, why)
        log.warning(
            "the read model's disk is full (%s: %s): nothing is applied until it has room "
            "(ingest still appends to the log); trying again every second",
            db_name(self.engine),
            why,
        )

    def _written(self) -> None:
        """After a commit: say so when it ends a full disk's outage."""
        if self.full_since is None:
            return
        lasted = time.monotonic() - self.full_since
        self.full_since = None
        writes_again(self.engine)
        log.warning(
            "the read model %s is written again (its disk was full for %.0f s); catching up",
            db_name(self.engine),
            lasted,
        )

    def _apply_once(self, records: Sequence[LogRecord], figures: bool = True) -> Applied:
        prepared = self.prepare(records, figures)
        out = self.write(prepared)
        self.positions = prepared.moved
        return out

    def prepare(
        self,
        records: Sequence[LogRecord],
        figures: bool = True,
        overlay: WorkingSet | None = None,
        *,
        rollups: bool = True,
    ) -> Prepared:
        """Decode and fold the records from this worker's positions, writing nothing.

        `overlay` is the state of a batch still being written (WriteBehind): it answers
        before the read model, which may or may not hold that batch yet. rollups=False leaves
        the rollup rows to the writer (`BatchRows.with_rollups`); PostgreSQL always sums them
        itself from the batch's facts (`writer.ROLLUPS_FROM_FACTS`).
        """
        start = dict(self.positions)
        if self._next_view is not None:  # read before the prefetch below: it holds all that
            self._view, self._next_view = self._next_view, None
        pending: list[tuple[LogRecord, Event | None, str]] = []
        # (partition, offset) -> why a record was refused at decoding (its id, source, field).
        refused: dict[tuple[int, int], InvalidEvent] = {}
        hints: dict[tuple[int, int], str] = {}
        decoded = self._decoded
        for rec in records:
            if rec.offset < start.get(rec.partition, 0):
                continue  # applied before
            event = decoded.get((rec.partition, rec.offset))
            if event is not None:
                pending.append((rec, event, ""))
                continue
            try:
                pending.append((rec, decode_record(rec), ""))
            except InvalidEvent as e:
                pending.append((rec, None, e.reason))
                refused[rec.partition, rec.offset] = e
        self.knowledge.prefetch([e for _, e, _ in pending if e is not None])
        ws = WorkingSet(self.knowledge if overlay is None else overlay)
        out = Applied(BatchSummary())
        effects: list[Effect] = []
        moved = dict(start)
        last: dict[int, LogRecord] = {}  # per partition, the last record moved past
        # Passes over the batch: a partition stops at an event naming something not applied
        # yet; when another partition applied something meanwhile, the stopped ones are tried
        # again, so what arrives later in the same batch unblocks them in this transaction.
        for _ in range(MAX_PASSES):
            unsettled = dict(self._unsettled)
            waiting: list[tuple[LogRecord, Event | None, str]] = []
            blocked: set[int] = set()
            for item in pending:
                rec, event, why = item
                p = rec.partition
                field = "" if event is not None else refused[p, rec.offset].field
                if p in blocked:
                    waiting.append(item)
                    continue
                if event is not None:
                    # `reference` is the hub's own source, written through ingest only: a
                    # Kafka-direct event may not take it, as ingest refuses it to clients.
                    verdict, done = fold(event, ws, event.recorded_at, allow_reference=rec.ingested)
                    if (
                        verdict.kind == "rejected"
                        and verdict.missing
                        and (rec.ingested or not self._settled(rec, moved))
                    ):
                        if not self._waited_too_long(rec):
                            blocked.add(p)
                            waiting.append(item)
                            continue
                        why = f"{verdict.reason} (waited {BLOCK_TIMEOUT_S:g} s for it)"
                        field = verdict.field
                    elif verdict.kind == "rejected":
                        why, field = verdict.reason, verdict.field
                    elif verdict.kind == "duplicate":
                        out.duplicates += 1
                    else:
                        self._unsettled.clear()
                    effects += done if figures else [x for x in done if not isinstance(x, FIGURES)]
                if why:
                    # Named whenever its value is an Event, a field check failing too: ops
                    # look a county's event up by its id (before 2026-12-05 that one had none).
                    if event is not None:
                        event_id, source, at = event.event_id, event.source, event.recorded_at
                    else:
                        # When the hub recorded it (none for a record of the embedded log
                        # that is no stamped Event): what `duhub deadletters` lists it by.
                        named = refused[p, rec.offset]
                        event_id, source, at = named.event_id, named.source, recorded_at(rec)
                    letter = DeadLetter(p, rec.offset, event_id, why, field, source, at or None)
                    out.dead.append(letter)
                    if event is None and (hint := value_hint(rec.value or b"")):
                        hints[p, rec.offset] = hint
                    # Sent before the commit (`send_dead_letter`: twice rather than never);
                    # its log line waits for the commit (`write`).
                    if self.on_dead is not None:
                        self.on_dead(rec, letter)
                moved[p] = rec.offset + 1
                last[p] = rec
                out.records += 1
                if event is not None:
                    out.recorded_at.append(event.recorded_at)
            out.blocked = blocked
            if not waiting or (len(waiting) == len(pending) and unsettled == self._unsettled):
                break  # all applied, or what they wait for is not in this batch
            pending = waiting
        self._keep_decoded([(rec, event) for rec, event, _ in waiting if event is not None], moved)
        if self.engine.dialect.name == "postgresql":
            rows = batch_rows(effects, rollups=False)  # PostgreSQL sums them itself
            render_copies(rows)
        else:
            rows = batch_rows(effects, rollups=rollups)
        # What a service starting later compares with the log's record at that offset.
        rows.marks = {p: (r.offset, record_hash(r.key, r.value)) for p, r in last.items()}
        return Prepared(start, moved, rows, bool(effects), out, ws, records, figures, hints)

    def _keep_decoded(self, waiting: list[tuple[LogRecord, Event]], moved: dict[int, int]) -> None:
        """Keep the events of records left waiting for the next try (a driver may hold them
        over several batches); forget those applied once there are too many."""
        kept = self._decoded
        kept.update(((rec.partition, rec.offset), event) for rec, event in waiting)
        if len(kept) > KEEP_DECODED:
            kept = {k: e for k, e in kept.items() if k[1] >= moved.get(k[0], 0)}
            self._decoded = kept if len(kept) <= KEEP_DECODED else {}

    def write(self, prepared: Prepared, via: RowsWriter | None = None) -> Applied:
        """Commit a prepared batch with its positions (PositionConflict if they moved); `via`
        writes the rows elsewhere (a writer process) instead of through this engine."""
        out = prepared.out
        if not prepared.writes_nothing():
            write = via if via is not None else partial(write_rows, self.engine)
            out.summary = write(prepared.rows, prepared.changes(), out.dead, prepared.start)
            _say_dead(out.dead, prepared.hints)  # committed: they are stored now
        return out

    def _settled(self, rec: LogRecord, moved: Mapping[int, int]) -> bool:
        """Return whether every other partition is applied (in this batch, or committed by
        another worker before this batch's prefetch) past the record's log time: what the
        log held before it is all known, so what it names is really missing. When not, the
        committed positions are read again for the next try."""
        if self.settled is None:
            return True
        at = {p: max(moved.get(p, 0), self._view.get(p, 0)) for p in {*moved, *self._view}}
        if self.settled(rec.partition, rec.timestamp_ns, at, self._unsettled):
            return True
        self._unsettled[rec.partition] = rec.offset
        if self._next_view is None:
            self._next_view = read_positions(self.engine)
        return False

    def _waited_too_long(self, rec: LogRecord) -> bool:
        first = self._blocked_since.setdefault((rec.partition, rec.offset), self.clock())
        if len(self._blocked_since) > 10_000:
            self._blocked_since = {(rec.partition, rec.offset): first}
        return self.clock() - first > BLOCK_TIMEOUT_S


def _say_dead(letters: Sequence[DeadLetter], hints: Mapping[tuple[int, int], str]) -> None:
    """Log the dead letters of a batch that committed. Ops find a county's refused events by
    these lines: said at fold time, a batch then refused (another worker applied those
    offsets) or retried named dead letters never stored, or one several times."""
    for d in letters:
        metrics.observe_dead_letter(d.field)
        hint = hints.get((d.partition, d.offset), "")
        log.warning(
            "dead letter at %s:%s (%s): %s%s",
            d.partition,
            d.offset,
            d.event_id,
            d.reason,
            f" ({hint})" if hint else "",
        )


def dead_letter_sink(log: EventLog) -> Callable[[LogRecord, DeadLetter], None] | None:
    """Return what sends a refused record to the log's dead-letter topic (Kafka: the
    contract's Kafka-direct publishing), or None for a log without one (embedded). The read
    model keeps the dead letter either way."""
    send = getattr(log, "send_dead_letter", None)
    if send is None:
        return None
    return lambda rec, letter: send(rec, letter.reason, letter.event_id)


def log_settled(log: EventLog) -> Settled:
    """Return the `Settled` of a log: a partition is past `t` from an offset on when it holds
    nothing from there (records appended later are logged later) or the record there was
    logged after `t` (Kafka stamps a record's log-append time). Kafka's times are whole
    milliseconds, so many records share one, and one of the same time counts as before (it
    may be what the record names, as a township registered just before its village) unless
    it too is a Kafka-direct record known to wait for the others (`waiting`) and lies in a
    higher partition. Before, two Kafka-direct events of one millisecond waiting on each
    other's partition both stood still until BLOCK_TIMEOUT_S; now the lower partition's is
    judged first, whichever the worker read first. Judged, a waiting record is refused: it
    adds nothing the other could have waited for."""

    def settled(partition: int, t: int, at: Mapping[int, int], waiting: Mapping[int, int]) -> bool:
        for q, end in log.end_offsets().items():
            offset = at.get(q, 0)
            if q == partition or offset >= end:
                continue
            try:
                found = log.read(q, offset, 1)
            except TimeoutError:  # unreadable for now: not known to be past
                return False
            if found and _logged_before(found[0], t, partition, waiting):
                return False
        return True

    return settled


def _logged_before(rec: LogRecord, t: int, partition: int, waiting: Mapping[int, int]) -> bool:
    """Whether `rec` (of another partition) counts as logged before a Kafka-direct record
    logged at `t` in `partition`."""
    if rec.timestamp_ns != t:
        return rec.timestamp_ns < t
    return not (waiting.get(rec.partition) == rec.offset and rec.partition > partition)

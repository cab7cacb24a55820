"""What ingest takes in from the log before its first append, and its first after a failed
one, that the read model cannot tell it: the latest stamp, so its stamps go on from there,
and its own records the read model has not applied, so it checks events against them.

The read model cannot have all of ingest's records even once it is caught up: while a
Kafka-direct producer's transaction is open, a partition is read (read_committed) only up to
where that transaction starts, and ingest's records after it wait for its end (README,
Kafka-direct publishing). A restarted ingest that knew only the read model accepted a resent
one of them again, and linked the source's next event to the head before them: each forked the
source's hash chain (tests/integration/test_kafka_transaction_ingest.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from duhub.convert import InvalidEvent, chain_hash, decode_event, event_from_pb, recorded_at
from duhub.domain.events import Event
from duhub.log.base import EventLog, LogRecord, read_range
from duhub.projections.fold import fold
from duhub.projections.working_set import WorkingSet

log = logging.getLogger(__name__)

# The latest stamp is looked for in the last STAMP_TAIL offsets of each partition, then, while
# there is no record to read there (an aborted transaction's records and markers), in a stretch
# 4 times as long, up to STAMP_REACH offsets back.
STAMP_TAIL = 16
STAMP_REACH = 1 << 20
READ_RECORDS = 5000


def stamp_of(rec: LogRecord) -> int:
    """Return a record's stamp for ingest's next: a record ingest wrote carries its own, a
    Kafka-direct one the broker's append time (its value's recorded_at is the client's,
    ignored), and the broker's time counts for both (ahead of ingest's when its clock is)."""
    return max(recorded_at(rec), rec.timestamp_ns)


def latest_stamp(log_: EventLog) -> int:
    """Return the latest stamp among the last records of each partition (0: none)."""
    latest = 0
    for partition, end in log_.end_offsets().items():
        latest = max([latest, *map(stamp_of, last_records(log_, partition, end))])
    return latest


def last_records(log_: EventLog, partition: int, end: int) -> list[LogRecord]:
    """Return the records of the last stretch before `end` that holds any to read.

    Before, only the last 16 offsets were read: a partition ending with an aborted transaction
    of more records gave no stamp, and a restarted ingest with its clock behind stamped back in
    time."""
    reach, stop = STAMP_TAIL, end
    while stop > 0:
        start = max(0, end - reach)
        found = list(read_range(log_, partition, start, stop, READ_RECORDS))
        if found:
            return found
        if start > 0 and reach >= STAMP_REACH:
            log.warning(
                "ingest: partition %d holds no record to read in its last %d offsets (only "
                "aborted transactions and their markers); its latest stamp lies before them, "
                "unread, and this ingest's stamps may come before it if its clock is behind",
                partition,
                end - start,
            )
            return []
        stop, reach = start, reach * 4
    return []


def own_records(log_: EventLog, positions: dict[int, int]) -> Iterator[tuple[list[Event], int]]:
    """Yield, in chunks, ingest's own records from `positions` to the log's very end (also
    past an open transaction's start: ingest's are never in one), each chunk with the latest
    stamp of every record read for it."""
    events: list[Event] = []
    latest = 0
    for rec in log_.read_uncommitted(positions):
        latest = max(latest, stamp_of(rec))
        if rec.ingested:  # with the origin key, its MAC holds
            try:
                events.append(
                    event_from_pb(
                        decode_event(rec.value),
                        stored_hash=chain_hash(rec.value),
                        partition=rec.partition,
                        offset=rec.offset,
                    )
                )
            except InvalidEvent:  # not one ingest checked: the aggregator dead-letters it
                pass
        if len(events) >= READ_RECORDS:
            yield events, latest
            events = []
    if events or latest:
        yield events, latest


def take_in(
    events: list[Event],
    ws: WorkingSet,
    positions: dict[str, tuple[int, int]],
    *,
    last: bool = False,
) -> list[Event]:
    """Fold ingest's own records (partition by partition, as `own_records` reads them) into
    `ws` as the aggregator will, noting where each original stands in `positions`; return
    those still waiting, in order, for what records not read yet register (`last`: nothing
    more will be read, none waits).

    A record naming what another partition's record registers (a county's report on a village
    the city registered) waits for it, and holds the rest of its partition back behind it (its
    source's hash chain goes on in order), as the aggregator's workers do. Folded in the order
    read, it was left out as rejected: the node's resend was accepted a second time."""
    while True:
        waiting: set[int] = set()  # partitions held back
        left: list[Event] = []
        for event in events:
            if event.partition in waiting:
                left.append(event)
                continue
            verdict, _ = fold(event, ws, event.recorded_at, allow_reference=True, rollups=False)
            if verdict.missing and not last:
                waiting.add(event.partition)
                left.append(event)
            elif verdict.kind == "accepted":  # the original: a duplicate's answer names it
                positions[event.event_id] = (event.partition, event.offset)
            # (A duplicate: one the read model has meanwhile.)
        if len(left) == len(events):  # no more to take in until more is read
            return left
        events = left

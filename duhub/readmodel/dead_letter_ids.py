"""Name the dead letters an earlier version wrote without an event_id, from the log, once.

Before 2026-12-05 a record whose value parsed as a duhub.v1.Event but failed a field check
(`persons` 0) was dead-lettered with an empty event_id; this version files it under its id
(`duhub.convert.event_id_of`). A dead-letter row keeps only where its record lies, so the id is
read from the log there: the very id a replay of the log writes, and `duhub replay` finds such
a read model equal to what the log gives. Recorded in `layout` as DEAD_LETTER_IDS by the first
service that opens the read model with its log (`layout.upgrade` has no log to read).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, bindparam, select

from duhub.convert import event_id_of
from duhub.log.base import EventLog, LogRecord, read_range
from duhub.log.belongs import other_log
from duhub.readmodel import schema as s
from duhub.readmodel.layout import DEAD_LETTER_IDS, apply_once

log = logging.getLogger(__name__)

# Places of the log closer than this are read in one stretch, the records between them too:
# on Kafka a read costs 1.5-15 ms (a round trip, and the records of its batch before the place
# decoded), a record read through ~20 µs. Before, each place was a read of its own: 1,000 in a
# row took 1.5-4.2 s, now 0.05-0.1 s. The embedded log reads a record for ~8 µs and a read
# for little more, so there sparse places cost more read in stretches (1,000, 1 in 60: 0.05
# -> 0.5 s), once per read model: bounded by this gap, and small beside Kafka's seconds.
STRETCH_GAP = 64
# A stretch is read this many records a read at most, so a long one is never held whole; a
# Kafka read of this few fetches at most 1 MiB (`duhub.log.kafka.PEEK_RECORDS`), not 16.
STRETCH_PAGE = 1000


def fill_dead_letter_ids(log_: EventLog, engine: Engine) -> int:
    """Give each dead letter without an event_id the one its record in `log_` names, unless
    done before; return how many got one. Nothing is done on a log the read model was not
    built from (`other_log`): its records at those places are others'."""
    letters = s.dead_letters.c
    with engine.connect() as conn:
        if conn.execute(select(s.layout.c.name).where(s.layout.c.name == DEAD_LETTER_IDS)).first():
            return 0
        unnamed = conn.execute(
            select(letters.partition, letters.offset).where(letters.event_id == "")
        ).all()
    # Its callers refused another log already; asked again, cheaply, as a fill there would
    # file rows under another log's events for good.
    if unnamed and (why := other_log(log_, engine)):
        log.warning("dead letters left without their event ids: not this log's read model: %s", why)
        return 0
    named = _named(log_, [(p, o) for p, o in unnamed])

    def fill(conn: Connection) -> None:
        if named:
            conn.execute(
                s.dead_letters.update()
                .where(letters.partition == bindparam("p"))
                .where(letters.offset == bindparam("o"))
                .where(letters.event_id == "")
                .values(event_id=bindparam("id")),
                [{"p": p, "o": o, "id": event_id} for p, o, event_id in named],
            )

    apply_once(engine, DEAD_LETTER_IDS, fill)
    if named:
        log.info("named %d dead letters by their event ids, read from the log", len(named))
    return len(named)


def _named(log_: EventLog, places: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Return (partition, offset, event_id) for each place whose record names an event."""
    return [
        (rec.partition, rec.offset, event_id)
        for rec in records_at(log_, places)
        if (event_id := event_id_of(rec.value))
    ]


def records_at(log_: EventLog, places: list[tuple[int, int]]) -> Iterator[LogRecord]:
    """Yield the records of the log at these (partition, offset) places, in log order. One
    deleted from the log's front (retention, which duhub's topic never has) is left: a replay
    could not read it either; so is one the log holds no record at (an aborted transaction's
    place, a marker's)."""
    if not places:
        return
    starts = log_.start_offsets()
    wanted: dict[int, set[int]] = defaultdict(set)
    for p, offset in places:
        if offset >= starts.get(p, 0):
            wanted[p].add(offset)
    for p, offsets in sorted(wanted.items()):
        for start, stop in _stretches(sorted(offsets)):
            for rec in read_range(log_, p, start, stop, page=STRETCH_PAGE):
                if rec.offset in offsets:
                    yield rec


def _stretches(offsets: list[int]) -> list[tuple[int, int]]:
    """Return the [start, stop) stretches that hold the sorted `offsets`, one wherever the
    next lies more than STRETCH_GAP past the last."""
    out: list[tuple[int, int]] = []
    for offset in offsets:
        if out and offset - out[-1][1] < STRETCH_GAP:
            out[-1] = (out[-1][0], offset + 1)
        else:
            out.append((offset, offset + 1))
    return out

"""What every fill of a read model from its log shares: whether the fill was made, whether
this is the read model's log, and reading the records at the places the read model keeps.

An older build wrote rows lacking what this one keeps (a dead letter's event id or source, a
visit's campaign). Each fill reads it from the log where the row's record lies, as `duhub
replay` writes it, so such a read model stays equal to what the log gives. `log_fills.py` runs
them all, once each, recorded in `layout`, by the first service that opens the read model
with its log (`layout.upgrade` has no log to read).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import Engine, select

from duhub.log.base import EventLog, LogRecord, read_range
from duhub.log.belongs import other_log
from duhub.readmodel import schema as s

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


def made(engine: Engine, change: str) -> bool:
    """Whether the fill `change` is recorded in `layout` (made, or nothing to make)."""
    with engine.connect() as conn:
        return bool(conn.execute(select(s.layout.c.name).where(s.layout.c.name == change)).first())


def not_its_log(log_: EventLog, engine: Engine, left: str) -> bool:
    """Whether `log_` is not the one the read model was built from (`other_log`), saying what
    is `left` undone: its records at the read model's places are others', and a fill there
    would file rows under another log's events for good. The services refused another log
    already; asked again, cheaply."""
    why = other_log(log_, engine)
    if why:
        log.warning("%s: not this log's read model: %s", left, why)
    return bool(why)


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

"""Give the dead letters an earlier version wrote their source and record time, from the log,
once.

Before 2026-12-07 a dead-letter row kept where its record lies, its event id and why, but not
whose it was: nothing could list a county's refusals. The source and the time are read from the
log at that place (`convert.source_of`, `convert.recorded_at`), as `duhub replay` writes them,
so such a read model stays equal to what the log gives. The columns are added empty by
`layout.upgrade` (DEAD_LETTER_COLUMNS); they are filled here, recorded in `layout` as
DEAD_LETTER_SOURCES, by the first service that opens the read model with its log.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, bindparam, select

from duhub.convert import recorded_at, source_of
from duhub.log.base import EventLog
from duhub.log.belongs import other_log
from duhub.readmodel import schema as s
from duhub.readmodel.dead_letter_ids import records_at
from duhub.readmodel.layout import DEAD_LETTER_SOURCES, apply_once

log = logging.getLogger(__name__)


def fill_dead_letter_sources(log_: EventLog, engine: Engine) -> int:
    """Give each dead letter without a record time its source and time from `log_`, unless
    done before; return how many rows got either. Nothing is done on a log the read model
    was not built from (`other_log`), as for `fill_dead_letter_ids`."""
    letters = s.dead_letters.c
    with engine.connect() as conn:
        if conn.execute(
            select(s.layout.c.name).where(s.layout.c.name == DEAD_LETTER_SOURCES)
        ).first():
            return 0
        # Rows this build wrote since the columns came have a time (or none to read: an
        # embedded record that is no stamped Event, which reads as none again).
        unknown = conn.execute(
            select(letters.partition, letters.offset).where(letters.recorded_at.is_(None))
        ).all()
    if unknown and (why := other_log(log_, engine)):
        log.warning("dead letters left without their sources: not this log's read model: %s", why)
        return 0
    found = [
        (rec.partition, rec.offset, source_of(rec.value) or None, recorded_at(rec) or None)
        for rec in records_at(log_, [(p, o) for p, o in unknown])
    ]
    found = [f for f in found if f[2] is not None or f[3] is not None]

    def fill(conn: Connection) -> None:
        if found:
            conn.execute(
                s.dead_letters.update()
                .where(letters.partition == bindparam("p"))
                .where(letters.offset == bindparam("o"))
                .values(source=bindparam("source"), recorded_at=bindparam("at")),
                [{"p": p, "o": o, "source": src, "at": at} for p, o, src, at in found],
            )

    apply_once(engine, DEAD_LETTER_SOURCES, fill)
    if found:
        log.info("gave %d dead letters their sources and times, read from the log", len(found))
    return len(found)

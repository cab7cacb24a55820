"""Give the dead letters an earlier version wrote what this one keeps, from the log, once.

- Their event id (DEAD_LETTER_IDS): before 2026-12-05 a record whose value parsed as a
  duhub.v1.Event but failed a field check (`persons` 0) was dead-lettered with an empty
  event_id; this version files it under its id (`duhub.convert.event_id_of`).
- Their source and record time (DEAD_LETTER_SOURCES): before 2026-12-07 a row kept where its
  record lies and why, not whose it was, so nothing could list a county's refusals
  (`convert.source_of`, `convert.recorded_at`). The columns are added empty by
  `layout.upgrade` (DEAD_LETTER_COLUMNS).

A dead-letter row keeps where its record lies, so both are read there in one pass
(`log_places.records_at`), each record parsed once, each change claimed in `layout` once.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, select

from duhub.convert import event_id_of, recorded_at, source_of
from duhub.log.base import EventLog
from duhub.readmodel import schema as s
from duhub.readmodel.layout import DEAD_LETTER_IDS, DEAD_LETTER_SOURCES, apply_once
from duhub.readmodel.log_places import made, not_its_log, records_at

log = logging.getLogger(__name__)

Place = tuple[int, int]


class LettersFilled(NamedTuple):
    named: int  # rows given their event id
    sourced: int  # rows given their source or record time


def fill_dead_letters(log_: EventLog, engine: Engine) -> LettersFilled:
    """Give each dead letter without an event_id the one its record in `log_` names, and each
    without a record time its source and time, unless done before; return how many got each.
    Nothing is done on a log the read model was not built from (`not_its_log`)."""
    letters = s.dead_letters.c
    ids, sources = not made(engine, DEAD_LETTER_IDS), not made(engine, DEAD_LETTER_SOURCES)
    if not ids and not sources:
        return LettersFilled(0, 0)
    with engine.connect() as conn:
        unnamed: set[Place] = set()
        unknown: set[Place] = set()
        if ids:
            unnamed = _places(conn, letters.event_id == "")
        if sources:
            # Rows this build wrote since the columns came have a time (or none to read: an
            # embedded record that is no stamped Event, which reads as none again).
            unknown = _places(conn, letters.recorded_at.is_(None))
    if (unnamed or unknown) and not_its_log(log_, engine, "dead letters left as written"):
        return LettersFilled(0, 0)
    named: list[dict[str, object]] = []
    sourced: list[dict[str, object]] = []
    for rec in records_at(log_, sorted(unnamed | unknown)):
        place = (rec.partition, rec.offset)
        if place in unnamed and (event_id := event_id_of(rec.value)):
            named.append({"p": rec.partition, "o": rec.offset, "id": event_id})
        if place in unknown:
            src, at = source_of(rec.value) or None, recorded_at(rec) or None
            if src is not None or at is not None:
                sourced.append({"p": rec.partition, "o": rec.offset, "source": src, "at": at})

    def name(conn: Connection) -> None:
        if named:
            conn.execute(
                s.dead_letters.update()
                .where(letters.partition == bindparam("p"))
                .where(letters.offset == bindparam("o"))
                .where(letters.event_id == "")
                .values(event_id=bindparam("id")),
                named,
            )

    def source(conn: Connection) -> None:
        if sourced:
            conn.execute(
                s.dead_letters.update()
                .where(letters.partition == bindparam("p"))
                .where(letters.offset == bindparam("o"))
                .values(source=bindparam("source"), recorded_at=bindparam("at")),
                sourced,
            )

    if ids:
        apply_once(engine, DEAD_LETTER_IDS, name)
    if sources:
        apply_once(engine, DEAD_LETTER_SOURCES, source)
    if named or sourced:
        log.info(
            "gave dead letters from the log: %d their event ids, %d their sources and times",
            len(named),
            len(sourced),
        )
    return LettersFilled(len(named), len(sourced))


def _places(conn: Connection, where: ColumnElement[bool]) -> set[Place]:
    """The places of the dead letters `where` holds for."""
    letters = s.dead_letters.c
    return {(p, o) for p, o in conn.execute(select(letters.partition, letters.offset).where(where))}

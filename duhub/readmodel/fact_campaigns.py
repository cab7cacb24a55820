"""Give the visits an earlier version counted their campaign and group, from the log, once.

Before 2026-12-07 a fact kept a visit's unit, area and times but not the campaign and group it
named: nothing could count a campaign's visits per group. They are read from the log where each
visit's event lies (`events_seen.partition`, `offset`), as `duhub replay` writes them, so such
a read model stays equal to what the log gives. The columns are added empty by
`layout.upgrade` (FACT_CAMPAIGN_COLUMNS); they are filled here, recorded in `layout` as
FACT_CAMPAIGNS, by the first service that opens the read model with its log. Figures per group
are refused until then (`group_figures.py`).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, bindparam

from duhub.convert import InvalidEvent, decode_event
from duhub.log.base import EventLog
from duhub.readmodel import schema as s
from duhub.readmodel.engine import plain_rows
from duhub.readmodel.layout import FACT_CAMPAIGNS, apply_once
from duhub.readmodel.log_places import made, not_its_log, records_at

log = logging.getLogger(__name__)

# The places of the visits whose facts name no campaign (of an earlier version, or of none),
# a chunk at a time by fact id: a read model of 10M events holds millions of visits, and
# holding every place at once took more memory than the worker is given.
_UNNAMED = (
    "SELECT e.partition, e.offset, f.id FROM facts f "
    "JOIN events_seen e ON e.event_id = f.event_id "
    "WHERE f.metric = 'visits' AND f.campaign_id IS NULL AND f.id > ? "
    "ORDER BY f.id LIMIT ?"
)
CHUNK = 50_000


def fill_fact_campaigns(log_: EventLog, engine: Engine, chunk: int = CHUNK) -> int:
    """Give each visit fact without a campaign the campaign and group its event in `log_`
    names, unless done before; return how many facts got one. Nothing is done on a log the
    read model was not built from (`not_its_log`).

    Each chunk is written in its own transaction, and the change claimed once all are: a
    process stopped midway, or two at once, write the same values again, nothing else."""
    if made(engine, FACT_CAMPAIGNS):
        return 0
    filled, after, checked = 0, 0, False
    while True:
        with engine.connect() as conn:
            rows = plain_rows(conn, _UNNAMED, (after, chunk))
        if not rows:
            break
        after = rows[-1][2]
        if not checked and not_its_log(log_, engine, "visits left without their campaigns"):
            return 0
        checked = True
        found = _named(log_, rows)
        if found:
            with engine.begin() as conn:
                _fill(conn, found)
        filled += len(found)
    apply_once(engine, FACT_CAMPAIGNS, lambda conn: None)
    if filled:
        log.info("gave %d visit facts their campaigns and groups, read from the log", filled)
    return filled


def _named(log_: EventLog, rows: list) -> list[tuple[int, str, str]]:  # type: ignore[type-arg]
    """(fact id, campaign, group) of the rows' visits whose event in the log names one."""
    unnamed: dict[tuple[int, int], list[int]] = {}
    for p, o, fact_id in rows:
        unnamed.setdefault((p, o), []).append(fact_id)
    found = []
    for rec in records_at(log_, list(unnamed)):
        try:
            msg = decode_event(rec.value or b"")
        except InvalidEvent:
            continue  # applied from it, so never so; left as it is
        visit = msg.supervision_visit
        if msg.WhichOneof("payload") == "supervision_visit" and visit.campaign_id:
            for fact_id in unnamed[(rec.partition, rec.offset)]:
                found.append((fact_id, visit.campaign_id, visit.group_id))
    return found


def _fill(conn: Connection, found: list[tuple[int, str, str]]) -> None:
    f = s.facts.c
    conn.execute(
        s.facts.update()
        .where(f.id == bindparam("fact"))
        .values(campaign_id=bindparam("campaign"), group_id=bindparam("group")),
        [{"fact": i, "campaign": c, "group": g} for i, c, g in found],
    )

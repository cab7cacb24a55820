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

from sqlalchemy import Connection, Engine, bindparam, select

from duhub.convert import InvalidEvent, decode_event
from duhub.log.base import EventLog
from duhub.log.belongs import other_log
from duhub.readmodel import schema as s
from duhub.readmodel.dead_letter_ids import records_at
from duhub.readmodel.engine import plain_rows
from duhub.readmodel.layout import FACT_CAMPAIGNS, apply_once

log = logging.getLogger(__name__)

# The places of the visits whose facts name no campaign: of an earlier version, or of none.
_UNNAMED = (
    "SELECT e.partition, e.offset, f.id FROM facts f "
    "JOIN events_seen e ON e.event_id = f.event_id "
    "WHERE f.metric = 'visits' AND f.campaign_id IS NULL"
)


def fill_fact_campaigns(log_: EventLog, engine: Engine) -> int:
    """Give each visit fact without a campaign the campaign and group its event in `log_`
    names, unless done before; return how many facts got one. Nothing is done on a log the
    read model was not built from (`other_log`), as for `fill_dead_letter_ids`."""
    with engine.connect() as conn:
        if conn.execute(select(s.layout.c.name).where(s.layout.c.name == FACT_CAMPAIGNS)).first():
            return 0
        unnamed: dict[tuple[int, int], list[int]] = {}
        for p, o, fact_id in plain_rows(conn, _UNNAMED):
            unnamed.setdefault((p, o), []).append(fact_id)
    if unnamed and (why := other_log(log_, engine)):
        log.warning("visits left without their campaigns: not this log's read model: %s", why)
        return 0
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

    def fill(conn: Connection) -> None:
        if found:
            f = s.facts.c
            conn.execute(
                s.facts.update()
                .where(f.id == bindparam("fact"))
                .values(campaign_id=bindparam("campaign"), group_id=bindparam("group")),
                [{"fact": i, "campaign": c, "group": g} for i, c, g in found],
            )

    apply_once(engine, FACT_CAMPAIGNS, fill)
    if found:
        log.info("gave %d visit facts their campaigns and groups, read from the log", len(found))
    return len(found)

"""Compare a replayed read model with the live one at the same log positions.

The live read model moves on while a replay runs (its aggregator keeps applying what ingest
appends), so the two are compared where the live one stands: its positions and tables are
read in one snapshot, and the replayed one is brought to exactly those positions first. Where
the live one is behind what was replayed (its aggregator is catching up), the comparison waits
for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from duhub.log.base import EventLog
from duhub.readmodel.digest import FigureDiff, figure_diffs, table_digests
from duhub.readmodel.engine import snapshot
from duhub.readmodel.writer import positions_in, read_positions
from services.aggregate.replay import ReplayTally, replay

POLL_S = 0.2


class NotComparable(RuntimeError):
    """No common state to compare: the live read model stayed behind the replayed one, or
    stands past the end of the log (it was built from another)."""


@dataclass(slots=True)
class Comparison:
    positions: dict[int, int]  # where both stood when compared
    replayed: dict[str, str]  # table digests
    live: dict[str, str]
    caught_up: int  # records replayed to reach the live positions
    differing_tables: list[str] = field(default_factory=list)
    differing_figures: list[FigureDiff] = field(default_factory=list)
    caught_up_tally: ReplayTally = field(default_factory=ReplayTally)  # what those were

    @property
    def equal(self) -> bool:
        return not self.differing_tables


def compare_with_live(
    log: EventLog, replayed: Engine, live: Engine, *, wait_s: float, full_is_final: bool = False
) -> Comparison:
    """Compare `replayed` (replayed from `log`) with `live` where `live` stands now, waiting
    up to `wait_s` for a live read model behind it (`full_is_final`: as `replay`'s)."""
    deadline = time.monotonic() + wait_s
    while True:
        with snapshot(live) as conn:
            at = _moved(positions_in(conn))
            mine = _moved(read_positions(replayed))
            behind = {p: (at.get(p, 0), o) for p, o in mine.items() if at.get(p, 0) < o}
            if not behind:
                caught = replay(log, replayed, upto=at, full_is_final=full_is_final)
                if _moved(read_positions(replayed)) != at:
                    raise NotComparable(
                        f"the live read model stands at {at}, past the end of this log: "
                        "it was built from another log, or records were removed from this "
                        "one since ('duhub audit verify' names what changed)"
                    )
                found = _compare(conn, replayed, at, caught.done)
                found.caught_up_tally = caught.tally
                return found
        if time.monotonic() >= deadline:
            raise NotComparable(
                f"the live read model stayed behind the replayed one for {wait_s:g} s "
                f"(partition: (live, replayed) {behind}); compare again once it caught up. "
                "If no hub is applying this log, it holds records the read model never saw "
                "(one inserted mid-log shifts those after it: 'duhub audit verify' names it)"
            )
        time.sleep(POLL_S)


def _moved(positions: dict[int, int]) -> dict[int, int]:
    """Positions without the partitions still at 0 (one read model may list them, the other
    not)."""
    return {p: o for p, o in positions.items() if o}


def _compare(conn: Connection, replayed: Engine, at: dict[int, int], caught_up: int) -> Comparison:
    mine, theirs = table_digests(replayed), table_digests(conn)
    tables = sorted(t for t in mine if mine[t] != theirs.get(t))
    diffs = figure_diffs(conn, replayed) if tables else []
    return Comparison(at, mine, theirs, caught_up, tables, diffs)

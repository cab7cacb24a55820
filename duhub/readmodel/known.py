"""The moment of the read model's knowledge: the latest record time its figures hold.

An audit report records it as its as-of: asked again with it, every figure reads as then,
however many events came since (the contract's as_of counts the events recorded at or
before it)."""

from __future__ import annotations

from sqlalchemy import Engine

from duhub.domain.events import Nanos
from duhub.readmodel.engine import plain_rows

# Facts carry every counted figure (rectifications too), units the rows a report lists: an
# as-of before a unit's record time leaves it out. One subquery each: a bare max() of the
# facts is read from their record-time index (SQLite reads both of one SELECT by scanning).
KNOWN_AT_SQL = "SELECT (SELECT max(recorded_at) FROM facts), (SELECT max(recorded_at) FROM units)"


def known_at(engine: Engine) -> Nanos | None:
    """Return the latest record time among the facts and units held (None: none held)."""
    with engine.connect() as conn:
        ((facts, units),) = plain_rows(conn, KNOWN_AT_SQL)
    held = [int(t) for t in (facts, units) if t is not None]
    return max(held) if held else None

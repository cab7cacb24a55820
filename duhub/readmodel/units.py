"""Units in the read model: scopes, subtrees, listings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, func, select

from duhub.domain.events import Level
from duhub.domain.model import Unit
from duhub.readmodel import schema as s
from duhub.readmodel.engine import plain_rows
from duhub.readmodel.knowledge import unit_from_row


@dataclass(frozen=True, slots=True)
class Scope:
    unit_id: str
    name: str
    path: str


class UnknownUnit(LookupError):
    def __init__(self, field: str, unit_id: str) -> None:
        super().__init__(
            f"{field}: unknown unit '{unit_id}'"
            if unit_id
            # No city: nothing applied yet, or a --db that is not the hub's (a mistyped
            # sqlite path is made anew, empty). "unknown unit '(the city)'" named no unit.
            else f"{field}: the read model holds no units (nothing applied to it yet; is "
            "it the hub's?)"
        )


def resolve_scope(conn: Connection, unit_id: str, field: str = "scope_unit_id") -> Scope:
    """Return the scope for a unit id; empty means the city. (Asked by every answer: a plain
    statement, `plain_rows`.)"""
    sql = "SELECT unit_id, name, path FROM units WHERE "
    if unit_id:
        rows = plain_rows(conn, sql + "unit_id = ?", (unit_id,))
    else:
        rows = plain_rows(conn, sql + "level = ? ORDER BY unit_id LIMIT 1", (int(Level.CITY),))
    if not rows:
        raise UnknownUnit(field, unit_id)
    return Scope(*rows[0])


def subtree_clause(column, path: str) -> ColumnElement[bool]:  # type: ignore[no-untyped-def]
    lo, hi = s.subtree_range(path)
    return and_(column >= lo, column < hi)


def list_units(conn: Connection, parent_id: str) -> list[tuple[Unit, int]]:
    """Return the children of a unit (the cities when empty), each with its child count."""
    child = s.units.alias("child")
    count = select(func.count()).where(child.c.parent_id == s.units.c.unit_id).scalar_subquery()
    rows = conn.execute(
        select(s.units, count.label("n"))
        .where(s.units.c.parent_id == parent_id)
        .order_by(s.units.c.unit_id)
    ).all()
    return [(unit_from_row(r), r.n) for r in rows]


def get_unit(conn: Connection, unit_id: str) -> tuple[Unit, int] | None:
    child = s.units.alias("child")
    count = select(func.count()).where(child.c.parent_id == s.units.c.unit_id).scalar_subquery()
    r = conn.execute(select(s.units, count.label("n")).where(s.units.c.unit_id == unit_id)).first()
    return None if r is None else (unit_from_row(r), r.n)

"""Units in the read model: scopes, subtrees, listings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, func, select

from duhub.domain.events import Level
from duhub.domain.model import Unit
from duhub.readmodel import schema as s
from duhub.readmodel.knowledge import unit_from_row


@dataclass(frozen=True, slots=True)
class Scope:
    unit_id: str
    name: str
    path: str


class UnknownUnit(LookupError):
    def __init__(self, field: str, unit_id: str) -> None:
        super().__init__(f"{field}: unknown unit '{unit_id}'")


def resolve_scope(conn: Connection, unit_id: str, field: str = "scope_unit_id") -> Scope:
    """Return the scope for a unit id; empty means the city."""
    q = select(s.units.c.unit_id, s.units.c.name, s.units.c.path)
    q = (
        q.where(s.units.c.unit_id == unit_id)
        if unit_id
        else q.where(s.units.c.level == int(Level.CITY)).order_by(s.units.c.unit_id)
    )
    row = conn.execute(q).first()
    if row is None:
        raise UnknownUnit(field, unit_id or "(the city)")
    return Scope(row.unit_id, row.name, row.path)


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

"""Scope checks against the read model's hierarchy: which units lie in whose subtree."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, select

from duhub.readmodel import schema as s


class UnitPaths:
    """unit id -> its ids from the root down (inclusive), or None when unknown.

    A unit's place never changes once registered, so known paths are kept; unknown ids are
    asked again (the unit may be registered meanwhile).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._known: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def __call__(self, unit_id: str) -> tuple[str, ...] | None:
        if not unit_id:
            return None
        with self._lock:
            found = self._known.get(unit_id)
        if found is not None:
            return found
        with self.engine.connect() as conn:
            path = conn.execute(
                select(s.units.c.path).where(s.units.c.unit_id == unit_id)
            ).scalar_one_or_none()
        if path is None:
            return None
        found = tuple(p for p in path.split("/") if p)
        with self._lock:
            if len(self._known) < 100_000:
                self._known[unit_id] = found
        return found

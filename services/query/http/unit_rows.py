"""The units the dashboard names, with their parents' names, kept while the read model stays as
it was when they were read.

A coverage at an early as_of names ~1,159 uncovered targets; asked through SQLAlchemy 500 ids at
a time, a row object each, and their parents again, that took ~70% of its 16 ms. They are
kept as the query service keeps its answers (services/query/answers): until a commit moves the
applied log positions, so a read model rebuilt under the server never answers with the names
of the one before; and read again, when asked after one, in one plain statement with the
parent's name joined in.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Engine

from duhub.readmodel.knowledge import lookup
from duhub.readmodel.writer import read_positions
from duhub.v1 import events_pb2 as epb

Json = dict[str, Any]
# (name, level, parentId, sample, parentName): ~450 bytes a unit kept, with its id and strings.
Row = tuple[str, str, str, bool, str]

# Units kept at most (~45 MB): every uncovered target of a 100,000-target campaign named.
MAX_UNITS = 100_000
_SQL = (
    "SELECT u.unit_id, u.name, u.level, u.parent_id, u.sample, p.name FROM units u "
    "LEFT JOIN units p ON p.unit_id = u.parent_id WHERE u.unit_id {keys}"
)


class UnitRows:
    """Up to `max_units` units' rows, read at one set of log positions; the first kept go
    first."""

    def __init__(self, engine: Engine, max_units: int = MAX_UNITS) -> None:
        self.engine = engine
        self.max_units = max_units
        self._lock = threading.Lock()
        self._version: tuple[tuple[int, int], ...] | None = None
        self._rows: dict[str, Row] = {}

    def named(self, unit_ids: Sequence[str]) -> dict[str, Json]:
        """Return id -> {unitId, name, level, parentId, sample, parentName} for these units,
        in their order, each once; a unit the read model lacks is named by its id."""
        wanted = list(dict.fromkeys(unit_ids))
        rows = self._get(wanted)
        out: dict[str, Json] = {}
        for unit_id in wanted:
            row = rows.get(unit_id)
            if row is None:
                out[unit_id] = {
                    "unitId": unit_id,
                    "name": unit_id,
                    "parentId": "",
                    "level": "LEVEL_UNSPECIFIED",
                    "sample": False,
                    "parentName": "",
                }
                continue
            name, level, parent_id, sample, parent_name = row
            out[unit_id] = {
                "unitId": unit_id,
                "name": name,
                "level": level,
                "parentId": parent_id,
                "sample": sample,
                "parentName": parent_name,
            }
        return out

    def _get(self, unit_ids: list[str]) -> dict[str, Row]:
        version = tuple(sorted(read_positions(self.engine).items()))
        with self._lock:
            if version != self._version:
                self._version = version
                self._rows = {}
            kept = self._rows
        found = {u: row for u in unit_ids if (row := kept.get(u)) is not None}
        missing = [u for u in unit_ids if u and u not in found]
        if not missing:
            return found
        # Read outside the lock, possibly from a later state than `version`: only fresher, and
        # kept only while no commit is seen.
        read = self._read(missing)
        found.update(read)
        with self._lock:
            if version == self._version and len(read) <= self.max_units:
                self._rows.update(read)
                excess = len(self._rows) - self.max_units
                for gone in list(islice(self._rows, max(excess, 0))):
                    del self._rows[gone]
        return found

    def _read(self, unit_ids: list[str]) -> dict[str, Row]:
        with self.engine.connect() as conn:
            found = lookup(conn, _SQL, unit_ids)
        return {
            unit_id: (name, epb.Level.Name(level), parent_id, bool(sample), parent_name or "")
            for unit_id, name, level, parent_id, sample, parent_name in found
        }

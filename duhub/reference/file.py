"""A deployment's own reference hierarchy (`--reference FILE`): read and checked whole before
anything is opened, so a bad file is refused at start and nothing of it is appended."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from duhub.convert import InvalidEvent, content_digest, event_from_pb
from duhub.domain.events import Event
from duhub.domain.knowledge import EmptyKnowledge, Knowledge
from duhub.projections.fold import fold
from duhub.projections.working_set import WorkingSet
from duhub.readmodel.reference import Mark, fingerprint, peek_mark
from duhub.reference import UNIT_FIELDS, Reference, events_of
from duhub.v1 import events_pb2 as pb

# Event ids `ref:own:UNIT`: never those of the shipped file's (`ref:yichang:UNIT`), so a log
# holding one is never taken for holding the other.
OWN = "own"
LEVELS = ("LEVEL_CITY", "LEVEL_COUNTY", "LEVEL_TOWNSHIP", "LEVEL_VILLAGE")
_STRINGS = ("unit_id", "parent_id", "level", "name", "kind")
_PAYLOAD = "org_unit_registered."


# The version of the rules a reference unit passes and of how a file's units become events.
# Raise it with any change to either: a start then checks an unchanged file whole once more
# rather than trusting a fingerprint taken under the old rules (which may have been laxer).
REFERENCE_RULES = 1


def reference_from_file(path: str, database: str = "") -> Reference:
    """Return the file's hierarchy, or raise ValueError `--reference PATH: where: why`.

    Each unit is checked by the rules unless the read model at `database` (read, not
    opened for writing) holds a fingerprint of exactly these events, checked by these
    rules: a country's 640,800 units took 26-30 s of every start, the same file each time."""
    origin = f"--reference {path}"
    try:
        units = _units(path)
        for i, unit in enumerate(units):
            _check_shape(i, unit)
        events = events_of(units, OWN)
        # Vouched for: the same events as those loaded and checked, by these rules, before.
        digests = _vouched(events, peek_mark(database)) if database else ()
        if not digests:
            _check_events(events)
    except ValueError as e:
        raise ValueError(f"{origin}: {e}") from None
    return Reference(origin, tuple(events), REFERENCE_RULES, digests)


def _vouched(events: Sequence[pb.Event], mark: Mark | None) -> tuple[bytes, ...]:
    """Return the events' digests when `mark` vouches for all of them, checked by these
    rules; else (). The fingerprint covers each event's id, seq and content, so equal ones
    mean the same units in the same order (the bytes of the file may differ: `kind`, spaces,
    key order, which the rules are not asked about)."""
    if mark is None or mark.units != len(events) or mark.rules != REFERENCE_RULES:
        return ()
    digests = tuple(content_digest(e) for e in events)
    return digests if fingerprint(digests) == mark.fingerprint else ()


def _units(path: str) -> list[Any]:
    try:
        # utf-8-sig: a file saved by an editor that starts it with a byte order mark.
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(doc, dict):
        raise ValueError('must be an object {"about": "…", "units": […]}')
    extra = sorted(set(doc) - {"about", "units"})
    if extra:
        raise ValueError(f"'{extra[0]}': not a key of a reference file (about, units)")
    units = doc.get("units")
    if not isinstance(units, list):
        raise ValueError("units: must be a list of units")
    if not units:
        raise ValueError("units: no unit (the city comes first, then the units under it)")
    return units


def _label(i: int, unit: Any) -> str:
    uid = unit.get("unit_id") if isinstance(unit, dict) else None
    return f"units[{i}] ('{uid}')" if isinstance(uid, str) and uid else f"units[{i}]"


def _check_shape(i: int, unit: Any) -> None:
    """Refuse what the rules cannot be asked about: not a unit's keys, or not their types."""
    if not isinstance(unit, dict):
        raise ValueError(f"units[{i}]: must be an object (unit_id, parent_id, level, name, …)")
    where = _label(i, unit)
    for key, value in unit.items():
        if key not in UNIT_FIELDS:
            raise ValueError(f"{where}: {key}: not a field of a unit ({', '.join(UNIT_FIELDS)})")
        if key in _STRINGS and not isinstance(value, str):
            raise ValueError(f"{where}: {key}: must be a string")
        if key not in _STRINGS and not isinstance(value, bool):
            raise ValueError(f"{where}: {key}: must be true or false")
    if unit.get("level", "") not in LEVELS:
        got = f" (got '{unit['level']}')" if unit.get("level") else ""
        raise ValueError(f"{where}: level: must be one of {', '.join(LEVELS)}{got}")


def _check_events(events: Sequence[pb.Event]) -> None:
    """Check every unit as ingest checks any event (ids, names, levels, parents first), over
    an empty hub; and that there is one city, the root the hub's figures are asked for."""
    seen: dict[str, int] = {}
    city = -1
    decoded = []
    for i, msg in enumerate(events):
        unit = msg.org_unit_registered
        where = f"units[{i}] ('{unit.unit_id}')" if unit.unit_id else f"units[{i}]"
        if unit.unit_id in seen:
            raise ValueError(f"{where}: unit_id: already units[{seen[unit.unit_id]}]")
        seen[unit.unit_id] = i
        if unit.level == pb.LEVEL_CITY:
            if city >= 0:
                first = events[city].org_unit_registered.unit_id
                raise ValueError(
                    f"{where}: level: a reference holds one city ('{first}' is units[{city}])"
                )
            city = i
        try:
            decoded.append(event_from_pb(msg, recorded_at=0))
        except InvalidEvent as e:
            raise ValueError(f"{where}: {unit_reason(e.reason)}") from None
    refused = check_units(decoded, EmptyKnowledge())
    if refused is not None:
        raise ValueError(refused)


def check_units(events: Sequence[Event], base: Knowledge, first: int = 0) -> str | None:
    """Return why the first of these reference events the rules refuse over `base` is
    refused (`units[INDEX] ('ID'): field: reason`; INDEX counts from `first`), or None."""
    ws = WorkingSet(base)
    for i, event in enumerate(events, start=first):
        # Their own event time as the clock: reference events are never in the future.
        verdict, _ = fold(event, ws, event.occurred_at, allow_reference=True, rollups=False)
        if verdict.kind != "accepted":
            uid = event.payload.unit_id  # type: ignore[union-attr]
            return f"units[{i}] ('{uid}'): {unit_reason(verdict.reason)}"
    return None


def unit_reason(reason: str) -> str:
    """Return a rule's reason with the unit's field named as in the file (`parent_id: …`)."""
    return reason.removeprefix(_PAYLOAD)

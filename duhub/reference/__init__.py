"""Reference data the hub loads into an empty log: the shipped Yichang hierarchy, or a
deployment's own (`--reference FILE`, duhub.reference.file)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from google.protobuf.timestamp_pb2 import Timestamp

from duhub.domain.events import REFERENCE_SOURCE
from duhub.v1 import events_pb2 as pb

# Reference events describe standing facts; they take one fixed, early event time.
REFERENCE_TIME = "2020-01-01T00:00:00Z"
# What a unit of a reference file may hold: the OrgUnitRegistered fields, and `kind` (a note
# for people: district, county, county-level city), which is not loaded.
UNIT_FIELDS = ("unit_id", "parent_id", "level", "name", "sample", "local_code", "kind")


@dataclass(frozen=True, slots=True)
class Reference:
    """The hierarchy a hub loads: its events, parents first, and where it comes from (for
    messages: the option that names it); the version of the rules its units were checked by
    (0: not checked, the shipped file), which the read model's mark keeps; and the events'
    digests where already made (else empty)."""

    origin: str
    events: tuple[pb.Event, ...]
    rules: int = 0
    digests: tuple[bytes, ...] = ()


def reference_units(name: str = "yichang") -> list[dict]:  # type: ignore[type-arg]
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return list(json.loads(text)["units"])


def events_of(units: list[dict], name: str) -> list[pb.Event]:  # type: ignore[type-arg]
    """Return OrgUnitRegistered events for the units in order, their ids `ref:NAME:UNIT`.

    Built field by field, not through json_format.ParseDict: that took ~28 µs a unit, 18 s of
    every start for a country's 640,800 (the same bytes: tests/unit/test_reference_file.py)."""
    occurred_at = Timestamp()
    occurred_at.FromJsonString(REFERENCE_TIME)
    out = []
    for seq, unit in enumerate(units, start=1):
        payload = {k: v for k, v in unit.items() if k != "kind"}
        payload["level"] = pb.Level.Value(payload["level"])
        out.append(
            pb.Event(
                # A unit without one is refused by the rules' check after, as an empty one.
                event_id=f"ref:{name}:{unit.get('unit_id', '')}",
                source=REFERENCE_SOURCE,
                seq=seq,
                occurred_at=occurred_at,
                org_unit_registered=pb.OrgUnitRegistered(**payload),
            )
        )
    return out


def reference_events(name: str = "yichang") -> list[pb.Event]:
    """Return OrgUnitRegistered events for the shipped hierarchy, parents first."""
    return events_of(reference_units(name), name)


def shipped() -> Reference:
    """The reference a hub loads without --reference: Yichang, sample townships included."""
    return Reference("--reference (not given: the shipped yichang.json)", tuple(reference_events()))

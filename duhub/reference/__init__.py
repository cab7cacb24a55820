"""Reference data the hub loads into an empty log: the Yichang hierarchy."""

from __future__ import annotations

import json
from importlib import resources

from google.protobuf import json_format

from duhub.domain.events import REFERENCE_SOURCE
from duhub.v1 import events_pb2 as pb

# Reference events describe standing facts; they take one fixed, early event time.
REFERENCE_TIME = "2020-01-01T00:00:00Z"


def reference_units(name: str = "yichang") -> list[dict]:  # type: ignore[type-arg]
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return list(json.loads(text)["units"])


def reference_events(name: str = "yichang") -> list[pb.Event]:
    """Return OrgUnitRegistered events for the reference hierarchy, parents first."""
    out = []
    for seq, unit in enumerate(reference_units(name), start=1):
        payload = {k: v for k, v in unit.items() if k != "kind"}
        msg = json_format.ParseDict(
            {
                "event_id": f"ref:{name}:{unit['unit_id']}",
                "source": REFERENCE_SOURCE,
                "seq": seq,
                "occurred_at": REFERENCE_TIME,
                "org_unit_registered": payload,
            },
            pb.Event(),
        )
        out.append(msg)
    return out

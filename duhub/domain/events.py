"""Domain events as frozen values. Times are integer nanoseconds since the Unix epoch (UTC).

Made per event: `quick_init` constructs them ~2× faster than the frozen dataclass does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from duhub.domain.frozen import quick_init

# An area is a short lowercase key ("ecology", "fishing_ban"): the same rule for the events
# that carry one and the questions that ask for one.
AREA_RE = re.compile(r"[a-z][a-z0-9_]*")  # matched whole: "$" passes "grain\n"
MAX_AREA = 32
AREA_RULE = "must be a short lowercase key like 'ecology' or 'fishing_ban'"


def is_area(value: str) -> bool:
    return len(value) <= MAX_AREA and AREA_RE.fullmatch(value) is not None


Nanos = int

REFERENCE_SOURCE = "reference"


class Level(IntEnum):
    CITY = 1
    COUNTY = 2
    TOWNSHIP = 3
    VILLAGE = 4


class Tier(IntEnum):
    TASK_FORCE = 1
    CITY = 2
    COUNTY = 3


class TalkKind(IntEnum):
    TOP_LEADER = 1
    ADMONISHMENT = 2
    OTHER = 3


@quick_init
@dataclass(frozen=True, slots=True)
class OrgUnitRegistered:
    unit_id: str
    parent_id: str
    level: Level
    name: str
    sample: bool = False
    local_code: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class SupervisionGroup:
    group_id: str
    name: str
    tier: Tier
    target_unit_ids: tuple[str, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class CampaignLaunched:
    campaign_id: str
    name: str
    area: str
    starts_at: Nanos
    ends_at: Nanos
    groups: tuple[SupervisionGroup, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class SupervisionVisit:
    campaign_id: str
    group_id: str
    unit_id: str
    area: str
    findings: int


@quick_init
@dataclass(frozen=True, slots=True)
class ProblemFound:
    problem_id: str
    unit_id: str
    area: str
    campaign_id: str


@quick_init
@dataclass(frozen=True, slots=True)
class ProblemRectified:
    problem_id: str


@quick_init
@dataclass(frozen=True, slots=True)
class AccountabilityImposed:
    unit_id: str
    area: str
    persons: int


@quick_init
@dataclass(frozen=True, slots=True)
class SanctionImposed:
    unit_id: str
    area: str
    persons: int


@quick_init
@dataclass(frozen=True, slots=True)
class TalkHeld:
    unit_id: str
    area: str
    kind: TalkKind
    persons: int


@quick_init
@dataclass(frozen=True, slots=True)
class RecommendationIssued:
    letter_id: str
    unit_id: str
    area: str


@quick_init
@dataclass(frozen=True, slots=True)
class RegulationImproved:
    unit_id: str
    area: str
    count: int


Payload = (
    OrgUnitRegistered
    | CampaignLaunched
    | SupervisionVisit
    | ProblemFound
    | ProblemRectified
    | AccountabilityImposed
    | SanctionImposed
    | TalkHeld
    | RecommendationIssued
    | RegulationImproved
)


@quick_init
@dataclass(frozen=True, slots=True)
class Event:
    """One accepted-or-candidate event. `digest` identifies its content for de-duplication."""

    event_id: str
    source: str
    seq: int
    occurred_at: Nanos
    recorded_at: Nanos
    payload: Payload
    digest: bytes = b""
    # Set from the log: SHA-256 of the stored record (links the per-source hash chain; empty
    # for Kafka-direct events, which ingest never chained) and where the record sits.
    stored_hash: bytes = b""
    partition: int = -1
    offset: int = -1

    def stamped(self, recorded_at: Nanos) -> Event:
        """Return this event with the hub's time: `dataclasses.replace` without its field
        introspection (ingest stamps every event it takes)."""
        return Event(
            self.event_id,
            self.source,
            self.seq,
            self.occurred_at,
            recorded_at,
            self.payload,
            self.digest,
            self.stored_hash,
            self.partition,
            self.offset,
        )

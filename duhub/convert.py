"""Protobuf <-> domain at the edge, with the structural checks every event must pass.

Each failure raises `InvalidEvent` naming the field (dotted, snake_case as in the .proto) and
the reason. Checks that need the hub's state (known units, duplicates, authority) live in
`duhub.domain.rules`; both run in ingest and in the aggregator for Kafka-direct events.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from google.protobuf.timestamp_pb2 import Timestamp

from duhub.domain import events as ev
from duhub.domain.events import Event, Level, Nanos, TalkKind, Tier
from duhub.log.base import LogRecord
from duhub.v1 import events_pb2 as pb
from duhub.wire import decode, unknown_field

# Matched whole (fullmatch): "$" would match before a trailing newline, letting "a1\n" pass as
# another id than "a1" that looks the same.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")
MAX_EVENT_ID = 128
MAX_ID = 64
MAX_NAME = 200
# A group per county-level unit ('1+7+N'): a country has ~2,800 of them.
MAX_GROUPS = 10_000
MAX_TARGETS = 100_000  # in all the groups of a campaign
MAX_SEQ = 2**63 - 1  # the read model stores it as a signed 64-bit integer
MAX_COUNT = 100_000  # persons or rules in one event: far above any real figure
# Event times before 2000 are typos or zeroed clocks, not supervision records.
MIN_TIME_NS = 946_684_800 * 1_000_000_000
MAX_TIME_NS = 4_102_444_800 * 1_000_000_000  # 2100-01-01
# A reason names enum values as a client writes them (TALK_KIND_TOP_LEADER in JSON), not by
# the domain's short names (TOP_LEADER), which JSON parsing refuses.
PB_ENUMS = {Level: pb.Level, Tier: pb.Tier, TalkKind: pb.TalkKind}


class InvalidEvent(ValueError):
    # The id of the event refused, when the bytes parsed as one and it is a valid id
    # (`named_event_id`): what its dead letter is filed under. Set by the decode that read it
    # (`services.aggregate.apply.decode_record`), so the value is not parsed again for it.
    event_id = ""
    # Likewise the source it names (`named_source`): whose refusal its dead letter lists as.
    source = ""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = f"{field}: {reason}"


def decode_event(data: bytes) -> pb.Event:
    """Return the event serialized in `data`, or raise InvalidEvent naming where it is not one.

    The field is the path of the first fault (`supervision_visit.unit_id: invalid UTF-8 at
    byte 36`, `occurred_at: truncated ...`), or `event` for a fault between fields.
    """
    return decode(pb.Event, data, root="event", on_fault=lambda f: InvalidEvent(f.path, f.reason))


def event_id_of(value: bytes | None) -> str:
    """Return the event_id a record's value names: `named_event_id` of the event, when the
    value parses as a duhub.v1.Event; else "". What a dead letter is filed under."""
    try:
        msg = decode_event(value or b"")
    except InvalidEvent:
        return ""
    return named_event_id(msg)


def source_of(value: bytes | None) -> str:
    """Return the source a record's value names: `named_source` of the event, when the value
    parses as a duhub.v1.Event; else "". Whose refusal a dead letter is listed as."""
    try:
        msg = decode_event(value or b"")
    except InvalidEvent:
        return ""
    return named_source(msg)


def named_source(msg: pb.Event) -> str:
    """Return the event's source when it is a valid id, else "" (as `named_event_id`)."""
    named = msg.source
    return named if len(named) <= MAX_ID and ID_RE.fullmatch(named) else ""


def named_event_id(msg: pb.Event) -> str:
    """Return the event's id when it is a valid one, else "" (an id that may hold anything,
    NUL too, which PostgreSQL refuses to store)."""
    named = msg.event_id
    return named if len(named) <= MAX_EVENT_ID and ID_RE.fullmatch(named) else ""


def content_digest(event: pb.Event) -> bytes:
    """Return the SHA-256 of what the client sent: the hub-set fields do not take part."""
    if event.HasField("recorded_at") or event.prev_hash:
        event = _copy_without_hub_fields(event)
    return hashlib.sha256(event.SerializeToString(deterministic=True)).digest()


def _digest_if_known(event: pb.Event) -> bytes | None:
    """Return `content_digest(event)`, or None when the event holds a field this hub does not
    know: one copy serves both questions (the per-event decode is hot)."""
    copy = _copy_without_hub_fields(event)
    data = copy.SerializeToString(deterministic=True)
    copy.DiscardUnknownFields()  # recursive: nested messages too
    if copy.ByteSize() != len(data):
        return None
    return hashlib.sha256(data).digest()


def chain_hash(stored: bytes) -> bytes:
    """Return the link of the per-source hash chain: SHA-256 of a record as the log holds it."""
    return hashlib.sha256(stored).digest()


def _copy_without_hub_fields(event: pb.Event) -> pb.Event:
    copy = pb.Event()
    copy.CopyFrom(event)
    copy.ClearField("recorded_at")
    copy.ClearField("prev_hash")
    return copy


def to_nanos(ts: Timestamp) -> Nanos:
    return ts.seconds * 1_000_000_000 + ts.nanos


def from_nanos(ns: Nanos) -> Timestamp:
    ts = Timestamp()
    ts.seconds, ts.nanos = divmod(ns, 1_000_000_000)
    return ts


# Ids that passed `_id` before: units, sources, campaigns and groups recur in every event, so
# the pattern is matched once per id, not once per use (event ids, unique, are not kept).
_VALID_IDS: set[str] = set()
_VALID_IDS_MAX = 200_000


def _id(value: str, field: str, *, required: bool = True, limit: int = MAX_ID) -> str:
    if value in _VALID_IDS and len(value) <= limit:
        return value
    if not value:
        if required:
            raise InvalidEvent(field, "required")
        return value
    if len(value) > limit:
        raise InvalidEvent(field, f"longer than {limit} characters")
    if not ID_RE.fullmatch(value):
        raise InvalidEvent(field, "may hold only letters, digits and . _ : - (no spaces)")
    if limit == MAX_ID:
        if len(_VALID_IDS) >= _VALID_IDS_MAX:
            _VALID_IDS.clear()
        _VALID_IDS.add(value)
    return value


def _name(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidEvent(field, "required")
    if len(value) > MAX_NAME:
        raise InvalidEvent(field, f"longer than {MAX_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidEvent(field, "contains control characters")
    return value


# Areas that passed `_area` before: a handful recur in every event, so the pattern is matched
# once per area, as ids are (bounded the same way).
_VALID_AREAS: set[str] = set()


def _area(value: str, field: str, *, required: bool = True) -> str:
    if value in _VALID_AREAS:
        return value
    if not value:
        if required:
            raise InvalidEvent(field, "required")
        return value
    if not ev.is_area(value):
        raise InvalidEvent(field, ev.AREA_RULE)
    if len(_VALID_AREAS) >= _VALID_IDS_MAX:
        _VALID_AREAS.clear()
    _VALID_AREAS.add(value)
    return value


def _count(value: int, field: str) -> int:
    if value < 1:
        raise InvalidEvent(field, "must be at least 1")
    if value > MAX_COUNT:
        raise InvalidEvent(field, f"larger than {MAX_COUNT}")
    return value


def _time(msg: pb.Event | pb.CampaignLaunched, name: str, field: str) -> Nanos:
    ts: Timestamp = getattr(msg, name)
    nanos = ts.nanos
    ns = ts.seconds * 1_000_000_000 + nanos  # to_nanos(ts), the fields read once
    if 0 <= nanos < 1_000_000_000 and MIN_TIME_NS <= ns < MAX_TIME_NS:
        return ns
    # Presence asked only to reject: an absent time reads as zero, which is out of range.
    if not msg.HasField(name):
        raise InvalidEvent(field, "required")
    if not 0 <= nanos < 1_000_000_000:
        raise InvalidEvent(field, "nanos out of range")
    raise InvalidEvent(field, "must lie between 2000-01-01 and 2100-01-01")


# value -> member: calling an enum type (`TalkKind(value)`) takes ~5k instructions, a dict
# lookup a small part of that (the call stays for the rejection).
_MEMBERS: dict[type, dict[int, Level | Tier | TalkKind]] = {
    t: {m.value: m for m in t} for t in (Level, Tier, TalkKind)
}


def _enum(value: int, enum_type: type[Level] | type[Tier] | type[TalkKind], field: str):
    member = _MEMBERS[enum_type].get(value)
    if member is not None:
        return member
    try:
        return enum_type(value)
    except ValueError:
        names = ", ".join(PB_ENUMS[enum_type].Name(m.value) for m in enum_type)
        raise InvalidEvent(field, f"must be one of {names} (got {value})") from None


def event_from_pb(
    msg: pb.Event,
    *,
    recorded_at: Nanos | None = None,
    stored_hash: bytes = b"",
    partition: int = -1,
    offset: int = -1,
) -> Event:
    """Return the domain event for a protobuf event, or raise InvalidEvent.

    The keywords carry what the log knows of a stored record (its hub time when the event
    has none, its chain hash, its place), so the event is built once.
    """
    # Fields this hub does not know (a newer sender's, or garbled bytes that still parse)
    # would be kept in the log yet mean nothing to it: refuse them rather than drop them.
    digest = _digest_if_known(msg)
    if digest is None:
        unknown = unknown_field(msg, root="event")
        if unknown is None:  # cannot happen: the same sizes are compared
            raise InvalidEvent("event", "holds a field this hub does not know")
        raise InvalidEvent(unknown.path, unknown.reason)
    event_id = _id(msg.event_id, "event_id", limit=MAX_EVENT_ID)
    source = _id(msg.source, "source")
    seq = msg.seq
    if seq < 1:
        raise InvalidEvent("seq", "required, at least 1")
    if seq > MAX_SEQ:
        raise InvalidEvent("seq", f"larger than {MAX_SEQ}")
    occurred_at = _time(msg, "occurred_at", "occurred_at")
    if recorded_at is None:
        # An absent stamp reads as zero: the same 0 as before, without asking for presence.
        ts = msg.recorded_at
        recorded_at = ts.seconds * 1_000_000_000 + ts.nanos
    kind = msg.WhichOneof("payload")
    if kind is None:
        raise InvalidEvent("payload", "exactly one payload is required")
    payload = _PAYLOADS[kind](getattr(msg, kind), kind)
    # Positional: matching ten keywords cost more than setting the fields.
    return Event(
        event_id,
        source,
        seq,
        occurred_at,
        recorded_at or 0,
        payload,
        digest,
        stored_hash,
        partition,
        offset,
    )


def _org_unit(m: pb.OrgUnitRegistered, f: str) -> ev.OrgUnitRegistered:
    level = _enum(m.level, Level, f"{f}.level")
    parent_id = _id(m.parent_id, f"{f}.parent_id", required=level != Level.CITY)
    if level == Level.CITY and parent_id:
        raise InvalidEvent(f"{f}.parent_id", "must be empty for the city")
    return ev.OrgUnitRegistered(
        unit_id=_id(m.unit_id, f"{f}.unit_id"),
        parent_id=parent_id,
        level=level,
        name=_name(m.name, f"{f}.name"),
        sample=m.sample,
        local_code=m.local_code,
    )


def _campaign(m: pb.CampaignLaunched, f: str) -> ev.CampaignLaunched:
    starts_at = _time(m, "starts_at", f"{f}.starts_at")
    ends_at = _time(m, "ends_at", f"{f}.ends_at")
    if ends_at <= starts_at:
        raise InvalidEvent(f"{f}.ends_at", "must be after starts_at")
    if not m.groups:
        raise InvalidEvent(f"{f}.groups", "at least one group is required")
    if len(m.groups) > MAX_GROUPS:
        raise InvalidEvent(f"{f}.groups", f"more than {MAX_GROUPS} groups")
    total = 0
    for i, g in enumerate(m.groups):
        total += len(g.target_unit_ids)
        if total > MAX_TARGETS:
            raise InvalidEvent(
                f"{f}.groups[{i}].target_unit_ids",
                f"more than {MAX_TARGETS} targets in all the groups of the campaign",
            )
    groups = []
    seen_groups: set[str] = set()
    for i, g in enumerate(m.groups):
        gf = f"{f}.groups[{i}]"
        group_id = _id(g.group_id, f"{gf}.group_id")
        if group_id in seen_groups:
            raise InvalidEvent(f"{gf}.group_id", f"'{group_id}' appears twice")
        seen_groups.add(group_id)
        targets = tuple(g.target_unit_ids)
        for j, t in enumerate(targets):
            # `_id`'s own first test, inline: a campaign names thousands of known ids, and
            # their field names are only needed to reject one.
            if t not in _VALID_IDS or len(t) > MAX_ID:
                _id(t, f"{gf}.target_unit_ids[{j}]")
        if len(set(targets)) != len(targets):
            raise InvalidEvent(f"{gf}.target_unit_ids", "a target appears twice")
        groups.append(
            ev.SupervisionGroup(
                group_id=group_id,
                name=_name(g.name, f"{gf}.name"),
                tier=_enum(g.tier, Tier, f"{gf}.tier"),
                target_unit_ids=targets,
            )
        )
    return ev.CampaignLaunched(
        campaign_id=_id(m.campaign_id, f"{f}.campaign_id"),
        name=_name(m.name, f"{f}.name"),
        area=_area(m.area, f"{f}.area"),
        starts_at=starts_at,
        ends_at=ends_at,
        groups=tuple(groups),
    )


# The decoders of the frequent payloads name their fields as literals (`f` is always the
# payload's name): formatted per event, the names cost more than most checks. They build the
# payload with positional arguments, in field order (matching keywords cost more too).
def _visit(m: pb.SupervisionVisit, f: str) -> ev.SupervisionVisit:
    campaign_id = _id(m.campaign_id, "supervision_visit.campaign_id", required=False)
    return ev.SupervisionVisit(
        campaign_id,
        _id(m.group_id, "supervision_visit.group_id", required=bool(campaign_id)),
        _id(m.unit_id, "supervision_visit.unit_id"),
        _area(m.area, "supervision_visit.area"),
        _findings(m.findings, "supervision_visit.findings"),
    )


def _findings(value: int, field: str) -> int:
    if value > MAX_COUNT:
        raise InvalidEvent(field, f"larger than {MAX_COUNT}")
    return value


def _problem_found(m: pb.ProblemFound, f: str) -> ev.ProblemFound:
    return ev.ProblemFound(
        _id(m.problem_id, "problem_found.problem_id", limit=MAX_EVENT_ID),
        _id(m.unit_id, "problem_found.unit_id"),
        _area(m.area, "problem_found.area"),
        _id(m.campaign_id, "problem_found.campaign_id", required=False),
    )


def _problem_rectified(m: pb.ProblemRectified, f: str) -> ev.ProblemRectified:
    return ev.ProblemRectified(
        _id(m.problem_id, "problem_rectified.problem_id", limit=MAX_EVENT_ID)
    )


def _accountability(m: pb.AccountabilityImposed, f: str) -> ev.AccountabilityImposed:
    return ev.AccountabilityImposed(
        _id(m.unit_id, "accountability_imposed.unit_id"),
        _area(m.area, "accountability_imposed.area"),
        _count(m.persons, "accountability_imposed.persons"),
    )


def _sanction(m: pb.SanctionImposed, f: str) -> ev.SanctionImposed:
    return ev.SanctionImposed(
        _id(m.unit_id, "sanction_imposed.unit_id"),
        _area(m.area, "sanction_imposed.area"),
        _count(m.persons, "sanction_imposed.persons"),
    )


def _talk(m: pb.TalkHeld, f: str) -> ev.TalkHeld:
    return ev.TalkHeld(
        _id(m.unit_id, "talk_held.unit_id"),
        _area(m.area, "talk_held.area", required=False),
        _enum(m.kind, TalkKind, "talk_held.kind"),
        _count(m.persons, "talk_held.persons"),
    )


def _recommendation(m: pb.RecommendationIssued, f: str) -> ev.RecommendationIssued:
    return ev.RecommendationIssued(
        _id(m.letter_id, "recommendation_issued.letter_id", limit=MAX_EVENT_ID),
        _id(m.unit_id, "recommendation_issued.unit_id"),
        _area(m.area, "recommendation_issued.area"),
    )


def _regulation(m: pb.RegulationImproved, f: str) -> ev.RegulationImproved:
    return ev.RegulationImproved(
        _id(m.unit_id, "regulation_improved.unit_id"),
        _area(m.area, "regulation_improved.area"),
        _count(m.count, "regulation_improved.count"),
    )


_PAYLOADS = {
    "org_unit_registered": _org_unit,
    "campaign_launched": _campaign,
    "supervision_visit": _visit,
    "problem_found": _problem_found,
    "problem_rectified": _problem_rectified,
    "accountability_imposed": _accountability,
    "sanction_imposed": _sanction,
    "talk_held": _talk,
    "recommendation_issued": _recommendation,
    "regulation_improved": _regulation,
}


def recorded_at(rec: LogRecord) -> Nanos:
    """Return when the hub recorded a log record: ingest's stamp, or the log's append time for
    a Kafka-direct one (its value's recorded_at is the client's, ignored)."""
    if not rec.ingested:
        return rec.timestamp_ns
    try:
        msg = pb.Event.FromString(rec.value)
    except Exception:  # a malformed record: the applier dead-letters it
        return rec.timestamp_ns
    return to_nanos(msg.recorded_at) if msg.HasField("recorded_at") else rec.timestamp_ns

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Level(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEVEL_UNSPECIFIED: _ClassVar[Level]
    LEVEL_CITY: _ClassVar[Level]
    LEVEL_COUNTY: _ClassVar[Level]
    LEVEL_TOWNSHIP: _ClassVar[Level]
    LEVEL_VILLAGE: _ClassVar[Level]

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_UNSPECIFIED: _ClassVar[Tier]
    TIER_TASK_FORCE: _ClassVar[Tier]
    TIER_CITY: _ClassVar[Tier]
    TIER_COUNTY: _ClassVar[Tier]

class TalkKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TALK_KIND_UNSPECIFIED: _ClassVar[TalkKind]
    TALK_KIND_TOP_LEADER: _ClassVar[TalkKind]
    TALK_KIND_ADMONISHMENT: _ClassVar[TalkKind]
    TALK_KIND_OTHER: _ClassVar[TalkKind]
LEVEL_UNSPECIFIED: Level
LEVEL_CITY: Level
LEVEL_COUNTY: Level
LEVEL_TOWNSHIP: Level
LEVEL_VILLAGE: Level
TIER_UNSPECIFIED: Tier
TIER_TASK_FORCE: Tier
TIER_CITY: Tier
TIER_COUNTY: Tier
TALK_KIND_UNSPECIFIED: TalkKind
TALK_KIND_TOP_LEADER: TalkKind
TALK_KIND_ADMONISHMENT: TalkKind
TALK_KIND_OTHER: TalkKind

class Event(_message.Message):
    __slots__ = ("event_id", "source", "seq", "occurred_at", "recorded_at", "org_unit_registered", "campaign_launched", "supervision_visit", "problem_found", "problem_rectified", "accountability_imposed", "sanction_imposed", "talk_held", "recommendation_issued", "regulation_improved", "prev_hash")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    ORG_UNIT_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_LAUNCHED_FIELD_NUMBER: _ClassVar[int]
    SUPERVISION_VISIT_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FOUND_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_RECTIFIED_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTABILITY_IMPOSED_FIELD_NUMBER: _ClassVar[int]
    SANCTION_IMPOSED_FIELD_NUMBER: _ClassVar[int]
    TALK_HELD_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ISSUED_FIELD_NUMBER: _ClassVar[int]
    REGULATION_IMPROVED_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    source: str
    seq: int
    occurred_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    org_unit_registered: OrgUnitRegistered
    campaign_launched: CampaignLaunched
    supervision_visit: SupervisionVisit
    problem_found: ProblemFound
    problem_rectified: ProblemRectified
    accountability_imposed: AccountabilityImposed
    sanction_imposed: SanctionImposed
    talk_held: TalkHeld
    recommendation_issued: RecommendationIssued
    regulation_improved: RegulationImproved
    prev_hash: bytes
    def __init__(self, event_id: _Optional[str] = ..., source: _Optional[str] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., org_unit_registered: _Optional[_Union[OrgUnitRegistered, _Mapping]] = ..., campaign_launched: _Optional[_Union[CampaignLaunched, _Mapping]] = ..., supervision_visit: _Optional[_Union[SupervisionVisit, _Mapping]] = ..., problem_found: _Optional[_Union[ProblemFound, _Mapping]] = ..., problem_rectified: _Optional[_Union[ProblemRectified, _Mapping]] = ..., accountability_imposed: _Optional[_Union[AccountabilityImposed, _Mapping]] = ..., sanction_imposed: _Optional[_Union[SanctionImposed, _Mapping]] = ..., talk_held: _Optional[_Union[TalkHeld, _Mapping]] = ..., recommendation_issued: _Optional[_Union[RecommendationIssued, _Mapping]] = ..., regulation_improved: _Optional[_Union[RegulationImproved, _Mapping]] = ..., prev_hash: _Optional[bytes] = ...) -> None: ...

class OrgUnitRegistered(_message.Message):
    __slots__ = ("unit_id", "parent_id", "level", "name", "sample", "local_code")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_CODE_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    parent_id: str
    level: Level
    name: str
    sample: bool
    local_code: bool
    def __init__(self, unit_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., level: _Optional[_Union[Level, str]] = ..., name: _Optional[str] = ..., sample: _Optional[bool] = ..., local_code: _Optional[bool] = ...) -> None: ...

class SupervisionGroup(_message.Message):
    __slots__ = ("group_id", "name", "tier", "target_unit_ids")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    TARGET_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    name: str
    tier: Tier
    target_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[_Union[Tier, str]] = ..., target_unit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CampaignLaunched(_message.Message):
    __slots__ = ("campaign_id", "name", "area", "starts_at", "ends_at", "groups")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    name: str
    area: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    groups: _containers.RepeatedCompositeFieldContainer[SupervisionGroup]
    def __init__(self, campaign_id: _Optional[str] = ..., name: _Optional[str] = ..., area: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[SupervisionGroup, _Mapping]]] = ...) -> None: ...

class SupervisionVisit(_message.Message):
    __slots__ = ("campaign_id", "group_id", "unit_id", "area", "findings")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    group_id: str
    unit_id: str
    area: str
    findings: int
    def __init__(self, campaign_id: _Optional[str] = ..., group_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., area: _Optional[str] = ..., findings: _Optional[int] = ...) -> None: ...

class ProblemFound(_message.Message):
    __slots__ = ("problem_id", "unit_id", "area", "campaign_id")
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    problem_id: str
    unit_id: str
    area: str
    campaign_id: str
    def __init__(self, problem_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., area: _Optional[str] = ..., campaign_id: _Optional[str] = ...) -> None: ...

class ProblemRectified(_message.Message):
    __slots__ = ("problem_id",)
    PROBLEM_ID_FIELD_NUMBER: _ClassVar[int]
    problem_id: str
    def __init__(self, problem_id: _Optional[str] = ...) -> None: ...

class AccountabilityImposed(_message.Message):
    __slots__ = ("unit_id", "area", "persons")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    PERSONS_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    area: str
    persons: int
    def __init__(self, unit_id: _Optional[str] = ..., area: _Optional[str] = ..., persons: _Optional[int] = ...) -> None: ...

class SanctionImposed(_message.Message):
    __slots__ = ("unit_id", "area", "persons")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    PERSONS_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    area: str
    persons: int
    def __init__(self, unit_id: _Optional[str] = ..., area: _Optional[str] = ..., persons: _Optional[int] = ...) -> None: ...

class TalkHeld(_message.Message):
    __slots__ = ("unit_id", "area", "kind", "persons")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PERSONS_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    area: str
    kind: TalkKind
    persons: int
    def __init__(self, unit_id: _Optional[str] = ..., area: _Optional[str] = ..., kind: _Optional[_Union[TalkKind, str]] = ..., persons: _Optional[int] = ...) -> None: ...

class RecommendationIssued(_message.Message):
    __slots__ = ("letter_id", "unit_id", "area")
    LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    letter_id: str
    unit_id: str
    area: str
    def __init__(self, letter_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., area: _Optional[str] = ...) -> None: ...

class RegulationImproved(_message.Message):
    __slots__ = ("unit_id", "area", "count")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    area: str
    count: int
    def __init__(self, unit_id: _Optional[str] = ..., area: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

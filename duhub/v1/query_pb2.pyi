import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from duhub.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GroupBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_BY_UNSPECIFIED: _ClassVar[GroupBy]
    GROUP_BY_UNIT: _ClassVar[GroupBy]
    GROUP_BY_DAY: _ClassVar[GroupBy]
    GROUP_BY_WEEK: _ClassVar[GroupBy]
    GROUP_BY_MONTH: _ClassVar[GroupBy]
    GROUP_BY_QUARTER: _ClassVar[GroupBy]
    GROUP_BY_YEAR: _ClassVar[GroupBy]
    GROUP_BY_GROUP: _ClassVar[GroupBy]
    GROUP_BY_TIER: _ClassVar[GroupBy]
GROUP_BY_UNSPECIFIED: GroupBy
GROUP_BY_UNIT: GroupBy
GROUP_BY_DAY: GroupBy
GROUP_BY_WEEK: GroupBy
GROUP_BY_MONTH: GroupBy
GROUP_BY_QUARTER: GroupBy
GROUP_BY_YEAR: GroupBy
GROUP_BY_GROUP: GroupBy
GROUP_BY_TIER: GroupBy

class GetCoverageRequest(_message.Message):
    __slots__ = ("campaign_id", "scope_unit_id", "as_of", "occurred_before", "uncovered_named")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_NAMED_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    scope_unit_id: str
    as_of: _timestamp_pb2.Timestamp
    occurred_before: _timestamp_pb2.Timestamp
    uncovered_named: int
    def __init__(self, campaign_id: _Optional[str] = ..., scope_unit_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uncovered_named: _Optional[int] = ...) -> None: ...

class WatchCoverageRequest(_message.Message):
    __slots__ = ("campaign_id", "scope_unit_id", "uncovered_named")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_NAMED_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    scope_unit_id: str
    uncovered_named: int
    def __init__(self, campaign_id: _Optional[str] = ..., scope_unit_id: _Optional[str] = ..., uncovered_named: _Optional[int] = ...) -> None: ...

class TierCoverage(_message.Message):
    __slots__ = ("tier", "targets", "covered", "ratio", "full", "uncovered_unit_ids")
    TIER_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    tier: _events_pb2.Tier
    targets: int
    covered: int
    ratio: float
    full: bool
    uncovered_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tier: _Optional[_Union[_events_pb2.Tier, str]] = ..., targets: _Optional[int] = ..., covered: _Optional[int] = ..., ratio: _Optional[float] = ..., full: _Optional[bool] = ..., uncovered_unit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GroupCoverage(_message.Message):
    __slots__ = ("group_id", "name", "tier", "targets", "covered", "ratio", "uncovered_unit_ids", "full", "full_at", "uncovered_units")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    FULL_AT_FIELD_NUMBER: _ClassVar[int]
    UNCOVERED_UNITS_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    name: str
    tier: _events_pb2.Tier
    targets: int
    covered: int
    ratio: float
    uncovered_unit_ids: _containers.RepeatedScalarFieldContainer[str]
    full: bool
    full_at: _timestamp_pb2.Timestamp
    uncovered_units: _containers.RepeatedCompositeFieldContainer[UnitName]
    def __init__(self, group_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[_Union[_events_pb2.Tier, str]] = ..., targets: _Optional[int] = ..., covered: _Optional[int] = ..., ratio: _Optional[float] = ..., uncovered_unit_ids: _Optional[_Iterable[str]] = ..., full: _Optional[bool] = ..., full_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uncovered_units: _Optional[_Iterable[_Union[UnitName, _Mapping]]] = ...) -> None: ...

class UnitName(_message.Message):
    __slots__ = ("unit_id", "name")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    name: str
    def __init__(self, unit_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CountyCoverage(_message.Message):
    __slots__ = ("unit_id", "name", "targets", "covered", "ratio", "full", "full_at")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    FULL_AT_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    name: str
    targets: int
    covered: int
    ratio: float
    full: bool
    full_at: _timestamp_pb2.Timestamp
    def __init__(self, unit_id: _Optional[str] = ..., name: _Optional[str] = ..., targets: _Optional[int] = ..., covered: _Optional[int] = ..., ratio: _Optional[float] = ..., full: _Optional[bool] = ..., full_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Coverage(_message.Message):
    __slots__ = ("campaign_id", "scope_unit_id", "full", "tiers", "groups", "counties", "as_of", "name", "occurred_before")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    COUNTIES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    scope_unit_id: str
    full: bool
    tiers: _containers.RepeatedCompositeFieldContainer[TierCoverage]
    groups: _containers.RepeatedCompositeFieldContainer[GroupCoverage]
    counties: _containers.RepeatedCompositeFieldContainer[CountyCoverage]
    as_of: _timestamp_pb2.Timestamp
    name: str
    occurred_before: _timestamp_pb2.Timestamp
    def __init__(self, campaign_id: _Optional[str] = ..., scope_unit_id: _Optional[str] = ..., full: _Optional[bool] = ..., tiers: _Optional[_Iterable[_Union[TierCoverage, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[GroupCoverage, _Mapping]]] = ..., counties: _Optional[_Iterable[_Union[CountyCoverage, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name: _Optional[str] = ..., occurred_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStatisticsRequest(_message.Message):
    __slots__ = ("metrics", "scope_unit_id", "area", "to", "group_by", "as_of", "time_zone", "campaign_id", "compare_previous")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    COMPARE_PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedScalarFieldContainer[str]
    scope_unit_id: str
    area: str
    to: _timestamp_pb2.Timestamp
    group_by: GroupBy
    as_of: _timestamp_pb2.Timestamp
    time_zone: str
    campaign_id: str
    compare_previous: bool
    def __init__(self, metrics: _Optional[_Iterable[str]] = ..., scope_unit_id: _Optional[str] = ..., area: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., group_by: _Optional[_Union[GroupBy, str]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., time_zone: _Optional[str] = ..., campaign_id: _Optional[str] = ..., compare_previous: _Optional[bool] = ..., **kwargs) -> None: ...

class StatisticsRow(_message.Message):
    __slots__ = ("key", "values", "name", "events", "tier", "previous_values", "previous_events")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class EventsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PreviousValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PreviousEventsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALUES_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_EVENTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    values: _containers.ScalarMap[str, int]
    name: str
    events: _containers.ScalarMap[str, int]
    tier: _events_pb2.Tier
    previous_values: _containers.ScalarMap[str, int]
    previous_events: _containers.ScalarMap[str, int]
    def __init__(self, key: _Optional[str] = ..., values: _Optional[_Mapping[str, int]] = ..., name: _Optional[str] = ..., events: _Optional[_Mapping[str, int]] = ..., tier: _Optional[_Union[_events_pb2.Tier, str]] = ..., previous_values: _Optional[_Mapping[str, int]] = ..., previous_events: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Statistics(_message.Message):
    __slots__ = ("rows", "scope_unit_id", "area", "as_of", "own", "total", "tiers", "campaign_id", "previous_from", "previous_to")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    OWN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FROM_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TO_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[StatisticsRow]
    scope_unit_id: str
    area: str
    as_of: _timestamp_pb2.Timestamp
    own: StatisticsRow
    total: StatisticsRow
    tiers: _containers.RepeatedCompositeFieldContainer[StatisticsRow]
    campaign_id: str
    previous_from: _timestamp_pb2.Timestamp
    previous_to: _timestamp_pb2.Timestamp
    def __init__(self, rows: _Optional[_Iterable[_Union[StatisticsRow, _Mapping]]] = ..., scope_unit_id: _Optional[str] = ..., area: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., own: _Optional[_Union[StatisticsRow, _Mapping]] = ..., total: _Optional[_Union[StatisticsRow, _Mapping]] = ..., tiers: _Optional[_Iterable[_Union[StatisticsRow, _Mapping]]] = ..., campaign_id: _Optional[str] = ..., previous_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Unit(_message.Message):
    __slots__ = ("unit_id", "parent_id", "level", "name", "sample", "local_code", "child_count")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_CODE_FIELD_NUMBER: _ClassVar[int]
    CHILD_COUNT_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    parent_id: str
    level: _events_pb2.Level
    name: str
    sample: bool
    local_code: bool
    child_count: int
    def __init__(self, unit_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., level: _Optional[_Union[_events_pb2.Level, str]] = ..., name: _Optional[str] = ..., sample: _Optional[bool] = ..., local_code: _Optional[bool] = ..., child_count: _Optional[int] = ...) -> None: ...

class ListUnitsRequest(_message.Message):
    __slots__ = ("parent_id",)
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    parent_id: str
    def __init__(self, parent_id: _Optional[str] = ...) -> None: ...

class ListUnitsResponse(_message.Message):
    __slots__ = ("units",)
    UNITS_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedCompositeFieldContainer[Unit]
    def __init__(self, units: _Optional[_Iterable[_Union[Unit, _Mapping]]] = ...) -> None: ...

class GetUnitRequest(_message.Message):
    __slots__ = ("unit_id",)
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    def __init__(self, unit_id: _Optional[str] = ...) -> None: ...

class Campaign(_message.Message):
    __slots__ = ("campaign_id", "name", "area", "starts_at", "ends_at", "groups", "source")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    name: str
    area: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    groups: _containers.RepeatedCompositeFieldContainer[_events_pb2.SupervisionGroup]
    source: str
    def __init__(self, campaign_id: _Optional[str] = ..., name: _Optional[str] = ..., area: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[_events_pb2.SupervisionGroup, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class ListCampaignsRequest(_message.Message):
    __slots__ = ("omit_targets",)
    OMIT_TARGETS_FIELD_NUMBER: _ClassVar[int]
    omit_targets: bool
    def __init__(self, omit_targets: _Optional[bool] = ...) -> None: ...

class ListCampaignsResponse(_message.Message):
    __slots__ = ("campaigns",)
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[Campaign]
    def __init__(self, campaigns: _Optional[_Iterable[_Union[Campaign, _Mapping]]] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class GetProgressRequest(_message.Message):
    __slots__ = ("with_known_at",)
    WITH_KNOWN_AT_FIELD_NUMBER: _ClassVar[int]
    with_known_at: bool
    def __init__(self, with_known_at: _Optional[bool] = ...) -> None: ...

class PartitionProgress(_message.Message):
    __slots__ = ("partition", "applied")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    partition: int
    applied: int
    def __init__(self, partition: _Optional[int] = ..., applied: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("partitions", "known_at")
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_AT_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionProgress]
    known_at: _timestamp_pb2.Timestamp
    def __init__(self, partitions: _Optional[_Iterable[_Union[PartitionProgress, _Mapping]]] = ..., known_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("metric", "scope_unit_id", "area", "to", "as_of", "limit")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    metric: str
    scope_unit_id: str
    area: str
    to: _timestamp_pb2.Timestamp
    as_of: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, metric: _Optional[str] = ..., scope_unit_id: _Optional[str] = ..., area: _Optional[str] = ..., to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., **kwargs) -> None: ...

class EventContribution(_message.Message):
    __slots__ = ("event_id", "source", "seq", "occurred_at", "recorded_at", "partition", "offset", "unit_id", "area", "value")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    source: str
    seq: int
    occurred_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    partition: int
    offset: int
    unit_id: str
    area: str
    value: int
    def __init__(self, event_id: _Optional[str] = ..., source: _Optional[str] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., unit_id: _Optional[str] = ..., area: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("metric", "total", "event_count", "events", "truncated")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    metric: str
    total: int
    event_count: int
    events: _containers.RepeatedCompositeFieldContainer[EventContribution]
    truncated: bool
    def __init__(self, metric: _Optional[str] = ..., total: _Optional[int] = ..., event_count: _Optional[int] = ..., events: _Optional[_Iterable[_Union[EventContribution, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ExplainCoverageRequest(_message.Message):
    __slots__ = ("campaign_id", "scope_unit_id", "group_id", "as_of", "occurred_before", "limit")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    scope_unit_id: str
    group_id: str
    as_of: _timestamp_pb2.Timestamp
    occurred_before: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, campaign_id: _Optional[str] = ..., scope_unit_id: _Optional[str] = ..., group_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class CoveringVisit(_message.Message):
    __slots__ = ("group_id", "unit_id", "unit_name", "event_id", "source", "seq", "occurred_at", "recorded_at", "partition", "offset")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    unit_id: str
    unit_name: str
    event_id: str
    source: str
    seq: int
    occurred_at: _timestamp_pb2.Timestamp
    recorded_at: _timestamp_pb2.Timestamp
    partition: int
    offset: int
    def __init__(self, group_id: _Optional[str] = ..., unit_id: _Optional[str] = ..., unit_name: _Optional[str] = ..., event_id: _Optional[str] = ..., source: _Optional[str] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class CoverageExplanation(_message.Message):
    __slots__ = ("campaign_id", "group_id", "targets", "covered", "visits", "truncated", "as_of", "occurred_before")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    COVERED_FIELD_NUMBER: _ClassVar[int]
    VISITS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    group_id: str
    targets: int
    covered: int
    visits: _containers.RepeatedCompositeFieldContainer[CoveringVisit]
    truncated: bool
    as_of: _timestamp_pb2.Timestamp
    occurred_before: _timestamp_pb2.Timestamp
    def __init__(self, campaign_id: _Optional[str] = ..., group_id: _Optional[str] = ..., targets: _Optional[int] = ..., covered: _Optional[int] = ..., visits: _Optional[_Iterable[_Union[CoveringVisit, _Mapping]]] = ..., truncated: _Optional[bool] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("source", "since", "limit")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    source: str
    since: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, source: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("partition", "offset", "event_id", "source", "recorded_at", "reason")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    partition: int
    offset: int
    event_id: str
    source: str
    recorded_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, partition: _Optional[int] = ..., offset: _Optional[int] = ..., event_id: _Optional[str] = ..., source: _Optional[str] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "total", "truncated")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    total: int
    truncated: bool
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., total: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

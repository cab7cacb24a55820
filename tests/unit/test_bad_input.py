"""Bad input at the edge, one case per test: each answer names the field at fault.

Three layers: the bytes of one event (`decode_event`: invalid UTF-8, truncation, garbled
tags), the checks on a parsed event that are about limits (`event_from_pb`: unknown fields,
huge values, control characters, too many targets), and the request envelope
(`read_request`: one unreadable event is rejected by itself; an unreadable envelope names
`events`). The walker that names the fault agrees with protobuf's own parser on what is valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duhub.convert import MAX_COUNT, MAX_SEQ, MAX_TARGETS, InvalidEvent, decode_event, event_from_pb
from duhub.log.base import LogRecord
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.wire import find_fault, first_string, split_repeated, unknown_field
from services.aggregate.apply import decode_record
from services.ingest.ingestor import MAX_BATCH, Unreadable
from services.ingest.request import IncomingBatch, read_batch, read_request
from tests.unit.builders import (
    YIDU,
    YIDU_T1,
    Pipeline,
    campaign,
    group,
    hierarchy,
    kinds,
    problem,
    talk,
    unit,
    visit,
)

MARK = "MARKMARK"


def read(data: bytes) -> IncomingBatch:
    """A request as the ingest handler reads it: the bytes that did not parse in one go read
    event by event once the caller is known (read_batch)."""
    batch = read_batch(read_request(data))
    assert isinstance(batch, IncomingBatch)
    return batch


def with_bytes(build: Callable[[str], pb.Event], bad: bytes) -> bytes:
    """Serialize an event built with MARK in one string field, then put `bad` there."""
    data = build(MARK).SerializeToString()
    assert data.count(MARK.encode()) == 1
    return data.replace(MARK.encode(), bad + MARK.encode()[len(bad) :])


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(number: int, wire: int, body: bytes) -> bytes:
    return varint(number << 3 | wire) + body


def len_field(number: int, body: bytes) -> bytes:
    return field_bytes(number, 2, varint(len(body)) + body)


GOOD = visit(YIDU_T1, event_id="v1", source=YIDU).SerializeToString()
TS = len_field(4, field_bytes(1, 0, varint(1_700_000_000)))  # occurred_at

# ---------------------------------------------------------------------------------------------
# 1. The bytes of one event.

UNREADABLE: list[tuple[str, Callable[[], bytes], str, str]] = [
    # (case, bytes, field, words in the reason)
    (
        "invalid UTF-8 in event_id",
        lambda: with_bytes(lambda m: visit(YIDU, event_id=m), b"\xff"),
        "event_id",
        "invalid UTF-8",
    ),
    (
        "invalid UTF-8 in source",
        lambda: with_bytes(lambda m: visit(YIDU, source=m), b"\xfe"),
        "source",
        "invalid UTF-8",
    ),
    (
        "invalid UTF-8 in a visit's unit_id",
        lambda: with_bytes(lambda m: visit(m), b"\x80"),
        "supervision_visit.unit_id",
        "invalid UTF-8",
    ),
    (
        "encoded surrogate in a problem's area",
        lambda: with_bytes(lambda m: problem("p1", YIDU, area=m), b"\xed\xa0\x80"),
        "problem_found.area",
        "invalid UTF-8",
    ),
    (
        "overlong encoding in a unit's name",
        lambda: with_bytes(lambda m: unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name=m), b"\xc0\x80"),
        "org_unit_registered.name",
        "invalid UTF-8",
    ),
    (
        "cut multi-byte character in a talk's unit_id",
        lambda: with_bytes(lambda m: talk(m), b"\xe4\xb8"),
        "talk_held.unit_id",
        "invalid UTF-8",
    ),
    (
        "invalid UTF-8 in a group's name",
        lambda: with_bytes(
            lambda m: campaign("c", [group("g", pb.TIER_CITY, YIDU, name=m)]), b"\xff"
        ),
        "campaign_launched.groups[0].name",
        "invalid UTF-8",
    ),
    (
        "invalid UTF-8 in the second target of the second group",
        lambda: with_bytes(
            lambda m: campaign(
                "c", [group("tf", pb.TIER_TASK_FORCE), group("g", pb.TIER_CITY, YIDU, m)]
            ),
            b"\xff",
        ),
        "campaign_launched.groups[1].target_unit_ids[1]",
        "invalid UTF-8",
    ),
    ("truncated inside the payload", lambda: GOOD[:-3], "supervision_visit", "truncated"),
    (
        "truncated inside occurred_at",
        lambda: len_field(1, b"e1") + TS[:-2],
        "occurred_at",
        "truncated",
    ),
    ("truncated inside a varint", lambda: field_bytes(3, 0, b"\x81\x82"), "seq", "truncated"),
    ("truncated inside a tag", lambda: len_field(1, b"e1") + b"\x82", "event", "truncated"),
    ("length running past the end", lambda: b"\x0a\x40e1", "event_id", "truncated"),
    (
        "length prefix longer than 5 bytes",
        lambda: b"\x0a\x81\x80\x80\x80\x80\x00e",
        "event_id",
        "varint longer than 5 bytes",
    ),
    (
        "varint longer than 10 bytes",
        lambda: field_bytes(3, 0, b"\xff" * 10 + b"\x01"),
        "seq",
        "varint longer than 10 bytes",
    ),
    ("wire type 7", lambda: len_field(1, b"e1") + b"\x0f", "event", "invalid wire type 7"),
    ("wire type 6", lambda: b"\x0e", "event", "invalid wire type 6"),
    ("field number 0", lambda: b"\x02\x00", "event", "field number 0"),
    ("tag longer than 5 bytes", lambda: b"\x8a\x80\x80\x80\x80\x00", "event", "malformed tag"),
    ("end-group without a start", lambda: field_bytes(9, 4, b""), "event", "end-group"),
    ("group never closed", lambda: field_bytes(9, 3, b""), "event", "group 9 not closed"),
    (
        "group closed as another",
        lambda: field_bytes(9, 3, b"") + field_bytes(8, 4, b""),
        "event",
        "group 9 closed as 8",
    ),
    (
        "groups nested 101 deep",
        lambda: field_bytes(9, 3, b"") * 101 + field_bytes(9, 4, b"") * 101,
        "event",
        "nested more than 100 deep",
    ),
    ("64-bit value cut short", lambda: field_bytes(9, 1, b"\x01\x02"), "event", "truncated"),
    ("32-bit value cut short", lambda: field_bytes(9, 5, b"\x01"), "event", "truncated"),
    (
        "garbage inside the payload",
        lambda: len_field(12, b"\x0f"),
        "supervision_visit",
        "invalid wire type 7",
    ),
    (
        "garbage inside a group of a campaign",
        lambda: len_field(11, len_field(6, b"\x0a\x05ab")),
        "campaign_launched.groups[0].group_id",
        "truncated",
    ),
]


@pytest.mark.parametrize(
    ("data", "field", "words"), [c[1:] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE]
)
def test_unreadable_event_is_refused_naming_the_field(data, field: str, words: str) -> None:
    raw = data()
    with pytest.raises(DecodeError):
        pb.Event.FromString(raw)  # what gRPC's own deserializer would fail on, opaquely
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw)
    assert info.value.field == field
    assert info.value.reason.startswith(f"{field}: ")
    assert words in info.value.reason


def test_readable_bytes_decode_unchanged() -> None:
    assert decode_event(GOOD) == pb.Event.FromString(GOOD)
    # Encodings protobuf accepts are accepted: an over-long tag, last payload wins, unknowns.
    assert decode_event(b"\x8a\x00\x02e1").event_id == "e1"
    assert find_fault(pb.Event.DESCRIPTOR, field_bytes(9, 3, b"") * 100 + b"\x4c" * 100) is None


# ---------------------------------------------------------------------------------------------
# 2. Limits on a parsed event.


def _with_unknown(
    build: Callable[[], pb.Event], where: Callable[[pb.Event], object], extra: bytes
) -> Callable[[], pb.Event]:
    def make() -> pb.Event:
        e = build()
        where(e).MergeFromString(extra)  # type: ignore[attr-defined]
        return e

    return make


def _too_many_targets() -> pb.Event:
    half = MAX_TARGETS // 2
    return campaign(
        "c",
        [
            group("g1", pb.TIER_CITY, *(f"u{i}" for i in range(half))),
            group("g2", pb.TIER_CITY, *(f"v{i}" for i in range(half + 1))),
        ],
    )


LIMITS: list[tuple[str, Callable[[], pb.Event], str]] = [
    ("seq beyond a signed 64-bit integer", lambda: visit(YIDU, seq=MAX_SEQ + 1), "seq"),
    ("seq 2^64-1", lambda: visit(YIDU, seq=2**64 - 1), "seq"),
    (
        "findings beyond the count limit",
        lambda: visit(YIDU, findings=MAX_COUNT + 1),
        "supervision_visit.findings",
    ),
    ("persons 2^32-1", lambda: talk(YIDU, 2**32 - 1), "talk_held.persons"),
    (
        "more targets in all groups than the limit",
        _too_many_targets,
        "campaign_launched.groups[1].target_unit_ids",
    ),
    (
        "DEL in a unit's name",
        lambda: unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name="a\x7fb"),
        "org_unit_registered.name",
    ),
    (
        "C1 control in a campaign's name",
        lambda: campaign("c", [group("g", pb.TIER_CITY)], name="a\x85b"),
        "campaign_launched.name",
    ),
    (
        "control character in a group's name",
        lambda: campaign("c", [group("g", pb.TIER_CITY, name="a\tb")]),
        "campaign_launched.groups[0].name",
    ),
    (
        "unknown field in the event",
        _with_unknown(lambda: visit(YIDU), lambda e: e, b"\xf8\x07\x01"),
        "event",
    ),
    (
        "unknown field in the payload",
        _with_unknown(lambda: visit(YIDU), lambda e: e.supervision_visit, b"\x38\x01"),
        "supervision_visit",
    ),
    (
        "unknown field in occurred_at",
        _with_unknown(lambda: visit(YIDU), lambda e: e.occurred_at, b"\x1a\x00"),
        "occurred_at",
    ),
    (
        "unknown field in a group",
        _with_unknown(
            lambda: campaign("c", [group("g", pb.TIER_CITY, YIDU)]),
            lambda e: e.campaign_launched.groups[0],
            b"\x2d\0\0\0\0",
        ),
        "campaign_launched.groups[0]",
    ),
    (
        "unknown group in the event",
        _with_unknown(lambda: visit(YIDU), lambda e: e, b"\x4b\x4c"),
        "event",
    ),
    (
        "a string field sent as a number",
        _with_unknown(lambda: visit(YIDU), lambda e: e.supervision_visit, b"\x18\x05"),
        "supervision_visit.unit_id",
    ),
    (
        "an enum sent as a string",
        _with_unknown(lambda: talk(YIDU), lambda e: e.talk_held, b"\x1a\x01x"),
        "talk_held.kind",
    ),
]


@pytest.mark.parametrize(("build", "field"), [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_event_over_a_limit_is_refused_naming_the_field(build, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        event_from_pb(build())
    assert info.value.field == field
    assert info.value.reason.startswith(f"{field}: ")


def test_limits_themselves_are_accepted() -> None:
    event_from_pb(visit(YIDU, seq=MAX_SEQ, findings=MAX_COUNT))
    half = MAX_TARGETS // 2
    event_from_pb(
        campaign(
            "c",
            [
                group("g1", pb.TIER_CITY, *(f"u{i}" for i in range(half))),
                group("g2", pb.TIER_CITY, *(f"v{i}" for i in range(half))),
            ],
        )
    )
    event_from_pb(unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name="宜都市 · 陆城街道 (sample)"))
    assert unknown_field(visit(YIDU)) is None


# ---------------------------------------------------------------------------------------------
# 3. The request envelope.


def request(*events: bytes) -> bytes:
    return b"".join(len_field(1, e) for e in events)


BAD_UTF8 = with_bytes(lambda m: visit(m, event_id="bad-1", source=YIDU), b"\xff")

ENVELOPES: list[tuple[str, Callable[[], bytes], str]] = [
    ("an event's length running past the end", lambda: request(GOOD)[:-1], "truncated"),
    ("bytes that are no request", lambda: b"\xff\xff\xff", "truncated"),
    ("an unknown field", lambda: request(GOOD) + field_bytes(2, 0, b"\x01"), "unknown field 2"),
    ("events sent as a number", lambda: field_bytes(1, 0, b"\x01"), "wrong wire type"),
    ("a stray end-group", lambda: field_bytes(1, 4, b""), "end-group"),
    (
        "an unreadable event among more than the batch limit",
        lambda: request(BAD_UTF8) * (MAX_BATCH + 1),
        f"more than {MAX_BATCH} events",
    ),
]


@pytest.mark.parametrize(
    ("data", "words"), [c[1:] for c in ENVELOPES], ids=[c[0] for c in ENVELOPES]
)
def test_unreadable_request_is_refused_naming_events(data, words: str) -> None:
    batch = read(data())
    assert batch.error.startswith("events: ")
    assert words in batch.error
    assert not batch.events


def test_request_with_an_unreadable_event_keeps_the_others() -> None:
    truncated = visit(YIDU, event_id="cut-1").SerializeToString()[:-2]
    batch = read(request(GOOD, BAD_UTF8, truncated, GOOD, b""))
    assert batch.error == ""
    good, bad, cut, again, empty = batch.events
    assert good == again == pb.Event.FromString(GOOD) and empty == pb.Event()
    assert bad == Unreadable("bad-1", "supervision_visit.unit_id", bad.reason)
    assert bad.reason.startswith("supervision_visit.unit_id: invalid UTF-8 at byte ")
    assert (cut.event_id, cut.field) == ("cut-1", "supervision_visit")


def test_readable_request_is_read_in_one_go() -> None:
    empty = read(b"")
    assert not empty.error and list(empty.events) == []
    batch = read(ipb.PublishRequest(events=[visit(YIDU)] * 3).SerializeToString())
    assert not batch.error and list(batch.events) == [visit(YIDU)] * 3


def test_read_request_never_raises() -> None:
    assert read_request(None).error.startswith("events: ")  # type: ignore[arg-type]


def test_unreadable_events_are_rejected_and_the_rest_of_the_batch_is_not() -> None:
    p = Pipeline.open()
    try:
        assert set(kinds(p.publish(hierarchy(), allow_reference=True))) == {"accepted"}
        data = request(
            visit(YIDU_T1, event_id="ok-1", source=YIDU, seq=1).SerializeToString(),
            BAD_UTF8,
            visit(YIDU_T1, event_id="ok-2", source=YIDU, seq=2).SerializeToString()[:-1],
            visit(YIDU_T1, event_id="ok-3", source=YIDU, seq=3).SerializeToString(),
        )
        results = p.publish(list(read(data).events))
        assert kinds(results) == ["accepted", "rejected", "rejected", "accepted"]
        assert [r.event_id for r in results] == ["ok-1", "bad-1", "ok-2", "ok-3"]
        assert results[1].field == "supervision_visit.unit_id"
        assert results[2].reason.startswith("supervision_visit: truncated")
    finally:
        p.close()


def test_an_overlong_event_id_is_echoed_cut_short() -> None:
    p = Pipeline.open()
    try:
        (r,) = p.publish([visit(YIDU, event_id="e" * 100_000)])
        assert r.field == "event_id" and r.event_id == "e" * 128
    finally:
        p.close()


# ---------------------------------------------------------------------------------------------
# The walker against protobuf's parser: valid for one exactly when valid for the other, and a
# fault always names a real field path.

SAMPLES = [
    campaign(
        "c", [group("tf", pb.TIER_TASK_FORCE), group("g", pb.TIER_CITY, YIDU, "420582")]
    ).SerializeToString(),
    visit(YIDU_T1, campaign_id="c", group_id="g", findings=3).SerializeToString(),
    talk(YIDU, 3, area="grain").SerializeToString(),
    unit(YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP, name="镇").SerializeToString(),
]


def field_paths(descriptor, prefix: str = "") -> Iterator[str]:  # type: ignore[no-untyped-def]
    for f in descriptor.fields:
        name = f"{prefix}{f.name}"
        yield name
        if f.message_type is not None and f.message_type.full_name.startswith("duhub."):
            yield from field_paths(f.message_type, f"{name}.")
        elif f.message_type is not None:
            yield from (f"{name}.{g.name}" for g in f.message_type.fields)


PATHS = {"event", *field_paths(pb.Event.DESCRIPTOR)}


@st.composite
def mangled(draw) -> bytes:  # type: ignore[no-untyped-def]
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["set", "cut", "insert", "xor"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[i:]
        elif how == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=6))
        elif data:
            data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@settings(
    max_examples=3000,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.one_of(mangled(), st.binary(max_size=80)))
def test_walker_agrees_with_protobuf(data: bytes) -> None:
    try:
        pb.Event.FromString(data)
        parses = True
    except DecodeError:
        parses = False
    fault = find_fault(pb.Event.DESCRIPTOR, data, root="event")
    assert parses == (fault is None), (data, fault)
    if fault is not None:
        assert re.sub(r"\[\d+\]", "", fault.path) in PATHS, fault
        assert 0 <= fault.offset <= len(data)
        with pytest.raises(InvalidEvent) as info:
            decode_event(data)
        assert info.value.field == fault.path


def test_split_and_peek() -> None:
    values, fault = split_repeated(ipb.PublishRequest.DESCRIPTOR, request(GOOD, b"x"), 1)
    assert (values, fault) == ([GOOD, b"x"], None)
    assert first_string(GOOD, 1) == "v1" and first_string(GOOD[:3], 1) == ""


def test_kafka_direct_value_that_does_not_parse_names_where() -> None:
    value = with_bytes(lambda m: visit(m, event_id="k1", source=YIDU), b"\xff")
    with pytest.raises(InvalidEvent) as info:
        decode_record(LogRecord(0, 0, YIDU.encode(), value, 0, False))
    assert info.value.field == "value"
    assert info.value.reason.startswith(
        "value: not a serialized duhub.v1.Event (supervision_visit.unit_id: invalid UTF-8 at byte"
    )

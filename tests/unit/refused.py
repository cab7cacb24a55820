"""Records the hub refuses, appended behind ingest's back, for the dead-letter listing's tests
(`duhub deadletters`): two counties' events failing a field check or a rule, at known record
times, and a record that is no Event (no source, no time)."""

from __future__ import annotations

from duhub.v1 import events_pb2 as pb
from tests.unit.builders import DANG, YIDU, Pipeline, accountability, at, hierarchy, ts

T1, T2, T3 = at("2023-02-01T01:00:00"), at("2023-02-01T02:00:00"), at("2023-02-01T03:00:00")


def stamped(msg: pb.Event, when: int) -> bytes:
    """The value of an event with the hub's stamp, as a record appended behind ingest's back."""
    msg.recorded_at.CopyFrom(ts(when))
    return msg.SerializeToString()


def _refused(event_id: str, source: str, unit: str, when: int, **fields: int) -> tuple:  # type: ignore[type-arg]
    value = stamped(accountability(unit, event_id=event_id, source=source, **fields), when)
    return (value, event_id, source, when)


# (value, event_id, source, recorded at), in log order.
REFUSED = [
    _refused("yidu-4", YIDU, YIDU, T1, persons=0, seq=4),  # a field check
    _refused("dang-3", DANG, YIDU, T2, seq=3),  # a rule: a unit outside its county
    (b"\xff\x00not protobuf", "", "", None),  # no Event: nothing named, no time
    _refused("yidu-5", YIDU, DANG, T3, seq=5),
]


def opened(db_url: str = "") -> Pipeline:
    """A pipeline whose read model holds the hierarchy."""
    p = Pipeline.open(db_url=db_url)
    p.clock.now = at("2023-02-01")
    p.publish(hierarchy(), allow_reference=True)
    p.tailer.catch_up()
    return p


def refuse(p: Pipeline) -> list[int]:
    """Append the REFUSED records, apply them; return their offsets."""
    where = p.log.append([(YIDU.encode(), value) for value, *_ in REFUSED])
    p.tailer.catch_up()
    return [offset for _, offset in where]

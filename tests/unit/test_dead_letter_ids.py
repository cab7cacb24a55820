"""A dead letter names the event it refused by its `event_id` whenever the record's value parses
as a duhub.v1.Event, a field check failed or a rule: ops look for a county's event by its id.
Before 2026-12-05 an event failing a field check (`persons` 0) was filed under an empty id,
though its id was known. A read model of an earlier version gets those ids from the log once,
so that `duhub replay` still finds it equal to what the log gives."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from duhub import convert
from duhub.bootstrap import Hub, HubConfig
from duhub.convert import InvalidEvent
from duhub.log.base import EventLog, LogRecord
from duhub.readmodel.dead_letter_fill import fill_dead_letters
from duhub.readmodel.layout import REFILLED_FROM_LOG
from duhub.readmodel.log_fills import fill_from_log
from duhub.v1 import events_pb2 as pb
from services.aggregate import apply
from services.aggregate.apply import decode_record
from tests.infra import fresh_database
from tests.unit.builders import (
    DANG,
    NOW,
    YIDU,
    Pipeline,
    accountability,
    at,
    hierarchy,
    kinds,
    ts,
)
from tests.unit.test_ops_cli import duhub


def stamped(msg: pb.Event) -> bytes:
    """The value of an event with the hub's stamp, as a record appended behind ingest's back."""
    msg.recorded_at.CopyFrom(ts(NOW))
    return msg.SerializeToString()


# (value, the event_id its dead letter names)
REFUSED = [
    # A field check: the id is known, and named.
    (stamped(accountability(YIDU, persons=0, event_id="yidu-4", source=YIDU, seq=4)), "yidu-4"),
    # A rule (a unit outside the source's county): named before too.
    (stamped(accountability(DANG, event_id="yidu-3", source=YIDU, seq=3)), "yidu-3"),
    # No Event at all: nothing to name.
    (b"\xff\x00not protobuf", ""),
    # An id that is not one (it could hold anything, NUL too): the reason names event_id.
    (stamped(accountability(YIDU, event_id="yidu 5", source=YIDU, seq=5)), ""),
]


def opened(db_url: str = "") -> Pipeline:
    p = Pipeline.open(db_url=db_url)
    p.clock.now = at("2023-02-01")
    p.publish(hierarchy(), allow_reference=True)
    p.tailer.catch_up()
    return p


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = opened()
    yield p
    p.close()


def refuse(p: Pipeline) -> list[int]:
    """Append the REFUSED records behind ingest's back, apply them; return their offsets."""
    where = p.log.append([(YIDU.encode(), value) for value, _ in REFUSED])
    p.tailer.catch_up()
    return [offset for _, offset in where]


def letters(p: Pipeline) -> dict[int, tuple[str, str]]:
    with p.engine.connect() as conn:
        rows = conn.execute(text('SELECT "offset", event_id, reason FROM dead_letters'))
        return {offset: (event_id, reason) for offset, event_id, reason in rows}


def test_a_dead_letter_names_the_event_id_of_every_record_that_parses(
    hub: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.aggregate.apply"):
        offsets = refuse(hub)
    found = letters(hub)
    assert {o: found[o][0] for o in offsets} == {
        o: event_id for o, (_, event_id) in zip(offsets, REFUSED, strict=True)
    }
    assert found[offsets[0]][1] == "accountability_imposed.persons: must be at least 1"
    assert found[offsets[3]][1].startswith("event_id: may hold only")
    said = [r.getMessage() for r in caplog.records if "dead letter" in r.getMessage()]
    assert any(f"dead letter at 0:{offsets[0]} (yidu-4): accountability" in m for m in said), said


def as_written_before(p: Pipeline, offsets: list[int]) -> None:
    """Make the read model what an earlier version wrote: a dead letter failing a field
    check under an empty id, and no record of this version's fill."""
    with p.engine.begin() as conn:
        conn.execute(
            text("UPDATE dead_letters SET event_id = '' WHERE \"offset\" = :o"), {"o": offsets[0]}
        )
        conn.execute(text("DELETE FROM layout WHERE name = 'dead-letter-ids'"))


def test_replay_finds_a_read_model_of_an_earlier_version_equal_and_fills_its_ids(
    hub: Pipeline, tmp_path: Path
) -> None:
    offsets = refuse(hub)
    as_written_before(hub, offsets)
    assert letters(hub)[offsets[0]][0] == ""
    into = f"sqlite:///{tmp_path / 'replay.db'}"
    done = duhub("replay", "--data-dir", str(hub.dir), "--into", into)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equal: the live figures are exactly what the log gives" in done.stdout
    assert {o: letters(hub)[o][0] for o in offsets} == {
        o: event_id for o, (_, event_id) in zip(offsets, REFUSED, strict=True)
    }


def test_a_hub_opening_a_read_model_of_an_earlier_version_fills_its_ids(hub: Pipeline) -> None:
    offsets = refuse(hub)
    as_written_before(hub, offsets)
    opened = Hub(HubConfig(hub.dir, listen="127.0.0.1:0"))
    try:
        assert letters(hub)[offsets[0]][0] == "yidu-4"
        assert letters(hub)[offsets[2]][0] == ""  # no Event: stays without one
    finally:
        opened.stop()


def claimed(p: Pipeline) -> bool:
    with p.engine.connect() as conn:
        return bool(
            conn.execute(text("SELECT 1 FROM layout WHERE name = 'dead-letter-ids'")).first()
        )


def test_the_ids_are_filled_once_on_postgresql_too() -> None:
    with fresh_database() as url:
        p = opened(url)
        try:
            offsets = refuse(p)
            as_written_before(p, offsets)
            assert fill_dead_letters(p.log, p.engine).named == 1
            assert letters(p)[offsets[0]][0] == "yidu-4" and claimed(p)
            as_written_before(p, offsets)  # emptied again, the claim kept: not done twice
            with p.engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO layout (name, applied_at) VALUES ('dead-letter-ids', 1)")
                )
            assert fill_dead_letters(p.log, p.engine).named == 0
            assert letters(p)[offsets[0]][0] == ""
        finally:
            p.close()


def test_nothing_is_filled_from_another_log(
    hub: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    offsets = refuse(hub)
    as_written_before(hub, offsets)
    other = opened()  # a log shorter than where the read model stands
    try:
        with caplog.at_level(logging.WARNING, logger="duhub.readmodel.log_places"):
            assert fill_dead_letters(other.log, hub.engine).named == 0
        assert "dead letters left as written" in caplog.text
        assert "the log ends at" in caplog.text  # says why
        assert letters(hub)[offsets[0]][0] == "" and not claimed(hub)
        assert fill_dead_letters(hub.log, hub.engine).named == 1  # its own log, later: filled
    finally:
        other.close()


def test_duhub_serve_aggregate_on_the_embedded_log_fills_them(hub: Pipeline) -> None:
    from tests.e2e.hubproc import serve

    offsets = refuse(hub)
    as_written_before(hub, offsets)
    worker = serve("aggregate", "--data-dir", str(hub.dir), "--metrics", "off")
    try:
        deadline = time.monotonic() + 30
        while not claimed(hub) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert letters(hub)[offsets[0]][0] == "yidu-4"
    finally:
        worker.stop()


class CountedReads:
    """A real log whose reads are counted."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.reads = 0

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        self.reads += 1
        return self.log.read(partition, offset, limit)

    def __getattr__(self, name: str) -> object:
        return getattr(self.log, name)


def failing_a_field_check(p: Pipeline, seqs: range) -> dict[int, str]:
    """Append events failing a field check behind ingest's back, apply them; return the
    offset -> event_id of each."""
    events = [
        accountability(YIDU, persons=0, event_id=f"yidu-{s}", source=YIDU, seq=s) for s in seqs
    ]
    where = p.log.append([(YIDU.encode(), stamped(e)) for e in events])
    p.tailer.catch_up()
    return {offset: e.event_id for (_, offset), e in zip(where, events, strict=True)}


def test_the_fill_reads_a_stretch_of_dead_letters_at_once_not_a_read_each(hub: Pipeline) -> None:
    named = failing_a_field_check(hub, range(200, 250))
    accepted = [
        accountability(YIDU, event_id=f"yidu-{s}", source=YIDU, seq=s) for s in range(1, 101)
    ]
    assert kinds(hub.publish(accepted)) == ["accepted"] * 100
    hub.tailer.catch_up()
    named |= failing_a_field_check(hub, range(300, 310))  # 100 records further on
    with hub.engine.begin() as conn:  # all without their ids, as an earlier version wrote
        conn.execute(text("UPDATE dead_letters SET event_id = ''"))
        conn.execute(text("DELETE FROM layout WHERE name = 'dead-letter-ids'"))
    counted = CountedReads(hub.log)
    assert fill_dead_letters(counted, hub.engine).named == 60  # type: ignore[arg-type]
    assert {o: event_id for o, (event_id, _) in letters(hub).items()} == named
    # A read for each stretch (two, 100 accepted records apart) and one for the other-log
    # check; before, a read for each of the 60 dead letters.
    assert counted.reads <= 3, counted.reads


@pytest.mark.parametrize(("value", "event_id"), REFUSED[:1] + REFUSED[2:])
def test_a_record_refused_at_decoding_carries_the_id_its_value_names(
    value: bytes, event_id: str
) -> None:
    """What the applier files its dead letter under, read by the decode that refused it."""
    with pytest.raises(InvalidEvent) as refused:
        decode_record(LogRecord(0, 7, YIDU.encode(), value, 0, False))
    assert refused.value.event_id == event_id


def test_a_record_refused_at_decoding_is_not_decoded_again_for_its_dead_letter(
    hub: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the applier parsed the value a second time to name its dead letter."""
    decoded: list[bytes] = []
    real = convert.decode_event

    def counted(data: bytes) -> pb.Event:
        decoded.append(data)
        return real(data)

    monkeypatch.setattr(convert, "decode_event", counted)
    monkeypatch.setattr(apply, "decode_event", counted)
    offsets = refuse(hub)
    assert sorted(decoded) == sorted(value for value, _ in REFUSED)  # each once
    assert {o: letters(hub)[o][0] for o in offsets} == {
        o: event_id for o, (_, event_id) in zip(offsets, REFUSED, strict=True)
    }


def test_ids_and_sources_are_filled_from_one_read_of_each_record(hub: Pipeline) -> None:
    named = failing_a_field_check(hub, range(200, 250))
    accepted = [
        accountability(YIDU, event_id=f"yidu-{s}", source=YIDU, seq=s) for s in range(1, 101)
    ]
    assert kinds(hub.publish(accepted)) == ["accepted"] * 100
    hub.tailer.catch_up()
    named |= failing_a_field_check(hub, range(300, 310))
    with hub.engine.begin() as conn:  # as a build before 2026-12-05 wrote them
        conn.execute(
            text("UPDATE dead_letters SET event_id = '', source = NULL, recorded_at = NULL")
        )
        conn.execute(
            text("DELETE FROM layout WHERE name IN ('dead-letter-ids', 'dead-letter-sources')")
        )
    counted = CountedReads(hub.log)
    assert fill_dead_letters(counted, hub.engine) == (60, 60)  # type: ignore[arg-type]
    assert {o: event_id for o, (event_id, _) in letters(hub).items()} == named
    with hub.engine.connect() as conn:
        assert conn.execute(
            text("SELECT DISTINCT source, recorded_at FROM dead_letters")
        ).all() == [(YIDU, NOW)]
    # One read a stretch and one for the other-log check, as for the ids alone; before, the
    # ids and the sources were each read and parsed on their own: 6 reads.
    assert counted.reads <= 3, counted.reads


def test_every_change_filled_from_the_log_is_made_by_fill_from_log(hub: Pipeline) -> None:
    failing_a_field_check(hub, range(200, 202))
    with hub.engine.begin() as conn:
        for name in REFILLED_FROM_LOG:
            conn.execute(text("DELETE FROM layout WHERE name = :n"), {"n": name})
    fill_from_log(hub.log, hub.engine)
    with hub.engine.connect() as conn:
        made = {n for (n,) in conn.execute(text("SELECT name FROM layout"))}
    assert set(REFILLED_FROM_LOG) <= made, set(REFILLED_FROM_LOG) - made

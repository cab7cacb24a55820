"""The worker's `dead letter at P:O (EVENT_ID): REASON` line names a dead letter once it is
stored: ops look a county's refused events up by these lines. Before, it was said when the
batch was folded, and a batch whose commit was then refused (another worker had applied
those offsets, after a rebalance) or tried again named dead letters never stored, or one
twice: a chaos run of two workers saw 406 such lines with no dead letter behind them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from google.protobuf import json_format
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from duhub.log.base import LogRecord
from duhub.log.value_hint import JSON_HINT
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import DeadLetter, PositionConflict
from services.aggregate.apply import BatchApplier
from tests.unit.builders import YIDU, YIDU_T1, hierarchy, ts, visit

RECORDED = 1_700_000_000_000_000_000


def record(partition: int, offset: int, msg) -> LogRecord:  # type: ignore[no-untyped-def]
    msg.recorded_at.CopyFrom(ts(RECORDED + offset))
    return LogRecord(partition, offset, msg.source.encode(), msg.SerializeToString())


def batch() -> list[LogRecord]:
    """An accepted visit, then a county's JSON sent as the value: a dead letter with a hint."""
    as_json = json_format.MessageToJson(visit(YIDU_T1, event_id="j1", source=YIDU, seq=902))
    return [
        record(0, 0, visit(YIDU_T1, event_id="v0", source=YIDU, seq=901)),
        LogRecord(0, 1, YIDU.encode(), as_json.encode(), RECORDED, False),
    ]


def engine_with_units(tmp_path: Path | None, url: str = ""):  # type: ignore[no-untyped-def]
    engine = open_engine(url or f"sqlite:///{tmp_path / 'rm.db'}")
    BatchApplier(engine).apply([record(2, i, e) for i, e in enumerate(hierarchy())])
    return engine


def said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dead letter at" in r.getMessage()]


def stored(engine) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT partition, "offset" FROM dead_letters'))
        return [(p, o) for p, o in rows]


def test_a_batch_whose_commit_is_refused_names_no_dead_letter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_with_units(tmp_path)
    worker = BatchApplier(engine)
    caplog.set_level(logging.WARNING, logger="services.aggregate.apply")
    prepared = worker.prepare(batch())
    assert [d.offset for d in prepared.out.dead] == [1]
    assert said(caplog) == []  # folded, not stored: nothing said yet
    # Meanwhile another worker (given the partition in a rebalance) applies those offsets.
    BatchApplier(engine).apply(batch())
    assert len(said(caplog)) == 1  # the other worker's, which stored it
    with pytest.raises((PositionConflict, IntegrityError)):  # its rows, or its positions
        worker.write(prepared)
    assert len(said(caplog)) == 1, said(caplog)  # before: a second line, from this worker
    assert stored(engine) == [(0, 1)]


def test_a_batch_folded_again_after_a_refused_commit_names_its_dead_letter_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_with_units(tmp_path)
    records = batch()
    sent: list[DeadLetter] = []

    def to_the_topic(rec: LogRecord, letter: DeadLetter) -> None:
        sent.append(letter)
        if len(sent) == 1:
            # Between this fold and its commit another worker applies the accepted visit:
            # the commit is refused, and the batch folded again from what it stored.
            BatchApplier(engine).apply(records[:1])

    worker = BatchApplier(engine, on_dead=to_the_topic)
    caplog.set_level(logging.WARNING, logger="services.aggregate.apply")
    applied = worker.apply(records)
    assert [d.offset for d in applied.dead] == [1] and stored(engine) == [(0, 1)]
    lines = said(caplog)
    assert len(lines) == 1, lines  # before: one per fold, two
    assert lines[0].startswith("dead letter at 0:1 (): value: not a serialized duhub.v1.Event")
    assert lines[0].endswith(f"({JSON_HINT})")
    # The dead-letter topic is told at each fold, before the commit (`send_dead_letter`:
    # twice rather than never).
    assert [d.offset for d in sent] == [1, 1]


def test_a_dead_letter_is_counted_once_stored_by_the_field_it_names(
    tmp_path: Path,
) -> None:
    """`duhub_aggregate_dead_letters_total{field}`: once per dead letter stored, as its log
    line, though the batch was folded twice (its first commit refused)."""
    engine = engine_with_units(tmp_path)
    records = batch()
    folds: list[int] = []

    def another_worker_applies_first(rec: LogRecord, letter: DeadLetter) -> None:
        folds.append(letter.offset)
        if len(folds) == 1:
            BatchApplier(engine).apply(records[:1])

    def counted() -> float:
        labels = {"field": "value"}
        return REGISTRY.get_sample_value("duhub_aggregate_dead_letters_total", labels) or 0.0

    before = counted()
    BatchApplier(engine, on_dead=another_worker_applies_first).apply(records)
    assert folds == [1, 1] and stored(engine) == [(0, 1)]
    assert counted() - before == 1


def test_a_rule_refusal_is_counted_by_the_field_its_verdict_names(tmp_path: Path) -> None:
    engine = engine_with_units(tmp_path)
    reused = [
        record(0, 0, visit(YIDU_T1, event_id="s0", source=YIDU, seq=905)),
        record(0, 1, visit(YIDU_T1, event_id="s1", source=YIDU, seq=905)),  # seq taken
    ]

    def counted() -> float:
        labels = {"field": "seq"}
        return REGISTRY.get_sample_value("duhub_aggregate_dead_letters_total", labels) or 0.0

    before = counted()
    done = BatchApplier(engine).apply(reused)
    assert [(d.offset, d.field) for d in done.dead] == [(1, "seq")]
    assert done.dead[0].reason.startswith("seq: ")
    assert counted() - before == 1

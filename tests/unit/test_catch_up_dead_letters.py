"""A live catch-up sends what it refuses to the log's dead-letter topic however long its
backlog: from 50,000 records behind (`LONG_BACKLOG`) `LogTailer.catch_up` applies the log as
replay does, and that path had no sink, so `duhub up --log kafka://…` starting far behind kept
its refusals in the read model only (found by review, 2026-12-06)."""

from __future__ import annotations

import pytest

import services.aggregate.embedded as embedded
from duhub.log.base import LogRecord
from duhub.log.embedded import EmbeddedLog
from services.aggregate.embedded import LogTailer
from tests.unit.builders import Pipeline, at, hierarchy, kinds


class LogWithDeadLetters(EmbeddedLog):
    """An embedded log with the dead-letter topic a Kafka log has (`KafkaLog.send_dead_letter`):
    what the hub sends there is noted."""

    def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*a, **kw)
        self.sent: list[tuple[int, int, str]] = []

    def send_dead_letter(self, rec: LogRecord, reason: str, event_id: str = "") -> None:
        self.sent.append((rec.partition, rec.offset, reason))


@pytest.mark.parametrize("long_backlog", [False, True], ids=["short-backlog", "long-backlog"])
def test_catch_up_sends_dead_letters_to_the_topic_however_long_the_backlog(
    long_backlog: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONTRACT.md, Ingest semantics: on Kafka 'the hub applies the same validation and sends
    what fails to a dead-letter topic with the reason'. `duhub up --log kafka://...` catches
    up with LogTailer.catch_up; with a backlog of LONG_BACKLOG (50,000) records or more it
    goes through services.aggregate.replay.replay, whose BatchApplier has no on_dead sink, so
    the refused record is kept in the read model's dead_letters but never sent to the topic.
    (LONG_BACKLOG is lowered here so the test needs no 50,000 records.)"""
    p = Pipeline.open()
    try:
        p.clock.now = at("2023-02-01")
        assert set(kinds(p.publish(hierarchy(), allow_reference=True))) == {"accepted"}
        # A record that is no duhub.v1.Event (as a Kafka-direct producer may write).
        [(_, bad)] = p.log.append([(b"420581", b"\xff not an event")])
        p.log.close()
        log = LogWithDeadLetters(p.dir)
        if long_backlog:
            monkeypatch.setattr(embedded, "LONG_BACKLOG", 1)
        tailer = LogTailer(log, p.engine)
        tailer.catch_up()
        assert tailer.positions[0] == bad + 1
        assert [(part, off) for part, off, _ in log.sent] == [(0, bad)]
        log.close()
    finally:
        p.engine.dispose()

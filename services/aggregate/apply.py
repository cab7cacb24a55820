"""Apply a batch of log records to the read model: the step shared by every driver (the
embedded loop, the Faust app and replay). Positions commit with the rows they produced."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from sqlalchemy import Engine

from duhub.convert import InvalidEvent, event_from_pb
from duhub.domain.events import Event
from duhub.log.base import LogRecord
from duhub.projections.effects import Effect
from duhub.projections.fold import fold
from duhub.projections.working_set import WorkingSet
from duhub.readmodel.knowledge import ReadModelKnowledge
from duhub.readmodel.writer import BatchSummary, DeadLetter, write_batch
from duhub.v1 import events_pb2 as pb

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Applied:
    summary: BatchSummary
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0


def decode_record(rec: LogRecord) -> Event:
    """Return the domain event of a record; raise InvalidEvent for a malformed one."""
    try:
        msg = pb.Event.FromString(rec.value)
    except DecodeError as e:
        raise InvalidEvent("value", f"not a serialized duhub.v1.Event ({e})") from None
    event = event_from_pb(msg)
    if not event.recorded_at:
        # Kafka-direct events carry no hub stamp: the log's append time stands in for it.
        event = dataclasses.replace(event, recorded_at=rec.timestamp_ns)
    return event


class BatchApplier:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.knowledge = ReadModelKnowledge(engine)

    def apply(self, records: Sequence[LogRecord]) -> Applied:
        """Fold the records into the read model and commit them with their positions."""
        dead: list[DeadLetter] = []
        decoded: list[tuple[LogRecord, Event]] = []
        for rec in records:
            try:
                decoded.append((rec, decode_record(rec)))
            except InvalidEvent as e:
                dead.append(DeadLetter(rec.partition, rec.offset, "", e.reason))
        self.knowledge.prefetch([e for _, e in decoded])
        ws = WorkingSet(self.knowledge)
        effects: list[Effect] = []
        duplicates = 0
        for rec, event in decoded:
            verdict, out = fold(event, ws, event.recorded_at, allow_reference=True)
            if verdict.kind == "duplicate":
                duplicates += 1
            elif verdict.kind == "rejected":
                dead.append(DeadLetter(rec.partition, rec.offset, event.event_id, verdict.reason))
            effects += out
        positions: dict[int, int] = {}
        for rec in records:
            positions[rec.partition] = max(positions.get(rec.partition, 0), rec.offset + 1)
        for d in dead:
            log.warning("dead letter at %s:%s (%s): %s", d.partition, d.offset, d.event_id,
                        d.reason)
        summary = write_batch(self.engine, effects, positions, dead)
        return Applied(summary, dead, duplicates)

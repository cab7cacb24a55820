"""A batch's prefetch reads the read model in one snapshot: another writer's commit between its
statements (a second aggregate worker after a rebalance, the embedded tailer beside ingest)
counts in all of them or in none.

Before, each statement read the latest commit. An event committed by the other writer between
the read of the events seen and the read of the seqs taken looked new, its seq taken by
itself: the rule refused it, `seq N of source S already used by <its own id>`, and the worker
sent a dead letter to the topic for an event the read model had accepted (a chaos run with two
workers: 406 of them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from duhub.domain.events import Event, RegulationImproved
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.readmodel.knowledge import ReadModelKnowledge
from tests.infra import database_on

DIGEST = b"\x01" * 32
ARRIVING = Event("e-raced", "420581", 7, 1_000, 2_000, RegulationImproved("420581", "ecology", 1))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database_on(request.param, tmp_path) as url:
        eng = open_engine(url)
        yield eng
        eng.dispose()


def _commit_arriving_before_the_seq_read(engine: Engine) -> list[str]:
    """Once, just before the prefetch asks which seqs are taken, commit ARRIVING as another
    writer would, on a connection of its own. Return the statements that saw it happen."""
    raced: list[str] = []

    def before(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if raced or "seq" not in statement or "FROM events_seen" not in statement:
            return
        raced.append(statement)
        with engine.begin() as other:
            other.execute(
                s.events_seen.insert().values(
                    event_id=ARRIVING.event_id,
                    digest=DIGEST,
                    source=ARRIVING.source,
                    seq=ARRIVING.seq,
                    recorded_at=ARRIVING.recorded_at,
                    occurred_at=ARRIVING.occurred_at,
                    partition=0,
                    offset=5,
                )
            )

    event.listen(engine, "before_cursor_execute", before)
    return raced


def test_a_commit_between_the_prefetchs_statements_is_seen_by_none(engine: Engine) -> None:
    raced = _commit_arriving_before_the_seq_read(engine)
    knowledge = ReadModelKnowledge(engine)
    knowledge.prefetch([ARRIVING])
    assert raced, "the other writer's commit never came between the statements"
    # Both as before the other writer's commit: the event new, its seq free. (The batch then
    # loses its positions' compare-and-set, and is folded again from the read model as it is.)
    assert knowledge.event_digest(ARRIVING.event_id) is None
    assert knowledge.seq_owner(ARRIVING.source, ARRIVING.seq) is None
    # A prefetch after it sees the commit in both: a duplicate, not a seq taken by another.
    knowledge.prefetch([ARRIVING])
    assert knowledge.event_digest(ARRIVING.event_id) == DIGEST
    assert knowledge.seq_owner(ARRIVING.source, ARRIVING.seq) == ARRIVING.event_id

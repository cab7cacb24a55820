"""Two aggregate workers applying the same partition at once (a worker woken from a pause
longer than its session, still holding what the group gave another meanwhile) on real
PostgreSQL: the one that commits second retries from the read model and goes on, whatever
statement meets the other's rows first."""

from __future__ import annotations

from bench.events import stored_records
from duhub.log.base import LogRecord
from duhub.readmodel.digest import figure_diffs, table_digests
from duhub.readmodel.engine import open_engine
from duhub.readmodel.writer import DeadLetter, read_positions
from services.aggregate.apply import BatchApplier
from tests.infra import fresh_database


def one_partition(n: int) -> list[LogRecord]:
    items, _ = stored_records(n, seed=11)
    return [LogRecord(0, i, key, value) for i, (key, value) in enumerate(items)]


def test_a_batch_another_worker_committed_meanwhile_is_retried_not_fatal() -> None:
    good = one_partition(600)
    # A record that is not an event, last: its dead letter is reported while the batch is
    # folded, after what the batch names was read from the read model and before it is
    # written. The other worker commits right then.
    bad = LogRecord(0, len(good), b"420581", b"\xff\x00not protobuf")
    records = [*good, bad]
    with fresh_database() as db_url:
        mine, theirs = open_engine(db_url), open_engine(db_url)
        try:
            other = BatchApplier(theirs)
            raced: list[int] = []

            def other_worker_commits(rec: LogRecord, letter: DeadLetter) -> None:
                if not raced:
                    raced.append(rec.offset)
                    other.apply(records)

            zombie = BatchApplier(mine, on_dead=other_worker_commits)
            # Before the fix: psycopg2.errors.UniqueViolation from the COPY into events_seen
            # (the DB-API's own error, which SQLAlchemy had not wrapped) passed the retry of
            # conflicts and stopped the worker (exit 70, "a batch failed").
            zombie.apply(records)

            assert raced == [bad.offset]
            assert read_positions(mine) == {0: len(records)}
            assert zombie.positions == {0: len(records)}
            # Exactly what one worker applying the batch alone makes.
            with fresh_database() as alone_url:
                alone = open_engine(alone_url)
                try:
                    BatchApplier(alone).apply(records)
                    assert figure_diffs(alone, mine) == []
                    assert table_digests(alone) == table_digests(mine)
                finally:
                    alone.dispose()
        finally:
            mine.dispose()
            theirs.dispose()

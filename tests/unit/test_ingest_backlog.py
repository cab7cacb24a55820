"""Ingest keeps what it appended until the read model has applied it (the pending tail), so a
duplicate sent again at once is still caught. With the aggregate workers down it kept all of
it, ~340 bytes an event, for as long as they stayed down (245 MB an hour at 200 events/s).
Past a bound, publishing is refused UNAVAILABLE until they catch up: node outboxes retry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.ingest import ingestor as ingest
from services.ingest.ingestor import Ingestor, NotReady
from tests.infra import fresh_database
from tests.unit.builders import Pipeline, hierarchy, kinds, sanction

YIDU = "420581"


@pytest.fixture
def pipe() -> Iterator[Pipeline]:
    yield from _pipeline("")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_pipe(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """A pipeline on each read model: their lookups are written apart."""
    if request.param == "sqlite":
        yield from _pipeline("")
        return
    with fresh_database() as url:
        yield from _pipeline(url)


def _pipeline(db_url: str) -> Iterator[Pipeline]:
    p = Pipeline.open(db_url=db_url)
    assert set(kinds(p.publish(hierarchy(), allow_reference=True))) == {"accepted"}
    p.tailer.catch_up()
    try:
        yield p
    finally:
        p.close()


def _sanctions(first: int, n: int) -> list:
    return [
        sanction(YIDU, 1, event_id=f"s{i}", source=YIDU, seq=i) for i in range(first, first + n)
    ]


def test_publishing_waits_while_the_read_model_is_too_far_behind(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "PRUNE_EVERY", 0.0)  # each batch looks at the positions
    gate = Ingestor(pipe.log, pipe.engine, pipe.clock, max_pending=50)
    assert kinds(gate.publish(_sanctions(1, 30))) == ["accepted"] * 30
    assert kinds(gate.publish(_sanctions(31, 30))) == ["accepted"] * 30  # 60 held now
    end = pipe.end()
    with pytest.raises(NotReady, match="read model is 60 events behind"):
        gate.publish(_sanctions(61, 1))
    assert pipe.end() == end  # nothing of the refused batch was appended

    pipe.tailer.catch_up()  # the aggregator applies what ingest appended
    assert kinds(gate.publish(_sanctions(61, 1))) == ["accepted"]
    # A duplicate of what was let go is still caught, now from the read model.
    assert kinds(gate.publish(_sanctions(1, 1))) == ["duplicate"]


def test_a_duplicate_is_answered_with_where_its_original_stands_in_the_log(
    any_pipe: Pipeline,
) -> None:
    """ingest.proto: a result carries the event's place in the log 'for ACCEPTED and DUPLICATE
    when known'. A duplicate came back at partition 0, offset 0 wherever its original stood,
    so a node that lost the reply to its publish had nothing to wait for before querying.
    Known from the pending tail (appended, not applied yet), from the batch itself, and from
    the read model once applied."""
    (first,) = any_pipe.publish(_sanctions(1, 1))
    where = (first.partition, first.offset)
    assert where != (0, 0)
    again = any_pipe.publish(_sanctions(1, 2) + _sanctions(2, 1))  # s1 and s2, then s2 again
    assert kinds(again) == ["duplicate", "accepted", "duplicate"]
    assert (again[0].partition, again[0].offset) == where  # from the pending tail
    assert (again[2].partition, again[2].offset) == (again[1].partition, again[1].offset)
    any_pipe.tailer.catch_up()
    # A new ingest knows it from the read model only.
    fresh = Ingestor(any_pipe.log, any_pipe.engine, any_pipe.clock)
    (later,) = fresh.publish(_sanctions(1, 1))
    assert kinds([later]) == ["duplicate"] and (later.partition, later.offset) == where

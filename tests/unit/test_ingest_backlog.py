"""Ingest keeps what it appended until the read model has applied it (the pending tail), so a
duplicate sent again at once is still caught. With the aggregate workers down it kept all of
it, ~340 bytes an event, for as long as they stayed down (245 MB an hour at 200 events/s).
Past a bound, publishing is refused UNAVAILABLE until they catch up: node outboxes retry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.ingest import ingestor as ingest
from services.ingest.ingestor import Ingestor, NotReady
from tests.unit.builders import Pipeline, hierarchy, kinds, sanction

YIDU = "420581"


@pytest.fixture
def pipe() -> Iterator[Pipeline]:
    p = Pipeline.open()
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

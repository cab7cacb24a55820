"""A county publishing straight into Kafka learns of its refused events from the dead-letter
topic only: the read model's `dead_letters` table and the worker's log are the hub's, not
the county's. The topic's records named no event (their value had to be decoded as a
duhub.v1.Event to tell which one it was, which `kcat -C` does not), so each now carries the
`event_id` the read model keeps, header `duhub-event-id`, when the value names one
(found by review, 2026-12-07)."""

from __future__ import annotations

from pathlib import Path

from duhub.log.kafka import EVENT_ID_HEADER
from tests.integration.test_kafka_direct import (
    applier_sending_dead_letters,
    county_records,
    dead_letters,
)
from tests.unit.builders import YIDU, YIDU_T1, sanction, visit


def test_each_dead_letter_names_its_event_id_in_a_header_when_its_value_names_one(
    tmp_path: Path,
) -> None:
    with applier_sending_dead_letters(tmp_path) as (spec, applier):
        values = (
            # Refused by the rules (no unit is registered in this read model).
            visit(YIDU_T1, event_id="yidu-7", source=YIDU, seq=7).SerializeToString(),
            # Refused by a field check, its id read all the same.
            sanction(YIDU_T1, persons=0, event_id="yidu-8", source=YIDU, seq=8).SerializeToString(),
            b"\xff\x00not protobuf",  # names no event
        )
        done = applier.apply(county_records(values))
        assert [d.event_id for d in done.dead] == ["yidu-7", "yidu-8", ""]
        letters = dead_letters(spec, want=3)
        assert [h.get(EVENT_ID_HEADER) for _, h in letters] == ["yidu-7", "yidu-8", None]
        assert [h["duhub-reason"] for _, h in letters] == [d.reason for d in done.dead]

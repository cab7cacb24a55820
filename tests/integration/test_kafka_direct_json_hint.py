"""A county sending `duhub publish`'s canonical JSON to Kafka as it is: its dead letter's
reason names where protobuf's reading of the bytes fails ("event: group 15 closed as 12 …"),
which tells a county's developer nothing. The reason stays so (`duhub replay` compares the
reasons a read model holds); the dead-letter topic's `duhub-hint` header and the worker's log
line say the value is JSON (2026-12-06)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from google.protobuf import json_format

from duhub.log.value_hint import HINT_HEADER, JSON_HINT
from tests.integration.test_kafka_direct import (
    applier_sending_dead_letters,
    county_records,
    dead_letters,
)
from tests.unit.builders import YIDU, YIDU_T1, visit


def test_a_json_value_is_dead_lettered_with_a_hint_and_its_reason_as_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with applier_sending_dead_letters(tmp_path) as (spec, applier):
        as_json = json_format.MessageToJson(visit(YIDU_T1, event_id="j1", source=YIDU)).encode()
        garbled = b"\xff\x00not protobuf"
        values = (as_json, garbled)
        with caplog.at_level(logging.WARNING):
            done = applier.apply(county_records(values))
        assert [d.offset for d in done.dead] == [0, 1]
        assert done.dead[0].reason.startswith("value: not a serialized duhub.v1.Event (event:")
        letters = dead_letters(spec, want=2)
        assert [v for v, _ in letters] == [as_json, garbled]
        (_, json_headers), (_, other_headers) = letters
        assert json_headers[HINT_HEADER] == JSON_HINT
        assert json_headers["duhub-reason"] == done.dead[0].reason
        assert HINT_HEADER not in other_headers
        lines = [r.getMessage() for r in caplog.records if "dead letter at" in r.getMessage()]
        assert len(lines) == 2 and lines[0].endswith(f"({JSON_HINT})"), lines
        assert JSON_HINT not in lines[1]

"""`duhub publish`'s reading of a line: what is wrong with it, in words a county clerk reads."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from duhub.cli.publish import parse_event

EVENT = (
    '{"eventId": "e1", "source": "420581", "seq": "1", "occurredAt": "2022-11-03T02:00:00Z",'
    ' "supervisionVisit": {"unitId": "420581101", "area": "vaccination"}}'
)


@pytest.mark.parametrize(
    ("line", "after"),
    [(EVENT + ",", ","), (EVENT + " " + EVENT, EVENT[:20])],
)
def test_what_follows_an_event_on_its_line_is_named_not_extra_data(line: str, after: str) -> None:
    # A JSON array written one object a line leaves a ',' after each: publish said "Failed to
    # load JSON: Extra data: line 1 column 163 (char 162)." and nothing of arrays or lines.
    with pytest.raises(json_format.ParseError) as e:
        parse_event(line)
    said = str(e.value)
    assert said.startswith(f"{after!r} after the end of the JSON value at column "), said
    assert said.endswith("one event per line, each a JSON object (JSON Lines)"), said
    assert "Extra data" not in said
    assert parse_event(EVENT).event_id == "e1"

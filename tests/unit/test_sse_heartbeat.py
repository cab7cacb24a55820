"""The dashboard's event stream says it is alive in an event a page's script hears."""

from __future__ import annotations

import io
import threading

from duhub.feed import ChangeFeed
from services.query.http.sse import stream_changes


def events(raw: bytes) -> list[tuple[str, str]]:
    """The (name, data) of each event in a stream's bytes; comments and retry are no events."""
    out = []
    for block in raw.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], fields.get("data", "")))
    return out


def test_a_quiet_stream_says_heartbeat_as_an_event_and_hello_says_how_often() -> None:
    """A comment was the heartbeat: EventSource gives no script a comment, so a page could
    not tell a quiet hub from a hung one (or a link dead without a reset)."""
    out, closing = io.BytesIO(), threading.Event()
    ticks = iter(range(100))
    # Gone after a few ticks of 0.5 s: with a heartbeat of 0.2 s a quiet stream says a few.
    stream_changes(out, ChangeFeed(), "", closing, heartbeat=0.2, gone=lambda: next(ticks) > 3)
    said = events(out.getvalue())
    assert said[0] == ("hello", '{"version":0,"heartbeat":0.2}')
    assert len(said) >= 3 and set(said[1:]) == {("heartbeat", '{"version":0}')}, said

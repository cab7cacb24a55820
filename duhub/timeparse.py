"""Times on the command line: RFC 3339 instants or dates (midnight UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def parse_time(text: str, field: str) -> Timestamp:
    """Return a Timestamp for '2022-01-01' or '2022-01-01T08:00:00+08:00'; ValueError names
    the field."""
    text = text.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            moment = datetime(d.year, d.month, d.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError("an RFC 3339 time needs an offset, e.g. Z or +08:00")
    except ValueError as e:
        raise ValueError(
            f"{field}: {text!r} is not a date (2022-01-01) or RFC 3339 time "
            f"(2022-01-01T00:00:00Z): {e}"
        ) from None
    ts = Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts

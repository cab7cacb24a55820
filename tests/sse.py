"""Read Server-Sent Events from the dashboard's /api/events stream, for tests."""

from __future__ import annotations

import http.client
import json
from typing import Any


def read_event(stream: http.client.HTTPResponse) -> tuple[str, dict[str, Any]]:
    """Return the next event's name and data, skipping comments and the retry line."""
    name, data = "", ""
    while True:
        raw = stream.readline()
        assert raw, "the stream ended"
        text = raw.decode().rstrip("\n")
        if text.startswith("event: "):
            name = text[7:]
        elif text.startswith("data: "):
            data = text[6:]
        elif text == "" and name:
            return name, json.loads(data)

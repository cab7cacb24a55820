"""A hint beside a dead letter's reason, for a value sent in a shape Kafka-direct does not take.

The reason itself stays as it was worded when the read model stored it (`duhub replay`
compares dead letters, reasons too); the hint goes only where a person reads it: the
dead-letter topic's `duhub-hint` header and the worker's log line. Pure.
"""

from __future__ import annotations

import json

HINT_HEADER = "duhub-hint"
JSON_HINT = (
    "the value is JSON text: a Kafka-direct value is the Event's protobuf bytes "
    "(SerializeToString), not its canonical JSON"
)


def value_hint(value: bytes) -> str:
    """Return a hint for a refused value that is a JSON object, else ""."""
    if value.lstrip()[:1] != b"{":
        return ""
    try:
        return JSON_HINT if isinstance(json.loads(value), dict) else ""
    except ValueError:  # not JSON (UnicodeDecodeError is one): nothing to say
        return ""

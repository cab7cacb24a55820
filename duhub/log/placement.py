"""Which partition ingest gives a source's event: murmur2 of its key (the source) modulo the
partition count the topic had when ingest first wrote to it, for good.

Kafka's clients place a key by the topic's current count: once partitions were added to the
topic, a source's later events went to another partition than its earlier ones, and their order
was lost (workers fold partitions apart; `audit verify` said REORDERED, a replay kept another
head). Ingest marks each record with the count it was placed by (header `duhub-partitions`), and
an ingest starting takes the count from its records in the log: a source keeps its partition
whatever the topic grows to. Partitions added later carry only Kafka-direct events.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka.partitioner.default import murmur2

PLACEMENT_HEADER = "duhub-partitions"


def place(key: bytes, count: int) -> int:
    """Return the partition of `key` among `count`: kafka-python's and Java's default."""
    return (murmur2(key) & 0x7FFFFFFF) % count


def header(count: int) -> tuple[str, bytes]:
    return (PLACEMENT_HEADER, str(count).encode())


def count_of(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """Return the count a record was placed by, or None when it carries none (a record written
    before 2026-12-06, or a Kafka-direct one) or a malformed one."""
    for name, value in headers or ():
        if name == PLACEMENT_HEADER:
            text = value.decode("ascii", "replace") if value else ""
            return int(text) if text.isdigit() and int(text) > 0 else None
    return None

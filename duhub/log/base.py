"""The log interface every backend implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LogRecord:
    partition: int
    offset: int
    key: bytes
    value: bytes
    # When the log took the record (Kafka's log-append time); 0 when the backend has none.
    timestamp_ns: int = 0
    # Written by ingest, which checked it against everything appended before it; False for
    # Kafka-direct events, which the aggregator checks itself.
    ingested: bool = True
    # Why a record claiming ingest's origin is not ingest's (its MAC fails): refused.
    origin_fault: str = ""


class LogClosed(RuntimeError):
    """An append after the log was closed: the process is stopping. Nothing was appended."""


class EventLog(Protocol):
    """An ordered, durable, offset-addressed log, split in partitions."""

    # Where opening the log kept what it cut from the end (the embedded log cuts a torn
    # tail, which may hold damaged whole records); None when nothing was cut (Kafka: never).
    cut_kept: Path | None

    def append(self, items: Sequence[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
        """Durably append (key, value) records; return (partition, offset) of each, in order.

        Returns only once every record is durable; raises if any is not.
        """
        ...

    def read(self, partition: int, offset: int, limit: int) -> list[LogRecord]:
        """Return up to `limit` records of a partition from `offset` on (may be fewer)."""
        ...

    def partitions(self) -> list[int]: ...

    def end_offsets(self) -> dict[int, int]:
        """Return, per partition, the offset reading ends at: the one the next appended
        record will take (Kafka: the last stable offset, before an open transaction)."""
        ...

    def start_offsets(self) -> dict[int, int]:
        """Return, per partition, the offset of its first record still kept (Kafka: past
        what retention or a deletion of records removed; duhub's topic keeps everything)."""
        ...

    def wait(self, positions: dict[int, int], timeout: float) -> bool:
        """Block until some partition holds a record at or past `positions`, or time out."""
        ...

    def read_uncommitted(self, positions: dict[int, int]) -> Iterator[LogRecord]:
        """Yield the records from `positions` on (0 when absent) to the very end, partition by
        partition in log order, also those `read` does not give yet (Kafka: past a partition's
        last stable offset, where an open transaction starts). Records of open and aborted
        transactions come too: take only those known never to be in one (ingest's own)."""
        ...

    def close(self) -> None: ...


def read_range(
    log: EventLog, partition: int, start: int, stop: int, page: int = 5000
) -> Iterator[LogRecord]:
    """Yield a partition's records at offsets [start, stop), read `page` at a time (ending
    early where only transaction markers and aborted records are left)."""
    at = start
    while at < stop:
        batch = [r for r in log.read(partition, at, min(page, stop - at)) if r.offset < stop]
        if not batch:
            return
        yield from batch
        at = batch[-1].offset + 1


def holds_all(log: EventLog, partition: int, position: int, end: int) -> bool:
    """Return whether a reader at `position` of `partition` has read every record before
    `end`: it is there, or the log holds no record to read in between (Kafka: transaction
    markers, which take an offset each, and the records of aborted transactions, which a
    read_committed reader never gets; a partition may end with either, the read model's
    position never passing them)."""
    if position >= end:
        return True
    # Any stretch may be aborted records, however long (before the reader read committed
    # records only, a gap longer than 64 offsets was taken for records without a look).
    found = log.read(partition, position, 1)
    return not found or found[0].offset >= end


class LogCorrupted(RuntimeError):
    """A stored record fails its checksum where it cannot be a torn last write."""

"""Every stored record of a log, bad ones included, for audits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from duhub.log.embedded import EmbeddedLog, iter_frames

if TYPE_CHECKING:
    from duhub.log.kafka import KafkaLog

# partition, offset, checksum ok, value, ingested, and why a record claiming ingest's origin
# is not ingest's (its MAC fails under the key; "" for every other record).
Record = tuple[int, int, bool, bytes, bool, str]


def log_records(spec: str) -> Iterator[Record]:
    """Return every record of the log at `spec` (kafka://… or a data dir), in log order. The
    log is opened now, so a bad `spec` raises here (ValueError, KafkaError, FileNotFoundError),
    not at the first record."""
    if spec.startswith("kafka://"):
        from duhub.log.kafka import KafkaLog, KafkaSpec

        return _kafka_records(KafkaLog(KafkaSpec.parse(spec), create=False))
    path = Path(spec) / EmbeddedLog.FILE
    if not path.exists():
        raise FileNotFoundError(f"log: no {EmbeddedLog.FILE} in {spec}")
    # only ingest writes the embedded log
    return ((0, offset, ok, value, True, "") for offset, ok, _key, value in iter_frames(path))


def _kafka_records(log: KafkaLog) -> Iterator[Record]:
    try:
        for p, end in sorted(log.end_offsets().items()):
            pos = 0
            while pos < end:
                batch = log.read(p, pos, 5000)
                if not batch:  # only transaction markers and aborted records left
                    break
                for rec in batch:
                    # A record claiming ingest's origin is chained whether or not its MAC
                    # holds: a forged one breaks the chain, as read without the key; with
                    # it, the failed MAC is named too (a forgery linked in breaks nothing).
                    forged = rec.origin_fault
                    yield p, rec.offset, True, rec.value, rec.ingested or bool(forged), forged
                pos = batch[-1].offset + 1
    finally:
        log.close()

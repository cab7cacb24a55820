"""Every stored record of a log, bad ones included, for audits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from duhub.convert import InvalidEvent, decode_event
from duhub.log.embedded import EmbeddedLog, iter_frames
from duhub.log.spec import is_kafka

if TYPE_CHECKING:
    from duhub.log.kafka import KafkaLog

# partition, offset, checksum ok, value, ingested, and why a record claiming ingest's origin
# is not ingest's (its MAC fails under the key; "" for every other record).
Record = tuple[int, int, bool, bytes, bool, str]


def log_records(spec: str, torn: list[int] | None = None) -> Iterator[Record]:
    """Return every record of the log at `spec` (kafka://… or a data dir), in log order. The
    log is opened now, so a bad `spec` raises here (ValueError, KafkaError, FileNotFoundError),
    not at the first record. `torn` is told the bytes after the embedded log's last whole
    record once they are read (`iter_frames`)."""
    if is_kafka(spec):
        from duhub.log.kafka import KafkaLog, KafkaSpec

        return _kafka_records(KafkaLog(KafkaSpec.parse(spec), create=False))
    path = Path(spec) / EmbeddedLog.FILE
    if not path.exists():
        raise FileNotFoundError(f"log: no {EmbeddedLog.FILE} in {spec}")
    # only ingest writes the embedded log
    frames = iter_frames(path, torn)
    return ((0, offset, ok, value, True, "") for offset, ok, _key, value in frames)


def _kafka_records(log: KafkaLog) -> Iterator[Record]:
    try:
        for p, end in sorted(log.end_offsets().items()):
            pos = 0
            while pos < end:
                batch = log.read(p, pos, 5000)
                if not batch:  # only transaction markers and aborted records left
                    break
                for rec in batch:
                    # A record claiming ingest's origin whose MAC fails is passed as ingest's
                    # with why: the walk names it forged, and chains it only if it carries a
                    # MAC (`duhub.audit.chain`): a forgery linked in breaks nothing.
                    forged = rec.origin_fault
                    yield p, rec.offset, True, rec.value, rec.ingested or bool(forged), forged
                pos = batch[-1].offset + 1
    finally:
        log.close()


@dataclass(frozen=True, slots=True)
class CutTail:
    """Bytes an open of the embedded log cut from its end, kept beside it
    (`events.log.cut-at-BYTE`): a write a crash cut short (no whole record), or whole records
    whose checksums fail there, which an open cannot tell from one: most likely acknowledged
    events damaged since. The log no longer holds them, and no link of what it holds says
    so."""

    file: str
    bytes: int
    records: int
    event_ids: list[str]


def cut_tails(data_dir: str) -> list[CutTail]:
    """Return what the opens of the embedded log in `data_dir` cut from its end, oldest
    place first."""
    out = []
    kept = Path(data_dir).glob(f"{EmbeddedLog.FILE}.cut-at-*")
    for path in sorted(kept, key=lambda p: (_place(p.name), p.name)):
        ids = []
        for _offset, _ok, _key, value in iter_frames(path):
            try:
                ids.append(decode_event(value).event_id)
            except InvalidEvent:
                ids.append("")
        out.append(CutTail(path.name, path.stat().st_size, len(ids), ids))
    return out


def _place(name: str) -> int:
    digits = name.rsplit("cut-at-", 1)[1].split(".")[0]
    return int(digits) if digits.isdigit() else -1

"""Check per-source hash chains. Pure: records in, findings out.

Ingest sets on every accepted event `prev_hash` = SHA-256 of the stored bytes of the previous
accepted event of the same source. Walking a source's events in log order, the first broken
link is classified:
- reordered: the event links to one that comes later in the log;
- inserted: the event does not link to its predecessor, but the next one links past it;
- missing: the link is broken and the seq jumps (events were deleted in between);
- altered: the link is broken although the seqs follow on: the predecessor's bytes changed.
A frame whose checksum fails or that does not parse is reported as altered where it lies.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from duhub.convert import chain_hash
from duhub.v1 import events_pb2 as pb

CHECKPOINT_PREFIX = "duhub-checkpoint:v1"


@dataclass(frozen=True, slots=True)
class Entry:
    partition: int
    offset: int
    source: str
    seq: int
    event_id: str
    stored_hash: bytes
    prev_hash: bytes


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # altered | missing | inserted | reordered | unreadable
    source: str
    partition: int
    offset: int
    event_id: str
    detail: str


@dataclass(slots=True)
class AuditReport:
    records: int = 0
    chained: int = 0
    findings: list[Finding] = field(default_factory=list)
    # Per source: (last seq before the gap, first seq after it).
    gaps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    heads: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def checkpoint(self) -> str:
        """Return a digest of every chain's head at the log ends walked, to write down."""
        ends = ",".join(f"{p}:{o}" for p, o in sorted(self.ends.items()))
        h = hashlib.sha256(repr(sorted(self.heads.items())).encode()).hexdigest()
        return f"{CHECKPOINT_PREFIX}:{ends}:{h}"


def parse_checkpoint(text: str) -> dict[int, int]:
    """Return the log ends a checkpoint was taken at; ValueError names what is wrong."""
    parts = text.strip().split(":")
    if len(parts) < 4 or ":".join(parts[:2]) != CHECKPOINT_PREFIX:
        raise ValueError(f"--checkpoint: not a {CHECKPOINT_PREFIX}:… string")
    try:
        body = text.strip()[len(CHECKPOINT_PREFIX) + 1 :].rsplit(":", 1)[0]
        return {int(p): int(o) for p, o in (x.split(":") for x in body.split(","))}
    except ValueError:
        raise ValueError("--checkpoint: its log ends are not partition:offset pairs") from None


def entry_of(partition: int, offset: int, value: bytes) -> Entry | None:
    """Return the chain entry of a stored record, or None when it does not parse."""
    try:
        msg = pb.Event.FromString(value)
    except Exception:
        return None
    return Entry(
        partition, offset, msg.source, msg.seq, msg.event_id, chain_hash(value), msg.prev_hash
    )


def audit(
    records: Iterable[tuple[int, int, bool, bytes, bool]],
    until: dict[int, int] | None = None,
) -> AuditReport:
    """Check records (partition, offset, checksum ok, value, ingested) in log order."""
    report = AuditReport()
    chains: dict[str, list[Entry]] = defaultdict(list)
    for partition, offset, crc_ok, value, ingested in records:
        if until is not None and offset >= until.get(partition, 0):
            continue
        report.records += 1
        report.ends[partition] = max(report.ends.get(partition, 0), offset + 1)
        entry = entry_of(partition, offset, value)
        if not crc_ok or entry is None:
            why = "its checksum fails" if not crc_ok else "it is not a duhub.v1.Event"
            report.findings.append(
                Finding(
                    "altered",
                    entry.source if entry else "",
                    partition,
                    offset,
                    entry.event_id if entry else "",
                    f"the record at {partition}:{offset}: {why}",
                )
            )
        if entry is not None and ingested:
            chains[entry.source].append(entry)
            report.chained += 1
    for source, chain in sorted(chains.items()):
        finding = _first_break(source, chain)
        if finding is not None:
            report.findings.append(finding)
        gaps = [(a.seq, b.seq) for a, b in zip(chain, chain[1:], strict=False) if b.seq > a.seq + 1]
        if gaps:
            report.gaps[source] = gaps
        last = chain[-1]
        report.heads[source] = (len(chain), last.seq, last.stored_hash.hex())
    return report


def _first_break(source: str, chain: list[Entry]) -> Finding | None:
    later = {e.stored_hash: i for i, e in enumerate(chain)}
    for i, e in enumerate(chain):
        expected = chain[i - 1].stored_hash if i else b""
        if e.prev_hash == expected:
            continue
        where = f"{e.partition}:{e.offset}"
        if later.get(e.prev_hash, -1) > i:
            j = later[e.prev_hash]
            return Finding(
                "reordered",
                source,
                e.partition,
                e.offset,
                e.event_id,
                f"seq {e.seq} at {where} comes before seq {chain[j].seq}, which it follows",
            )
        if i + 1 < len(chain) and i and chain[i + 1].prev_hash == chain[i - 1].stored_hash:
            return Finding(
                "inserted",
                source,
                e.partition,
                e.offset,
                e.event_id,
                f"seq {e.seq} at {where} is not part of the chain",
            )
        if i >= 2 and e.prev_hash == chain[i - 2].stored_hash:
            x = chain[i - 1]
            return Finding(
                "inserted",
                source,
                x.partition,
                x.offset,
                x.event_id,
                f"seq {x.seq} at {x.partition}:{x.offset} is not part of the chain",
            )
        before = chain[i - 1].seq if i else 0
        if e.seq > before + 1:
            return Finding(
                "missing",
                source,
                e.partition,
                e.offset,
                e.event_id,
                f"events between seq {before} and seq {e.seq} (before {where}) are missing",
            )
        x = chain[i - 1] if i else e
        return Finding(
            "altered",
            source,
            x.partition,
            x.offset,
            x.event_id,
            f"seq {x.seq} at {x.partition}:{x.offset} differs from what was "
            f"accepted (seq {e.seq} links to other bytes)",
        )
    return None

"""Which log a replay target holds a replay of: the first record of every partition that had
one when the replay was last run (kept in its `replay_cut` table, name `log`).

A log only grows: a partition's first record stays once written (duhub's topic keeps
everything), and an empty partition may get one. So a log that holds the same first records
in the partitions the target knew is the same log, whatever the other partitions hold now;
another topic, a topic made again or another kind of log differs in one of them, or lacks it.
Before 2026-12-06 only the lowest partition with a record was kept, and a replay of a Kafka log
whose events reached a lower partition later (another county's) was refused as another log's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from duhub.log.base import EventLog


def first_records(log: EventLog) -> dict[int, str]:
    """Return, per partition holding a record, "OFFSET:SHA256" of its first record's value
    (which carries ingest's stamp), however the log's address is spelt."""
    out: dict[int, str] = {}
    for p, end in sorted(log.end_offsets().items()):
        first = log.read(p, 0, 1) if end else []
        if first:
            out[p] = f"{first[0].offset}:{hashlib.sha256(first[0].value).hexdigest()}"
    return out


def encode(firsts: Mapping[int, str]) -> str:
    """Return "P:OFFSET:SHA256,…" by partition. The earlier version kept one such entry (its
    lowest partition with a record), so what it wrote reads as a log known by that one; the
    embedded log's single partition is written as it was."""
    return ",".join(f"{p}:{first}" for p, first in sorted(firsts.items()))


def decode(kept: str) -> dict[int, str]:
    """Return what `encode` wrote ("" when the log was empty: nothing known)."""
    out: dict[int, str] = {}
    for entry in filter(None, kept.split(",")):
        p, _, first = entry.partition(":")
        out[int(p)] = first
    return out


def unlike(kept: Mapping[int, str], firsts: Mapping[int, str]) -> str:
    """Return why a log whose first records are `firsts` is not the one `kept` names (its
    first partition that differs), or "" when it is that log, grown or not."""
    for p, first in sorted(kept.items()):
        if p not in firsts:
            return f"its partition {p} held records; this log's holds none"
        if firsts[p] != first:
            return f"the first record of partition {p} is not this log's"
    return ""

"""Whether a read model was built from this log: its positions never lie past the log's end.

Offsets only grow, and a read model applies only what the log holds, so a position past the
end means another log (a --db of another topic, a topic made again after the broker lost its
data) or a log that lost records. A service started so applied nothing below the old
positions: the worker took the new records for applied ones, ingest opened all the same, and
every event it accepted there was missing from the figures with no word said.

The same holds while the services run (a broker that lost its data under them, a topic
deleted and made again): `refuse_lost` is the check they make then, and they stop.

Offsets alone cannot tell a log made again that grew past the read model's positions before a
service looked (Kafka-direct producers writing to it while every service was down): the read
model also keeps the last record it applied per partition (its offset and a hash of its key
and value, `duhub.log.identity`), and a service starting reads the log's record there
(`not_held`): another one, or none, is another log. Records deleted from the log's front
(retention, which duhub's topic never has) leave nothing to compare: allowed, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from sqlalchemy import Engine

from duhub.log.base import EventLog
from duhub.log.identity import Mark, record_hash
from duhub.readmodel.writer import read_marks, read_positions

log = logging.getLogger(__name__)


def past_end(positions: Mapping[int, int], ends: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Return, per partition whose position lies past the log's end, (position, end); a
    partition the log does not have ends at 0."""
    return {p: (at, ends.get(p, 0)) for p, at in sorted(positions.items()) if at > ends.get(p, 0)}


def ends_covering(log_: EventLog, positions: Mapping[int, int]) -> dict[int, int]:
    """Return the log's end offsets, asked again of the broker when `positions` name a
    partition the log did not answer for: one added to the topic since, which a worker is
    handed (and a read model's position there is not a log that lost records)."""
    ends = log_.end_offsets()
    rediscover = getattr(log_, "rediscover", None)  # a Kafka log's (the embedded one never grows)
    if rediscover is not None and any(p not in ends for p in positions):
        rediscover()
        ends = log_.end_offsets()
    return ends


class LogLost(ValueError):
    """The log ends before where the read model stands, found while a service runs."""


def lost_reason(error: BaseException | None) -> str:
    """Why the log lost records, when `error` (what stopped an aggregator) is that: a service
    then exits as it does at start (2), which a restart meets again; else ""."""
    return str(error) if isinstance(error, LogLost) else ""


def _where(beyond: Mapping[int, tuple[int, int]]) -> str:
    shown = [f"partition {p} at {at}, the log ends at {end}" for p, (at, end) in beyond.items()]
    return "; ".join(shown[:3]) + (f"; and {len(shown) - 3} more" if len(shown) > 3 else "")


def refuse_past_end(positions: Mapping[int, int], ends: Mapping[int, int]) -> None:
    """Raise ValueError, naming --db and --log, when the read model is not this log's."""
    beyond = past_end(positions, ends)
    if beyond:
        raise ValueError(
            f"--db: the read model stands past the end of --log ({_where(beyond)}): it was "
            "built from another log, or the log lost records; give this log's read model, or "
            "rebuild one with duhub replay --into a fresh database"
        )


def refuse_lost(positions: Mapping[int, int], ends: Mapping[int, int]) -> None:
    """Raise LogLost when the log, read while a service runs, ends before the read model's
    positions: records it held are gone, and those it takes now would be taken for them."""
    beyond = past_end(positions, ends)
    if beyond:
        raise LogLost(
            f"--log lost records under the running service: the read model stands past its "
            f"end ({_where(beyond)}); the broker lost its data or the topic was made again. "
            "Stopping rather than take new records for applied ones: restore the log, or "
            "rebuild the read model with duhub replay --into a fresh database"
        )


def not_held(log_: EventLog, marks: Mapping[int, Mark]) -> dict[int, tuple[int, str]]:
    """Return, per partition whose last applied record (`marks`: offset, hash) the log does
    not hold at its offset, (offset, what the log holds there). A mark below the log's first
    kept record cannot be compared: it is skipped, with a warning."""
    if not marks:
        return {}
    starts = log_.start_offsets()
    out: dict[int, tuple[int, str]] = {}
    for p, (offset, hashed) in sorted(marks.items()):
        if offset < starts.get(p, 0):
            log.warning(
                "partition %d: the record the read model applied last (offset %d) was deleted "
                "from the log (it starts at %d): whether the log is the one the read model was "
                "built from cannot be told",
                p,
                offset,
                starts[p],
            )
            continue
        found = log_.read(p, offset, 1)
        if not found:
            out[p] = (offset, "the log holds no record there, nor after it")
        elif found[0].offset != offset:
            out[p] = (offset, f"the log holds no record there (its next is at {found[0].offset})")
        elif record_hash(found[0].key, found[0].value) != hashed:
            out[p] = (offset, "the log holds another there (their keys or values differ)")
    return out


def _unlike(found: Mapping[int, tuple[int, str]]) -> str:
    shown = [
        f"partition {p}: the record it applied last, at offset {at}, is not the log's: {what}"
        for p, (at, what) in found.items()
    ]
    return "; ".join(shown[:3]) + (f"; and {len(shown) - 3} more" if len(shown) > 3 else "")


def refuse_other_log(log_: EventLog, marks: Mapping[int, Mark]) -> None:
    """Raise ValueError, naming --db and --log, when the log does not hold the records the
    read model applied last: it was made again and grew past the read model's positions."""
    found = not_held(log_, marks)
    if found:
        raise ValueError(
            f"--db: the read model was built from another log ({_unlike(found)}): the topic "
            "was made again, or the broker lost its data, and the log grew past the read "
            "model's positions; give this log's read model, or rebuild one with duhub replay "
            "--into a fresh database"
        )


def refuse_replaced(log_: EventLog, marks: Mapping[int, Mark]) -> None:
    """Raise LogLost when the log, read while a service runs, does not hold the records the
    read model applied last: it was made again, and what it holds now would be taken for what
    was applied."""
    found = not_held(log_, marks)
    if found:
        raise LogLost(
            f"--log was made again under the running service ({_unlike(found)}); the broker "
            "lost its data or the topic was made again. Stopping rather than take new records "
            "for applied ones: restore the log, or rebuild the read model with duhub replay "
            "--into a fresh database"
        )


def refuse_replaced_at(
    log_: EventLog, marks: Mapping[int, Mark], partitions: Iterable[int]
) -> None:
    """refuse_replaced for these partitions, with the read model's last records `marks`."""
    refuse_replaced(log_, {p: marks[p] for p in sorted(partitions) if p in marks})


def other_log(log_: EventLog, engine: Engine) -> str:
    """Return why the read model `engine` was not built from `log_` (positions past its end,
    or a last applied record it does not hold there), or "" when nothing says so."""
    ends = log_.end_offsets()
    beyond = past_end(read_positions(engine), ends)
    if beyond:
        return _where(beyond)
    return _unlike(not_held(log_, read_marks(engine)))


def check_belongs(log_: EventLog, engine: Engine) -> None:
    """refuse_past_end and refuse_other_log for a service about to run on `log_` and the read
    model `engine`."""
    try:
        refuse_past_end(read_positions(engine), log_.end_offsets())
    except ValueError as e:
        kept = log_.cut_kept
        if kept is None:
            raise
        raise ValueError(
            f"{e}. Opening the log just now cut what followed its last whole record, kept in "
            f"{kept}: records there whose checksums fail are events the read model holds and "
            "the log lost; 'duhub audit verify' names them"
        ) from None
    refuse_other_log(log_, read_marks(engine))
    refuse_other_origin_key(log_)


def refuse_other_origin_key(log_: EventLog) -> None:
    """Raise ValueError naming --log's key when ingest's records fail this process's origin key
    (`duhub.log.origin`): the first record of each partition is read, and when those claiming
    ingest's origin all fail the MAC check and none passes, ingest signed them under another
    key, or none. A worker with another key dead-lettered every event ingest had answered
    ACCEPTED, one WARNING each, and kept running (found by an operator probe, 2026-12-06). A
    single forged record first in a partition does not stop a process whose key ingest's
    other records pass."""
    key_file = getattr(getattr(log_, "spec", None), "key_file", "")
    if getattr(log_, "origin_key", None) is None:
        return
    failing = []
    for p, end in sorted(log_.end_offsets().items()):
        first = log_.read(p, 0, 1) if end else []
        if not first:
            continue
        if first[0].ingested:
            return  # ingest's, under this key: the hub's key
        if first[0].origin_fault:
            failing.append(first[0])
    if failing:
        rec = failing[0]
        raise ValueError(
            f"--log: key={key_file}: the records ingest wrote fail this origin key (the first "
            f"of partition {rec.partition}, offset {rec.offset}: its MAC {rec.origin_fault}): "
            "ingest signed them under another key file, or none. Every ingest and aggregate "
            "process of a hub must read the same key file; a worker with another dead-letters "
            "every event ingest accepted"
        )

"""Replay: rebuild the read model from the log into a fresh store, with progress; resumable
(the store keeps its positions), optionally cut at a record time ("what was known then")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Column, Engine, MetaData, String, Table, Text, select

from duhub.convert import recorded_at
from duhub.log.base import EventLog, LogRecord
from duhub.log.belongs import other_log
from duhub.readmodel.writer import DeadLetter
from duhub.readmodel.writer import positions_in as read_positions_in
from duhub.runtime import collect_between_batches
from services.aggregate.apply import KEEP_DECODED, Applied, BatchApplier, log_settled
from services.aggregate.process_writer import MIN_RECORDS as PROCESS_WRITER_MIN_RECORDS
from services.aggregate.process_writer import ProcessWriter
from services.aggregate.replay_log import decode, encode, first_records, unlike
from services.aggregate.write_behind import WriteBehind

BATCH = 20000

# What a replay target was built as (--until, --from-time, --from-offset, with the origin key
# or without), so that running it again continues that replay and not another one. Not part
# of the read model's digest.
cut_metadata = MetaData()
replay_cut = Table(
    "replay_cut",
    cut_metadata,
    Column("name", String(16), primary_key=True),
    Column("value", Text, nullable=False),
)


@dataclass(frozen=True, slots=True)
class ReplayCut:
    """The counting window of a replay: records recorded up to `until_ns`, counted from the
    offsets `start` and from the record time `since_ns` on (None, {}: no limit)."""

    until_ns: int | None = None
    since_ns: int | None = None
    start: dict[int, int] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [
            f"--until {_time(self.until_ns)}" if self.until_ns is not None else "",
            f"--from-time {_time(self.since_ns)}" if self.since_ns is not None else "",
            "--from-offset " + ",".join(f"{p}:{o}" for p, o in sorted(self.start.items()))
            if self.start
            else "",
        ]
        return " ".join(p for p in parts if p) or "of the whole log"

    def continues(self, earlier: ReplayCut) -> bool:
        """Return whether a target built as `earlier` holds a prefix of this replay: the
        same counting start, and a cut no earlier than its (records are recorded in append
        order, so a later cut only adds records after the earlier one's)."""
        if (self.since_ns, self.start) != (earlier.since_ns, earlier.start):
            return False
        if earlier.until_ns is None:
            return self.until_ns is None
        return self.until_ns is None or self.until_ns >= earlier.until_ns


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def claim_cut(target: Engine, cut: ReplayCut, log: EventLog) -> None:
    """Record in `target` that it is a replay as `cut` of `log`; raise ValueError when it
    already holds a replay this one cannot continue (of another log, another cut, counted
    from elsewhere, or read with the origin key where this one is not, or the reverse), or a
    read model of another log."""
    cut_metadata.create_all(target)
    firsts = first_records(log)
    # Whether a Kafka log is read with the hub's origin key (`duhub.log.origin`), as JSON.
    keyed = json.dumps(getattr(log, "origin_key", None) is not None)
    foreign = other_log(log, target)
    with target.begin() as conn:
        rows = {n: v for n, v in conn.execute(select(replay_cut.c.name, replay_cut.c.value))}
        applied = any(read_positions_in(conn).values())
        # A log that only grew is the same log (`replay_log`): its partitions empty before
        # may hold records now.
        why = unlike(decode(rows.get("log", "")), firsts)
        if applied and why:
            # Resumed, the other log's records past its positions were folded onto this
            # state (a replay of `make run`'s ./data, then of the Kafka log, both into the
            # default DATA/replay.db).
            raise ValueError(
                f"--into: holds a replay of another log ({why}): "
                "add --fresh to start over, or give another --into"
            )
        if foreign:
            # A live read model (the Kafka hub's PostgreSQL given by mistake) records no
            # replay's log: it was resumed, this log folded into the other hub's figures.
            raise ValueError(
                f"--into: holds a read model of another log ({foreign}), perhaps another "
                "hub's live one: give another --into (--fresh would delete what it holds)"
            )
        if applied and not rows:
            # No replay made it (a hub's live read model, a standby's copy), or one before
            # cuts were recorded: never written into, and never given a cut, which would
            # have the --fresh guard (duhub.cli.replay_guard) take it for a replay's.
            raise ValueError(
                "--into: holds applied records but is not a replay's (perhaps a hub's live "
                "read model, or a replay made before 2026-12-04): give another --into, or "
                "delete it yourself if it is a replay's"
            )
        if applied:
            earlier = ReplayCut(
                json.loads(rows["until_ns"]),
                json.loads(rows["since_ns"]),
                {int(p): o for p, o in json.loads(rows["start"]).items()},
            )
            if not cut.continues(earlier):
                raise ValueError(
                    f"--into: holds a replay {earlier.describe()}; this one "
                    f"({cut.describe()}) cannot continue it: add --fresh to start over, or "
                    "give another --into"
                )
            # Absent in a target replayed before 2026-12-07: not known, so not refused.
            if rows.get("origin_key", keyed) != keyed:
                raise ValueError(_other_key(json.loads(rows["origin_key"])))
        conn.execute(replay_cut.delete())
        conn.execute(
            replay_cut.insert(),
            [
                {"name": "until_ns", "value": json.dumps(cut.until_ns)},
                {"name": "since_ns", "value": json.dumps(cut.since_ns)},
                {"name": "start", "value": json.dumps({str(p): o for p, o in cut.start.items()})},
                {"name": "log", "value": encode(firsts)},
                {"name": "origin_key", "value": keyed},
            ],
        )


def _other_key(earlier: bool) -> str:
    """Why a target replayed with (`earlier`) or without the origin key is not continued
    without or with it: records claiming ingest's origin are judged otherwise (taken at their
    word without the key, dead-lettered unless their MAC holds with it), so the target would
    hold both judgements. Before 2026-12-07 it was resumed, and its comparison said only
    "DIFFERENT in: dead_letters", the dead letters' reasons written the other way."""
    trusted = "taken at their word"
    checked = "dead-lettered unless their MAC holds"
    was, now = ("with", "without") if earlier else ("without", "with")
    there, here = (checked, trusted) if earlier else (trusted, checked)
    return (
        f"--log: read {now} an origin key (?key=), but --into holds a replay read {was} one: "
        f"records claiming ingest's origin were {there} there, here they are {here}, and "
        "resumed it would hold both; add --fresh to start over, or give the --log it was "
        "replayed with"
    )


@dataclass(slots=True)
class ReplayTally:
    """What the replayed records were: events applied, duplicates of events applied before
    (acknowledged once, counted once) and dead letters (refused, with why, in the target's
    dead_letters table). Counted as batches commit, so a batch written again counts once."""

    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0

    def count(self, batch: Applied) -> None:
        dead = len(batch.dead)
        self.duplicates += batch.duplicates
        self.dead_letters += dead
        self.applied += batch.records - batch.duplicates - dead

    def __add__(self, other: ReplayTally) -> ReplayTally:
        return ReplayTally(
            self.applied + other.applied,
            self.duplicates + other.duplicates,
            self.dead_letters + other.dead_letters,
        )


@dataclass(slots=True)
class ReplayProgress:
    done: int  # log positions moved past: records (and, on Kafka, transaction markers)
    total: int
    elapsed: float
    tally: ReplayTally = field(default_factory=ReplayTally)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        return (self.total - self.done) / self.rate if self.rate > 0 else float("inf")


def replay(
    log: EventLog,
    target: Engine,
    *,
    until_ns: int | None = None,
    since_ns: int | None = None,
    start: dict[int, int] | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    upto: Mapping[int, int] | None = None,
    on_dead: Callable[[LogRecord, DeadLetter], None] | None = None,
    full_is_final: bool = False,
) -> ReplayProgress:
    """Apply the log into `target` from its own positions to the end as of now, or to the
    offsets `upto` (per partition; one it does not name is not read). `on_dead` is told of
    each record refused (a live catch-up sends it to the dead-letter topic).

    With `until_ns`, only records recorded at or before it are applied. Records before
    `start` (offsets per partition) or recorded before `since_ns` build the state the later
    ones need (units, campaigns, problems) but count in no figure.

    With `full_is_final` (a batch command), a full disk raises the read model's error at
    once instead of being waited out as an outage.
    """
    applier = BatchApplier(target, on_dead=on_dead, settled=log_settled(log))
    applier.full_is_final = full_is_final
    ends = log.end_offsets()
    if upto is not None:
        ends = {p: min(end, upto.get(p, 0)) for p, end in ends.items()}
    total = backlog(ends, applier.positions)
    tally = ReplayTally()
    # Told once per committed batch (by the writer's thread, or this one after it waited for
    # that thread's batches): never two at once.
    writer = WriteBehind(applier, on_committed=tally.count, process=_process_writer(target, total))
    try:
        # Collected between batches, not in their middle (`collect_between_batches`).
        with collect_between_batches() as between:
            done = _replay(
                log, applier, writer, ends, total, until_ns, since_ns, start, on_progress, between
            )
    finally:
        writer.close()
    done.tally = tally
    return done


def backlog(ends: Mapping[int, int], positions: Mapping[int, int]) -> int:
    """Return how many records lie between the positions and the log's ends."""
    return sum(max(0, end - positions.get(p, 0)) for p, end in ends.items())


def _process_writer(target: Engine, backlog: int) -> ProcessWriter | None:
    """A child process to write SQLite's batches, when the backlog is long enough to repay
    starting it (PostgreSQL is written behind by a thread: it works in its own process)."""
    if target.dialect.name != "sqlite" or target.url.database in (None, "", ":memory:"):
        return None
    if backlog < PROCESS_WRITER_MIN_RECORDS:
        return None
    return ProcessWriter(target.url.render_as_string(hide_password=False))


def _replay(
    log: EventLog,
    applier: BatchApplier,
    writer: WriteBehind,
    ends: dict[int, int],
    total: int,
    until_ns: int | None,
    since_ns: int | None,
    start: dict[int, int] | None,
    on_progress: Callable[[ReplayProgress], None] | None,
    between: Callable[[], None],
) -> ReplayProgress:
    start = start or {}
    t0 = time.monotonic()
    done = 0
    progress = ReplayProgress(0, total, 0.0)
    held = _Held()
    while True:
        moved = 0
        for p, end in list(ends.items()):
            pos = applier.positions.get(p, 0)
            if pos >= end:
                continue
            records = held.take(p, pos)
            if len(records) < min(BATCH, end - pos):
                after = records[-1].offset + 1 if records else pos
                if after < end:
                    records += log.read(p, after, min(BATCH, end - pos) - len(records))
            if until_ns is not None:
                past = next((i for i, r in enumerate(records) if recorded_at(r) > until_ns), None)
                if past is not None:
                    # The partition ends at the cut: ingest stamps records in append order.
                    ends[p] = records[past].offset
                    records = records[:past]
            if not records:
                # Nothing from pos up to the end: only transaction markers lie there.
                ends[p] = pos
                continue
            cut = next(
                (
                    i
                    for i, r in enumerate(records)
                    if r.offset >= start.get(p, 0)
                    and (since_ns is None or recorded_at(r) >= since_ns)
                ),
                len(records),
            )
            if cut:
                writer.apply(records[:cut], figures=False)
            # Only once all before the cut is applied: a record there may wait for another
            # partition's event, and the applier takes the records it is given as following on
            # from the position (before, those after the cut moved it past the waiting one,
            # which was never applied: a village lost, the problems found in it rejected).
            done_before = cut == 0 or applier.positions.get(p, 0) > records[cut - 1].offset
            if cut < len(records) and done_before:
                writer.apply(records[cut:])
            step = applier.positions.get(p, 0) - pos
            held.keep(p, applier.positions.get(p, 0), records)
            moved += step
            done += step
        between()
        progress = ReplayProgress(done, total, time.monotonic() - t0)
        if on_progress is not None:
            on_progress(progress)
        if all(applier.positions.get(p, 0) >= end for p, end in ends.items()):
            writer.flush()  # every batch committed before it is called done
            # The rate counts the last batch's write too.
            return ReplayProgress(done, total, time.monotonic() - t0)
        if moved == 0:
            time.sleep(0.05)  # a partition waits on another one


# Records read but left waiting are kept for the next pass, up to as many in all as the applier
# keeps their decoded events (`KEEP_DECODED`); past it they are read again.
HELD_RECORDS = KEEP_DECODED


class _Held:
    """Per partition, the records read that its position has not passed yet (they wait for
    another partition's event, the reference data at the start of a log): the next pass takes
    them from here instead of reading them again. Before 2026-12-06 each partition read before
    the reference data's was read twice from its start (its first batch of up to 20,000
    records fetched and decoded again: 0.5 s each on the test broker)."""

    def __init__(self) -> None:
        self._records: dict[int, tuple[int, list[LogRecord]]] = {}

    def take(self, partition: int, position: int) -> list[LogRecord]:
        """Return the records kept from `position` on (none when it moved elsewhere)."""
        at, records = self._records.pop(partition, (-1, []))
        return records if at == position else []

    def keep(self, partition: int, position: int, records: list[LogRecord]) -> None:
        """Keep those of `records` at or after `position`, while few enough are kept."""
        left = [r for r in records if r.offset >= position]
        kept = sum(len(r) for _, r in self._records.values())
        if left and kept + len(left) <= HELD_RECORDS:
            self._records[partition] = (position, left)

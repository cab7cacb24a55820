"""Write a batch of effects and the log positions they came from in one transaction."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from sqlalchemy import Connection, Engine, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from duhub.log.identity import Mark
from duhub.projections.effects import (
    CampaignAdded,
    Counted,
    Covered,
    Effect,
    LetterAdded,
    ProblemAdded,
    ProblemClosed,
    Seen,
    UnitAdded,
)
from duhub.projections.timegrid import (
    DAY,
    HOUR,
    MONTH,
    NS,
    TOP_DEPTHS,
    YEAR,
    bucket_start,
    grains_at,
)
from duhub.readmodel import schema as s
from duhub.readmodel.engine import dbapi_cursor, plain_rows
from duhub.readmodel.knowledge import int_array, text_array


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    event_id: str
    reason: str  # "field: why"
    field: str = ""  # the field it names, for the metric's label
    # The source its value names ("": none) and when the hub recorded it (None: unknown).
    source: str = ""
    recorded_at: int | None = None


@dataclass(slots=True)
class BatchSummary:
    """What a committed batch changed, for live feeds."""

    campaigns: set[str] = field(default_factory=set)
    counted: int = 0
    applied: int = 0


def _insert(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


HOUR_NS = 3600 * NS


# Month starts by day start and year starts by month start (epoch seconds): the calendar is
# asked once per day and month named, not per fact. Days kept at most (~4 MB): events may name
# any day from 2000 to 2100, and what is kept must stay small whatever they name (the hour
# buckets once kept took 125 MB for good); past it they are let go and found again.
_MONTH_OF_DAY: dict[int, int] = {}
_YEAR_OF_MONTH: dict[int, int] = {}
BUCKET_DAYS = 36_600


def _start_in(cache: dict[int, int], grain: int, start: int) -> int:
    """Return the start of the `grain` bucket (a month, a year) holding `start`, through
    `cache` (_MONTH_OF_DAY, _YEAR_OF_MONTH), emptied when full."""
    found = cache.get(start)
    if found is None:
        if len(cache) >= BUCKET_DAYS:
            cache.clear()
        found = cache[start] = bucket_start(grain, start * NS)
    return found


class PositionConflict(RuntimeError):
    """Another worker moved a partition's position: this batch was applied by someone else."""


# What a counted figure adds to the rollups: (scope path, metric, area, event time, value).
CountedRow = tuple[tuple[str, ...], str, str, int, int]


@dataclass(slots=True)
class BatchRows:
    """The rows a batch of effects adds, built without the database (`batch_rows`), so a
    pipeline can build the next batch's while this one is written."""

    summary: BatchSummary
    seen: list[tuple[object, ...]]
    units: list[tuple[object, ...]]
    campaigns: list  # type: ignore[type-arg]
    problems: list[tuple[object, ...]]
    closed: list[tuple[str, int, str, int]]
    letters: list[tuple[object, ...]]
    facts: list[tuple[object, ...]]
    counted: list[CountedRow]
    heads: dict[str, tuple[str, bytes, int, str]]  # source -> its chain head's row
    covered: list[tuple[object, ...]]
    # The rollup rows of `counted`, folded (`rollup_rows`); None until built: a writer in
    # another process builds them there, and PostgreSQL sums them itself (`ROLLUPS_FROM_FACTS`).
    rollups: list[tuple[object, ...]] | None = None
    # COPY text rendered ahead per table (PostgreSQL), see `render_copies`.
    copies: dict[str, str] = field(default_factory=dict)
    # The batch's rows for `coverage_firsts` (`first_points`).
    firsts: list[tuple[object, ...]] = field(default_factory=list)
    # partition -> (offset, hash) of the last record the batch moved its position past,
    # written with the positions (`log_positions.last_offset`, `last_hash`).
    marks: dict[int, Mark] = field(default_factory=dict)

    def with_rollups(self) -> list[tuple[object, ...]]:
        if self.rollups is None:
            self.rollups = rollup_rows(self.counted)
        return self.rollups


def write_batch(
    engine: Engine,
    effects: Iterable[Effect],
    positions: Mapping[int, int],
    dead: Sequence[DeadLetter] = (),
    expected: Mapping[int, int] | None = None,
) -> BatchSummary:
    """Commit effects with the next offsets per partition; all or nothing.

    With `expected` (the positions the batch started from), the commit fails with
    PositionConflict unless every partition still stands there: a worker that lost its
    partitions in a rebalance cannot apply them a second time.
    """
    return write_rows(engine, batch_rows(effects), positions, dead, expected)


def rollup_rows(counted: Iterable[CountedRow]) -> list[tuple[object, ...]]:
    """Return the rollup rows of a batch's counted figures: one row per key, summed.

    Every scope of a fact's path has a day and a month row (`grains_at`), the top ones (the
    city and the counties) an hour and a year row too: ~11 keys a fact, ~5 rows once a batch
    is summed, most of the merging in the top scopes (a county's hour holds about one fact,
    the city's month about ninety). So the top scopes are summed once per fact, by (top
    path, metric, area, hour), and their days, months and years from those sums, each grain
    from the one below: ~7.5 dict updates a fact instead of ~11. By measure (the 200k log's
    first 4 batches of ~21k facts, alternating): 27-29 -> 16-17 us a fact; the rows are the
    same (tests/unit/test_rollup_rows.py holds them to the definition).
    """
    # Taken by path, the rows come out grouped by scope, which SQLite's upsert finds near
    # each other in the key's order: by measure (the 200k log's first 100k records, 3
    # alternating runs) its statement took 10-11 us a record against 16-17, the sort ~1 us
    # (sorting the rows themselves cost 4-6 us).
    below: dict[tuple[str, int, str, str, int], list[int]] = {}  # scopes under the top ones
    hours: dict[tuple[tuple[str, ...], str, str, int], list[int]] = {}
    below_get, hours_get = below.get, hours.get
    for path, metric, area, at, value in sorted(counted, key=itemgetter(0)):
        s = at // NS
        key = (path[:TOP_DEPTHS], metric, area, s - s % 3600)
        acc = hours_get(key)
        if acc is None:
            hours[key] = [value, 1]
        else:
            acc[0] += value
            acc[1] += 1
        if len(path) > TOP_DEPTHS:
            day = s - s % 86400
            month = _start_in(_MONTH_OF_DAY, MONTH, day)
            for scope in path[TOP_DEPTHS:]:
                for k in ((scope, DAY, metric, area, day), (scope, MONTH, metric, area, month)):
                    acc = below_get(k)
                    if acc is None:
                        below[k] = [value, 1]
                    else:
                        acc[0] += value
                        acc[1] += 1
    rollups: dict[tuple[str, int, str, str, int], list[int]] = {}
    rollups_get = rollups.get
    sums: dict[tuple[tuple[str, ...], str, str, int], list[int]] = hours
    for grain in (HOUR, DAY, MONTH, YEAR):
        coarser: dict[tuple[tuple[str, ...], str, str, int], list[int]] = {}
        coarser_get = coarser.get
        for (top, metric, area, bucket), (value, n) in sums.items():
            for scope in top:
                k = (scope, grain, metric, area, bucket)
                acc = rollups_get(k)
                if acc is None:
                    rollups[k] = [value, n]
                else:
                    acc[0] += value
                    acc[1] += n
            if grain == YEAR:
                continue
            up = (
                bucket - bucket % 86400
                if grain == HOUR
                else _start_in(_MONTH_OF_DAY, MONTH, bucket)
                if grain == DAY
                else _start_in(_YEAR_OF_MONTH, YEAR, bucket)
            )
            key = (top, metric, area, up)
            acc = coarser_get(key)
            if acc is None:
                coarser[key] = [value, n]
            else:
                acc[0] += value
                acc[1] += n
        sums = coarser
    rollups.update(below)  # no key of both: a unit lies at one depth of every path
    return [(*k, v, n) for k, (v, n) in rollups.items()]


def batch_rows(effects: Iterable[Effect], *, rollups: bool = True) -> BatchRows:
    """Return the rows of a batch of effects; with rollups=False the rollup rows are left to
    be built by whoever writes them (`BatchRows.with_rollups`)."""
    summary = BatchSummary()
    seen, units, camps, probs, closed, letters, facts = [], [], [], [], [], [], []
    counted: list[CountedRow] = []
    heads: dict[str, tuple[str, bytes, int, str]] = {}
    # target -> (first_at, first_recorded_at, county, the event at first_at)
    covered: dict[tuple[str, str, str], tuple[int, int, str, str]] = {}
    visits: dict[tuple[str, str, str], list[tuple[int, int, str]]] = {}
    # Paths rendered once per unit per batch.
    paths: dict[tuple[str, ...], str] = {}
    for e in effects:
        if type(e) is Counted:
            path = paths.get(e.path)
            if path is None:
                path = paths[e.path] = s.unit_path(e.path)
            facts.append(
                (
                    e.metric,
                    e.at,
                    path,
                    e.area,
                    e.value,
                    e.event_id,
                    e.recorded_at,
                    e.campaign_id,
                    e.group_id,
                )
            )
            counted.append((e.path, e.metric, e.area, e.at, e.value))
            summary.counted += 1
        elif isinstance(e, Seen):
            seen.append(
                (
                    e.event_id,
                    e.digest,
                    e.source,
                    e.seq,
                    e.recorded_at,
                    e.occurred_at,
                    e.partition,
                    e.offset,
                )
            )
            if e.stored_hash:
                heads[e.source] = (e.source, e.stored_hash, e.seq, e.event_id)
            summary.applied += 1
        elif isinstance(e, Covered):
            key = (e.campaign_id, e.group_id, e.unit_id)
            old = covered.get(key)
            if old is None:
                covered[key] = (e.at, e.recorded_at, e.county_id, e.event_id)
            else:
                # The earliest visit names the row; of two at one moment the lesser id, as
                # the upsert keeps it (the same row whatever order visits are applied in).
                first_at, event_id = min((old[0], old[3]), (e.at, e.event_id))
                covered[key] = (first_at, min(old[1], e.recorded_at), e.county_id, event_id)
            visits.setdefault(key, []).append((e.recorded_at, e.at, e.event_id))
            summary.campaigns.add(e.campaign_id)
        elif isinstance(e, UnitAdded):
            u = e.unit
            units.append(
                (
                    u.unit_id,
                    u.parent_id,
                    int(u.level),
                    u.name,
                    s.unit_path(u.path),
                    u.sample,
                    u.local_code,
                    e.recorded_at,
                )
            )
        elif isinstance(e, CampaignAdded):
            camps.append(e.campaign)
            summary.campaigns.add(e.campaign.campaign_id)
        elif isinstance(e, ProblemAdded):
            p = e.problem
            probs.append((p.problem_id, p.unit_id, p.area, p.found_at, e.event_id))
        elif isinstance(e, ProblemClosed):
            closed.append((e.problem_id, e.at, e.event_id, e.recorded_at))
        elif isinstance(e, LetterAdded):
            letters.append((e.letter_id,))

    rows = BatchRows(
        summary,
        seen,
        units,
        camps,
        probs,
        closed,
        letters,
        facts,
        counted,
        heads,
        # Sorted keys take row locks in one order, so concurrent workers cannot deadlock.
        [(*k, *v) for k, v in sorted(covered.items())],
        rollup_rows(counted) if rollups else None,
    )
    rows.firsts = first_points(visits, covered)
    return rows


def first_points(
    visits: Mapping[tuple[str, str, str], list[tuple[int, int, str]]],
    covered: Mapping[tuple[str, str, str], tuple[int, int, str, str]],
) -> list[tuple[object, ...]]:
    """Return a batch's `coverage_firsts` rows: per target, the (record time, event time,
    event id) of its covering visits that no other of them beats in both record time and
    (event time, event id), sorted by key."""
    out: list[tuple[object, ...]] = []
    for key in sorted(visits):
        county = covered[key][2]
        lowest = None
        for recorded_at, at, event_id in sorted(visits[key]):
            if lowest is None or (at, event_id) < lowest:
                lowest = (at, event_id)
                out.append((*key, recorded_at, county, at, event_id))
    return out


def render_copies(rows: BatchRows) -> None:
    """Render the COPY text of the big tables ahead of the write (PostgreSQL): Python work
    a pipeline does while the batch before is being written."""
    for name, table_rows in (("events_seen", rows.seen), ("facts", rows.facts)):
        if len(table_rows) >= COPY_FROM:
            rows.copies[name] = _copy_text(table_rows)


def write_rows(
    engine: Engine,
    rows: BatchRows,
    positions: Mapping[int, int],
    dead: Sequence[DeadLetter] = (),
    expected: Mapping[int, int] | None = None,
) -> BatchSummary:
    """Commit a batch's rows with the next offsets per partition; all or nothing (see
    `write_batch`)."""
    try:
        return _write_rows(engine, rows, positions, dead, expected)
    except engine.dialect.loaded_dbapi.Error as e:
        # COPY and execute_values write through the DB-API cursor, whose errors SQLAlchemy
        # does not wrap: a unique violation where another worker committed the same events
        # first was psycopg2's own, passed the applier's retry of conflicts and stopped the
        # worker (tests/integration/test_worker_race.py). Raised as SQLAlchemy's, as any other
        # statement's would be (IntegrityError, OperationalError...).
        raise DBAPIError.instance(
            None, None, e, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
        ) from e


def _write_rows(
    engine: Engine,
    rows: BatchRows,
    positions: Mapping[int, int],
    dead: Sequence[DeadLetter],
    expected: Mapping[int, int] | None,
) -> BatchSummary:
    summary = rows.summary
    with engine.begin() as conn:
        pre = rows.copies  # only PostgreSQL's COPY reads them
        _bulk_insert(conn, s.events_seen, SEEN_COLUMNS, rows.seen, pre.get("events_seen"))
        # Units before campaigns: targets take their paths from the units table.
        _bulk_insert(conn, s.units, UNIT_COLUMNS, rows.units)
        for c in rows.campaigns:
            _write_campaign(conn, c)
        _bulk_insert(conn, s.problems, PROBLEM_COLUMNS, rows.problems)
        _close_problems(conn, rows.closed)
        _bulk_insert(conn, s.letters, ("letter_id",), rows.letters)
        if conn.dialect.name == "postgresql":
            _add_facts_and_rollups(conn, rows.facts, pre.get("facts"))
        else:
            _add_facts(conn, rows.facts)
            _add_rollups(conn, rows.with_rollups())
        _add_coverage(conn, rows.covered)
        _add_first_points(conn, rows.firsts)
        _set_heads(conn, rows.heads)
        if dead:
            # A redelivered batch meets its dead letters again: they are recorded once.
            stmt = _insert(conn, s.dead_letters).on_conflict_do_nothing()
            conn.execute(
                stmt,
                [
                    {
                        "partition": d.partition,
                        "offset": d.offset,
                        "event_id": d.event_id,
                        "reason": d.reason,
                        "source": d.source or None,
                        "recorded_at": d.recorded_at,
                    }
                    for d in dead
                ],
            )
        _set_positions(conn, positions, expected, rows.marks)
        if conn.dialect.name == "postgresql":
            # Delivered on commit: query servers in other processes wake their live feeds.
            # Every commit says so (a unit registered adds a row to the answers grouped by
            # unit), so a listener whose positions moved with no note heard knows its
            # channel is dead (services.query.changes).
            conn.exec_driver_sql(
                f"SELECT pg_notify('{CHANGES_CHANNEL}', %s)", (change_payload(summary.campaigns),)
            )
    return summary


# The channel query servers in other processes LISTEN on (services.query.changes).
CHANGES_CHANNEL = "duhub_changes"
# A NOTIFY payload must be shorter than 8000 bytes (PostgreSQL's default build): a longer one
# fails the statement, and with it the batch's commit, again at every try.
NOTIFY_MAX_BYTES = 7999
# The payload that says "any campaign may have changed": no campaign id starts with '*'.
ALL_CAMPAIGNS = "*"


def change_payload(campaigns: Iterable[str]) -> str:
    """Return the NOTIFY payload naming the campaigns a batch changed: their ids, comma
    separated, or ALL_CAMPAIGNS when they do not fit in one payload."""
    payload = ",".join(sorted(campaigns))
    return payload if len(payload.encode()) <= NOTIFY_MAX_BYTES else ALL_CAMPAIGNS


def _write_campaign(conn: Connection, c) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        s.campaigns.insert(),
        [
            {
                "campaign_id": c.campaign_id,
                "name": c.name,
                "area": c.area,
                "starts_at": c.starts_at,
                "ends_at": c.ends_at,
                "source": c.source,
                "recorded_at": c.recorded_at,
            }
        ],
    )
    conn.execute(
        s.campaign_groups.insert(),
        [
            {
                "campaign_id": c.campaign_id,
                "group_id": g.group_id,
                "ordinal": i,
                "name": g.name,
                "tier": int(g.tier),
            }
            for i, g in enumerate(c.groups)
        ],
    )
    if conn.dialect.name == "postgresql":
        _add_targets_by_join(conn, c)
        return
    ids = {t for g in c.groups for t in g.target_unit_ids}
    q = select(s.units.c.unit_id, s.units.c.path).where(s.units.c.unit_id.in_(ids))
    paths = {r.unit_id: r.path for r in conn.execute(q)} if ids else {}
    if len(paths) != len(ids):
        raise _targets_missing(c, ids - set(paths))
    rows = [
        (c.campaign_id, g.group_id, t, j, paths[t])
        for g in c.groups
        for j, t in enumerate(g.target_unit_ids)
    ]
    _bulk_insert(conn, s.campaign_targets, TARGET_COLUMNS, rows)


# A campaign's targets, each with its unit's path, joined by PostgreSQL itself. A city's
# campaign names ~1,200 units: reading their paths back (an IN list of as many parameters
# that SQLAlchemy compiled, a row object per unit) and sending them again by COPY took the
# worker's writer ~17 ms of Python a campaign, by measure.
TARGETS_BY_JOIN = (
    "INSERT INTO campaign_targets (campaign_id, group_id, unit_id, ordinal, unit_path) "
    "SELECT %s, t.group_id, t.unit_id, t.ordinal, u.path "
    "FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS t (group_id, unit_id, ordinal) "
    "JOIN units u ON u.unit_id = t.unit_id"
)


def _add_targets_by_join(conn: Connection, c) -> None:  # type: ignore[no-untyped-def]
    groups: list[str] = []
    units: list[str] = []
    ordinals: list[int] = []
    for g in c.groups:
        n = len(g.target_unit_ids)
        groups += [g.group_id] * n
        units += g.target_unit_ids
        ordinals += range(n)
    if not units:
        return
    params = (c.campaign_id, text_array(groups), text_array(units), int_array(ordinals))
    added = conn.exec_driver_sql(TARGETS_BY_JOIN, params).rowcount
    if added != len(units):  # a target the join found no unit for: not dropped unsaid
        known = plain_rows(
            conn, "SELECT unit_id FROM units WHERE unit_id = ANY(?::text[])", (text_array(units),)
        )
        raise _targets_missing(c, set(units) - {u for (u,) in known})


def _targets_missing(c, ids: set[str]) -> LookupError:  # type: ignore[no-untyped-def]
    """The rules let no campaign through before its targets are units; were one to reach the
    writer all the same, its batch fails rather than lose the targets it names."""
    shown = ", ".join(sorted(ids)[:10]) + (f" (and {len(ids) - 10} more)" if len(ids) > 10 else "")
    return LookupError(f"campaign {c.campaign_id} names units not in the read model: {shown}")


UNIT_COLUMNS = (
    "unit_id",
    "parent_id",
    "level",
    "name",
    "path",
    "sample",
    "local_code",
    "recorded_at",
)
PROBLEM_COLUMNS = ("problem_id", "unit_id", "area", "found_at", "found_event_id")
TARGET_COLUMNS = ("campaign_id", "group_id", "unit_id", "ordinal", "unit_path")
SEEN_COLUMNS = (
    "event_id",
    "digest",
    "source",
    "seq",
    "recorded_at",
    "occurred_at",
    "partition",
    "offset",
)
FACT_COLUMNS = (
    "metric",
    "at",
    "unit_path",
    "area",
    "value",
    "event_id",
    "recorded_at",
    "campaign_id",
    "group_id",
)
# A fact's campaign and group travel as "" when it names none (COPY's fast form takes no
# NULL) and are stored NULL: the partial index on campaigns then leaves such facts out.
FACT_VALUES = ", ".join(
    f"NULLIF({c}, '')" if c in ("campaign_id", "group_id") else c for c in FACT_COLUMNS
)


def _bulk_insert(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: list[tuple[object, ...]],
    text: str | None = None,
) -> None:
    """Insert many rows through the DB-API: one row per event makes these hot."""
    if not rows:
        return
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        # COPY: by measure about 5 times cheaper per row than multi-row INSERTs (no SQL text
        # to build and parse).
        _copy(conn, f"{table.name} ({names})", rows, text)
    else:
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)


def _execute_values(conn: Connection, sql: str, rows: Sequence[tuple], **kw: object) -> None:  # type: ignore[type-arg]
    """Run `sql` ("... VALUES %s ...") for all rows in one statement (pages of 5,000) on
    PostgreSQL: an executemany would be a round trip per row."""
    from psycopg2.extras import execute_values

    execute_values(dbapi_cursor(conn), sql, rows, page_size=5000, **kw)


# Fewer rows than this go in one INSERT ... VALUES instead of a COPY.
COPY_FROM = 100


def _copy(
    conn: Connection, target: str, rows: list[tuple[object, ...]], text: str | None = None
) -> None:
    """COPY rows into `target` ("table (columns)") on PostgreSQL, in COPY's text format
    (`text`: rendered ahead by `_copy_text`)."""
    if len(rows) < COPY_FROM:
        # A COPY costs a millisecond or two however few its rows: one INSERT is cheaper.
        _execute_values(conn, f"INSERT INTO {target} VALUES %s", rows)
        return
    if text is None:
        text = _copy_text(rows)
    # Read in one piece: psycopg2 takes the GIL back for every chunk it reads, and a pipeline
    # folds the next batch meanwhile.
    copy = f"COPY {target} FROM STDIN"
    dbapi_cursor(conn).copy_expert(copy, io.StringIO(text), size=len(text) + 1)


def _copy_text(rows: list[tuple[object, ...]]) -> str:
    """Render rows in COPY's text format."""
    width = len(rows[0])
    hexed = [i for i, v in enumerate(rows[0]) if type(v) is bytes]
    # bytea's hex form, its backslash doubled for COPY (a table's rows share types). One
    # format per table, the bytes turned to hex a column at a time: by measure 2.1 against
    # 5.4 µs an events_seen row, 1.2 against 2.4 a fact (a tuple built per row, and a join).
    line = "\t".join("\\\\x%s" if i in hexed else "%s" for i in range(width)) + "\n"
    shown: Iterable[tuple[object, ...]] = rows
    if hexed:
        columns: list[Sequence[object]] = list(zip(*rows, strict=True))
        for i in hexed:
            columns[i] = [v.hex() for v in columns[i]]  # type: ignore[attr-defined]
        shown = zip(*columns, strict=True)
    text = "".join([line % row for row in shown])
    # The fast form holds only when no value needs escaping (ids and areas never do): exactly
    # one tab between columns, one newline per row, no other backslash, no NULL (the columns
    # written here are NOT NULL).
    plain = (
        text.count("\t") == len(rows) * (width - 1)
        and text.count("\n") == len(rows)
        and text.count("\\") == 2 * len(rows) * len(hexed)
        and "\r" not in text
        and all(type(v) in (int, str, bytes) for v in rows[0])
    )
    if not plain:
        text = "".join("\t".join(map(_copy_value, row)) + "\n" for row in rows)
    return text


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(v: object) -> str:
    """Render one value in COPY's text format, escaped."""
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, bytes | bytearray | memoryview):
        return "\\\\x" + bytes(v).hex()  # bytea's hex form, its backslash escaped for COPY
    return str(v).translate(_COPY_ESCAPES)


ROLLUP_UPSERT = (
    "INSERT INTO rollups (scope_id, grain, metric, area, bucket, value, events) {rows} "
    "ON CONFLICT (scope_id, grain, metric, area, bucket) DO UPDATE SET "
    "value = rollups.value + excluded.value, events = rollups.events + excluded.events"
)


def _add_facts(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """Add the batch's fact rows (SQLite), a campaign and group "" stored NULL."""
    if rows:
        marks = ", ".join(
            "NULLIF(?, '')" if c in ("campaign_id", "group_id") else "?" for c in FACT_COLUMNS
        )
        names = ", ".join(FACT_COLUMNS)
        conn.exec_driver_sql(f"INSERT INTO facts ({names}) VALUES ({marks})", rows)


def _add_rollups(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """Add to the rollup rows (SQLite: one writer at a time, no lock order to keep). The
    hottest write of all: plain DB-API calls, no ORM layer (SQLAlchemy's per-row parameter
    handling cost more than SQLite itself, by profile)."""
    if rows:
        conn.exec_driver_sql(ROLLUP_UPSERT.format(rows="VALUES (?, ?, ?, ?, ?, ?, ?)"), rows)


# The rollup rows of the facts in `facts_new`, as `rollup_rows` builds them in Python: every
# scope of a fact's path (depth 1 the city), hour and year buckets only at the top depths (the
# city and the counties), day and month buckets at every depth (UTC), summed per key with the
# number of facts. Sorted keys take row locks in one order, so concurrent workers cannot
# deadlock.
_TOP_ONLY = sorted(set(grains_at(0)) - set(grains_at(TOP_DEPTHS)))
ROLLUPS_FROM_FACTS = ROLLUP_UPSERT.format(
    rows=f"""
    SELECT u.scope, g.grain, f.metric, f.area,
           CASE g.grain
             WHEN {HOUR} THEN f.s - mod(f.s, 3600)
             WHEN {DAY} THEN f.s - mod(f.s, 86400)
             WHEN {MONTH} THEN
               date_part('epoch', date_trunc('month', to_timestamp(f.s) AT TIME ZONE 'UTC'))
             WHEN {YEAR} THEN
               date_part('epoch', date_trunc('year', to_timestamp(f.s) AT TIME ZONE 'UTC'))
           END::bigint AS bucket,
           sum(f.value)::bigint, count(*)
    FROM (SELECT metric, area, value, unit_path, at / {NS} AS s FROM facts_new) AS f
    CROSS JOIN LATERAL unnest(string_to_array(btrim(f.unit_path, '/'), '/'))
         WITH ORDINALITY AS u(scope, depth)
    JOIN (VALUES {", ".join(f"({g})" for g in grains_at(0))}) AS g(grain)
      ON g.grain NOT IN ({", ".join(map(str, _TOP_ONLY))}) OR u.depth <= {TOP_DEPTHS}
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5"""
)


def _add_facts_and_rollups(
    conn: Connection, rows: list[tuple[object, ...]], text: str | None
) -> None:
    """Add the batch's fact rows and sum them into the rollups on PostgreSQL.

    The facts go to a session table first; the rollup keys (about ten per fact, six after
    summing within a batch) are then built and summed by PostgreSQL in one statement, on
    its own core, instead of by the worker in Python and sent over as COPY text (a sixth of
    the worker's time, by profile). By measure (100k records, 3 alternating runs each) the
    worker folds a 10,000-record batch in ~0.7 s instead of ~1.2 s, the statement costs
    PostgreSQL ~15% more, and the machine spends 226-233 µs of CPU per record against
    259-279. `tests/integration/test_write_behind.py` holds both ways to the same rows.
    """
    if not rows:
        return
    names = ", ".join(FACT_COLUMNS)
    # Asked for in every batch: a batch that rolls back (a position conflict) takes the
    # table's creation back with it.
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS facts_new ON COMMIT DELETE ROWS "
        f"AS SELECT {names} FROM facts WITH NO DATA"
    )
    _copy(conn, f"facts_new ({names})", rows, text)
    conn.exec_driver_sql(f"INSERT INTO facts ({names}) SELECT {FACT_VALUES} FROM facts_new")
    # The keys of a 10,000-event batch are sorted in memory, not spilled to disk (4 MB, the
    # default, spilled: a third of the statement's time, by EXPLAIN ANALYZE).
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    conn.exec_driver_sql(ROLLUPS_FROM_FACTS)


def _close_problems(conn: Connection, closed: list[tuple[str, int, str, int]]) -> None:
    """Mark the batch's problems rectified, each only if it is still open: two workers may
    fold rectifications of one problem from two partitions (the city's and its county's,
    Kafka-direct) at the same time, each seeing it open. The later commit then conflicts
    and its batch is folded again from the read model, where the second one is rejected;
    before, both committed and the problem counted as rectified twice."""
    if not closed:
        return
    if conn.dialect.name == "postgresql":
        # One statement for the batch: an executemany of UPDATEs is a round trip per row.
        from psycopg2.extras import execute_values

        done = execute_values(
            dbapi_cursor(conn),
            "UPDATE problems SET rectified_at = v.at, rectified_event_id = v.eid, "
            "rectified_recorded_at = v.rec FROM (VALUES %s) AS v (pid, at, eid, rec) "
            "WHERE problems.problem_id = v.pid AND problems.rectified_at IS NULL "
            "RETURNING problems.problem_id",
            closed,
            template="(%s, %s::bigint, %s, %s::bigint)",
            page_size=5000,
            fetch=True,  # the rows of every page (rowcount would be the last page's)
        )
        count = len(done)
    else:
        count = conn.exec_driver_sql(
            "UPDATE problems SET rectified_at = ?, rectified_event_id = ?, "
            "rectified_recorded_at = ? WHERE problem_id = ? AND rectified_at IS NULL",
            [(at, eid, rec, pid) for pid, at, eid, rec in closed],
        ).rowcount
    if count != len(closed):
        raise PositionConflict(
            f"{len(closed) - count} of the batch's {len(closed)} rectified problems were "
            "rectified meanwhile by another worker"
        )


HEADS_UPSERT = (
    "INSERT INTO source_heads (source, last_hash, last_seq, last_event_id) VALUES {values} "
    "ON CONFLICT (source) DO UPDATE SET last_hash = excluded.last_hash, "
    "last_seq = excluded.last_seq, last_event_id = excluded.last_event_id"
)


def _set_heads(conn: Connection, heads: dict[str, tuple[str, bytes, int, str]]) -> None:
    """Move each source's chain head. One statement on PostgreSQL: through SQLAlchemy this
    was an executemany, a round trip per source in every batch (5% of a live worker)."""
    if not heads:
        return
    rows = [heads[k] for k in sorted(heads)]  # sorted: row locks in one order
    if conn.dialect.name == "postgresql":
        _execute_values(conn, HEADS_UPSERT.format(values="%s"), rows)
    else:
        conn.exec_driver_sql(HEADS_UPSERT.format(values="(?, ?, ?, ?)"), rows)


COVERAGE_UPSERT = (
    "INSERT INTO coverage (campaign_id, group_id, unit_id, first_at, first_recorded_at, "
    "county_id, first_event_id) VALUES {values} ON CONFLICT (campaign_id, group_id, unit_id) "
    "DO UPDATE SET first_at = {least}(coverage.first_at, excluded.first_at), "
    "first_recorded_at = {least}(coverage.first_recorded_at, excluded.first_recorded_at), "
    # The old row's values on the right (both databases): the earlier visit's id, of two at
    # one moment the lesser; a NULL (a row older than the column) is kept for a tie.
    "first_event_id = CASE WHEN excluded.first_at < coverage.first_at OR "
    "(excluded.first_at = coverage.first_at AND excluded.first_event_id < "
    "coverage.first_event_id) THEN excluded.first_event_id ELSE coverage.first_event_id END"
)


def _add_coverage(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """Keep the earliest covering visit per target (rows sorted by key). Plain DB-API: through
    SQLAlchemy this was an executemany, a round trip per row on PostgreSQL."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _execute_values(conn, COVERAGE_UPSERT.format(values="%s", least="LEAST"), rows)
    else:  # SQLite's two-argument min() is LEAST
        conn.exec_driver_sql(
            COVERAGE_UPSERT.format(values="(?, ?, ?, ?, ?, ?, ?)", least="min"), rows
        )


# A batch's points are a front of their own (`first_points`): each drops the rows it beats,
# and is added unless a row matches or beats it. A point is the visit's record time and its
# key (event time, then event id: visits at one moment are ordered too, so every target has
# one earliest visit at every moment). What is left is the front of all the target's covering
# visits, whatever order they were applied in. A NULL id (a row older than the column) sorts
# first: such a row is kept against a visit at its moment.
_FIRSTS_POINTS = (
    "WITH p (campaign_id, group_id, unit_id, recorded_at, county_id, first_at, event_id) AS "
    "(VALUES {values}) "
)
# A join, not WHERE EXISTS: for EXISTS PostgreSQL hashed the points and scanned the whole
# table once per batch (9 ms for 50 points against 19k rows, growing with the campaigns'
# targets); joined, it searches the primary key once per point (0.8 ms).
_FIRSTS_DROP = (
    "DELETE FROM coverage_firsts c USING (VALUES {values}) "
    "AS p (campaign_id, group_id, unit_id, recorded_at, county_id, first_at, event_id) "
    "WHERE p.campaign_id = c.campaign_id AND p.group_id = c.group_id "
    "AND p.unit_id = c.unit_id AND p.recorded_at <= c.recorded_at AND (p.first_at < c.first_at "
    "OR (p.first_at = c.first_at AND p.event_id < COALESCE(c.event_id, '')))"
)
_FIRSTS_ADD = _FIRSTS_POINTS + (
    "INSERT INTO coverage_firsts (campaign_id, group_id, unit_id, recorded_at, county_id, "
    "first_at, event_id) SELECT * FROM p WHERE NOT EXISTS (SELECT 1 FROM coverage_firsts f "
    "WHERE f.campaign_id = p.campaign_id AND f.group_id = p.group_id AND f.unit_id = p.unit_id "
    "AND f.recorded_at <= p.recorded_at AND (f.first_at < p.first_at "
    "OR (f.first_at = p.first_at AND COALESCE(f.event_id, '') <= p.event_id)))"
)


# SQLite, a point at a time (no statement has more variables than SQLite allows): the same
# two statements with the point's values in place of `p` (?1..?7 in its column order). Through
# the one-row `p` above SQLite scanned the whole table for every point it deleted from (its
# plan: SCAN coverage_firsts), ~28 µs a record of a replay's writes; keyed on the point's
# target it searches the primary key.
_FIRSTS_DROP_ONE = (
    "DELETE FROM coverage_firsts WHERE campaign_id = ?1 AND group_id = ?2 AND unit_id = ?3 "
    "AND recorded_at >= ?4 AND (first_at > ?6 OR (first_at = ?6 AND COALESCE(event_id, '') > ?7))"
)
_FIRSTS_ADD_ONE = (
    "INSERT INTO coverage_firsts (campaign_id, group_id, unit_id, recorded_at, county_id, "
    "first_at, event_id) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS "
    "(SELECT 1 FROM coverage_firsts f WHERE f.campaign_id = ?1 AND f.group_id = ?2 "
    "AND f.unit_id = ?3 AND f.recorded_at <= ?4 AND (f.first_at < ?6 "
    "OR (f.first_at = ?6 AND COALESCE(f.event_id, '') <= ?7)))"
)


def _add_first_points(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        for sql in (_FIRSTS_DROP, _FIRSTS_ADD):
            _execute_values(conn, sql.format(values="%s"), rows)
    else:
        for sql in (_FIRSTS_DROP_ONE, _FIRSTS_ADD_ONE):
            conn.exec_driver_sql(sql, rows)


# A partition's layout_offset as a writer of this layout moves its position: with it, while
# the two are equal (no older build moved the position since); else left where it is.
_LAYOUT_KEPT_UP = (
    "CASE WHEN log_positions.layout_offset = log_positions.next_offset THEN {upto} "
    "ELSE log_positions.layout_offset END"
)


def _set_positions(
    conn: Connection,
    positions: Mapping[int, int],
    expected: Mapping[int, int] | None,
    marks: Mapping[int, Mark],
) -> None:
    """Move the positions (compared with `expected` when given) and, when every partition
    moved has one, set its mark: the last record applied. A position moved without one keeps
    the mark it had, a record still in the log below it. `layout_offset` moves with each
    position, in the same statement (a column more on a row written anyway): builds that do
    not know the layout leave it behind (`layout.check_written`). Once left behind it stays
    so: a writer of this build already running when an older one wrote must not wipe out
    what the next start refuses the read model for."""
    if not positions:
        return
    marked = all(p in marks for p in positions)
    if expected is not None:
        moves = [(p, expected.get(p, 0), o) for p, o in sorted(positions.items())]
        new = [(p,) for p, start, _ in moves if start == 0]
        if new:
            conn.exec_driver_sql(
                "INSERT INTO log_positions (partition, next_offset, layout_offset) VALUES "
                + ", ".join(f"({int(p)}, 0, 0)" for (p,) in new)
                + " ON CONFLICT (partition) DO NOTHING"
            )
        # One compare-and-set for all the partitions (the values are ints from our own
        # positions and hashes): a round trip per partition was most of a small batch's commit.
        if marked:
            values = ", ".join(
                f"({int(p)}, {int(a)}, {int(b)}, {int(marks[p][0])}, {int(marks[p][1])})"
                for p, a, b in moves
            )
            sets, more = ", last_offset = v.lo, last_hash = v.lh", ", column4 AS lo, column5 AS lh"
        else:
            values = ", ".join(f"({int(p)}, {int(a)}, {int(b)})" for p, a, b in moves)
            sets, more = "", ""
        done = conn.exec_driver_sql(
            "UPDATE log_positions SET next_offset = v.upto, layout_offset = "
            f"{_LAYOUT_KEPT_UP.format(upto='v.upto')}"
            f"{sets} FROM (SELECT column1 AS p, "
            f"column2 AS start, column3 AS upto{more} FROM (VALUES " + values + ") AS moves) "
            "AS v WHERE log_positions.partition = v.p AND log_positions.next_offset = v.start"
        )
        if done.rowcount != len(moves):
            raise PositionConflict(
                f"partitions {sorted(positions)} are no longer at {dict(sorted(expected.items()))}"
            )
        return
    stmt = _insert(conn, s.log_positions)
    rows = [
        {"partition": p, "next_offset": o, "layout_offset": o} for p, o in sorted(positions.items())
    ]
    updated = {
        "next_offset": stmt.excluded.next_offset,
        "layout_offset": text(_LAYOUT_KEPT_UP.format(upto="excluded.layout_offset")),
    }
    if marked:
        for row in rows:
            row["last_offset"], row["last_hash"] = marks[row["partition"]]
        updated |= {"last_offset": stmt.excluded.last_offset, "last_hash": stmt.excluded.last_hash}
    conn.execute(stmt.on_conflict_do_update(index_elements=["partition"], set_=updated), rows)


POSITIONS_SQL = "SELECT partition, next_offset FROM log_positions"


def read_positions(engine: Engine) -> dict[int, int]:
    """Return the next offset to apply per partition.

    One plain DB-API statement, since SQLAlchemy's statement handling cost three times the
    query itself on SQLite (in-process, 10M read model: 55 -> 15 us, by measure). The query
    service, which reads them at every request, does so on a connection of its own
    (duhub.readmodel.positions)."""
    with engine.connect() as conn:
        return positions_in(conn)


def positions_in(conn: Connection) -> dict[int, int]:
    """Return the next offset to apply per partition as `conn` reads them (in a `snapshot`:
    the positions its figures are at)."""
    rows = plain_rows(conn, POSITIONS_SQL)
    return {int(p): int(o) for p, o in rows}


def read_marks(engine: Engine) -> dict[int, Mark]:
    """Return, per partition that has one, the offset and hash of the last record applied."""
    with engine.connect() as conn:
        rows = plain_rows(
            conn,
            "SELECT partition, last_offset, last_hash FROM log_positions "
            "WHERE last_offset IS NOT NULL AND last_hash IS NOT NULL",
        )
    return {int(p): (int(o), int(h)) for p, o, h in rows}

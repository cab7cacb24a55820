"""Bring a read model made by an earlier version up to this version's layout, once.

Each change is claimed by inserting its row into `layout` in the transaction that applies it:
a second process opening the same read model at the same moment waits for that row's lock
(PostgreSQL) or the write lock (SQLite), then finds the change made and leaves it. A read
model created by this version claims every change while still empty, for nothing. Some changes
need the log as well, and are made by the services that open both (`log_fills.py`).
"""

from __future__ import annotations

import time
from collections import defaultdict

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import IntegrityError

from duhub.projections.timegrid import MONTH, NS, TOP_DEPTHS, YEAR, bucket_start
from duhub.readmodel.engine import driver_sql, plain_rows
from duhub.readmodel.schema import county_of
from duhub.readmodel.writer import ROLLUP_UPSERT

YEAR_ROLLUPS = "year-rollups"
COVERAGE_COUNTIES = "coverage-counties"
COVERAGE_FIRSTS = "coverage-firsts"
POSITION_MARKS = "position-marks"
REFERENCE_RULES = "reference-rules"
LAYOUT_MARKS = "layout-marks"
COVERAGE_EVENTS = "coverage-events"
DEAD_LETTER_COLUMNS = "dead-letter-columns"
# Made by the services that open the log too (`dead_letter_fill.py`).
DEAD_LETTER_IDS = "dead-letter-ids"
DEAD_LETTER_SOURCES = "dead-letter-sources"
FACT_CAMPAIGN_COLUMNS = "fact-campaign-columns"
# Made by the services that open the log too (`fact_campaigns.py`).
FACT_CAMPAIGNS = "fact-campaigns"
# The changes filled from the log: rows a build before them writes lack what they fill.
REFILLED_FROM_LOG = (DEAD_LETTER_IDS, DEAD_LETTER_SOURCES, FACT_CAMPAIGNS)

# Every change this build knows. One more in `layout` was made by a newer build.
KNOWN = {
    YEAR_ROLLUPS,
    COVERAGE_COUNTIES,
    COVERAGE_FIRSTS,
    POSITION_MARKS,
    REFERENCE_RULES,
    LAYOUT_MARKS,
    COVERAGE_EVENTS,
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_IDS,
    DEAD_LETTER_SOURCES,
    FACT_CAMPAIGN_COLUMNS,
    FACT_CAMPAIGNS,
}

# What to do with a read model this build cannot trust: it is derived from the log whole.
REBUILD = (
    "rebuild it from the log: stop every duhub process on it, then either delete it (SQLite: "
    "the file with its -wal and -shm; PostgreSQL: drop its tables) and start again, which "
    "applies the log into it anew, or 'duhub replay --fresh --no-compare --into URL' into a "
    "new database and give that to --db"
)


class LayoutRefused(ValueError):
    """The read model was written by a build of another layout: its figures cannot be
    trusted by this one."""


def upgrade(engine: Engine) -> None:
    """Apply the layout changes this read model lacks (before its missing indexes are made:
    one of them is on a column a change adds), in order; refuse one a newer build made, or
    rows an older build wrote since (`check_written`)."""
    applied = refuse_unknown_layout(engine)
    for change, apply in (
        (YEAR_ROLLUPS, _add_year_rollups),
        (COVERAGE_COUNTIES, _add_coverage_counties),
        (COVERAGE_FIRSTS, _add_coverage_firsts),
        (POSITION_MARKS, _add_position_marks),
        (REFERENCE_RULES, _add_reference_rules),
        (LAYOUT_MARKS, _add_layout_marks),
        (COVERAGE_EVENTS, _add_coverage_events),
        (DEAD_LETTER_COLUMNS, _add_dead_letter_columns),
        (FACT_CAMPAIGN_COLUMNS, _add_fact_campaign_columns),
    ):
        if change not in applied:
            apply_once(engine, change, apply)
    check_written(engine)


def refuse_unknown_layout(engine: Engine) -> set[str]:
    """Return the layout changes the read model holds; raise LayoutRefused when a newer build
    made one this build does not know."""
    with engine.connect() as conn:
        applied = {name for (name,) in plain_rows(conn, "SELECT name FROM layout")}
    if unknown := sorted(applied - KNOWN):
        raise LayoutRefused(
            f"the read model {_where(engine)} has changes of layout this build does not know "
            f"({', '.join(unknown)}): a newer duhub build made them, and this one would write "
            "around their tables, its figures wrong from then on. Run the newer build, or "
            + REBUILD
        )
    return applied


def check_written(engine: Engine) -> None:
    """Refuse a read model whose positions a build not knowing its layout moved: one made
    before LAYOUT_MARKS moves `next_offset` and leaves `layout_offset` behind (or NULL in a
    partition it added). Such a build wrote rows around the tables it does not know (year
    rollups, coverage_firsts, coverage counties: found by an upgrade probe, 2026-12-06, as
    DIFFERENT figures served without a word), and which of them cannot be told, nor can every
    such table be derived again from the others (coverage_firsts only from the log)."""
    with engine.connect() as conn:
        moved = plain_rows(conn, _MOVED)
    if moved:
        where = "; ".join(
            f"partition {p} at {o}, "
            + ("added by it" if lo is None else f"left at {lo} by this layout's writers")
            for p, o, lo in moved[:5]
        )
        more = "; …" if len(moved) > 5 else ""
        raise LayoutRefused(
            f"the read model {_where(engine)} was written by a duhub build older than its "
            f"layout since a writer of this layout last did ({where}{more})"
            ": such a build writes around the tables it does not know, so its figures may be "
            "wrong. Do not run older builds on it; " + REBUILD + ". " + TRUST
        )


# The partitions whose positions a build not knowing the layout moved (`check_written`).
_MOVED = (
    "SELECT partition, next_offset, layout_offset FROM log_positions "
    "WHERE layout_offset IS NULL OR layout_offset <> next_offset ORDER BY partition"
)
# Builds that knew every table of this layout but not LAYOUT_MARKS (2026-12-05 15:09 to the
# check's arrival on 2026-12-06) wrote sound rows: a rolling upgrade that ran one beside this
# build needs no rebuild. Nothing tells builds apart (no version is stamped), so the operator is
# not asked which it was: `trust_written` checks what the tables hold instead.
TRUST = (
    "If the build that wrote is a recent one, 'duhub readmodel trust-writes' (once it is "
    "stopped) checks the rows against this layout and takes its positions when they hold"
)


def unsound_rows(conn: Connection) -> list[str]:
    """Return how the read model breaks what every writer of this layout keeps (empty when
    nothing): the city's and the counties' year rows are the sums of their month rows, every
    coverage row has its county, and every covered target its coverage_firsts row. A build
    older than the year rollups, coverage counties or coverage_firsts breaks one of them with
    its first batch that counts."""
    found: list[str] = []
    top = _top_scopes(conn)
    if top:
        sums = _year_sums(conn, top)
        years = {
            (sc, m, a, b): [v, n]
            for sc, m, a, b, v, n in plain_rows(
                conn,
                "SELECT scope_id, metric, area, bucket, value, events FROM rollups "
                f"WHERE grain = {YEAR} AND scope_id IN ({', '.join('?' * len(top))})",
                top,
            )
        }
        off = sorted(k for k in sums.keys() | years.keys() if sums.get(k) != years.get(k))
        if off:
            scope, metric, area, bucket = off[0]
            found.append(
                f"{len(off)} year rows differ from their months' sums (e.g. {metric} at "
                f"{scope}, {area or 'all areas'}, year bucket {bucket}: "
                f"{years.get(off[0], [0])[0]} against {sums.get(off[0], [0])[0]})"
            )
    paths = dict(plain_rows(conn, "SELECT unit_id, path FROM units"))
    countyless = sum(
        1
        for (unit_id,) in plain_rows(conn, "SELECT unit_id FROM coverage WHERE county_id = ''")
        if county_of(paths.get(unit_id, ""))
    )
    if countyless:
        found.append(f"{countyless} coverage rows have no county")
    firstless = plain_rows(
        conn,
        "SELECT COUNT(*) FROM coverage c WHERE NOT EXISTS (SELECT 1 FROM coverage_firsts f "
        "WHERE f.campaign_id = c.campaign_id AND f.group_id = c.group_id "
        "AND f.unit_id = c.unit_id)",
    )[0][0]
    if firstless:
        found.append(f"{firstless} covered targets have no coverage_firsts row")
    return found


def trust_written(engine: Engine) -> list[tuple[int, int, int | None]]:
    """Take the positions a build not knowing the layout marks moved as this layout's, once
    the rows hold what every writer of this layout keeps (`unsound_rows`) and nothing moved
    them meanwhile (that build still running); return what was taken: (partition, next
    offset, layout offset left). Raise LayoutRefused, changing nothing, otherwise, and for a
    layout a newer build made."""
    refuse_unknown_layout(engine)
    with engine.begin() as conn:
        moved = plain_rows(conn, _MOVED)
        if not moved:
            return []
        if found := unsound_rows(conn):
            raise LayoutRefused(
                f"the read model {_where(engine)} cannot be taken as this layout's: "
                + "; ".join(found)
                + ". The build that wrote it did not know this layout's tables, and its "
                "figures are wrong: " + REBUILD
            )
        if plain_rows(conn, _MOVED) != moved:
            raise LayoutRefused(
                f"the read model {_where(engine)} is still being written by a build older "
                "than its layout (its positions moved while they were checked): stop it, then "
                "run this again"
            )
        conn.exec_driver_sql(
            "UPDATE log_positions SET layout_offset = next_offset "
            "WHERE layout_offset IS NULL OR layout_offset <> next_offset"
        )
        # That build wrote its dead letters without their ids or sources, and its visit facts
        # without their campaigns: the fills from the log run again at the next open with it.
        conn.exec_driver_sql(
            driver_sql(
                conn,
                f"DELETE FROM layout WHERE name IN ({', '.join('?' * len(REFILLED_FROM_LOG))})",
            ),
            REFILLED_FROM_LOG,
        )
    return [(int(p), int(o), lo if lo is None else int(lo)) for p, o, lo in moved]


def _where(engine: Engine) -> str:
    """The read model's URL as the operator gives it (postgresql://, not the driver's name
    SQLAlchemy is handed), its password hidden."""
    shown = engine.url.render_as_string(hide_password=True)
    return shown.replace("postgresql+psycopg2://", "postgresql://", 1)


def apply_once(engine: Engine, change: str, apply) -> None:  # type: ignore[no-untyped-def]
    """Apply a change of layout in the transaction that claims it in `layout`, unless another
    process claimed it first (also the fills from the log, `log_fills.py`)."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                driver_sql(conn, "INSERT INTO layout (name, applied_at) VALUES (?, ?)"),
                (change, time.time_ns()),
            )
            apply(conn)
    except IntegrityError:
        pass  # another process applied it first


def _top_scopes(conn: Connection) -> list[str]:
    """The units kept with year (and hour) buckets: the city and the counties."""
    return [
        unit_id
        for unit_id, path in plain_rows(conn, "SELECT unit_id, path FROM units")
        if path.count("/") - 2 < TOP_DEPTHS
    ]


def _year_sums(conn: Connection, top: list[str]) -> dict[tuple[str, str, str, int], list[int]]:
    """(scope, metric, area, year bucket) -> [value, events] summed from the month rows."""
    sums: dict[tuple[str, str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for scope_id, metric, area, bucket, value, events in plain_rows(
        conn,
        "SELECT scope_id, metric, area, bucket, value, events FROM rollups "
        f"WHERE grain = {MONTH} AND scope_id IN ({', '.join('?' * len(top))})",
        top,
    ):
        total = sums[(scope_id, metric, area, bucket_start(YEAR, bucket * NS))]
        total[0] += value
        total[1] += events
    return sums


def _add_year_rollups(conn: Connection) -> None:
    """Sum the year rows of the city and the counties from their month rows (versions before
    kept no year buckets): the same rows the writes would have made, since a year is its
    months."""
    top = _top_scopes(conn)
    if not top:
        return
    sums = _year_sums(conn, top)
    rows = [(s, YEAR, m, a, b, v, n) for (s, m, a, b), (v, n) in sorted(sums.items())]
    if rows:
        conn.exec_driver_sql(
            driver_sql(conn, ROLLUP_UPSERT.format(rows="VALUES (?, ?, ?, ?, ?, ?, ?)")), rows
        )


def _add_coverage_counties(conn: Connection) -> None:
    """Give each coverage row the county of its target (versions before kept none), and drop
    the index the one on counties replaces."""
    if "county_id" not in {c["name"] for c in inspect(conn).get_columns("coverage")}:
        conn.exec_driver_sql(
            "ALTER TABLE coverage ADD COLUMN county_id VARCHAR(64) NOT NULL DEFAULT ''"
        )
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_coverage_campaign_rows")
    covered = [u for (u,) in plain_rows(conn, "SELECT DISTINCT unit_id FROM coverage")]
    if not covered:
        return
    paths = dict(plain_rows(conn, "SELECT unit_id, path FROM units"))
    counties = [(county_of(paths.get(u, "")), u) for u in covered]
    conn.exec_driver_sql(
        driver_sql(conn, "UPDATE coverage SET county_id = ? WHERE unit_id = ?"),
        [(c, u) for c, u in counties if c],
    )


def _add_coverage_firsts(conn: Connection) -> None:
    """Give each covered target of a read model made before `coverage_firsts` one row, from
    its earliest record and event times: as-of answers stay what they were (a visit dated
    earlier but recorded later moves an as-of `full_at` back, as before); `duhub replay`
    rebuilds the rows exactly from the log."""
    conn.exec_driver_sql(
        "INSERT INTO coverage_firsts (campaign_id, group_id, unit_id, recorded_at, county_id, "
        "first_at) SELECT campaign_id, group_id, unit_id, first_recorded_at, county_id, first_at "
        "FROM coverage"
    )


def _add_position_marks(conn: Connection) -> None:
    """Give log_positions the columns naming the last record applied, empty: nothing is
    compared with the log for a partition until its next batch commits (the read model
    opens as before)."""
    have = {c["name"] for c in inspect(conn).get_columns("log_positions")}
    for column in ("last_offset", "last_hash"):
        if column not in have:
            conn.exec_driver_sql(f"ALTER TABLE log_positions ADD COLUMN {column} BIGINT")


def _add_reference_rules(conn: Connection) -> None:
    """Give the reference mark the rules version its units were checked by; a mark kept
    before has none (NULL), so the next start checks its file whole once more."""
    if "rules" not in {c["name"] for c in inspect(conn).get_columns("reference_loaded")}:
        conn.exec_driver_sql("ALTER TABLE reference_loaded ADD COLUMN rules INTEGER")


def _add_layout_marks(conn: Connection) -> None:
    """Give log_positions the column that moves with each position a writer knowing the
    layout commits, set where the positions stand: what they hold now is taken as this
    layout's (an older build's writes before this change cannot be told from ours)."""
    if "layout_offset" not in {c["name"] for c in inspect(conn).get_columns("log_positions")}:
        conn.exec_driver_sql("ALTER TABLE log_positions ADD COLUMN layout_offset BIGINT")
    conn.exec_driver_sql("UPDATE log_positions SET layout_offset = next_offset")


# The one visit counted at a target at a moment, any visit (a HAVING without GROUP BY: no row,
# so NULL, when there are two, whatever campaign or none they were of); `{also}` asks more of it.
_ONE_VISIT = (
    "(SELECT min(f.event_id) FROM facts f JOIN campaign_targets t ON t.unit_path = f.unit_path "
    "WHERE t.campaign_id = {table}.campaign_id AND t.group_id = {table}.group_id "
    "AND t.unit_id = {table}.unit_id AND f.metric = 'visits' AND f.at = {table}.first_at "
    "HAVING count(*) = 1{also})"
)


def _add_coverage_events(conn: Connection) -> None:
    """Name the covering visit of each `coverage` and `coverage_firsts` row of a read model
    made before they were named, where its facts tell which: the one visit counted at the
    target at that event time (for a `coverage_firsts` row, recorded at its record time too).
    Two there at one moment (another group's, another campaign's or of none) cannot be told
    apart, nor can a `coverage_firsts` row `_add_coverage_firsts` made from two visits' times:
    those stay NULL, and lineage says so; `duhub replay` names them from the log."""
    for table, column in (("coverage", "first_event_id"), ("coverage_firsts", "event_id")):
        if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR(128)")
    conn.exec_driver_sql(
        "UPDATE coverage SET first_event_id = "
        + _ONE_VISIT.format(table="coverage", also="")
        + " WHERE first_event_id IS NULL"
    )
    conn.exec_driver_sql(
        "UPDATE coverage_firsts SET event_id = "
        # Recorded at the row's record time too: a row `_add_coverage_firsts` made took its
        # two times from the target's earliest visit and its first recorded, maybe two visits,
        # and the one visit at that moment may then be another's, recorded with the first
        # (an auditor's probe, 2026-12-07: a visit of no campaign named; asked of the visits
        # at that moment recorded then, it was the only one).
        + _ONE_VISIT.format(
            table="coverage_firsts", also=" AND min(f.recorded_at) = coverage_firsts.recorded_at"
        )
        + " WHERE event_id IS NULL"
    )


def _add_dead_letter_columns(conn: Connection) -> None:
    """Give dead_letters the source and record time of each (versions before kept neither),
    empty: a service that opens the log too reads them there (`dead_letter_fill.py`);
    until then the query service lists those rows as naming no source."""
    have = {c["name"] for c in inspect(conn).get_columns("dead_letters")}
    for column, kind in (("source", "VARCHAR(64)"), ("recorded_at", "BIGINT")):
        if column not in have:
            conn.exec_driver_sql(f"ALTER TABLE dead_letters ADD COLUMN {column} {kind}")


def _add_fact_campaign_columns(conn: Connection) -> None:
    """Give facts the campaign and group of each visit (versions before kept neither), empty:
    a service that opens the log too reads them there (`fact_campaigns.py`, FACT_CAMPAIGNS),
    and until then figures per group are refused. A read model holding no visit has nothing
    to read: FACT_CAMPAIGNS is claimed with this change."""
    have = {c["name"] for c in inspect(conn).get_columns("facts")}
    for column in ("campaign_id", "group_id"):
        if column not in have:
            conn.exec_driver_sql(f"ALTER TABLE facts ADD COLUMN {column} VARCHAR(64)")
    if not plain_rows(conn, "SELECT 1 FROM facts WHERE metric = 'visits' LIMIT 1"):
        conn.exec_driver_sql(
            driver_sql(
                conn,
                "INSERT INTO layout (name, applied_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            ),
            (FACT_CAMPAIGNS, time.time_ns()),
        )

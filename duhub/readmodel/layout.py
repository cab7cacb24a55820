"""Bring a read model made by an earlier version up to this version's layout, once.

Each change is claimed by inserting its row into `layout` in the transaction that applies it:
a second process opening the same read model at the same moment waits for that row's lock
(PostgreSQL) or the write lock (SQLite), then finds the change made and leaves it. A read
model created by this version claims every change while still empty, for nothing. One change
needs the log as well, and is made by the services that open both (`dead_letter_ids.py`).
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


def upgrade(engine: Engine) -> None:
    """Apply the layout changes this read model lacks (before its missing indexes are made:
    one of them is on a column a change adds), in order."""
    with engine.connect() as conn:
        applied = {name for (name,) in plain_rows(conn, "SELECT name FROM layout")}
    for change, apply in (
        (YEAR_ROLLUPS, _add_year_rollups),
        (COVERAGE_COUNTIES, _add_coverage_counties),
        (COVERAGE_FIRSTS, _add_coverage_firsts),
        (POSITION_MARKS, _add_position_marks),
        (REFERENCE_RULES, _add_reference_rules),
    ):
        if change not in applied:
            apply_once(engine, change, apply)


def apply_once(engine: Engine, change: str, apply) -> None:  # type: ignore[no-untyped-def]
    """Apply a change of layout in the transaction that claims it in `layout`, unless another
    process claimed it first (also `dead_letter_ids`, which needs the log)."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                driver_sql(conn, "INSERT INTO layout (name, applied_at) VALUES (?, ?)"),
                (change, time.time_ns()),
            )
            apply(conn)
    except IntegrityError:
        pass  # another process applied it first


def _add_year_rollups(conn: Connection) -> None:
    """Sum the year rows of the city and the counties from their month rows (versions before
    kept no year buckets): the same rows the writes would have made, since a year is its
    months."""
    top = [
        unit_id
        for unit_id, path in plain_rows(conn, "SELECT unit_id, path FROM units")
        if path.count("/") - 2 < TOP_DEPTHS
    ]
    if not top:
        return
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

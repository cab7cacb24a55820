"""What PostgreSQL's rollup write costs for the same facts under other table layouts (a study,
not part of `make bench`; bench/HISTORY.md, 2026-12-05 "Rollups: narrower keys").

    DUHUB_BENCH_PG=postgresql://duhub:duhub@127.0.0.1:30514/duhub \\
        .venv/bin/python -m bench.rollup_variants [--batch 10000] [--rounds 3] [--only a,b2]

Run it against a PostgreSQL of your own (`DUHUB_RUN_DIR=/tmp/x DUHUB_PG_PORT=30514 bash
deploy/postgres/pg.sh up`): it creates and drops a database per variant and round there.

The facts are the aggregation benchmark's stream (`bench.aggregate`: 50,000 events, seed 13,
the resends in the log), replayed once into SQLite by duhub's own replay and cached in
`$DUHUB_BENCH_DIR/cache`; batches are `--batch` consecutive records of the log, as a
backlogged worker takes them (10,000) or a live one (~500). Each variant starts from an empty
database; per batch the facts are copied into the session table `facts_new` as the writer
does (not timed), then the variant's statements run and are timed, then the commit (timed
apart). Variants alternate within a round, in a rotated order each round.

- `a`: today's `rollups` table and `ROLLUPS_FROM_FACTS` (duhub/readmodel/writer.py).
- `b1`: a 3-integer key (scope int4, series int2, slot int4): units and metric×area pairs are
  coded by dictionary tables joined in the statement; a slot is grain << 28 | hours since the
  epoch (grain first, so a range of one grain's buckets stays one range of the key).
- `b2`: the same table, the facts sent already coded (the worker holds the units and the
  pairs): no dictionary joins and no path splitting in PostgreSQL.
- `c1`: today's key with the PK INCLUDE (value, events) (index-only reads).
- `c2`: one row per (scope, slot) holding its metric×area pairs' sums in arrays sorted by
  series code (half the rows in this stream; an update merges the arrays).

Figures per variant: the statements' wall time and the backend's CPU in them (read from
/proc: the server must run on this host; on a shared host CPU swings far less than wall
time), µs per fact, rollup rows written per fact, rows, heap and index MB; the check at the
end fails unless every layout holds the same figures. Also:

    --days 1        event times laid over one day in log order (a live stream: most rows
                    are updates) instead of the benchmark's three years
    --units 640800  the units dictionary padded to a country's size (what b1's join meets)
    --reads 100     a, b2 and c2 loaded once, then four statistics questions asked of each
                    in turn (statistics.py's statement shape), their answers compared
    --explain 2     EXPLAIN (ANALYZE, BUFFERS) of batch 2's statement for each variant
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import common as c
from bench.events import NS, RECORDED_BASE, stored_records

EVENTS, SEED = 50_000, 13  # bench.aggregate's stream
# The cached facts are the generator's and the fold's of their day: delete the cache (or bump
# this) when `bench/events.py`, `duhub/simulate/` or the projections change.
FACTS_VERSION = 1

Fact = tuple[str, int, str, str, int, str, int]  # FACT_COLUMNS[:7]: what the variants sum


def facts_path() -> Path:
    d = c.WORK / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"rollup-facts-v{FACTS_VERSION}-{EVENTS}-{SEED}.pickle"


def stream_facts() -> list[Fact]:
    """Return the stream's fact rows in log order (built once: duhub's replay into SQLite)."""
    path = facts_path()
    if path.exists():
        return pickle.loads(path.read_bytes())
    from sqlalchemy import text

    from duhub.log.embedded import EmbeddedLog
    from duhub.readmodel.engine import open_engine
    from duhub.readmodel.writer import FACT_COLUMNS
    from services.aggregate.replay import replay

    c.say(f"rollup_variants: replaying {EVENTS:,} events into SQLite for their facts")
    with tempfile.TemporaryDirectory() as tmp:
        log = EmbeddedLog(Path(tmp) / "log")
        it, _ = stored_records(EVENTS, SEED, prefix="agg", duplicates_in_log=True)
        log.append(list(it))
        engine = open_engine(f"sqlite:///{tmp}/rm.db")
        replay(log, engine)
        log.close()
        with engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT {', '.join(FACT_COLUMNS[:7])} FROM facts ORDER BY id")
            ).all()
        engine.dispose()
    facts = [tuple(r) for r in rows]
    path.write_bytes(pickle.dumps(facts))
    return facts  # type: ignore[return-value]


def record_index(f: Fact) -> int:
    """The fact's record's place in the log, from the `recorded_at` the stream stamps (the
    resends, which make no facts, take none)."""
    return (f[6] - RECORDED_BASE) // 1000 - 1


def squeezed(facts: Sequence[Fact], days: float) -> list[Fact]:
    """The facts with their event times laid evenly, in log order, over `days` days from
    2024-06-01: a live stream, whose events happen about when they are sent (most of its
    rollup rows are updates), instead of the benchmark's spread over three years."""
    start = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp()) * NS
    last = max(map(record_index, facts)) or 1
    step = int(days * 86_400 * NS) // last
    return [(f[0], start + record_index(f) * step, *f[2:]) for f in facts]  # type: ignore[misc]


def batches(facts: Sequence[Fact], records: int) -> list[list[Fact]]:
    """Split the facts by `records` consecutive records of the log."""
    out: dict[int, list[Fact]] = {}
    for f in facts:
        out.setdefault(record_index(f) // records, []).append(f)
    return [out[k] for k in sorted(out)]


# The bucket start (epoch seconds) of grain g.grain for a fact's second f.s: as
# `ROLLUPS_FROM_FACTS` computes it.
def _bucket_sql() -> str:
    from duhub.projections.timegrid import DAY, HOUR, MONTH, YEAR

    return f"""CASE g.grain
             WHEN {HOUR} THEN f.s - mod(f.s, 3600)
             WHEN {DAY} THEN f.s - mod(f.s, 86400)
             WHEN {MONTH} THEN
               date_part('epoch', date_trunc('month', to_timestamp(f.s) AT TIME ZONE 'UTC'))
             WHEN {YEAR} THEN
               date_part('epoch', date_trunc('year', to_timestamp(f.s) AT TIME ZONE 'UTC'))
           END::bigint"""


def _grains_sql() -> str:
    """The grains joined to each (fact, scope): hour and year only at the top depths."""
    from duhub.projections.timegrid import TOP_DEPTHS, grains_at

    top_only = sorted(set(grains_at(0)) - set(grains_at(TOP_DEPTHS)))
    values = ", ".join(f"({g})" for g in grains_at(0))
    return (
        f"JOIN (VALUES {values}) AS g(grain) "
        f"ON g.grain NOT IN ({', '.join(map(str, top_only))}) OR u.depth <= {TOP_DEPTHS}"
    )


# A slot: the grain in the top bits, the bucket's start in hours since the epoch below (2100 is
# hour 1,139,256 < 2^28): one grain's buckets are one range of the key, as today.
SLOT = "(g.grain << 28) | ({bucket} / 3600)::int"
ADD = "value = rollups.value + excluded.value, events = rollups.events + excluded.events"

FACTS_NEW = (
    "CREATE TEMP TABLE IF NOT EXISTS facts_new (metric varchar(40), at bigint, "
    'unit_path text COLLATE "C", area varchar(32), value bigint, event_id varchar(128), '
    "recorded_at bigint) ON COMMIT DELETE ROWS"
)
FACTS_CODED = (
    "CREATE TEMP TABLE IF NOT EXISTS facts_coded (scopes int[], series smallint, at bigint, "
    "value bigint) ON COMMIT DELETE ROWS"
)
TEXT_KEY = (
    'scope_id varchar(64) COLLATE "C" NOT NULL, grain int NOT NULL, '
    'metric varchar(40) COLLATE "C" NOT NULL, area varchar(32) COLLATE "C" NOT NULL, '
    "bucket bigint NOT NULL, value bigint NOT NULL, events bigint NOT NULL"
)
TEXT_PK = "scope_id, grain, metric, area, bucket"
DICTIONARIES = (
    'CREATE TABLE rollup_scopes (scope_id varchar(64) COLLATE "C" PRIMARY KEY, '
    "code int NOT NULL UNIQUE)",
    "CREATE TABLE rollup_series (code smallint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
    'metric varchar(40) COLLATE "C" NOT NULL, area varchar(32) COLLATE "C" NOT NULL, '
    "UNIQUE (metric, area))",
)
INT_KEY = (
    "CREATE TABLE rollups (scope int NOT NULL, series smallint NOT NULL, slot int NOT NULL, "
    "value bigint NOT NULL, events bigint NOT NULL, PRIMARY KEY (scope, series, slot))"
)


def _split_path() -> str:
    return (
        "CROSS JOIN LATERAL unnest(string_to_array(btrim(f.unit_path, '/'), '/')) "
        "WITH ORDINALITY AS u(scope, depth)"
    )


def narrow_joined() -> str:
    slot = SLOT.format(bucket=_bucket_sql())
    return f"""INSERT INTO rollups (scope, series, slot, value, events)
    SELECT sc.code, se.code, {slot}, sum(f.value)::bigint, count(*)
    FROM (SELECT metric, area, value, unit_path, at / {NS} AS s FROM facts_new) AS f
    {_split_path()}
    JOIN rollup_scopes AS sc ON sc.scope_id = u.scope
    JOIN rollup_series AS se ON se.metric = f.metric AND se.area = f.area
    {_grains_sql()}
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (scope, series, slot) DO UPDATE SET {ADD}"""


# New metric×area pairs get a code before the batch's rollups name them (a pair is new only
# a few times in a read model's life; NOT EXISTS first, so no identity value is spent on a
# pair already coded).
NEW_SERIES = """INSERT INTO rollup_series (metric, area)
    SELECT DISTINCT metric, area FROM facts_new AS f WHERE NOT EXISTS
      (SELECT 1 FROM rollup_series AS s WHERE s.metric = f.metric AND s.area = f.area)
    ON CONFLICT DO NOTHING"""


def _coded_keys() -> str:
    slot = SLOT.format(bucket=_bucket_sql())
    return f"""SELECT u.scope, f.series, {slot} AS slot, sum(f.value)::bigint AS v,
           count(*) AS n
    FROM (SELECT scopes, series, value, at / {NS} AS s FROM facts_coded) AS f
    CROSS JOIN LATERAL unnest(f.scopes) WITH ORDINALITY AS u(scope, depth)
    {_grains_sql()}
    GROUP BY 1, 2, 3"""


def narrow_coded() -> str:
    return f"""INSERT INTO rollups (scope, series, slot, value, events)
    {_coded_keys()} ORDER BY 1, 2, 3
    ON CONFLICT (scope, series, slot) DO UPDATE SET {ADD}"""


# c2: a row per (scope, slot), its pairs' sums in arrays sorted by series code; an update
# merges the two rows' pairs.
WIDE = (
    "CREATE TABLE rollups (scope int NOT NULL, slot int NOT NULL, series smallint[] NOT NULL, "
    "value bigint[] NOT NULL, events bigint[] NOT NULL, PRIMARY KEY (scope, slot))"
)


def wide_coded() -> str:
    return f"""INSERT INTO rollups (scope, slot, series, value, events)
    SELECT scope, slot, array_agg(series ORDER BY series), array_agg(v ORDER BY series),
           array_agg(n ORDER BY series)
    FROM ({_coded_keys()}) AS k
    GROUP BY scope, slot ORDER BY scope, slot
    ON CONFLICT (scope, slot) DO UPDATE SET (series, value, events) = (
      SELECT array_agg(s ORDER BY s), array_agg(v ORDER BY s), array_agg(n ORDER BY s)
      FROM (SELECT s, sum(v)::bigint AS v, sum(n)::bigint AS n
            FROM (SELECT * FROM unnest(rollups.series, rollups.value, rollups.events)
                  UNION ALL
                  SELECT * FROM unnest(excluded.series, excluded.value, excluded.events))
                 AS x(s, v, n)
            GROUP BY s) AS y)"""


@dataclass(frozen=True)
class Variant:
    name: str
    about: str
    tables: tuple[str, ...]  # DDL, run once into the empty database
    statements: Callable[[], list[str]]  # timed, in each batch's transaction
    coded: bool = False  # facts go to `facts_coded` as codes (the worker maps them)
    dictionaries: bool = False  # rollup_scopes filled from the stream's units up front


def _baseline() -> list[str]:
    from duhub.readmodel.writer import ROLLUPS_FROM_FACTS

    return [ROLLUPS_FROM_FACTS]


VARIANTS = {
    v.name: v
    for v in (
        Variant(
            "a",
            "today: text key of 5 columns (ROLLUPS_FROM_FACTS)",
            (f"CREATE TABLE rollups ({TEXT_KEY}, PRIMARY KEY ({TEXT_PK}))",),
            _baseline,
        ),
        Variant(
            "b1",
            "int key (scope, series, slot); dictionaries joined in SQL",
            (*DICTIONARIES, INT_KEY),
            lambda: [NEW_SERIES, narrow_joined()],
            dictionaries=True,
        ),
        Variant(
            "b2",
            "int key (scope, series, slot); facts sent coded",
            (*DICTIONARIES, INT_KEY),
            lambda: [narrow_coded()],
            coded=True,
            dictionaries=True,
        ),
        Variant(
            "c1",
            "today's key, PK INCLUDE (value, events)",
            (
                f"CREATE TABLE rollups ({TEXT_KEY}, PRIMARY KEY (scope_id, grain, metric, area, "
                "bucket) INCLUDE (value, events))",
            ),
            _baseline,
        ),
        Variant(
            "c2",
            "wide: a row per (scope, slot), pairs in arrays; facts sent coded",
            (*DICTIONARIES, WIDE),
            lambda: [wide_coded()],
            coded=True,
            dictionaries=True,
        ),
    )
}


@dataclass
class Codes:
    """The dictionaries a coded layout keeps: units by path order (a subtree's codes lie
    together, as its ids do in the text key), metric×area pairs as first seen."""

    scopes: dict[str, int]
    series: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, facts: Sequence[Fact], units_in_all: int = 0) -> Codes:
        """The stream's units and pairs; with `units_in_all`, made up units after them up to
        that many (a country's 640,800: the dictionary a join searches)."""
        paths = {f[2] for f in facts}
        units: dict[str, str] = {}
        for p in paths:
            parts = p.strip("/").split("/")
            for i, u in enumerate(parts):
                units.setdefault(u, "/" + "/".join(parts[: i + 1]) + "/")
        ordered = sorted(units, key=units.__getitem__)
        codes = cls({u: i + 1 for i, u in enumerate(ordered)})
        for i in range(len(ordered), units_in_all):
            codes.scopes[f"x{i}"] = i + 1
        for f in facts:
            codes.series.setdefault((f[0], f[3]), len(codes.series) + 1)
        return codes

    def code(self, batch: Sequence[Fact]) -> list[tuple[object, ...]]:
        """The batch's facts as `facts_coded` rows (what a worker would send; from the
        fact's path text here, where a worker would hold its units' codes)."""
        scopes, series = self.scopes, self.series
        return [
            (
                "{" + ",".join(str(scopes[u]) for u in f[2].strip("/").split("/")) + "}",
                series[f[0], f[3]],
                f[1],
                f[4],
            )
            for f in batch
        ]


def _copy(cur, table: str, rows: Sequence[tuple[object, ...]]) -> None:  # type: ignore[no-untyped-def]
    text = "".join("\t".join(map(str, r)) + "\n" for r in rows)
    cur.copy_expert(f"COPY {table} FROM STDIN", io.StringIO(text), size=len(text) + 1)


@dataclass
class Run:
    variant: str
    batch: int
    facts: int = 0
    statement_s: float = 0.0  # the variant's statements, all batches (wall clock)
    cpu_s: float = 0.0  # the backend's CPU in them (/proc/PID/schedstat): less the host's noise
    commit_s: float = 0.0
    python_s: float = 0.0  # coding the facts (coded variants: the worker's extra work)
    per_batch_ms: list[float] = field(default_factory=list)
    rows_written: int = 0  # inserted or updated, all batches
    rows: int = 0  # figures held at the end, as today's rows (c2: its pairs)
    table_rows: int = 0
    heap_mb: float = 0.0
    index_mb: float = 0.0
    dictionaries_mb: float = 0.0
    digest: str = ""  # of every figure held, decoded to today's rows (`held_figures`)

    @property
    def us_per_fact(self) -> float:
        return self.statement_s / self.facts * 1e6


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the backend has run (the server is on this host)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg2

    return psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))


def load(
    v: Variant,
    url: str,
    parts: Sequence[Sequence[Fact]],
    codes: Codes,
    size: int,
    explain: int | None = None,
) -> Run:
    """Create the variant's tables in the empty database `url` and write every batch (with
    `explain`, up to that batch, whose last statement is then shown with EXPLAIN ANALYZE)."""
    run = Run(v.name, size, facts=sum(map(len, parts)))
    conn = connect(url)
    try:
        cur = conn.cursor()
        for ddl in v.tables:
            cur.execute(ddl)
        if v.dictionaries:
            _copy(cur, "rollup_scopes (scope_id, code)", list(codes.scopes.items()))
        if v.coded:  # the worker codes new pairs itself (rare): all known up front here
            _copy(
                cur,
                "rollup_series (metric, area, code)",
                [(*k, n) for k, n in codes.series.items()],
            )
        if v.dictionaries:  # as autovacuum would have: the planner then knows their size
            cur.execute("ANALYZE rollup_scopes, rollup_series")
        cur.execute(FACTS_CODED if v.coded else FACTS_NEW)
        conn.commit()
        statements = v.statements()
        backend = conn.get_backend_pid()
        for i, batch in enumerate(parts):
            if i == explain:
                statements = [*statements[:-1], "EXPLAIN (ANALYZE, BUFFERS) " + statements[-1]]
            if v.coded:
                t = time.perf_counter()
                rows = codes.code(batch)
                run.python_s += time.perf_counter() - t
                _copy(cur, "facts_coded", rows)
            else:
                _copy(cur, "facts_new", batch)
            cur.execute("SET LOCAL work_mem = '64MB'")
            cpu0, t0 = backend_cpu(backend), time.perf_counter()
            for sql in statements:
                cur.execute(sql)
            t1 = time.perf_counter()
            run.cpu_s += backend_cpu(backend) - cpu0
            run.rows_written += cur.rowcount
            if i == explain:
                print(f"--- {v.name}, batch {i} ({len(batch):,} facts)")
                print("\n".join(row[0] for row in cur.fetchall()))
                break
            conn.commit()
            run.commit_s += time.perf_counter() - t1
            run.statement_s += t1 - t0
            run.per_batch_ms.append((t1 - t0) * 1000)
        _measure(cur, run, v)
    finally:
        conn.close()
    return run


def _measure(cur, run: Run, v: Variant) -> None:  # type: ignore[no-untyped-def]
    cur.execute(
        "SELECT pg_relation_size('rollups'), pg_indexes_size('rollups'), "
        "pg_table_size('rollups') - pg_relation_size('rollups')"
    )
    heap, index, toast = cur.fetchone()
    run.heap_mb, run.index_mb = (heap + toast) / 2**20, index / 2**20
    if v.dictionaries:
        cur.execute(
            "SELECT pg_total_relation_size('rollup_scopes') "
            "+ pg_total_relation_size('rollup_series')"
        )
        run.dictionaries_mb = cur.fetchone()[0] / 2**20
    figures = held_figures(cur, v)
    run.rows = len(figures)
    cur.execute("SELECT count(*) FROM rollups")
    run.table_rows = cur.fetchone()[0]
    run.digest = figures_digest(figures)


# What each layout holds, decoded to today's rows (scope_id, grain, metric, area, bucket,
# value, events).
DECODED = {
    "text": "SELECT scope_id, grain, metric, area, bucket, value, events FROM rollups",
    "narrow": (
        "SELECT sc.scope_id, r.slot >> 28, se.metric, se.area, "
        "(r.slot & 268435455)::bigint * 3600, r.value, r.events FROM rollups AS r "
        "JOIN rollup_scopes AS sc ON sc.code = r.scope "
        "JOIN rollup_series AS se ON se.code = r.series"
    ),
    "wide": (
        "SELECT sc.scope_id, r.slot >> 28, se.metric, se.area, "
        "(r.slot & 268435455)::bigint * 3600, x.v, x.n "
        "FROM rollups AS r CROSS JOIN LATERAL unnest(r.series, r.value, r.events) AS x(s, v, n) "
        "JOIN rollup_scopes AS sc ON sc.code = r.scope "
        "JOIN rollup_series AS se ON se.code = x.s"
    ),
}


def held_figures(cur, v: Variant) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    """The variant's rollups as today's rows, sorted."""
    layout = "wide" if v.name == "c2" else "narrow" if v.dictionaries else "text"
    cur.execute(DECODED[layout])
    return sorted(cur.fetchall())


def figures_digest(rows: Sequence[tuple[object, ...]]) -> str:
    """A digest of sorted figures."""
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()


def fresh_database(
    v: Variant,
    parts: Sequence[Sequence[Fact]],
    codes: Codes,
    size: int,
    explain: int | None = None,
) -> Run:
    url = c.create_database("duhub_bench_rv_")
    try:
        return load(v, url, parts, codes, size, explain)
    finally:
        c.drop_database(url)


def summary(runs: Sequence[Run], base: str = "a") -> str:
    """One line per variant: medians over the rounds (ranges in brackets)."""
    by: dict[str, list[Run]] = {}
    for r in runs:
        by.setdefault(r.variant, []).append(r)
    base_s = statistics.median(r.statement_s for r in by.get(base, runs))
    base_cpu = statistics.median(r.cpu_s for r in by.get(base, runs))
    lines = [
        "| variant | statement s (range) | µs/fact | × a | backend CPU s (range) | CPU µs/fact "
        "| CPU × a "
        "| batch ms p50 | commit s | Python µs/fact "
        "| rows written/fact | rows | heap MB | index MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in by.items():
        st = [r.statement_s for r in rs]
        med = statistics.median(st)
        cpu = [r.cpu_s for r in rs]
        r0 = rs[0]
        lines.append(
            f"| {name} | {med:.2f} ({min(st):.2f}–{max(st):.2f}) "
            f"| {statistics.median(r.us_per_fact for r in rs):.1f} | {base_s / med:.2f} "
            f"| {statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) "
            f"| {statistics.median(cpu) / r0.facts * 1e6:.1f} "
            f"| {base_cpu / statistics.median(cpu):.2f} "
            f"| {statistics.median(statistics.median(r.per_batch_ms) for r in rs):.1f} "
            f"| {statistics.median(r.commit_s for r in rs):.2f} "
            f"| {statistics.median(r.python_s for r in rs) / r0.facts * 1e6:.2f} "
            f"| {r0.rows_written / r0.facts:.2f} | {r0.table_rows:,} "
            f"| {statistics.median(r.heap_mb for r in rs):.1f} "
            f"| {statistics.median(r.index_mb for r in rs):.1f} |"
        )
    return "\n".join(lines)


def check_same(runs: Sequence[Run]) -> None:
    """Every layout holds the same figures, key by key."""
    if len({r.digest for r in runs}) != 1:
        held = sorted((r.variant, r.rows, r.digest[:12]) for r in runs)
        raise AssertionError(f"the variants disagree: {held}")


# Questions as `duhub/readmodel/statistics.py` asks them of the rollups (one run of buckets
# each): (name, scope ids, grain, metrics, area ('' all), from, to (epoch s), by bucket).
def _questions(codes: Codes) -> list[tuple[str, list[str], int, list[str], str, int, int, bool]]:
    from datetime import UTC, datetime

    from duhub.projections.timegrid import DAY, HOUR, MONTH

    def at(*ymd: int) -> int:
        return int(datetime(*ymd, tzinfo=UTC).timestamp())  # type: ignore[misc]

    units = sorted(codes.scopes)
    counties = [u for u in units if len(u) == 6 and u != "420500"]
    town = next(u for u in units if len(u) == 9)
    three = ["visits", "problems_found", "problems_rectified"]
    county = counties[:1]
    feb, mar, apr, dec = at(2023, 2, 1), at(2023, 3, 1), at(2023, 4, 1), at(2023, 12, 1)
    may30 = at(2023, 5, 30)
    return [
        ("city by county, 10 months", counties, MONTH, three, "", feb, dec, False),
        ("a county by day, 90 days", county, DAY, three, "vaccination", mar, may30, True),
        ("a county by hour, 2 days", county, HOUR, three, "", mar, mar + 2 * 86400, True),
        ("a township by day, 31 days", [town], DAY, three, "", mar, apr, True),
    ]


def _ask_text(cur, q) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    """Today's statement (statistics._rollup_sql's shape, psycopg2's placeholders)."""
    from duhub.projections.timegrid import YEAR

    _, scopes, grain, metrics, area, lo, hi, by_bucket = q
    bucket = "bucket" if by_bucket else "MIN(bucket)"
    params: list[object] = []
    head = ""
    if area:
        area_is, aparams = "area = %s", [area]
    else:
        parent = "420500" if len(scopes) > 1 else scopes[0]
        head = (
            "WITH a AS (SELECT DISTINCT area FROM rollups WHERE scope_id = %s "
            f"AND grain = {YEAR if len(parent) == 6 else 3} AND metric = ANY(%s)) "
        )
        params += [parent, metrics]
        area_is, aparams = "area IN (SELECT area FROM a)", []
    params += [scopes, metrics, *aparams, lo, hi]
    cur.execute(
        f"{head}SELECT scope_id, metric, {bucket}, SUM(value), SUM(events) FROM rollups "
        f"WHERE scope_id = ANY(%s) AND grain = {grain} AND metric = ANY(%s) AND {area_is} "
        f"AND bucket >= %s AND bucket < %s "
        f"GROUP BY scope_id, metric{', bucket' if by_bucket else ''}",
        params,
    )
    return cur.fetchall()


def _coded(codes: Codes, q):  # type: ignore[no-untyped-def]
    """The question's scopes, metric×area pairs and slot range as codes (the query service
    would hold the dictionaries in memory)."""
    _, scopes, grain, metrics, area, lo, hi, _ = q
    pairs = {n: m for (m, a), n in codes.series.items() if m in metrics and (not area or a == area)}
    slots = ((grain << 28) | (lo // 3600), (grain << 28) | (hi // 3600))
    return [codes.scopes[u] for u in scopes], pairs, slots


def _ask_narrow(cur, codes: Codes, q) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    scopes, pairs, (lo, hi) = _coded(codes, q)
    by_bucket = q[7]
    slot = "slot" if by_bucket else "MIN(slot)"
    cur.execute(
        f"SELECT scope, series, {slot}, SUM(value), SUM(events) FROM rollups "
        "WHERE scope = ANY(%s) AND series = ANY(%s) AND slot >= %s AND slot < %s "
        f"GROUP BY scope, series{', slot' if by_bucket else ''}",
        [scopes, list(pairs), lo, hi],
    )
    return _by_metric(cur.fetchall(), pairs, by_bucket)


def _ask_wide(cur, codes: Codes, q) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    scopes, pairs, (lo, hi) = _coded(codes, q)
    by_bucket = q[7]
    slot = "slot" if by_bucket else "MIN(slot)"
    cur.execute(
        f"SELECT scope, x.s, {slot}, SUM(x.v), SUM(x.n) "
        "FROM rollups, unnest(series, value, events) AS x(s, v, n) "
        "WHERE scope = ANY(%s) AND slot >= %s AND slot < %s AND x.s = ANY(%s) "
        f"GROUP BY scope, x.s{', slot' if by_bucket else ''}",
        [scopes, lo, hi, list(pairs)],
    )
    return _by_metric(cur.fetchall(), pairs, by_bucket)


def _by_metric(rows, pairs, by_bucket: bool) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    """Sum the pairs' rows per metric (and bucket), as the answer needs them."""
    out: dict[tuple[object, ...], list[int]] = {}
    for scope, series, slot, value, events in rows:
        sums = out.setdefault((scope, pairs[series], slot if by_bucket else None), [0, 0])
        sums[0] += value
        sums[1] += events
    return [(*k, *v) for k, v in out.items()]


def reads(facts: Sequence[Fact], codes: Codes, repeats: int) -> None:
    """Load a, b2 and c2 once (10,000-record batches), then ask each question of each in
    turn, `repeats` times; print the median and range of each's round trip (ms)."""
    parts = batches(facts, 10_000)
    askers = {"a": _ask_text, "b2": None, "c2": None}
    urls: dict[str, str] = {}
    conns = {}
    try:
        for name in askers:
            urls[name] = c.create_database("duhub_bench_rv_")
            load(VARIANTS[name], urls[name], parts, codes, 10_000)
            conns[name] = connect(urls[name])
            conns[name].autocommit = True
            conns[name].cursor().execute("VACUUM ANALYZE rollups")
        cursors = {k: conn.cursor() for k, conn in conns.items()}
        ask = {
            "a": lambda q: _ask_text(cursors["a"], q),
            "b2": lambda q: _ask_narrow(cursors["b2"], codes, q),
            "c2": lambda q: _ask_wide(cursors["c2"], codes, q),
        }
        print("| question | answer rows, sum | a ms | b2 ms | c2 ms |")
        print("|---|---|---|---|---|")
        for q in _questions(codes):
            answers = {k: ask[k](q) for k in ask}
            totals = {k: (len(v), sum(r[-2] for r in v)) for k, v in answers.items()}
            if len(set(totals.values())) != 1:
                raise AssertionError(f"{q[0]}: the layouts answer differently: {totals}")
            times: dict[str, list[float]] = {k: [] for k in ask}
            for i in range(repeats):
                for k in list(ask) if i % 2 == 0 else list(ask)[::-1]:
                    t = time.perf_counter()
                    ask[k](q)
                    times[k].append((time.perf_counter() - t) * 1000)
            shown = " | ".join(
                f"{statistics.median(t):.2f} ({min(t):.2f}–{max(t):.2f})" for t in times.values()
            )
            n, total = totals["a"]
            print(f"| {q[0]} | {n}, {total} | {shown} |")
    finally:
        for conn in conns.values():
            conn.close()
        for url in urls.values():
            c.drop_database(url)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=10_000, help="records per batch (10000, 500)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default=",".join(VARIANTS), help="variants, comma-separated")
    ap.add_argument(
        "--days", type=float, help="lay the event times over this many days (a live stream)"
    )
    ap.add_argument("--units", type=int, default=0, help="pad the units dictionary to N")
    ap.add_argument("--explain", type=int, help="only show EXPLAIN ANALYZE of this batch")
    ap.add_argument("--reads", type=int, metavar="N", help="only time questions, N times each")
    args = ap.parse_args(argv)
    facts = stream_facts()
    if args.days:
        facts = squeezed(facts, args.days)
    parts = batches(facts, args.batch)
    codes = Codes.of(facts, args.units)
    names = args.only.split(",")
    c.say(
        f"rollup_variants: {len(facts):,} facts in {len(parts)} batches of {args.batch:,} records, "
        f"{len(codes.scopes)} units, {len(codes.series)} metric×area pairs; PostgreSQL {c.PG_ADMIN}"
    )
    if args.reads:
        reads(facts, codes, args.reads)
        return
    if args.explain is not None:
        for name in names:
            fresh_database(VARIANTS[name], parts, codes, args.batch, args.explain)
        return
    runs: list[Run] = []
    for k in range(args.rounds):
        order = names[k % len(names) :] + names[: k % len(names)]
        for name in order:
            r = fresh_database(VARIANTS[name], parts, codes, args.batch)
            c.say(
                f"round {k + 1} {name}: statement {r.statement_s:.2f} s "
                f"({r.us_per_fact:.1f} µs/fact, CPU {r.cpu_s:.2f} s), "
                f"commit {r.commit_s:.2f} s, {r.table_rows:,} rows, "
                f"{r.heap_mb:.1f}+{r.index_mb:.1f} MB"
            )
            runs.append(r)
    check_same(runs)
    print(summary(runs))


if __name__ == "__main__":
    main()

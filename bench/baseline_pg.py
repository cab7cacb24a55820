"""The same questions answered the way a team would first build it: the events as rows in
PostgreSQL (loaded with COPY from the replayed log itself, the reference data aside), GROUP BY at
query time.

Tables: `events` (one row per event: kind, event time, unit, area, persons/count, problem,
campaign, group), `units` (with the path, for subtrees) and `campaign_targets`. Indexes a
team would add first: the primary key, event time, problem id and campaign id. Each question
runs once to warm the cache and then several times one after another; the figure is the
median, beside duhub's median for the same question asked alone over gRPC (bench.query). Every
answer is checked against duhub's (the read model, in-process).
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import psycopg2

from bench import common as c
from bench.query import COUNTY, EDGES, YEAR, measure, pick_campaign
from bench.replay import readmodel
from bench.worker_memory import log_records
from duhub.reference import reference_units
from duhub.v1 import events_pb2 as pb

SCHEMA = """
CREATE TABLE units (unit_id text PRIMARY KEY, parent_id text, level int, path text NOT NULL);
CREATE TABLE events (
  event_id text PRIMARY KEY, source text NOT NULL, seq bigint NOT NULL, kind text NOT NULL,
  occurred_at timestamptz NOT NULL, unit_id text, area text, n int NOT NULL,
  problem_id text, campaign_id text, group_id text, talk_kind int
);
CREATE TABLE campaign_targets (campaign_id text, group_id text, tier int, unit_id text);
"""
INDEXES = """
CREATE INDEX events_occurred_at ON events (occurred_at);
CREATE INDEX events_problem_id ON events (problem_id);
CREATE INDEX events_campaign_id ON events (campaign_id);
CREATE INDEX targets_campaign ON campaign_targets (campaign_id);
ANALYZE;
"""

# A rectification counts for its problem's unit: found through the finding's row.
WITH_UNIT = """
WITH e AS (
  SELECT e.kind, e.n, coalesce(f.unit_id, e.unit_id) AS unit_id
  FROM events e
  LEFT JOIN events f
    ON e.kind = 'problem_rectified' AND f.problem_id = e.problem_id AND f.kind = 'problem_found'
  WHERE e.occurred_at >= %(lo)s AND e.occurred_at < %(hi)s
)
"""
SQL = {
    "city by county, one year": WITH_UNIT
    + """
SELECT split_part(u.path, '/', 3) AS county,
  count(*) FILTER (WHERE kind = 'supervision_visit') AS visits,
  count(*) FILTER (WHERE kind = 'problem_found') AS problems_found,
  count(*) FILTER (WHERE kind = 'problem_rectified') AS problems_rectified,
  coalesce(sum(n) FILTER (WHERE kind = 'accountability_imposed'), 0) AS accountability_persons,
  coalesce(sum(n) FILTER (WHERE kind = 'sanction_imposed'), 0) AS sanctioned_persons,
  coalesce(sum(n) FILTER (WHERE kind = 'talk_held'), 0) AS talk_persons
FROM e JOIN units u USING (unit_id)
WHERE u.level >= 2
GROUP BY 1 ORDER BY 1
""",
    "a county by month, one year": """
SELECT date_trunc('month', e.occurred_at AT TIME ZONE 'UTC') AS month,
  count(*) FILTER (WHERE kind = 'supervision_visit') AS visits,
  count(*) FILTER (WHERE kind = 'problem_found') AS problems_found,
  coalesce(sum(n) FILTER (WHERE kind = 'sanction_imposed'), 0) AS sanctioned_persons
FROM events e JOIN units u USING (unit_id)
WHERE e.occurred_at >= %(lo)s AND e.occurred_at < %(hi)s AND u.path LIKE %(path)s
GROUP BY 1 ORDER BY 1
""",
    "a county, sub-day edges": WITH_UNIT
    + """
SELECT count(*) FILTER (WHERE kind = 'supervision_visit') AS visits,
  count(*) FILTER (WHERE kind = 'problem_found') AS problems_found,
  count(*) FILTER (WHERE kind = 'problem_rectified') AS problems_rectified,
  (SELECT count(*) FROM events f JOIN units fu USING (unit_id)
    WHERE f.kind = 'problem_found' AND f.occurred_at < %(hi)s AND fu.path LIKE %(path)s
      AND NOT EXISTS (SELECT 1 FROM events r WHERE r.problem_id = f.problem_id
                      AND r.kind = 'problem_rectified' AND r.occurred_at < %(hi)s)
  ) AS problems_open
FROM e JOIN units u USING (unit_id)
WHERE u.path LIKE %(path)s
""",
    "coverage, city": """
SELECT t.group_id, count(*) AS targets, count(v.unit_id) AS covered
FROM campaign_targets t
LEFT JOIN (SELECT DISTINCT group_id, unit_id FROM events
           WHERE kind = 'supervision_visit' AND campaign_id = %(campaign)s
             AND occurred_at >= %(starts)s AND occurred_at < %(ends)s) v
  ON v.group_id = t.group_id AND v.unit_id = t.unit_id
WHERE t.campaign_id = %(campaign)s
GROUP BY t.group_id ORDER BY t.group_id
""",
    "coverage, one county": """
SELECT t.group_id, count(*) AS targets, count(v.unit_id) AS covered
FROM campaign_targets t
JOIN units u ON u.unit_id = t.unit_id
LEFT JOIN (SELECT DISTINCT group_id, unit_id FROM events
           WHERE kind = 'supervision_visit' AND campaign_id = %(campaign)s
             AND occurred_at >= %(starts)s AND occurred_at < %(ends)s) v
  ON v.group_id = t.group_id AND v.unit_id = t.unit_id
WHERE t.campaign_id = %(campaign)s AND u.path LIKE %(path)s
GROUP BY t.group_id ORDER BY t.group_id
""",
}

_PAYLOAD_N = {
    "supervision_visit": "findings",
    "accountability_imposed": "persons",
    "sanction_imposed": "persons",
    "talk_held": "persons",
    "regulation_improved": "count",
}


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


def _clean(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def load(conn: Any, log_dir: Any) -> dict[str, float]:
    """Create the tables and COPY the events of the replayed log into them: read from the log,
    not generated again (a log cached by an earlier run holds what the generator made then)."""
    cur = conn.cursor()
    cur.execute(SCHEMA)
    units = {u["unit_id"]: u for u in reference_units()}
    levels = {"LEVEL_CITY": 1, "LEVEL_COUNTY": 2, "LEVEL_TOWNSHIP": 3, "LEVEL_VILLAGE": 4}

    def path(uid: str) -> str:
        parts = []
        while uid:
            parts.append(uid)
            uid = units[uid].get("parent_id", "")
        return "/" + "/".join(reversed(parts)) + "/"

    buf = io.StringIO()
    for uid, u in units.items():
        buf.write(f"{uid}\t{u.get('parent_id', '')}\t{levels[u['level']]}\t{path(uid)}\n")
    buf.seek(0)
    cur.copy_expert("COPY units FROM STDIN", buf)
    t0 = time.perf_counter()
    rows = 0
    targets = io.StringIO()
    buf = io.StringIO()
    for _, value in log_records(log_dir):
        e = pb.Event.FromString(value)
        if e.source == "reference":  # the hierarchy the hub loads: in `units`
            continue
        kind = e.WhichOneof("payload")
        p = getattr(e, kind)
        at = _iso(e.occurred_at.seconds * 1_000_000_000 + e.occurred_at.nanos)
        unit = getattr(p, "unit_id", "") or "\\N"
        area = _clean(getattr(p, "area", ""))
        count = getattr(p, _PAYLOAD_N[kind]) if kind in _PAYLOAD_N else 1
        problem = getattr(p, "problem_id", "") or "\\N"
        campaign = getattr(p, "campaign_id", "") or "\\N"
        group = getattr(p, "group_id", "") or "\\N"
        talk = str(p.kind) if kind == "talk_held" else "\\N"
        buf.write(
            f"{e.event_id}\t{e.source}\t{e.seq}\t{kind}\t{at}\t{unit}\t{area}\t{count}\t"
            f"{problem}\t{campaign}\t{group}\t{talk}\n"
        )
        if kind == "campaign_launched":
            for g in p.groups:
                for t in g.target_unit_ids:
                    targets.write(f"{p.campaign_id}\t{g.group_id}\t{g.tier}\t{t}\n")
        rows += 1
        if rows % 100_000 == 0:
            buf.seek(0)
            cur.copy_expert("COPY events FROM STDIN", buf)
            buf = io.StringIO()
    buf.seek(0)
    cur.copy_expert("COPY events FROM STDIN", buf)
    targets.seek(0)
    cur.copy_expert("COPY campaign_targets FROM STDIN", targets)
    conn.commit()
    loaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    cur.execute(INDEXES)
    conn.commit()
    return {
        "rows": rows,
        "read_and_copy_s": round(loaded, 1),
        "index_s": round(time.perf_counter() - t1, 1),
    }


def params(info: dict[str, Any], name: str) -> dict[str, Any]:
    campaign, starts, ends = pick_campaign(info["campaigns"])
    lo, hi = EDGES if "edges" in name else YEAR
    return {
        "lo": lo,
        "hi": hi,
        "path": f"/420500/{COUNTY}/%",
        "campaign": campaign,
        "starts": _iso(starts),
        "ends": _iso(ends),
    }


# duhub's side of each question: (metrics, scope, period, group_by), or a coverage scope.
STATISTICS = {
    "city by county, one year": (
        ["visits", "problems_found", "problems_rectified", "accountability_persons"]
        + ["sanctioned_persons", "talk_persons"],
        "",
        YEAR,
        "unit",
    ),
    "a county by month, one year": (
        ["visits", "problems_found", "sanctioned_persons"],
        COUNTY,
        YEAR,
        "month",
    ),
    "a county, sub-day edges": (
        ["visits", "problems_found", "problems_rectified", "problems_open"],
        COUNTY,
        EDGES,
        "",
    ),
}
COVERAGE = {"coverage, city": "", "coverage, one county": COUNTY}

Answer = list[tuple[Any, ...]]


def _cell(x: Any) -> Any:
    if isinstance(x, datetime):  # a month's start
        return x.date().isoformat()
    return x if isinstance(x, str) else int(x)


def _rows(rows: Any) -> Answer:
    """Sorted rows, rows of nothing but zeros left out (one side may list them)."""
    out = [tuple(_cell(x) for x in r) for r in rows]
    return sorted(r for r in out if any(x for x in r if not isinstance(x, str)))


def duhub_answers(db: str, info: dict[str, Any]) -> dict[str, Answer]:
    """Return duhub's answer to every question, from the read model in-process, in the
    shape of the SQL's rows."""
    from duhub.readmodel.coverage import coverage
    from duhub.readmodel.engine import open_engine
    from duhub.readmodel.statistics import statistics

    def ns(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * 10**9

    campaign = pick_campaign(info["campaigns"])[0]
    out: dict[str, Answer] = {}
    engine = open_engine(f"sqlite:///{db}", create=False)
    try:
        for name, (metrics, scope, (lo, hi), group_by) in STATISTICS.items():
            rows = statistics(engine, metrics, scope, "", ns(lo), ns(hi), group_by)
            key = (lambda r: (r.key,)) if group_by else (lambda r: ())
            out[name] = _rows(key(r) + tuple(r.values[m] for m in metrics) for r in rows)
        for name, scope in COVERAGE.items():
            report = coverage(engine, campaign, scope)
            out[name] = _rows((g.key, g.targets, g.covered) for g in report.groups if g.targets)
    finally:
        engine.dispose()
    return out


def run_size(ctx: Any, which: str) -> dict[str, Any]:
    db, info = readmodel(ctx, which)
    measured = measure(ctx, which)
    duhub_ms, served_ms = measured["per_question_ms"], measured["per_question_cached_ms"]
    reps = 3 if ctx.quick else 5
    with c.cleanup() as undo:
        url = undo.database(c.create_database("duhub_bench_pg_"))
        conn = psycopg2.connect(url)
        undo.add(conn.close)
        c.say(f"baseline_pg: loading {info['events']:,} events with COPY")
        loaded = load(conn, info["log_dir"])
        if loaded["rows"] != info["events"]:
            raise RuntimeError(f"loaded {loaded['rows']:,} events of {info['events']:,}")
        cur = conn.cursor()
        per_question: dict[str, float] = {}
        answers: dict[str, Any] = {}
        for name, sql in SQL.items():
            args = params(info, name)
            cur.execute(sql, args)
            answers[name] = cur.fetchall()
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                cur.execute(sql, args)
                cur.fetchall()
                times.append((time.perf_counter() - t) * 1000)
            per_question[name] = c.median(times)
        conn.rollback()
    mine = duhub_answers(str(db), info)
    agree = {name: _rows(rows) == mine[name] for name, rows in answers.items()}
    differ = [name for name, ok in agree.items() if not ok]
    c.say(
        f"baseline_pg {which}: GROUP BY per question (ms) {per_question}; duhub's answers "
        + (f"DIFFER on: {', '.join(differ)}" if differ else "agree on every question")
    )
    return {
        "events": info["events"],
        "load": loaded,
        "pg_ms": per_question,
        "duhub_ms": duhub_ms,
        "duhub_served_ms": served_ms,
        "answers_agree": agree,
    }


COMPUTED = "duhub: each answer computed (query server with --answer-cache 0), over gRPC"
SERVED = "duhub: as served, the same question asked again (answer cache on), over gRPC"


def run(ctx: Any) -> None:
    c.ensure_services(kafka=False, pg=True)
    out = {}
    for which in ("small", "large"):
        res = out[which] = run_size(ctx, which)
        for label, key, how in (
            ("", "duhub_ms", COMPUTED),
            (", as served", "duhub_served_ms", SERVED),
        ):
            for name, pg_ms in res["pg_ms"].items():
                mine = res[key][name]
                ratio = pg_ms / mine
                fig = c.Figure(
                    f"per question{label}: {name}",
                    mine,
                    "ms",
                    [mine],
                    "PostgreSQL GROUP BY",
                    pg_ms,
                    [pg_ms],
                    ratio,
                    "PG / duhub",
                    size=f"{res['events']:,} events",
                    note=how,
                )
                wrong = "" if res["answers_agree"][name] else "PostgreSQL's answer differs"
                fig.note = "; ".join(x for x in (how, wrong) if x)
                if which == "large":
                    fig.target = "≥ 100× faster at 10M events"
                    fig.met, note = c.at_target_size(res["events"], ratio >= 100)
                    fig.note = "; ".join(x for x in (how, note, wrong) if x)
                ctx.results.add(fig)
    ctx.results.details["baseline_pg"] = out

"""`Knowledge` answered by the read model, with caches fit for batches.

Units and campaigns never change once registered, so they are cached for good; per-event
facts (ids, seqs, problems, letters) are fetched in bulk per batch by `prefetch`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, select

from duhub.domain import events as ev
from duhub.domain.events import Event, Level, SupervisionGroup, Tier
from duhub.domain.model import Campaign, Problem, Unit
from duhub.readmodel import schema as s
from duhub.readmodel.engine import snapshot

CHUNK = 500
# Ids as validated (`duhub.convert.ID_RE`) and the separator: such keys need no escaping in
# an array literal.
_PLAIN_KEYS = re.compile(r"[A-Za-z0-9._:\-,]*")


def _chunks(items: Sequence, n: int = CHUNK) -> Iterable[Sequence]:  # type: ignore[type-arg]
    for i in range(0, len(items), n):
        yield items[i : i + n]


def lookup(
    conn: Connection, sql: str, keys: Sequence[object], params: tuple[object, ...] = ()
) -> list[tuple]:  # type: ignore[type-arg]
    """Run `sql` ("... {keys}", optionally "{p}" for each of `params`) for many keys at once.

    Plain DB-API: prefetching runs for every batch, and building an IN clause of hundreds of
    bound parameters through SQLAlchemy cost more than the query.
    """
    if not keys:
        return []
    if conn.dialect.name == "postgresql":
        text = sql.format(keys="= ANY(%s::text[])", p="%s")
        return list(conn.exec_driver_sql(text, (*params, text_array(keys))))
    out: list[tuple] = []  # type: ignore[type-arg]
    for chunk in _chunks(list(keys)):
        text = sql.format(keys="IN (" + ", ".join("?" * len(chunk)) + ")", p="?")
        out += conn.exec_driver_sql(text, (*params, *chunk))
    return out


def text_array(keys: Sequence[str]) -> str | list[str]:
    """Return PostgreSQL's `text[]` parameter for `keys`: one array literal when they hold only
    id characters, else the list (psycopg2 quotes each element: ~1 µs an id, a thousand per
    batch and query, the prefetch's main cost)."""
    joined = ",".join(keys)
    if joined.count(",") == len(keys) - 1 and _PLAIN_KEYS.fullmatch(joined):
        # Each element quoted: unquoted, "NULL" would be a null and "" not an element.
        return '{"' + joined.replace(",", '","') + '"}'
    return list(keys)


def int_array(values: Sequence[int]) -> str:
    """Return PostgreSQL's `bigint[]` parameter for `values` as one array literal."""
    return "{" + ",".join(map(str, map(int, values))) + "}"


def unit_from_row(row, ids: dict[str, str] | None = None) -> Unit:  # type: ignore[no-untyped-def]
    """A Unit from a row of `units` (SQLAlchemy's, or plain DB-API's: SQLite gives 0/1).
    `ids`: the id strings met so far, so that a unit's id is one string in every path that
    holds it (~90 MB less for a country's 640,800 units)."""
    path = tuple(p for p in row.path.split("/") if p)
    unit_id, parent_id = row.unit_id, row.parent_id
    if ids is not None:
        path = tuple([ids.setdefault(p, p) for p in path])
        unit_id, parent_id = path[-1], ids.get(parent_id, parent_id)
    return Unit(
        unit_id,
        parent_id,
        Level(row.level),
        row.name,
        path,
        bool(row.sample),
        bool(row.local_code),
    )


class _Units:
    """The units of one read model, shared by every knowledge of it in the process (ingest
    takes one per concurrent batch, the aggregator its own): a unit never changes once
    registered, and a country's 640,800 units took ~450 MB a copy."""

    def __init__(self) -> None:
        self.by_id: dict[str, Unit] = {}
        self.loaded = False
        self.lock = threading.Lock()


_UNITS: WeakKeyDictionary[Engine, _Units] = WeakKeyDictionary()
_UNITS_LOCK = threading.Lock()


def _units_of(engine: Engine) -> _Units:
    with _UNITS_LOCK:
        found = _UNITS.get(engine)
        if found is None:
            found = _UNITS[engine] = _Units()
        return found


class ReadModelKnowledge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._shared = _units_of(engine)
        self._units = self._shared.by_id
        self._campaigns: dict[str, Campaign] = {}
        self._clear_batch()

    def _clear_batch(self) -> None:
        self._digests: dict[str, bytes | None] = {}
        # Where the batch's events already seen stand in the log (a duplicate's answer).
        self._positions: dict[str, tuple[int, int]] = {}
        self._seqs: dict[tuple[str, int], str | None] = {}
        self._problems: dict[str, Problem | None] = {}
        self._letters: dict[str, bool] = {}
        self._heads: dict[str, bytes | None] = {}
        # Units and campaigns this batch names that the read model did not hold when it was
        # prefetched: asked for again, they are absent without a query per event.
        self._absent: set[str] = set()
        self._absent_campaigns: set[str] = set()

    def prefetch(self, events: Sequence[Event]) -> None:
        """Load in bulk what checking and projecting these events will ask for."""
        self._clear_batch()
        ids = [e.event_id for e in events]
        seqs = [(e.source, e.seq) for e in events]
        problem_ids = [
            e.payload.problem_id
            for e in events
            if isinstance(e.payload, ev.ProblemFound | ev.ProblemRectified)
        ]
        letter_ids = [
            e.payload.letter_id for e in events if isinstance(e.payload, ev.RecommendationIssued)
        ]
        if not self._shared.loaded:
            self._load_units()
        named = {e.source for e in events}
        campaign_ids: set[str] = set()
        for e in events:
            p = e.payload
            for attr in ("unit_id", "parent_id"):
                named.add(getattr(p, attr, ""))
            if isinstance(p, ev.CampaignLaunched):
                named.update(t for g in p.groups for t in g.target_unit_ids)
            campaign_ids.add(getattr(p, "campaign_id", ""))
        named = {u for u in named if u and u not in self._units}
        campaign_ids = {c for c in campaign_ids if c and c not in self._campaigns}
        # One snapshot for every statement: another writer's commit between two of them (a
        # second worker, the tailer beside ingest) would show an event as new and its seq
        # taken by itself, refused as "already used by" its own id.
        with snapshot(self.engine) as conn:
            # (Units a batch names that are not registered yet are asked for again by the next
            # batch, so this runs often: plain DB-API, like the rest.)
            sql = (
                "SELECT unit_id, parent_id, level, name, path, sample, local_code FROM units "
                "WHERE unit_id {keys}"
            )
            for row in lookup(conn, sql, sorted(named)):
                self._units[row.unit_id] = unit_from_row(row)
            self._absent = {u for u in named if u not in self._units}
            sql = "SELECT campaign_id FROM campaigns WHERE campaign_id {keys}"
            stored = {r[0] for r in lookup(conn, sql, sorted(campaign_ids))}
            self._absent_campaigns = campaign_ids - stored
            self._digests = dict.fromkeys(ids)
            sql = (
                'SELECT event_id, digest, partition, "offset" FROM events_seen '
                "WHERE event_id {keys}"
            )
            for k, d, partition, offset in lookup(conn, sql, ids):
                self._digests[k] = bytes(d)
                self._positions[k] = (partition, offset)
            self._seqs = dict.fromkeys(seqs)
            if conn.dialect.name == "postgresql":
                # One round trip for every source of the batch.
                found = conn.exec_driver_sql(
                    "SELECT source, seq, event_id FROM events_seen WHERE (source, seq) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                    (text_array([a for a, _ in seqs]), int_array([b for _, b in seqs])),
                )
                self._seqs.update({(a, b): event_id for a, b, event_id in found})
            else:
                # One source at a time: SQLite scans the whole table for a row-value IN.
                by_source: dict[str, list[int]] = {}
                for source, seq in seqs:
                    by_source.setdefault(source, []).append(seq)
                sql = "SELECT seq, event_id FROM events_seen WHERE source = {p} AND seq {keys}"
                for source, numbers in by_source.items():
                    found = lookup(conn, sql, numbers, (source,))
                    self._seqs.update({(source, seq): event_id for seq, event_id in found})
            self._problems = dict.fromkeys(problem_ids)
            sql = (
                "SELECT problem_id, unit_id, area, found_at, rectified_at FROM problems "
                "WHERE problem_id {keys}"
            )
            for r in lookup(conn, sql, problem_ids):
                self._problems[r[0]] = Problem(*r)
            sources = sorted({e.source for e in events})
            self._heads = dict.fromkeys(sources)
            sql = "SELECT source, last_hash FROM source_heads WHERE source {keys}"
            self._heads.update({k: bytes(h) for k, h in lookup(conn, sql, sources)})
            self._letters = dict.fromkeys(letter_ids, False)
            sql = "SELECT letter_id FROM letters WHERE letter_id {keys}"
            self._letters.update({r[0]: True for r in lookup(conn, sql, letter_ids)})

    def unit(self, unit_id: str) -> Unit | None:
        if not self._shared.loaded:
            self._load_units()
        found = self._units.get(unit_id)
        if found is None and unit_id not in self._absent:
            with self.engine.connect() as conn:
                row = conn.execute(select(s.units).where(s.units.c.unit_id == unit_id)).first()
            if row is not None:
                found = self._units[unit_id] = unit_from_row(row)
        return found

    def _load_units(self) -> None:
        with self._shared.lock:  # once for all the knowledges of the read model
            if self._shared.loaded:
                return
            ids: dict[str, str] = {}
            with self.engine.connect() as conn:
                for row in conn.execute(select(s.units)):
                    self._units.setdefault(row.unit_id, unit_from_row(row, ids))
            self._shared.loaded = True

    def campaign(self, campaign_id: str) -> Campaign | None:
        found = self._campaigns.get(campaign_id)
        if found is None and campaign_id not in self._absent_campaigns:
            found = load_campaign(self.engine, campaign_id)
            if found is not None:
                self._campaigns[campaign_id] = found
        return found

    def problem(self, problem_id: str) -> Problem | None:
        if problem_id in self._problems:
            return self._problems[problem_id]
        with self.engine.connect() as conn:
            r = conn.execute(
                select(s.problems).where(s.problems.c.problem_id == problem_id)
            ).first()
        return (
            None
            if r is None
            else Problem(r.problem_id, r.unit_id, r.area, r.found_at, r.rectified_at)
        )

    def has_letter(self, letter_id: str) -> bool:
        if letter_id in self._letters:
            return self._letters[letter_id]
        with self.engine.connect() as conn:
            q = select(s.letters.c.letter_id).where(s.letters.c.letter_id == letter_id)
            return conn.execute(q).first() is not None

    def event_digest(self, event_id: str) -> bytes | None:
        if event_id in self._digests:
            return self._digests[event_id]
        with self.engine.connect() as conn:
            q = select(s.events_seen.c.digest).where(s.events_seen.c.event_id == event_id)
            r = conn.execute(q).first()
        return None if r is None else bytes(r.digest)

    def event_position(self, event_id: str) -> tuple[int, int] | None:
        """Return (partition, offset) of an event of the prefetched batch the read model
        holds (None: not held, or not in the batch)."""
        return self._positions.get(event_id)

    def source_head(self, source: str) -> bytes | None:
        if source in self._heads:
            return self._heads[source]
        with self.engine.connect() as conn:
            q = select(s.source_heads.c.last_hash).where(s.source_heads.c.source == source)
            r = conn.execute(q).first()
        return None if r is None else bytes(r.last_hash)

    def seq_owner(self, source: str, seq: int) -> str | None:
        if (source, seq) in self._seqs:
            return self._seqs[(source, seq)]
        with self.engine.connect() as conn:
            q = select(s.events_seen.c.event_id).where(
                s.events_seen.c.source == source, s.events_seen.c.seq == seq
            )
            r = conn.execute(q).first()
        return None if r is None else r.event_id


def load_campaign(engine: Engine, campaign_id: str) -> Campaign | None:
    """Return a campaign with its groups and targets in launch order."""
    with engine.connect() as conn:
        row = conn.execute(
            select(s.campaigns).where(s.campaigns.c.campaign_id == campaign_id)
        ).first()
        if row is None:
            return None
        groups = conn.execute(
            select(s.campaign_groups)
            .where(s.campaign_groups.c.campaign_id == campaign_id)
            .order_by(s.campaign_groups.c.ordinal)
        ).all()
        targets: dict[str, list[str]] = {g.group_id: [] for g in groups}
        for t in conn.execute(
            select(s.campaign_targets.c.group_id, s.campaign_targets.c.unit_id)
            .where(s.campaign_targets.c.campaign_id == campaign_id)
            .order_by(s.campaign_targets.c.group_id, s.campaign_targets.c.ordinal)
        ):
            targets[t.group_id].append(t.unit_id)
    return Campaign(
        row.campaign_id,
        row.name,
        row.area,
        row.starts_at,
        row.ends_at,
        tuple(
            SupervisionGroup(g.group_id, g.name, Tier(g.tier), tuple(targets[g.group_id]))
            for g in groups
        ),
        row.source,
        row.recorded_at,
    )


def campaigns_without_targets(engine: Engine) -> list[Campaign]:
    """Return every campaign (by start, then id) with its groups in launch order, their target
    tuples left empty: a listing that reads no target (a campaign may name 100,000)."""
    c, g = s.campaigns.c, s.campaign_groups.c
    with engine.connect() as conn:
        rows = conn.execute(select(s.campaigns).order_by(c.starts_at, c.campaign_id)).all()
        groups: dict[str, list[SupervisionGroup]] = {r.campaign_id: [] for r in rows}
        q = select(g.campaign_id, g.group_id, g.name, g.tier).order_by(g.campaign_id, g.ordinal)
        for x in conn.execute(q):
            if x.campaign_id in groups:  # (one launched since the first read: not listed)
                groups[x.campaign_id].append(SupervisionGroup(x.group_id, x.name, Tier(x.tier), ()))
    return [
        Campaign(
            r.campaign_id,
            r.name,
            r.area,
            r.starts_at,
            r.ends_at,
            tuple(groups[r.campaign_id]),
            r.source,
            r.recorded_at,
        )
        for r in rows
    ]

"""`Knowledge` answered by the read model, with caches fit for batches.

Units and campaigns never change once registered, so they are cached for good; per-event
facts (ids, seqs, problems, letters) are fetched in bulk per batch by `prefetch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select

from duhub.domain import events as ev
from duhub.domain.events import Event, Level, SupervisionGroup, Tier
from duhub.domain.model import Campaign, Problem, Unit
from duhub.readmodel import schema as s

CHUNK = 500


def _chunks(items: Sequence, n: int = CHUNK) -> Iterable[Sequence]:  # type: ignore[type-arg]
    for i in range(0, len(items), n):
        yield items[i : i + n]


def unit_from_row(row) -> Unit:  # type: ignore[no-untyped-def]
    path = tuple(p for p in row.path.split("/") if p)
    return Unit(
        row.unit_id, row.parent_id, Level(row.level), row.name, path, row.sample, row.local_code
    )


class ReadModelKnowledge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._units: dict[str, Unit] = {}
        self._units_loaded = False
        self._campaigns: dict[str, Campaign] = {}
        self._clear_batch()

    def _clear_batch(self) -> None:
        self._digests: dict[str, bytes | None] = {}
        self._seqs: dict[tuple[str, int], str | None] = {}
        self._problems: dict[str, Problem | None] = {}
        self._letters: dict[str, bool] = {}
        self._heads: dict[str, bytes | None] = {}

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
        with self.engine.connect() as conn:
            self._digests = dict.fromkeys(ids)
            for chunk in _chunks(ids):
                q = select(s.events_seen.c.event_id, s.events_seen.c.digest).where(
                    s.events_seen.c.event_id.in_(chunk)
                )
                self._digests.update({r.event_id: bytes(r.digest) for r in conn.execute(q)})
            self._seqs = dict.fromkeys(seqs)
            by_source: dict[str, list[int]] = {}
            for source, seq in seqs:
                by_source.setdefault(source, []).append(seq)
            c = s.events_seen.c
            for source, numbers in by_source.items():
                # One source at a time: SQLite scans the whole table for a row-value IN.
                for chunk in _chunks(numbers):
                    q = select(c.seq, c.event_id).where(c.source == source, c.seq.in_(chunk))
                    self._seqs.update({(source, r.seq): r.event_id for r in conn.execute(q)})
            self._problems = dict.fromkeys(problem_ids)
            for chunk in _chunks(problem_ids):
                q = select(s.problems).where(s.problems.c.problem_id.in_(chunk))
                for r in conn.execute(q):
                    self._problems[r.problem_id] = Problem(
                        r.problem_id, r.unit_id, r.area, r.found_at, r.rectified_at
                    )
            sources = sorted({e.source for e in events})
            self._heads = dict.fromkeys(sources)
            for chunk in _chunks(sources):
                q = select(s.source_heads.c.source, s.source_heads.c.last_hash)
                q = q.where(s.source_heads.c.source.in_(chunk))
                self._heads.update({r.source: bytes(r.last_hash) for r in conn.execute(q)})
            self._letters = dict.fromkeys(letter_ids, False)
            for chunk in _chunks(letter_ids):
                q = select(s.letters.c.letter_id).where(s.letters.c.letter_id.in_(chunk))
                self._letters.update({r.letter_id: True for r in conn.execute(q)})

    def unit(self, unit_id: str) -> Unit | None:
        if not self._units_loaded:
            self._load_units()
        found = self._units.get(unit_id)
        if found is None:
            with self.engine.connect() as conn:
                row = conn.execute(select(s.units).where(s.units.c.unit_id == unit_id)).first()
            if row is not None:
                found = self._units[unit_id] = unit_from_row(row)
        return found

    def _load_units(self) -> None:
        with self.engine.connect() as conn:
            for row in conn.execute(select(s.units)):
                self._units[row.unit_id] = unit_from_row(row)
        self._units_loaded = True

    def campaign(self, campaign_id: str) -> Campaign | None:
        found = self._campaigns.get(campaign_id)
        if found is None:
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

"""The benchmark's event stream: the simulator's mix over a span of event time, fast.

It follows `duhub.simulate.scenario.Scenario` (the same kinds and weights, the same campaign
plan and pace of first visits, findings on visits that are rectified later by the county that
owns the unit, talks by the city and by the counties) but walks event time over a fixed span
(2022-01-01 to 2025-01-01 by default) so a small and a large stream cover the same periods
with a different density, and it is deterministic for a seed. The 14 county-level sources and
the city each have their own seq; about 2% of the events are sent again later (a node's
retry: same id, same content).

Two forms:
- `wire_stream`: what a node sends (no hub fields), each event serialized once, duplicates
  included: for ingest, the raw producer and freshness.
- `stored_records`: what ingest appends to the log (reference data first, `recorded_at`
  stamped, `prev_hash` chained per source, duplicates not appended): for the embedded log,
  replay, and the Kafka topic the aggregator reads.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from duhub.reference import reference_events
from duhub.simulate import build
from duhub.simulate.campaign import AREA, CampaignPlan
from duhub.simulate.scenario import AREAS, KINDS, RIVER, TALK_KINDS
from duhub.simulate.units import Hierarchy, load_hierarchy
from duhub.v1 import events_pb2 as pb

NS = 1_000_000_000
DAY = 86_400 * NS
SPAN_START = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp()) * NS
SPAN_END = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()) * NS
# The hub's clock when it "recorded" a stored stream (after every event time), 1 µs apart.
RECORDED_BASE = SPAN_END + DAY
DUPLICATE_RATE = 0.02

_KIND_NAMES = list(KINDS)
_KIND_CUM = [sum(list(KINDS.values())[: i + 1]) for i in range(len(KINDS))]
_FINDINGS_CUM = [85, 96, 99, 100]
_PERSONS_CUM = [50, 75, 87, 95, 100]
_TALK_CUM = [sum(w for _, w in TALK_KINDS[: i + 1]) for i in range(len(TALK_KINDS))]


@dataclass
class StreamInfo:
    """What a stream holds, for the benchmarks' questions and checks."""

    events: int = 0  # unique events (what the log holds, reference data aside)
    duplicates: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    campaigns: list[tuple[str, int, int]] = field(default_factory=list)  # (id, starts, ends)
    sources: Counter[str] = field(default_factory=Counter)


class Generator:
    """Yield (event, is_duplicate) in publish order: `n` unique events plus ~2% resends."""

    def __init__(
        self,
        n: int,
        seed: int = 7,
        *,
        prefix: str = "bench",
        start_ns: int = SPAN_START,
        end_ns: int = SPAN_END,
        duplicates: float = DUPLICATE_RATE,
        seq_base: int = 0,
        hierarchy: Hierarchy | None = None,
    ) -> None:
        self.n, self.prefix = n, prefix
        self.start, self.end = start_ns, end_ns
        self.dup_rate = duplicates
        self.rng = random.Random(seed)
        self.h = hierarchy or load_hierarchy()
        self.counties = list(self.h.counties)
        self.river = [c for c in self.counties if c.unit_id in RIVER]
        self.seq: dict[str, int] = {}
        self.seq_base = seq_base
        self.serial = 0
        self.info = StreamInfo()
        self.plan: CampaignPlan | None = None
        self.launched_at = 0  # events emitted when the current campaign was launched
        self.pending: list[tuple[int, int, str, str]] = []  # heap (due, n, problem, source)

    # -- building blocks ---------------------------------------------------------------------

    def _pick(self, cum: list[int]) -> int:
        return bisect.bisect_right(cum, self.rng.random() * cum[-1])

    def _id(self, kind: str) -> str:
        self.serial += 1
        return f"{self.prefix}-{kind}{self.serial}"

    def _grassroots(self, river: bool = False) -> str:
        county = self.rng.choice(self.river if river else self.counties)
        pool = county.villages if self.rng.random() < 0.75 else county.townships
        return self.rng.choice(pool or (county.unit_id,))

    def _any_unit(self) -> str:
        if self.rng.random() < 0.15:
            return self.rng.choice(self.counties).unit_id
        return self._grassroots()

    def _visit(
        self, at: int, g: pb.SupervisionGroup | None, unit: str, area: str = AREA
    ) -> list[pb.Event]:
        source = (
            self.h.city_id if g is not None and g.tier == pb.TIER_CITY else self.h.source_for(unit)
        )
        k = self._pick(_FINDINGS_CUM)
        campaign = self.plan.campaign_id if g is not None and self.plan else ""
        out = [
            build.visit(
                source,
                at,
                unit,
                area,
                campaign=campaign,
                group=g.group_id if g else "",
                findings=k,
            )
        ]
        for _ in range(k):
            out.append(self._found(at, source, unit, area, campaign))
        return out

    def _found(self, at: int, source: str, unit: str, area: str, campaign: str = "") -> pb.Event:
        pid = self._id("p")
        # Rectified within days, some within weeks (as in the backfill), by the unit's county.
        late = self.rng.random() < 0.1
        delay = int((self.rng.uniform(20, 60) if late else self.rng.uniform(1, 10)) * DAY)
        self.serial += 1
        heapq.heappush(self.pending, (at + delay, self.serial, pid, self.h.source_for(unit)))
        return build.problem_found(source, at, pid, unit, area, campaign)

    # -- the kinds of ordinary work (Scenario's) ----------------------------------------------

    def _revisit(self, at: int) -> list[pb.Event]:
        assert self.plan is not None
        groups = [g for g in self.plan.groups if self.plan.cursors[g.group_id]]
        if not groups:
            return self._inspection(at)
        g = self.rng.choice(groups)
        return self._visit(at, g, self.rng.choice(self.plan.visited(g.group_id)))

    def _stray(self, at: int) -> list[pb.Event]:
        assert self.plan is not None
        g = self.rng.choice([g for g in self.plan.groups if g.target_unit_ids])
        if g.tier == pb.TIER_CITY:
            county = self.h.county(self.rng.choice(g.target_unit_ids))
            unit = self.rng.choice(county.townships or (county.unit_id,))
        else:
            unit = g.group_id.removeprefix("cg-")
        return self._visit(at, g, unit)

    def _inspection(self, at: int) -> list[pb.Event]:
        area = self.rng.choice(AREAS)
        return self._visit(at, None, self._grassroots(river=area == "fishing_ban"), area)

    def _problem(self, at: int) -> list[pb.Event]:
        unit = self._any_unit()
        return [self._found(at, self.h.source_for(unit), unit, self.rng.choice(AREAS))]

    def _persons(self, at: int, make) -> list[pb.Event]:  # type: ignore[no-untyped-def]
        unit = self._any_unit()
        persons = self._pick(_PERSONS_CUM) + 1
        return [make(self.h.source_for(unit), at, unit, self.rng.choice(AREAS), persons)]

    def _accountability(self, at: int) -> list[pb.Event]:
        return self._persons(at, build.accountability)

    def _sanction(self, at: int) -> list[pb.Event]:
        return self._persons(at, build.sanction)

    def _talk(self, at: int) -> list[pb.Event]:
        kind = TALK_KINDS[self._pick(_TALK_CUM)][0]
        county = self.rng.choice(self.counties)
        if self.rng.random() < 0.3:
            source, unit = self.h.city_id, county.unit_id
        else:
            source, unit = county.unit_id, self.rng.choice(county.townships or (county.unit_id,))
        area = self.rng.choice(("",) + AREAS)
        return [build.talk(source, at, unit, area, kind, self.rng.randint(1, 5))]

    def _letter(self, at: int) -> list[pb.Event]:
        unit = self._any_unit()
        area = self.rng.choice(AREAS)
        return [build.letter(self.h.source_for(unit), at, self._id("l"), unit, area)]

    def _regulation(self, at: int) -> list[pb.Event]:
        unit = self._any_unit()
        area = self.rng.choice(AREAS)
        count = self.rng.randint(1, 3)
        return [build.regulation(self.h.source_for(unit), at, unit, area, count)]

    # -- the walk ------------------------------------------------------------------------------

    def _stamp(self, e: pb.Event, kind: str) -> None:
        seq = self.seq.get(e.source, self.seq_base) + 1
        self.seq[e.source] = seq
        e.seq = seq
        e.event_id = f"{self.prefix}:{e.source}:{seq}"
        self.info.events += 1
        self.info.kinds[kind] += 1
        self.info.sources[e.source] += 1

    def __iter__(self) -> Iterator[tuple[pb.Event, bool]]:
        span = self.end - self.start
        step = max(1, span // max(1, self.n))
        dups: deque[tuple[int, pb.Event]] = deque()
        emitted = 0
        handlers = {k: getattr(self, f"_{k}") for k in _KIND_NAMES}

        def out(batch: list[pb.Event], kind: str) -> Iterator[tuple[pb.Event, bool]]:
            nonlocal emitted
            for e in batch:
                if emitted >= self.n:
                    return
                self._stamp(e, e.WhichOneof("payload") if kind == "" else kind)
                emitted += 1
                yield e, False
                if self.rng.random() < self.dup_rate:
                    dups.append((emitted + self.rng.randint(1, 200), e))
                while dups and dups[0][0] <= emitted:
                    self.info.duplicates += 1
                    yield dups.popleft()[1], True

        while emitted < self.n:
            t = self.start + emitted * step
            at = t + self.rng.randrange(step)
            if self.plan is None or at >= self.plan.ends_at:
                self.plan = CampaignPlan.new(self.h, at, self.rng)
                self.launched_at = emitted
                self.info.campaigns.append(
                    (self.plan.campaign_id, self.plan.starts_at, self.plan.ends_at)
                )
                yield from out([self.plan.launch_event(self.h.city_id, at)], "campaign_launched")
                continue
            if self.pending and self.pending[0][0] <= at:
                due, _, pid, source = heapq.heappop(self.pending)
                yield from out([build.problem_rectified(source, due, pid)], "problem_rectified")
                continue
            first = self.plan.due_first_visits(float(emitted - self.launched_at))
            if first:
                for g, unit in first:
                    yield from out(self._visit(at, g, unit), "")
                continue
            kind = _KIND_NAMES[self._pick(_KIND_CUM)]
            yield from out(handlers[kind](at), "")
        # Resends still waiting go out at the end.
        while dups:
            self.info.duplicates += 1
            yield dups.popleft()[1], True


def wire_stream(
    n: int, seed: int = 7, **kw: object
) -> tuple[list[tuple[bytes, bytes]], list[bool], StreamInfo]:
    """Return [(source key, serialized event)] as nodes send them, duplicate flags, and info."""
    gen = Generator(n, seed, **kw)  # type: ignore[arg-type]
    items, flags = [], []
    for e, dup in gen:
        items.append((e.source.encode(), e.SerializeToString()))
        flags.append(dup)
    return items, flags, gen.info


def stored_records(
    n: int,
    seed: int = 7,
    *,
    with_reference: bool = True,
    duplicates_in_log: bool = False,
    recorded_base: int = RECORDED_BASE,
    **kw: object,
) -> tuple[Iterator[tuple[bytes, bytes]], Generator]:
    """Return an iterator of (key, stored value) as ingest appends them, and its generator
    (whose `info` is complete once the iterator is exhausted).

    With `duplicates_in_log`, the resends are appended too (as two racing ingest instances or
    Kafka-direct retries leave them): the aggregator must count them once.
    """
    gen = Generator(n, seed, **kw)  # type: ignore[arg-type]

    def records() -> Iterator[tuple[bytes, bytes]]:
        heads: dict[str, bytes] = {}
        i = 0
        first = reference_events() if with_reference else []
        for e, dup in _chain(first, gen):
            if dup:
                if duplicates_in_log:
                    # The same object, stamped when it was first appended: the same bytes.
                    yield e.source.encode(), e.SerializeToString()
                continue
            i += 1
            e.recorded_at.seconds, e.recorded_at.nanos = divmod(recorded_base + i * 1000, NS)
            e.prev_hash = heads.get(e.source, b"")
            value = e.SerializeToString()
            heads[e.source] = hashlib.sha256(value).digest()
            yield e.source.encode(), value

    return records(), gen


def _chain(first: list[pb.Event], gen: Generator) -> Iterator[tuple[pb.Event, bool]]:
    for e in first:
        yield e, False
    yield from gen


def request_bytes(events: list[bytes]) -> bytes:
    """Return a serialized PublishRequest of already serialized events (field 1, repeated)."""
    out = bytearray()
    for value in events:
        out += b"\x0a" + _varint(len(value)) + value
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

"""The county-node simulator: its pure core, and what the real hub makes of it."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from duhub.bootstrap import Hub, HubConfig
from duhub.simulate import ARTICLE_2022, Scenario, SeqBook, SimState, Simulator, backfill_2022
from duhub.simulate.build import occurred_ns
from duhub.simulate.campaign import campaign_id_for
from duhub.simulate.state import STATE_FILE
from duhub.simulate.units import load_hierarchy
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc

NS = 1_000_000_000
T0 = int(datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp()) * NS
Y2022 = (
    int(datetime(2022, 1, 1, tzinfo=UTC).timestamp()) * NS,
    int(datetime(2023, 1, 1, tzinfo=UTC).timestamp()) * NS,
)
# Yichang's 2022, as the dashboard asks it (Beijing days).
BEIJING = timezone(timedelta(hours=8))
Y2022_BEIJING = (
    int(datetime(2022, 1, 1, tzinfo=BEIJING).timestamp()) * NS,
    int(datetime(2023, 1, 1, tzinfo=BEIJING).timestamp()) * NS,
)
# Payload field -> (metric, amount field or None for "one per event").
METRIC_OF = {
    "supervision_visit": ("visits", None),
    "problem_found": ("problems_found", None),
    "accountability_imposed": ("accountability_persons", "persons"),
    "sanction_imposed": ("sanctioned_persons", "persons"),
    "recommendation_issued": ("recommendations", None),
    "regulation_improved": ("regulations_improved", "count"),
}


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * NS)


def ts(ns: int) -> Timestamp:
    t = Timestamp()
    t.seconds, t.nanos = divmod(ns, NS)
    return t


def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Retry `check` until it stops failing: the read model applies the log asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(HubConfig(tmp_path / "hub", listen="127.0.0.1:0"))
    h.start()
    yield h
    h.stop(grace=0)


def query(hub: Hub) -> query_pb2_grpc.QueryServiceStub:
    return query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))


def figures_2022(
    q: query_pb2_grpc.QueryServiceStub, area: str, metrics: list[str]
) -> dict[str, int]:
    req = qpb.GetStatisticsRequest(
        metrics=metrics, area=area, **{"from": ts(Y2022[0]), "to": ts(Y2022[1])}
    )
    (row,) = q.GetStatistics(req, timeout=10).rows
    return dict(row.values)


def covered(q: query_pb2_grpc.QueryServiceStub, campaign_id: str) -> int:
    cov = q.GetCoverage(qpb.GetCoverageRequest(campaign_id=campaign_id), timeout=10)
    return sum(t.covered for t in cov.tiers)


# -- the pure core ---------------------------------------------------------------------------


def test_backfill_sums_to_the_article_exactly() -> None:
    events = backfill_2022(load_hierarchy())
    totals: dict[str, Counter[str]] = {area: Counter() for area in ARTICLE_2022}
    found: dict[str, int] = {}
    area_of = {e.problem_found.problem_id: e.problem_found.area for e in events}
    for e in events:
        kind = e.WhichOneof("payload")
        p = getattr(e, kind)
        assert Y2022[0] <= occurred_ns(e) < Y2022[1]
        # The article's figures on the dashboard's 2022 too, not only the command line's.
        assert Y2022_BEIJING[0] <= occurred_ns(e) < Y2022_BEIJING[1], e
        if kind == "problem_found":
            found[p.problem_id] = occurred_ns(e)
        if kind == "problem_rectified":
            assert occurred_ns(e) >= found[p.problem_id], "rectified before found"
            totals[area_of[p.problem_id]]["problems_rectified"] += 1
        elif kind == "talk_held":
            assert p.area == "" and 1 <= p.persons <= 5
            name = pb.TalkKind.Name(p.kind).removeprefix("TALK_KIND_").lower()
            totals[""][f"talk_persons_{name}"] += p.persons
        else:
            metric, amount = METRIC_OF[kind]
            n = getattr(p, amount) if amount else 1
            assert 1 <= n <= 5
            totals[p.area][metric] += n
    assert {a: dict(c) for a, c in totals.items()} == ARTICLE_2022
    months = Counter(datetime.fromtimestamp(occurred_ns(e) // NS, UTC).month for e in events)
    assert len(months) == 12
    assert len({e.source for e in events}) == 15  # the city and all 14 county-level units
    assert [occurred_ns(e) for e in events] == sorted(occurred_ns(e) for e in events)
    assert backfill_2022(load_hierarchy()) == events, "the backfill must be deterministic"


def test_live_steps_cover_the_campaign_at_pace_and_stay_in_bounds() -> None:
    h = load_hierarchy()
    sc = Scenario(h, random.Random(7), rate=20.0, nonce="t")
    (launch,) = sc.launch(T0)
    c = launch.campaign_launched
    assert c.campaign_id == campaign_id_for(T0) == "vax-60plus-20260302"
    tiers = Counter(pb.Tier.Name(g.tier) for g in c.groups)
    assert tiers == {"TIER_TASK_FORCE": 1, "TIER_CITY": 7, "TIER_COUNTY": 14}
    city_targets = sorted(t for g in c.groups if g.tier == pb.TIER_CITY for t in g.target_unit_ids)
    assert city_targets == sorted(x.unit_id for x in h.counties)
    assert sc.plan is not None
    owner = {u: k.unit_id for k in h.counties for u in (k.unit_id, *k.grassroots)}
    done_at: dict[str, int] = {}
    found: set[str] = set()
    targets = {g.group_id: set(g.target_unit_ids) for g in c.groups}
    reached: set[tuple[str, str]] = set()
    now, minutes, kinds = T0, 0.0, Counter[str]()
    while minutes < 20:
        prev, now, minutes = now, now + 5 * NS, minutes + 5 / 60
        events = sc.step(now)
        assert len(events) < 20 * 5 + 30
        for e in events:
            kind = e.WhichOneof("payload")
            kinds[kind] += 1
            assert e.seq == 0 and e.event_id == ""
            assert prev < occurred_ns(e) <= now, "in the step, never in the future"
            unit = getattr(e, kind).unit_id if kind != "problem_rectified" else None
            if e.source != h.city_id:  # a county node publishes only for its own subtree
                assert unit is None or owner[unit] == e.source
            if kind == "problem_found":
                found.add(e.problem_found.problem_id)
            if kind == "problem_rectified":
                assert e.problem_rectified.problem_id in found
            v = e.supervision_visit
            if v.campaign_id and v.unit_id in targets[v.group_id]:
                # Coverage moves only as planned: a target first covered is one the plan is due.
                assert v.unit_id in sc.plan.visited(v.group_id)
                reached.add((v.group_id, v.unit_id))
        for g, order in sc.plan.order.items():
            if sc.plan.cursors[g] == len(order) and g not in done_at and order:
                done_at[g] = minutes
    assert sc.plan.fully_visited
    assert len(reached) == sum(len(t) for t in targets.values()) == 14 + 1145
    county_done = sorted(v for g, v in done_at.items() if g.startswith("cg-"))
    assert len(county_done) == 14
    assert 7 <= county_done[0] < county_done[-1] <= 15, county_done  # one by one, 10-15 min
    assert {
        "supervision_visit",
        "problem_found",
        "problem_rectified",
        "talk_held",
        "accountability_imposed",
        "sanction_imposed",
        "recommendation_issued",
        "regulation_improved",
    } <= set(kinds)
    assert 20 * 60 * 20 * 0.9 < kinds.total() < 20 * 60 * 20 * 1.1  # about `rate` a second


def test_an_ended_campaign_makes_way_for_a_new_one_alone_in_its_step() -> None:
    sc = Scenario(load_hierarchy(), random.Random(1))
    sc.launch(T0)
    assert sc.plan is not None
    ends = sc.plan.ends_at
    sc.step(ends - NS)
    (launch,) = sc.step(ends)
    assert launch.campaign_launched.campaign_id == campaign_id_for(ends) != campaign_id_for(T0)
    restored = Scenario(load_hierarchy(), random.Random(2), snapshot=sc.snapshot())
    assert restored.plan is not None and restored.plan.order == sc.plan.order
    assert restored.plan.campaign_id == sc.plan.campaign_id
    assert restored.plan.cursors == sc.plan.cursors and restored.pending == sc.pending


def test_seq_book_reserves_and_skips() -> None:
    book = SeqBook({"420581": 5})
    events = [pb.Event(source="420581"), pb.Event(source="420500"), pb.Event(source="420581")]
    book.assign(events)
    assert [(e.seq, e.event_id) for e in events] == [
        (5, "sim:420581:5"),
        (1, "sim:420500:1"),
        (6, "sim:420581:6"),
    ]
    book.skip("420581", 6, 1000)
    assert book.next_seq["420581"] == 1007


# -- against the real hub --------------------------------------------------------------------


def test_hub_reproduces_the_article_and_coverage_rises(hub: Hub, tmp_path: Path) -> None:
    clock = FakeClock()
    sim = Simulator(hub.address, tmp_path / "sim", seed=3, clock=clock)
    sim.prepare()
    assert sim.stats["rejected"] == 0 and sim.stats["accepted"] == 4356  # backfill + launch
    q = query(hub)

    def article_figures() -> None:
        for area, want in ARTICLE_2022.items():
            assert figures_2022(q, area, list(want)) == want, area

    eventually(article_figures)
    campaign = sim.scenario.plan.campaign_id  # type: ignore[union-attr]
    seen: list[int] = []

    def launched() -> None:
        # The launch is the last event published: it may be applied after the 2022 figures.
        try:
            seen.append(covered(q, campaign))
        except grpc.RpcError as e:
            raise AssertionError(e) from e

    eventually(launched)
    for _ in range(4):
        published = 0
        for _ in range(4):
            clock.advance(3)
            published += sum(e.supervision_visit.campaign_id == campaign for e in sim.tick())
        assert published > 0

        def rose() -> None:
            now = covered(q, campaign)
            assert now > seen[-1]
            seen.append(now)

        eventually(rose)
    assert seen[0] == 0 and len(seen) == 5 and seen == sorted(seen), seen
    assert sim.stats["rejected"] == 0, sim.rejections
    eventually(article_figures)  # live events are in the present, not in 2022


def test_restart_never_reuses_a_seq(tmp_path: Path) -> None:
    data, state = tmp_path / "hub", tmp_path / "sim"
    clock = FakeClock()
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    try:
        first = Simulator(hub.address, state, seed=1, clock=clock)
        first.prepare()
        for _ in range(5):
            clock.advance(5)
            first.tick()
        first.stop()
        before = dict(first.state.seqs.next_seq)  # type: ignore[union-attr]
        # A crash after reserving seqs and before publishing them leaves a gap, not a reuse.
        crashed = SimState.load(state)
        crashed.seqs.assign([pb.Event(source="420581") for _ in range(3)])
        crashed.save()
    finally:
        hub.stop(grace=0)
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    try:
        again = Simulator(hub.address, state, seed=1, clock=clock)
        again.prepare()
        assert again.stats.total() == 0, "no second backfill, no second campaign"
        assert again.scenario.plan.campaign_id == first.scenario.plan.campaign_id  # type: ignore[union-attr]
        events = []
        for _ in range(5):
            clock.advance(5)
            events += again.tick()
        assert again.stats["rejected"] == again.stats["duplicate"] == 0, again.rejections
        assert again.stats["accepted"] == len(events) > 0
        assert all(e.seq >= before[e.source] for e in events)
        assert min(e.seq for e in events if e.source == "420581") >= before["420581"] + 3
    finally:
        again.stop()
        hub.stop(grace=0)


def test_lost_state_file_neither_double_counts_nor_reuses(hub: Hub, tmp_path: Path) -> None:
    clock = FakeClock()
    first = Simulator(hub.address, tmp_path / "sim", seed=1, clock=clock)
    first.prepare()
    visits = 0
    for _ in range(3):
        clock.advance(5)
        visits += sum(e.HasField("supervision_visit") for e in first.tick())
    (tmp_path / "sim" / STATE_FILE).unlink()
    second = Simulator(hub.address, tmp_path / "sim", seed=2, clock=clock)
    second.prepare()  # the backfill again: every event a duplicate
    assert second.stats["duplicate"] >= 4355 and second.stats["rejected"] == 0
    for _ in range(3):
        clock.advance(5)
        visits += sum(e.HasField("supervision_visit") for e in second.tick())
    assert second.stats["rejected"] == 0, second.rejections
    assert second.stats["seq_skips"] > 0  # it met its old seqs and jumped past them
    q = query(hub)

    def caught_up() -> None:  # every live visit of both runs counted once
        (row,) = q.GetStatistics(qpb.GetStatisticsRequest(metrics=["visits"]), timeout=10).rows
        assert row.values["visits"] == 102 + visits

    eventually(caught_up)
    for area, want in ARTICLE_2022.items():
        assert figures_2022(q, area, list(want)) == want, area
    saved = json.loads((tmp_path / "sim" / STATE_FILE).read_text())
    assert saved["backfilled"] is True and saved["scenario"]["campaign"]


def test_thread_publishes_and_stops_promptly(hub: Hub, tmp_path: Path) -> None:
    sim = Simulator(hub.address, tmp_path / "sim", seed=5, rate=50)
    sim.start()
    # Waited for, not timed: the 2022 backfill alone took over 10 s on a loaded CI host,
    # and the live events never came in time (the bound is left as soon as they come).
    deadline = time.monotonic() + 120
    while sim.stats["accepted"] < 4356 + 20:
        if time.monotonic() > deadline:
            sim.stop()
            pytest.fail(f"no live events published: {dict(sim.stats)}")
        time.sleep(0.05)
    thread, began = sim._thread, time.monotonic()
    assert thread is not None
    sim.stop(timeout=30)
    _stopped_promptly(thread, time.monotonic() - began)
    assert sim.stats["accepted"] >= 4356 + 20 and sim.stats["rejected"] == 0


def _stopped_promptly(thread: threading.Thread, took: float) -> None:
    """The thread ended, after what was in hand, not after a wait of its own: a tick's pause
    ends at once, and a publish or a connection is cancelled. Those waits are 5 s and more
    (ERROR_PAUSE, BACKOFF_MAX, DEADLINE); the work in hand took up to 1.2 s on a loaded
    host, beside the hub applying the backfill in the same process (a 1 s bound failed)."""
    assert not thread.is_alive(), "the simulator's thread went on after stop"
    assert took < 4.0, f"stopped after {took:.1f} s"


def test_stop_is_prompt_while_the_hub_is_down(tmp_path: Path) -> None:
    sim = Simulator("127.0.0.1:1", tmp_path / "sim", seed=5)
    sim.start()
    time.sleep(0.3)
    thread, began = sim._thread, time.monotonic()
    assert thread is not None
    sim.stop(timeout=30)
    _stopped_promptly(thread, time.monotonic() - began)
    assert not (tmp_path / "sim" / STATE_FILE).exists() or sim.stats["accepted"] == 0


class Crash(Exception):
    """The process died: nothing after this point ran."""


def test_a_crash_after_the_hub_accepted_a_step_does_not_play_it_again(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `duhub up` killed after the hub appended a step's events and before the simulator
    # recorded its scenario past that step: on restart the nodes played the step again under
    # new seqs and event ids, so its activity counted twice; its problem ids came again
    # ("'sim-…-p1092' was already found") and were later rectified by the wrong county
    # ("unit '420525106204' lies outside the source's 420527"), seen after a kill -9.
    clock = FakeClock()
    state = tmp_path / "sim"
    first = Simulator(hub.address, state, seed=3, rate=200, clock=clock)
    first.prepare()
    clock.advance(5)
    first.tick()
    before = first.stats["accepted"]

    def crash(self: Simulator) -> None:
        raise Crash()

    monkeypatch.setattr(Simulator, "_commit", crash)
    clock.advance(5)
    with pytest.raises(Crash):
        first.tick()
    lost = first.stats["accepted"] - before  # accepted by the hub, not recorded as such
    assert lost > 0
    first.stop()
    monkeypatch.undo()

    again = Simulator(hub.address, state, seed=4, rate=200, clock=clock)
    again.prepare()
    # The step is sent again as it was: the hub answers DUPLICATE, it counts once.
    assert again.stats["duplicate"] == lost and again.stats["accepted"] == 0
    for _ in range(6):
        clock.advance(5)
        again.tick()
    assert again.stats["rejected"] == 0, again.rejections[:3]


def test_backfill_onto_a_hub_holding_the_sources_seqs_still_reproduces_the_article(
    hub: Hub, tmp_path: Path
) -> None:
    """`duhub up` on a data dir a county already published to (the README's quickstart, then
    the demo on the same dir): the backfill's first seqs of that source are taken. Those
    events were sent again under fresh seqs, but a rectification in the same batch, judged
    before its problem was found, was rejected for good ('unknown problem'): five epidemic
    problems stayed open in 2022, and 1,716 were rectified, not the article's 1,721."""
    taken = []
    for seq in range(1, 21):
        e = pb.Event(event_id=f"earlier-{seq}", source="420581", seq=seq)
        e.occurred_at.CopyFrom(ts(int(datetime(2021, 6, 1, tzinfo=UTC).timestamp()) * NS))
        e.supervision_visit.unit_id = "420581101"
        e.supervision_visit.area = "vaccination"
        taken.append(e)
    assert all(r.result == ipb.RESULT_ACCEPTED for r in hub.ingestor.publish(taken))
    sim = Simulator(hub.address, tmp_path / "sim", seed=3, clock=FakeClock())
    sim.prepare()
    assert sim.stats["seq_skips"] >= 20
    assert sim.stats["rejected"] == 0, sim.rejections
    q = query(hub)

    def article_figures() -> None:
        for area, want in ARTICLE_2022.items():
            assert figures_2022(q, area, [*want, "problems_open"]) == {
                **want,
                "problems_open": 0,
            }, area

    eventually(article_figures)

"""Fuzz ingest over real gRPC: random, mutated and garbage events against an in-process hub.

Each hypothesis example starts a hub (`duhub.bootstrap.Hub`, embedded log and SQLite, on a copy
of a data directory that already holds the reference hierarchy) and sends it a few hundred
events over real gRPC: random valid events over the Yichang hierarchy (campaigns with groups and
targets, visits inside and outside their windows, problems found and rectified, accountability,
sanctions, talks, letters, rules, new villages), many of them mutated (bytes flipped, truncated,
invalid UTF-8 put into a string field, unknown enum numbers, huge values, unknown fields,
duplicates, replays of ids with other content, reused seqs, times before 2000 or far ahead,
missing fields, garbage), through the generated stub, as raw bytes and over PublishStream; and
random byte strings and mutated envelopes as whole requests.

Checked for every example: every call answers OK (one result per event, each ACCEPTED, DUPLICATE
or REJECTED with a reason naming its field) or, for an unreadable request, INVALID_ARGUMENT
naming `events`; each verdict is what the brute-force oracle (tests/unit/oracle.py) gives; the
figures (GetStatistics for every metric by unit, for an area and a period, GetCoverage of every
campaign) equal the oracle's from the events answered ACCEPTED; and the hub still answers its
health check. The run is derandomized (the same inputs every time) so it cannot flake; set
DUHUB_FUZZ_RANDOM=1 to explore new ones.
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from duhub.bootstrap import Hub, HubConfig
from duhub.convert import InvalidEvent, event_from_pb
from duhub.domain.events import Event
from duhub.reference import reference_events, reference_units
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc, query_pb2_grpc
from duhub.v1 import query_pb2 as qpb
from tests.unit import oracle
from tests.unit.builders import DAY, HOUR, at, ts

EXAMPLES = int(os.environ.get("FUZZ_TRIAL", 30))
EVENTS_PER_EXAMPLE = (340, 420)  # at least 30 * 340 = 10,200 events, plus the raw requests
MIN_SENT = 10_000
RPC_TIMEOUT = 60

CITY = "420500"
UNITS = reference_units()
LEVEL = {u["unit_id"]: u["level"] for u in UNITS}
PARENT = {u["unit_id"]: u.get("parent_id", "") for u in UNITS}
COUNTIES = [u for u, lv in LEVEL.items() if lv == "LEVEL_COUNTY"]
TOWNSHIPS = [u for u, lv in LEVEL.items() if lv == "LEVEL_TOWNSHIP"]
AREAS = ("ecology", "epidemic", "grain", "vaccination", "fishing_ban")
GROUP_BY_UNIT = qpb.GROUP_BY_UNIT


def county_of(unit_id: str) -> str:
    u = unit_id
    while u and LEVEL.get(u) != "LEVEL_COUNTY":
        u = PARENT.get(u, "")
    return u or CITY


# ---------------------------------------------------------------------------------------------
# The wire format as the test writes it (independent of duhub.wire).


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def envelope(events: list[bytes]) -> bytes:
    """Return a PublishRequest holding these event bytes (field 1, length-delimited)."""
    return b"".join(b"\x0a" + varint(len(e)) + e for e in events)


def split_envelope(data: bytes) -> list[bytes] | None:
    """Return the events of a canonically encoded PublishRequest, or None."""
    out, pos = [], 0
    while pos < len(data):
        if data[pos] != 0x0A:
            return None
        pos += 1
        length = shift = 0
        for _ in range(5):
            if pos >= len(data):
                return None
            b = data[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        else:
            return None
        if pos + length > len(data):
            return None
        out.append(data[pos : pos + length])
        pos += length
    return out


# ---------------------------------------------------------------------------------------------
# Random events over the reference hierarchy, and their mutations.


@dataclass
class Generator:
    rng: random.Random
    now: int
    prefix: str
    seqs: Counter[str] = field(default_factory=Counter)
    units: list[str] = field(default_factory=lambda: [u for u in LEVEL if u != CITY])
    campaigns: list[tuple[str, list[tuple[str, list[str]]], int, int]] = field(default_factory=list)
    problems: list[tuple[str, str, int]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    n: int = 0

    def time(self) -> int:
        return self.rng.randrange(at("2021-01-01"), self.now - HOUR)

    def envelope(self, source: str, occurred_at: int, kind: str, payload) -> pb.Event:  # type: ignore[no-untyped-def]
        self.n += 1
        self.seqs[source] += 1
        e = pb.Event(event_id=f"{self.prefix}-{self.n}", source=source, seq=self.seqs[source])
        e.occurred_at.CopyFrom(ts(occurred_at))
        getattr(e, kind).CopyFrom(payload)
        return e

    def source_for(self, unit_id: str) -> str:
        r = self.rng.random()
        if r < 0.12:
            return CITY
        if r < 0.17:  # another county: outside its authority
            return self.rng.choice(COUNTIES)
        return county_of(unit_id)

    def valid(self) -> pb.Event:
        rng = self.rng
        kind = rng.choices(
            [
                "visit",
                "problem",
                "rectify",
                "accountability",
                "sanction",
                "talk",
                "letter",
                "regulation",
                "campaign",
                "register",
            ],
            weights=[30, 12, 8, 6, 6, 8, 5, 5, 4, 3],
        )[0]
        area = rng.choice(AREAS)
        unit = rng.choice(self.units)
        t = self.time()
        if kind == "visit":
            if self.campaigns and rng.random() < 0.7:
                cid, groups, lo, hi = rng.choice(self.campaigns)
                gid, targets = rng.choice(groups)
                if targets and rng.random() < 0.85:
                    unit = rng.choice(targets)
                if rng.random() < 0.8 and lo < min(hi, self.now - HOUR):
                    t = rng.randrange(lo, min(hi, self.now - HOUR))
                if rng.random() < 0.05:
                    gid = "no-such-group"
                v = pb.SupervisionVisit(
                    campaign_id=cid,
                    group_id=gid,
                    unit_id=unit,
                    area=area,
                    findings=rng.randrange(5),
                )
            else:
                v = pb.SupervisionVisit(unit_id=unit, area=area, findings=rng.randrange(5))
            return self.envelope(self.source_for(unit), t, "supervision_visit", v)
        if kind == "problem":
            pid = f"{self.prefix}-p{self.n}"
            cid = rng.choice(self.campaigns)[0] if self.campaigns and rng.random() < 0.3 else ""
            self.problems.append((pid, unit, t))
            return self.envelope(
                self.source_for(unit),
                t,
                "problem_found",
                pb.ProblemFound(problem_id=pid, unit_id=unit, area=area, campaign_id=cid),
            )
        if kind == "rectify" and self.problems:
            pid, punit, found = rng.choice(self.problems)
            if rng.random() < 0.9 and found < self.now - HOUR:
                t = rng.randrange(found, self.now - HOUR)
            return self.envelope(
                self.source_for(punit), t, "problem_rectified", pb.ProblemRectified(problem_id=pid)
            )
        persons = rng.choice([1, 1, 2, 3, 5, 12])
        if kind == "accountability":
            return self.envelope(
                self.source_for(unit),
                t,
                kind + "_imposed",
                pb.AccountabilityImposed(unit_id=unit, area=area, persons=persons),
            )
        if kind == "sanction":
            return self.envelope(
                self.source_for(unit),
                t,
                "sanction_imposed",
                pb.SanctionImposed(unit_id=unit, area=area, persons=persons),
            )
        if kind == "talk":
            return self.envelope(
                self.source_for(unit),
                t,
                "talk_held",
                pb.TalkHeld(
                    unit_id=unit,
                    area=rng.choice((*AREAS, "")),
                    kind=rng.randint(1, 3),
                    persons=persons,
                ),
            )
        if kind == "letter":
            return self.envelope(
                self.source_for(unit),
                t,
                "recommendation_issued",
                pb.RecommendationIssued(
                    letter_id=f"{self.prefix}-l{self.n}", unit_id=unit, area=area
                ),
            )
        if kind == "regulation":
            return self.envelope(
                self.source_for(unit),
                t,
                "regulation_improved",
                pb.RegulationImproved(unit_id=unit, area=area, count=persons),
            )
        if kind == "register":
            township = rng.choice(TOWNSHIPS)
            new = f"{township}9{self.n:03d}"
            self.units.append(new)
            return self.envelope(
                county_of(township),
                t,
                "org_unit_registered",
                pb.OrgUnitRegistered(
                    unit_id=new, parent_id=township, level=pb.LEVEL_VILLAGE, name=f"新村{new}"
                ),
            )
        return self.campaign()

    def campaign(self) -> pb.Event:
        rng = self.rng
        cid = f"{self.prefix}-c{self.n}"
        groups = [pb.SupervisionGroup(group_id="tf", name="专班", tier=pb.TIER_TASK_FORCE)]
        for i in range(rng.randint(1, 3)):
            targets = rng.sample(COUNTIES, rng.randint(1, 4))
            groups.append(
                pb.SupervisionGroup(
                    group_id=f"city{i}", name=f"市{i}", tier=pb.TIER_CITY, target_unit_ids=targets
                )
            )
        source = CITY
        if rng.random() < 0.4:  # a county's own campaign over its townships
            source = rng.choice(COUNTIES)
            groups = []
        county = source if source != CITY else rng.choice(COUNTIES)
        towns = [t for t in TOWNSHIPS if PARENT[t] == county] or [county]
        for i in range(rng.randint(1, 2)):
            targets = rng.sample(towns, min(len(towns), rng.randint(1, 4)))
            groups.append(
                pb.SupervisionGroup(
                    group_id=f"county{i}",
                    name=f"县{i}",
                    tier=pb.TIER_COUNTY,
                    target_unit_ids=targets,
                )
            )
        lo = rng.randrange(at("2021-01-01"), self.now - 30 * DAY)
        hi = lo + rng.randint(10, 400) * DAY
        self.campaigns.append(
            (cid, [(g.group_id, list(g.target_unit_ids)) for g in groups], lo, hi)
        )
        c = pb.CampaignLaunched(campaign_id=cid, name="督导", area=rng.choice(AREAS), groups=groups)
        c.starts_at.CopyFrom(ts(lo))
        c.ends_at.CopyFrom(ts(hi))
        return self.envelope(source, lo, "campaign_launched", c)

    # -- mutations: each returns the bytes to send -------------------------------------------

    def mutated(self, e: pb.Event) -> tuple[str, bytes]:
        name = self.rng.choice(list(MUTATIONS))
        return name, MUTATIONS[name](self, e)

    def flip(self, e: pb.Event) -> bytes:
        b = bytearray(e.SerializeToString())
        for _ in range(self.rng.randint(1, 3)):
            b[self.rng.randrange(len(b))] = self.rng.randrange(256)
        return bytes(b)

    def bit(self, e: pb.Event) -> bytes:
        b = bytearray(e.SerializeToString())
        b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
        return bytes(b)

    def truncate(self, e: pb.Event) -> bytes:
        b = e.SerializeToString()
        return b[: self.rng.randrange(len(b))]

    def bad_utf8(self, e: pb.Event) -> bytes:
        """Put bytes that are not UTF-8 into one of the event's string fields."""
        paths = list(string_fields(e))
        set_value, _ = self.rng.choice(paths)
        marker = f"MARK{self.rng.getrandbits(40):010x}"
        set_value(marker)
        bad = self.rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80"])
        raw = marker.encode()
        at_ = self.rng.randrange(len(raw) - len(bad) + 1)
        return e.SerializeToString().replace(raw, raw[:at_] + bad + raw[at_ + len(bad) :])

    def bad_enum(self, e: pb.Event) -> bytes:
        value = self.rng.choice([0, 4, 5, 99, 2**31 - 1, -1])
        kind = e.WhichOneof("payload")
        if kind == "talk_held":
            e.talk_held.kind = value
        elif kind == "org_unit_registered":
            e.org_unit_registered.level = value
        elif kind == "campaign_launched":
            self.rng.choice(e.campaign_launched.groups).tier = value
        else:
            e.talk_held.kind = value  # replaces the payload: a talk with a bad kind
            e.talk_held.unit_id = CITY
            e.talk_held.persons = 1
        return e.SerializeToString()

    def huge(self, e: pb.Event) -> bytes:
        rng = self.rng
        choice = rng.randrange(10)
        kind = e.WhichOneof("payload")
        payload = getattr(e, kind)
        if choice == 0 and kind in ("accountability_imposed", "sanction_imposed", "talk_held"):
            payload.persons = rng.choice([2**32 - 1, 100_001])
        elif choice == 1 and kind == "regulation_improved":
            payload.count = 2**32 - 1
        elif choice == 2 and kind == "supervision_visit":
            payload.findings = rng.choice([2**32 - 1, 100_001])
        elif choice == 3:
            e.seq = rng.choice([2**64 - 1, 2**63, 2**63 - 1])
        elif choice == 4:
            e.occurred_at.seconds = rng.choice([2**62, -(2**62), 2**40, -1, 4_102_444_800])
        elif choice == 5:
            e.occurred_at.nanos = rng.choice([-1, 1_000_000_000, 2**31 - 1])
        elif choice == 6:
            e.event_id = "e" * rng.choice([129, 5000])
        elif choice == 7:
            e.source = "4" * 65
        elif choice == 8 and kind == "org_unit_registered":
            payload.name = "名" * rng.choice([201, 3000])
        else:
            if hasattr(payload, "area"):
                payload.area = rng.choice(["a" * 33, "Ecology", "fishing ban", "1x"])
            else:
                e.event_id = "bad id"
        return e.SerializeToString()

    def unknown_field(self, e: pb.Event) -> bytes:
        extra = self.rng.choice([b"\xf8\x07\x01", b"\x3a\x03abc", b"\x4b\x4c", b"\x4d\0\0\0\0"])
        if self.rng.random() < 0.5:
            return e.SerializeToString() + extra
        getattr(e, e.WhichOneof("payload")).MergeFromString(extra)
        return e.SerializeToString()

    def duplicate(self, e: pb.Event) -> bytes:
        return self.rng.choice(self.sent) if self.sent else e.SerializeToString()

    def replay_other(self, e: pb.Event) -> bytes:
        """An earlier event's id with other content."""
        if not self.sent:
            return e.SerializeToString()
        try:
            old = pb.Event.FromString(self.rng.choice(self.sent))
        except DecodeError:  # a mutated one
            return e.SerializeToString()
        e.event_id = old.event_id
        return e.SerializeToString()

    def seq_reuse(self, e: pb.Event) -> bytes:
        if self.seqs[e.source] > 1:
            e.seq = self.rng.randrange(1, self.seqs[e.source])
        return e.SerializeToString()

    def future(self, e: pb.Event) -> bytes:
        ahead = self.rng.choice([self.rng.randint(2, 3000) * DAY, self.rng.randint(1, 20) * HOUR])
        e.occurred_at.CopyFrom(ts(self.now + ahead))
        return e.SerializeToString()

    def ancient(self, e: pb.Event) -> bytes:
        e.occurred_at.CopyFrom(
            ts(self.rng.choice([0, at("1999-12-31T23:59:59"), at("1980-05-01")]))
        )
        return e.SerializeToString()

    def missing(self, e: pb.Event) -> bytes:
        what = self.rng.choice(["event_id", "source", "seq", "occurred_at", "payload"])
        if what == "payload":
            e.ClearField(e.WhichOneof("payload"))
        else:
            e.ClearField(what)
        return e.SerializeToString()

    def reserved_source(self, e: pb.Event) -> bytes:
        e.source = self.rng.choice(["reference", "420581101", "nobody"])
        return e.SerializeToString()

    def garbage(self, e: pb.Event) -> bytes:
        return self.rng.randbytes(self.rng.randint(0, 60))

    def two_payloads(self, e: pb.Event) -> bytes:
        other = pb.Event()
        other.sanction_imposed.CopyFrom(pb.SanctionImposed(unit_id=CITY, area="ecology", persons=2))
        return e.SerializeToString() + other.SerializeToString()


MUTATIONS: dict[str, Callable[[Generator, pb.Event], bytes]] = {
    name: getattr(Generator, name)
    for name in (
        "flip",
        "bit",
        "truncate",
        "bad_utf8",
        "bad_enum",
        "huge",
        "unknown_field",
        "duplicate",
        "replay_other",
        "seq_reuse",
        "future",
        "ancient",
        "missing",
        "reserved_source",
        "garbage",
        "two_payloads",
    )
}


def string_fields(msg, path: str = "") -> Iterator[tuple[Callable[[str], None], str]]:  # type: ignore[no-untyped-def]
    """Yield a setter for each string field (and element) set in a message, recursively."""
    for f, value in msg.ListFields():
        name = f"{path}.{f.name}" if path else f.name
        if f.type == f.TYPE_STRING:
            if f.is_repeated:
                for i in range(len(value)):
                    yield (lambda v, c=value, i=i: c.__setitem__(i, v)), f"{name}[{i}]"
            else:
                yield (lambda v, m=msg, n=f.name: setattr(m, n, v)), name
        elif f.type == f.TYPE_MESSAGE:
            for i, sub in enumerate(value if f.is_repeated else [value]):
                yield from string_fields(sub, f"{name}[{i}]" if f.is_repeated else name)


# ---------------------------------------------------------------------------------------------
# What one example sends.


@dataclass
class Plan:
    seed: int
    n_events: int
    mutate_rate: float
    batch_sizes: list[int]
    transports: list[str]
    raw_requests: list[bytes]
    envelope_mutations: list[int]
    resend_every: int  # a node retrying: every so many batches, one is sent again as it was


plans = st.builds(
    Plan,
    seed=st.integers(0, 2**32 - 1),
    n_events=st.integers(*EVENTS_PER_EXAMPLE),
    mutate_rate=st.sampled_from([0.15, 0.3, 0.5]),
    batch_sizes=st.lists(st.integers(1, 200), min_size=1, max_size=8),
    transports=st.lists(st.sampled_from(["stub", "raw", "stream"]), min_size=1, max_size=8),
    raw_requests=st.lists(st.binary(max_size=300), min_size=4, max_size=10),
    envelope_mutations=st.lists(st.integers(0, 2**31), min_size=1, max_size=3),
    resend_every=st.integers(2, 6),
)


# ---------------------------------------------------------------------------------------------
# The hub and the checks.


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the reference hierarchy, copied for each example."""
    d = tmp_path_factory.mktemp("fuzz-template") / "data"
    hub = Hub(HubConfig(d, listen="127.0.0.1:0"))
    hub.start()
    hub.stop()
    return d


def reference_model() -> tuple[oracle.RuleModel, list[Event]]:
    model = oracle.RuleModel()
    accepted = []
    for msg in reference_events():
        e = event_from_pb(msg)
        assert model.verdict(e, time.time_ns(), allow_reference=True)[0] == "accepted"
        accepted.append(e)
    return model, accepted


REFERENCE = reference_model()
RESULT = {
    ipb.RESULT_ACCEPTED: "accepted",
    ipb.RESULT_DUPLICATE: "duplicate",
    ipb.RESULT_REJECTED: "rejected",
}


@dataclass
class Session:
    """One hub, its clients, and the oracle's view of what it was sent."""

    hub: Hub
    channel: grpc.Channel
    model: oracle.RuleModel
    accepted: list[Event]
    stats: Counter[str]
    ends: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stub = ingest_pb2_grpc.IngestServiceStub(self.channel)
        self.query = query_pb2_grpc.QueryServiceStub(self.channel)
        self.raw = self.channel.unary_unary(
            "/duhub.v1.IngestService/Publish",
            request_serializer=lambda b: b,
            response_deserializer=ipb.PublishResponse.FromString,
        )
        self.raw_stream = self.channel.stream_stream(
            "/duhub.v1.IngestService/PublishStream",
            request_serializer=lambda b: b,
            response_deserializer=ipb.PublishResponse.FromString,
        )

    def send(self, batches: list[list[bytes]], transport: str) -> None:
        """Send well-formed envelopes; check each answer against the oracle."""
        before = time.time_ns()
        if transport == "stream":
            responses = list(
                self.raw_stream(iter([envelope(b) for b in batches]), timeout=RPC_TIMEOUT)
            )
        elif transport == "stub" and all(parses(e) for b in batches for e in b):
            responses = [
                self.stub.Publish(
                    ipb.PublishRequest(events=[pb.Event.FromString(e) for e in b]),
                    timeout=RPC_TIMEOUT,
                )
                for b in batches
            ]
        else:
            responses = [self.raw(envelope(b), timeout=RPC_TIMEOUT) for b in batches]
        after = time.time_ns()
        assert len(responses) == len(batches)
        for batch, resp in zip(batches, responses, strict=True):
            assert len(resp.results) == len(batch)
            self.stats["sent"] += len(batch)
            for data, r in zip(batch, resp.results, strict=True):
                self.check(data, r, before, after)

    def send_garbage(self, data: bytes) -> None:
        """Send bytes as a whole request: an answer or INVALID_ARGUMENT, never a crash."""
        self.stats["sent"] += 1
        self.stats["raw requests"] += 1
        before = time.time_ns()
        try:
            resp = self.raw(data, timeout=RPC_TIMEOUT)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details(), data)
            assert e.details().startswith("events: "), e.details()
            self.stats["requests refused"] += 1
            return
        after = time.time_ns()
        events = split_envelope(data)
        if events is None:  # not canonical, yet readable: nothing of it may be accepted
            assert all(r.result != ipb.RESULT_ACCEPTED for r in resp.results), data
            for r in resp.results:
                assert_result_shape(r)
            return
        assert len(resp.results) == len(events)
        for e, r in zip(events, resp.results, strict=True):
            self.check(e, r, before, after)

    def check(self, data: bytes, r: ipb.EventResult, before: int, after: int) -> None:
        assert_result_shape(r)
        kind = RESULT[r.result]
        self.stats[kind] += 1
        try:
            msg = pb.Event.FromString(data)
        except DecodeError:  # unreadable: rejected by the edge, naming where (test_wire.py)
            assert kind == "rejected", (data, r)
            self.stats["unreadable"] += 1
            return
        try:
            event = event_from_pb(msg)
        except InvalidEvent as e:  # malformed: rejected by the edge, naming the field
            assert (kind, r.field) == ("rejected", e.field), (data, r, e)
            return
        now = after
        if before + oracle.FUTURE_SLACK < event.occurred_at <= after + oracle.FUTURE_SLACK:
            now = before if r.field == "occurred_at" else after  # the hub's clock: in between
        want, want_field, want_reason = self.model.answer(event, now)
        assert (kind, r.field) == (want, want_field), (event, r)
        if want_reason is not None:
            assert r.reason == want_reason, (event, r)
            self.stats["reasons compared"] += 1
        if kind == "accepted":
            self.accepted.append(event)
            self.ends[r.partition] = max(self.ends.get(r.partition, 0), r.offset + 1)

    def wait_applied(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            progress = self.query.GetProgress(qpb.GetProgressRequest(), timeout=RPC_TIMEOUT)
            applied = {p.partition: p.applied for p in progress.partitions}
            if all(applied.get(p, 0) >= end for p, end in self.ends.items()):
                return
            assert time.monotonic() < deadline, "the read model never caught up"
            time.sleep(0.02)

    def check_figures(self, rng: random.Random, campaigns: list[str]) -> None:
        world = oracle.World(self.accepted)
        metrics = list(oracle.METRICS)
        questions = [("", "", None, None)]
        questions.append(("", rng.choice(AREAS), None, None))
        questions.append(("", "", at("2022-01-01"), at("2023-07-01")))
        for county in rng.sample(COUNTIES, 2):
            questions.append((county, rng.choice(("", *AREAS)), None, None))
        for scope, area, lo, hi in questions:
            req = qpb.GetStatisticsRequest(
                metrics=metrics, scope_unit_id=scope, area=area, group_by=GROUP_BY_UNIT
            )
            if lo is not None:
                getattr(req, "from").CopyFrom(ts(lo))
                req.to.CopyFrom(ts(hi))
            reply = self.query.GetStatistics(req, timeout=RPC_TIMEOUT)
            got = {row.key: dict(row.values) for row in reply.rows}
            want = world.by_unit(scope, area, lo, hi)
            for key in set(got) | set(want):
                g = {m: got.get(key, {}).get(m, 0) for m in metrics}
                w = {m: want.get(key, {}).get(m, 0) for m in metrics}
                assert g == w, (scope, area, lo, hi, key)
            self.stats["figures compared"] += len(want) * len(metrics)
        for cid in campaigns:
            want = world.coverage(cid)
            if want is None:
                continue
            got = self.query.GetCoverage(
                qpb.GetCoverageRequest(campaign_id=cid), timeout=RPC_TIMEOUT
            )
            assert got.full == want.full, cid
            assert [
                (g.group_id, g.tier, g.targets, g.covered, sorted(g.uncovered_unit_ids))
                for g in got.groups
            ] == [
                (g.group_id, int(g.tier), len(g.targets), g.covered, sorted(g.uncovered))
                for g in want.groups
            ], cid
            self.stats["coverages compared"] += 1

    def healthy(self) -> None:
        health = health_pb2_grpc.HealthStub(self.channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def parses(data: bytes) -> bool:
    try:
        pb.Event.FromString(data)
    except DecodeError:
        return False
    return True


def assert_result_shape(r: ipb.EventResult) -> None:
    assert r.result in RESULT, r
    if r.result == ipb.RESULT_REJECTED:
        assert r.field, r
        assert r.reason.startswith(f"{r.field}: ") and len(r.reason) > len(r.field) + 2, r
    else:
        assert not r.field and not r.reason, r


def run_example(template: Path, work: Path, plan: Plan, stats: Counter[str]) -> None:
    data = work / f"hub-{stats['examples']}"
    shutil.copytree(template, data)
    hub = Hub(HubConfig(data, listen="127.0.0.1:0"))
    hub.start()
    channel = grpc.insecure_channel(hub.address)
    model, accepted = REFERENCE
    session = Session(hub, channel, copy.deepcopy(model), list(accepted), stats)
    try:
        rng = random.Random(plan.seed)
        gen = Generator(rng, time.time_ns(), f"x{plan.seed:x}")
        events: list[bytes] = []
        for _ in range(plan.n_events):
            e = gen.valid()
            if rng.random() < plan.mutate_rate:
                name, data_ = gen.mutated(e)
                stats[f"mutation {name}"] += 1
            else:
                data_ = e.SerializeToString()
            gen.sent.append(data_)
            events.append(data_)
        garbage = list(plan.raw_requests)
        for k in plan.envelope_mutations:  # a whole envelope, garbled
            whole = bytearray(envelope(events[k % len(events) : k % len(events) + 5]))
            if k % 2:
                del whole[k % len(whole) :]
            else:
                whole[k % len(whole)] ^= 0xFF
            garbage.append(bytes(whole))
        i = b = 0
        while i < len(events):
            size = plan.batch_sizes[b % len(plan.batch_sizes)]
            transport = plan.transports[b % len(plan.transports)]
            if transport == "stream":
                batches = [events[i : i + size], events[i + size : i + 2 * size]]
                batches = [x for x in batches if x]
                i += 2 * size
            else:
                batches = [events[i : i + size]]
                i += size
            session.send(batches, transport)
            if b % plan.resend_every == 0:
                session.send(batches, "raw")
            if b < len(garbage):
                session.send_garbage(garbage[b])
            b += 1
        for data_ in garbage[b:]:
            session.send_garbage(data_)
        session.wait_applied()
        session.check_figures(rng, [c[0] for c in gen.campaigns])
        session.healthy()
        stats["examples"] += 1
    finally:
        channel.close()
        hub.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_fuzz_ingest_answers_every_event_and_counts_only_the_accepted(
    template: Path, tmp_path: Path
) -> None:
    stats: Counter[str] = Counter()
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not os.environ.get("DUHUB_FUZZ_RANDOM"),
        phases=[Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(plan=plans)
    def fuzz(plan: Plan) -> None:
        run_example(template, tmp_path, plan, stats)

    fuzz()
    took = time.monotonic() - started
    mutations = sum(v for k, v in stats.items() if k.startswith("mutation "))
    print(
        f"\nfuzz: {stats['sent']} events and byte strings sent in {stats['examples']} examples "
        f"({mutations} mutated events, {stats['raw requests']} garbage requests, "
        f"{stats['requests refused']} refused whole) in {took:.1f}s: {stats['accepted']} "
        f"accepted, {stats['duplicate']} duplicate, {stats['rejected']} rejected; "
        f"{stats['figures compared']} figures and {stats['coverages compared']} coverages "
        f"equal the oracle's; {stats['reasons compared']} reasons a county must not learn "
        "from equal too"
    )
    assert stats["sent"] >= MIN_SENT
    assert stats["accepted"] >= 1_000 and stats["duplicate"] >= 100 and stats["rejected"] >= 1_000
    assert stats["coverages compared"] >= EXAMPLES
    assert stats["reasons compared"] >= 10

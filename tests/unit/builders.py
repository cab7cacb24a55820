"""Terse builders of protobuf events for the unit tests, and small hub fixtures.

`event(...)` takes raw values (so tests can send what the domain types could never hold, such
as level 99); `to_pb(...)` turns a domain event into the protobuf a client would send.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine

from duhub.domain import events as ev
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel.engine import open_engine
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor
from tests.infra import fresh_database

NS = 1_000_000_000
HOUR = 3600 * NS
DAY = 24 * HOUR

CITY = "420500"
YIDU = "420581"  # a county
DANG = "420582"  # another county
YIDU_T1 = "420581101"  # township of YIDU
YIDU_T2 = "420581102"
YIDU_V1 = "420581101201"  # village of YIDU_T1
DANG_T1 = "420582101"
DANG_V1 = "420582101201"


def at(text: str) -> int:
    """Return nanoseconds for an ISO time ('2022-11-01' or '2022-11-01T03:00:00')."""
    d = datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp()) * NS + d.microsecond * 1000


def ts(ns: int) -> Timestamp:
    t = Timestamp()
    t.seconds, t.nanos = divmod(ns, NS)
    return t


T = at("2022-11-03T04:00:00")  # a default event time
NOW = at("2023-01-01T00:00:00")  # the default ingest clock


def event(
    payload_name: str | None,
    payload: object = None,
    *,
    event_id: str = "e1",
    source: str = CITY,
    seq: int = 1,
    occurred_at: int | None = T,
) -> pb.Event:
    """Return an event with the given envelope and payload (None: no payload)."""
    msg = pb.Event(event_id=event_id, source=source, seq=seq)
    if occurred_at is not None:
        msg.occurred_at.CopyFrom(ts(occurred_at))
    if payload_name is not None:
        getattr(msg, payload_name).CopyFrom(payload)
    return msg


def unit(unit_id: str, parent_id: str, level: int, name: str = "", **env) -> pb.Event:
    return event(
        "org_unit_registered",
        pb.OrgUnitRegistered(
            unit_id=unit_id, parent_id=parent_id, level=level, name=name or f"unit {unit_id}"
        ),
        **env,
    )


def group(group_id: str, tier: int, *targets: str, name: str = "") -> pb.SupervisionGroup:
    return pb.SupervisionGroup(
        group_id=group_id,
        name=name or f"group {group_id}",
        tier=tier,
        target_unit_ids=list(targets),
    )


def campaign(
    campaign_id: str,
    groups: list[pb.SupervisionGroup],
    starts_at: int | None = at("2022-11-01"),
    ends_at: int | None = at("2023-01-01"),
    area: str = "vaccination",
    name: str = "campaign",
    **env,
) -> pb.Event:
    m = pb.CampaignLaunched(campaign_id=campaign_id, name=name, area=area, groups=groups)
    if starts_at is not None:
        m.starts_at.CopyFrom(ts(starts_at))
    if ends_at is not None:
        m.ends_at.CopyFrom(ts(ends_at))
    return event("campaign_launched", m, **env)


def visit(
    unit_id: str,
    campaign_id: str = "",
    group_id: str = "",
    area: str = "vaccination",
    findings: int = 0,
    **env,
) -> pb.Event:
    return event(
        "supervision_visit",
        pb.SupervisionVisit(
            campaign_id=campaign_id,
            group_id=group_id,
            unit_id=unit_id,
            area=area,
            findings=findings,
        ),
        **env,
    )


def problem(
    problem_id: str, unit_id: str, area: str = "ecology", campaign_id: str = "", **env
) -> pb.Event:
    return event(
        "problem_found",
        pb.ProblemFound(problem_id=problem_id, unit_id=unit_id, area=area, campaign_id=campaign_id),
        **env,
    )


def rectify(problem_id: str, **env) -> pb.Event:
    return event("problem_rectified", pb.ProblemRectified(problem_id=problem_id), **env)


def accountability(unit_id: str, persons: int = 1, area: str = "ecology", **env) -> pb.Event:
    return event(
        "accountability_imposed",
        pb.AccountabilityImposed(unit_id=unit_id, area=area, persons=persons),
        **env,
    )


def sanction(unit_id: str, persons: int = 1, area: str = "ecology", **env) -> pb.Event:
    return event(
        "sanction_imposed", pb.SanctionImposed(unit_id=unit_id, area=area, persons=persons), **env
    )


def talk(
    unit_id: str, persons: int = 1, kind: int = pb.TALK_KIND_OTHER, area: str = "", **env
) -> pb.Event:
    return event(
        "talk_held", pb.TalkHeld(unit_id=unit_id, area=area, kind=kind, persons=persons), **env
    )


def letter(letter_id: str, unit_id: str, area: str = "ecology", **env) -> pb.Event:
    return event(
        "recommendation_issued",
        pb.RecommendationIssued(letter_id=letter_id, unit_id=unit_id, area=area),
        **env,
    )


def regulation(unit_id: str, count: int = 1, area: str = "ecology", **env) -> pb.Event:
    return event(
        "regulation_improved", pb.RegulationImproved(unit_id=unit_id, area=area, count=count), **env
    )


def to_pb(e: ev.Event) -> pb.Event:
    """Return the protobuf a client sends for a domain event (recorded_at is left out)."""
    p = e.payload
    env = {"event_id": e.event_id, "source": e.source, "seq": e.seq, "occurred_at": e.occurred_at}
    if isinstance(p, ev.OrgUnitRegistered):
        return event(
            "org_unit_registered",
            pb.OrgUnitRegistered(
                unit_id=p.unit_id,
                parent_id=p.parent_id,
                level=int(p.level),
                name=p.name,
                sample=p.sample,
                local_code=p.local_code,
            ),
            **env,
        )
    if isinstance(p, ev.CampaignLaunched):
        groups = [group(g.group_id, int(g.tier), *g.target_unit_ids, name=g.name) for g in p.groups]
        return campaign(p.campaign_id, groups, p.starts_at, p.ends_at, p.area, p.name, **env)
    if isinstance(p, ev.SupervisionVisit):
        return visit(p.unit_id, p.campaign_id, p.group_id, p.area, p.findings, **env)
    if isinstance(p, ev.ProblemFound):
        return problem(p.problem_id, p.unit_id, p.area, p.campaign_id, **env)
    if isinstance(p, ev.ProblemRectified):
        return rectify(p.problem_id, **env)
    if isinstance(p, ev.AccountabilityImposed):
        return accountability(p.unit_id, p.persons, p.area, **env)
    if isinstance(p, ev.SanctionImposed):
        return sanction(p.unit_id, p.persons, p.area, **env)
    if isinstance(p, ev.TalkHeld):
        return talk(p.unit_id, p.persons, int(p.kind), p.area, **env)
    if isinstance(p, ev.RecommendationIssued):
        return letter(p.letter_id, p.unit_id, p.area, **env)
    if isinstance(p, ev.RegulationImproved):
        return regulation(p.unit_id, p.count, p.area, **env)
    raise TypeError(f"no builder for {type(p).__name__}")


def hierarchy() -> list[pb.Event]:
    """Return reference registrations of a small hierarchy (city, 2 counties, ...)."""
    units = [
        (CITY, "", pb.LEVEL_CITY),
        (YIDU, CITY, pb.LEVEL_COUNTY),
        (DANG, CITY, pb.LEVEL_COUNTY),
        (YIDU_T1, YIDU, pb.LEVEL_TOWNSHIP),
        (YIDU_T2, YIDU, pb.LEVEL_TOWNSHIP),
        (YIDU_V1, YIDU_T1, pb.LEVEL_VILLAGE),
        (DANG_T1, DANG, pb.LEVEL_TOWNSHIP),
        (DANG_V1, DANG_T1, pb.LEVEL_VILLAGE),
    ]
    return [
        unit(
            u,
            parent,
            level,
            event_id=f"ref:{u}",
            source="reference",
            seq=i,
            occurred_at=at("2020-01-01"),
        )
        for i, (u, parent, level) in enumerate(units, start=1)
    ]


@dataclass
class Clock:
    """A settable clock for the ingestor: recorded_at and the 'future' check follow it."""

    now: int = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class Pipeline:
    """The embedded hub's real parts on a temporary data directory, without gRPC."""

    dir: Path
    log: EmbeddedLog
    engine: Engine
    ingestor: Ingestor
    tailer: LogTailer
    clock: Clock = field(default_factory=Clock)

    @classmethod
    def open(cls, data_dir: str | Path | None = None, db_url: str = "") -> Pipeline:
        """`db_url`: the read model's database (default: SQLite in the data directory)."""
        # On tmpfs when there is one: fsync is then cheap and the tests measure logic, not disks.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        d = Path(data_dir or tempfile.mkdtemp(prefix="duhub-test-", dir=shm))
        log = EmbeddedLog(d)
        engine = open_engine(db_url or f"sqlite:///{d / 'readmodel.db'}")
        clock = Clock()
        return cls(d, log, engine, Ingestor(log, engine, clock), LogTailer(log, engine), clock)

    def publish(
        self, events: list[pb.Event], *, allow_reference: bool = False
    ) -> list[ipb.EventResult]:
        return self.ingestor.publish(events, allow_reference=allow_reference)

    def end(self) -> int:
        return self.log.end_offsets()[0]

    def close(self) -> None:
        self.log.close()
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def pipeline_on(database: str) -> Iterator[Pipeline]:
    """A Pipeline whose read model is in `database`: "sqlite" (its data directory) or
    "postgresql" (a fresh database on the test server, dropped afterwards)."""
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if database == "postgresql" else ""
        p = Pipeline.open(db_url=url)
        try:
            yield p
        finally:
            p.close()


RESULT_NAMES = {
    ipb.RESULT_ACCEPTED: "accepted",
    ipb.RESULT_DUPLICATE: "duplicate",
    ipb.RESULT_REJECTED: "rejected",
}


def kinds(results: list[ipb.EventResult]) -> list[str]:
    return [RESULT_NAMES.get(r.result, "unspecified") for r in results]

"""The live activity of the county nodes: pure, from a seeded `random.Random` and a clock value.

`Scenario.step(now_ns)` returns the events of the moments since the previous step (about
`rate` a second), each timed in between and never after `now_ns`: first visits that move the
campaign's coverage at its planned pace, then the ordinary work of supervision.
"""

from __future__ import annotations

import random
from typing import Any

from duhub.simulate import build
from duhub.simulate.campaign import AREA, CampaignPlan
from duhub.simulate.units import Hierarchy
from duhub.v1 import events_pb2 as pb

NS = build.NS
MINUTE = 60 * NS
# A step after a long pause publishes at most this much catch-up, not a flood.
MAX_CATCHUP_NS = 10 * NS
AREAS = ("ecology", "epidemic", "grain", "vaccination", "fishing_ban")
# The ten-year fishing ban is checked along the Yangtze: the districts and county-level cities
# on the river below and around Gezhouba.
RIVER = ("420502", "420503", "420504", "420505", "420581", "420583")
KINDS = {
    "revisit": 22,
    "stray": 2,
    "inspection": 20,
    "problem": 3,
    "accountability": 8,
    "sanction": 6,
    "talk": 10,
    "letter": 3,
    "regulation": 4,
}
TALK_KINDS = ((pb.TALK_KIND_TOP_LEADER, 6), (pb.TALK_KIND_OTHER, 3), (pb.TALK_KIND_ADMONISHMENT, 1))


class Scenario:
    """The nodes' shared story: the campaign plan, open problems, and the pace of both."""

    def __init__(
        self,
        h: Hierarchy,
        rng: random.Random,
        rate: float = 20.0,
        nonce: str = "x",
        snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.h, self.rng, self.rate, self.nonce = h, rng, rate, nonce
        snap = snapshot or {}
        self.plan = CampaignPlan.restore(h, snap["campaign"]) if snap.get("campaign") else None
        self.progress = float(snap.get("progress", 0.0))
        self.serial = int(snap.get("serial", 0))
        # Problems awaiting rectification: [problem_id, source, due_ns, found_ns].
        self.pending: list[list[Any]] = [list(p) for p in snap.get("pending", [])]
        self.last_now: int | None = None
        self.credit = 0.0

    def snapshot(self) -> dict[str, Any]:
        """Return what to save once a step is acknowledged (a copy: later steps change it)."""
        return {
            "campaign": self.plan.snapshot() if self.plan else None,
            "progress": self.progress,
            "serial": self.serial,
            "pending": [list(p) for p in self.pending],
        }

    def launch(self, now_ns: int) -> list[pb.Event]:
        """Launch a new campaign from the city, open from a day ago for thirty days."""
        self.plan = CampaignPlan.new(self.h, now_ns, self.rng)
        self.progress = 0.0
        return [self.plan.launch_event(self.h.city_id, now_ns)]

    def step(self, now_ns: int) -> list[pb.Event]:
        """Return the events that happened since the previous step, in event-time order."""
        if self.plan is None or now_ns >= self.plan.ends_at:
            # Alone in its step: the nodes publish concurrently, and the visits of the next
            # step name a campaign the hub must know by then.
            self.last_now = now_ns
            return self.launch(now_ns)
        events: list[tuple[int, pb.Event]] = []
        last = now_ns if self.last_now is None else self.last_now
        dt = min(max(0, now_ns - last), MAX_CATCHUP_NS)
        self.last_now = max(now_ns, last)
        events += self._rectifications(now_ns)
        budget = self.rate * dt / NS
        self.progress += budget
        self.credit += budget
        start = now_ns - dt

        def when() -> int:
            return start + self.rng.randint(1, dt) if dt else now_ns

        assert self.plan is not None
        for g, unit in self.plan.due_first_visits(self.progress):
            events += self._visit(when(), g, unit)
        # Everything counts against the rate; ordinary work fills what is left of it.
        self.credit -= len(events)
        while self.credit >= 1:
            kind = self.rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
            more = getattr(self, f"_{kind}")(when())
            self.credit -= len(more)
            events += more
        events.sort(key=lambda te: te[0])
        return [e for _, e in events]

    # -- activity ----------------------------------------------------------------------------

    def _id(self, kind: str) -> str:
        self.serial += 1
        return f"sim-{self.nonce}-{kind}{self.serial}"

    def _findings(self) -> int:
        return self.rng.choices((0, 1, 2, 3), weights=(85, 11, 3, 1))[0]

    def _grassroots(self, river: bool = False) -> str:
        counties = [c for c in self.h.counties if not river or c.unit_id in RIVER]
        county = self.rng.choice(counties or self.h.counties)
        pool = county.villages if self.rng.random() < 0.75 else county.townships
        return self.rng.choice(pool or (county.unit_id,))

    def _any_unit(self) -> str:
        if self.rng.random() < 0.15:
            return self.rng.choice(self.h.counties).unit_id
        return self._grassroots()

    def _source(self, g: pb.SupervisionGroup | None, unit: str) -> str:
        return (
            self.h.city_id if g is not None and g.tier == pb.TIER_CITY else self.h.source_for(unit)
        )

    def _visit(
        self, at: int, g: pb.SupervisionGroup | None, unit: str, area: str = AREA
    ) -> list[tuple[int, pb.Event]]:
        source, k = self._source(g, unit), self._findings()
        campaign = self.plan.campaign_id if g is not None and self.plan else ""
        out = [
            (
                at,
                build.visit(
                    source,
                    at,
                    unit,
                    area,
                    campaign=campaign,
                    group=g.group_id if g else "",
                    findings=k,
                ),
            )
        ]
        for _ in range(k):
            out.append(self._found(at, source, unit, area, campaign))
        return out

    def _found(
        self, at: int, source: str, unit: str, area: str, campaign: str = ""
    ) -> tuple[int, pb.Event]:
        pid = self._id("p")
        late = self.rng.random() < 0.1
        delay = self.rng.uniform(20, 60) if late else self.rng.uniform(1, 10)
        # The county that owns the unit reports the rectification, whoever found the problem.
        self.pending.append([pid, self.h.source_for(unit), at + int(delay * MINUTE), at])
        return at, build.problem_found(source, at, pid, unit, area, campaign)

    def _rectifications(self, now_ns: int) -> list[tuple[int, pb.Event]]:
        due = [p for p in self.pending if p[2] <= now_ns]
        self.pending = [p for p in self.pending if p[2] > now_ns]
        return [(max(d, f), build.problem_rectified(s, max(d, f), pid)) for pid, s, d, f in due]

    def _revisit(self, at: int) -> list[tuple[int, pb.Event]]:
        """Visit again a target the group has visited: it counts, but covers nothing new."""
        assert self.plan is not None
        groups = [g for g in self.plan.groups if self.plan.cursors[g.group_id]]
        if not groups:
            return self._inspection(at)
        g = self.rng.choice(groups)
        return self._visit(at, g, self.rng.choice(self.plan.visited(g.group_id)))

    def _stray(self, at: int) -> list[tuple[int, pb.Event]]:
        """Visit a unit that is not among the group's targets: it counts, but covers nothing."""
        assert self.plan is not None
        g = self.rng.choice([g for g in self.plan.groups if g.target_unit_ids])
        if g.tier == pb.TIER_CITY:
            county = self.h.county(self.rng.choice(g.target_unit_ids))
            unit = self.rng.choice(county.townships or (county.unit_id,))
        else:
            unit = g.group_id.removeprefix("cg-")  # the county's own HQ
        return self._visit(at, g, unit)

    def _inspection(self, at: int) -> list[tuple[int, pb.Event]]:
        area = self.rng.choice(AREAS)
        return self._visit(at, None, self._grassroots(river=area == "fishing_ban"), area)

    def _problem(self, at: int) -> list[tuple[int, pb.Event]]:
        unit = self._any_unit()
        return [self._found(at, self.h.source_for(unit), unit, self.rng.choice(AREAS))]

    def _persons(self, at: int, make) -> list[tuple[int, pb.Event]]:  # type: ignore[no-untyped-def]
        unit = self._any_unit()
        persons = self.rng.choices((1, 2, 3, 4, 5), weights=(50, 25, 12, 8, 5))[0]
        return [(at, make(self.h.source_for(unit), at, unit, self.rng.choice(AREAS), persons))]

    def _accountability(self, at: int) -> list[tuple[int, pb.Event]]:
        return self._persons(at, build.accountability)

    def _sanction(self, at: int) -> list[tuple[int, pb.Event]]:
        return self._persons(at, build.sanction)

    def _talk(self, at: int) -> list[tuple[int, pb.Event]]:
        kind = self.rng.choices([k for k, _ in TALK_KINDS], [w for _, w in TALK_KINDS])[0]
        county = self.rng.choice(self.h.counties)
        if self.rng.random() < 0.3:  # the city's heads talk with a county's top leaders
            source, unit = self.h.city_id, county.unit_id
        else:
            source, unit = county.unit_id, self.rng.choice(county.townships or (county.unit_id,))
        area = self.rng.choice(("",) + AREAS)
        return [(at, build.talk(source, at, unit, area, kind, self.rng.randint(1, 5)))]

    def _letter(self, at: int) -> list[tuple[int, pb.Event]]:
        unit = self._any_unit()
        area = self.rng.choice(AREAS)
        return [(at, build.letter(self.h.source_for(unit), at, self._id("l"), unit, area))]

    def _regulation(self, at: int) -> list[tuple[int, pb.Event]]:
        unit = self._any_unit()
        return [
            (
                at,
                build.regulation(
                    self.h.source_for(unit),
                    at,
                    unit,
                    self.rng.choice(AREAS),
                    self.rng.randint(1, 3),
                ),
            )
        ]

"""The live "1+7+N" campaign: its groups, and the pace at which each covers its targets."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from duhub.simulate import build
from duhub.simulate.units import Hierarchy
from duhub.v1 import events_pb2 as pb

NAME = "60岁以上人群疫苗接种督导"
AREA = "vaccination"
DAY_NS = 24 * 3600 * build.NS
WINDOW_BEFORE_NS = DAY_NS
WINDOW_AFTER_NS = 30 * DAY_NS
NUMERALS = "一二三四五六七"
# Minutes (at 20 events/s) a group takes to visit all its targets: city groups finish first,
# county groups spread out, so the counties reach full coverage one by one.
CITY_MINUTES = (3.0, 9.0)
COUNTY_MINUTES = (7.0, 14.0)
EVENTS_PER_MINUTE = 20 * 60


def campaign_id_for(now_ns: int) -> str:
    day = datetime.fromtimestamp(now_ns // build.NS, tz=UTC).strftime("%Y%m%d")
    return f"vax-60plus-{day}"


def groups_for(h: Hierarchy) -> list[pb.SupervisionGroup]:
    """Return 1 task force, 7 city groups over the county HQs, one group per county."""
    groups = [pb.SupervisionGroup(group_id="tf", name="工作专班", tier=pb.TIER_TASK_FORCE)]
    counties = [c.unit_id for c in h.counties]
    per = math.ceil(len(counties) / len(NUMERALS))
    for i, numeral in enumerate(NUMERALS):
        targets = counties[i * per : (i + 1) * per]
        if targets:
            groups.append(
                pb.SupervisionGroup(
                    group_id=f"city-{i + 1}",
                    name=f"市本级第{numeral}督导组",
                    tier=pb.TIER_CITY,
                    target_unit_ids=targets,
                )
            )
    for c in h.counties:
        groups.append(
            pb.SupervisionGroup(
                group_id=f"cg-{c.unit_id}",
                name=f"{c.name}督导组",
                tier=pb.TIER_COUNTY,
                target_unit_ids=c.grassroots,
            )
        )
    return groups


@dataclass
class CampaignPlan:
    """One campaign as the simulator runs it. `cursors[g]` targets of group g are visited."""

    campaign_id: str
    starts_at: int
    ends_at: int
    order_seed: int
    groups: list[pb.SupervisionGroup] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)
    pace: dict[str, float] = field(default_factory=dict)

    @classmethod
    def new(cls, h: Hierarchy, now_ns: int, rng: random.Random) -> CampaignPlan:
        # The window in whole seconds: people read its bounds (`duhub campaigns`).
        second = now_ns - now_ns % build.NS
        return cls.restore(
            h,
            {
                "campaign_id": campaign_id_for(now_ns),
                "starts_at": second - WINDOW_BEFORE_NS,
                "ends_at": second + WINDOW_AFTER_NS,
                "order_seed": rng.randrange(2**31),
                "cursors": {},
            },
        )

    @classmethod
    def restore(cls, h: Hierarchy, data: dict[str, Any]) -> CampaignPlan:
        """Rebuild the plan: groups, visiting order and pace follow from the order seed."""
        plan = cls(
            str(data["campaign_id"]),
            int(data["starts_at"]),
            int(data["ends_at"]),
            int(data["order_seed"]),
            groups_for(h),
        )
        rng = random.Random(plan.order_seed)
        for g in plan.groups:
            order = list(g.target_unit_ids)
            rng.shuffle(order)
            lo, hi = CITY_MINUTES if g.tier == pb.TIER_CITY else COUNTY_MINUTES
            plan.order[g.group_id] = order
            plan.pace[g.group_id] = rng.uniform(lo, hi) * EVENTS_PER_MINUTE
            plan.cursors[g.group_id] = int(data["cursors"].get(g.group_id, 0))
        return plan

    def snapshot(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "order_seed": self.order_seed,
            "cursors": dict(self.cursors),
        }

    def launch_event(self, source: str, now_ns: int) -> pb.Event:
        return build.campaign(
            source, now_ns, self.campaign_id, NAME, AREA, self.starts_at, self.ends_at, self.groups
        )

    def due_first_visits(self, progress: float) -> list[tuple[pb.SupervisionGroup, str]]:
        """Return the (group, target) first visits due by `progress` and mark them visited."""
        out = []
        for g in self.groups:
            order = self.order[g.group_id]
            due = math.floor(len(order) * min(1.0, progress / self.pace[g.group_id]))
            while self.cursors[g.group_id] < due:
                out.append((g, order[self.cursors[g.group_id]]))
                self.cursors[g.group_id] += 1
        return out

    def visited(self, group_id: str) -> list[str]:
        return self.order[group_id][: self.cursors[group_id]]

    @property
    def fully_visited(self) -> bool:
        return all(self.cursors[g] >= len(o) for g, o in self.order.items())

    def open_at(self, now_ns: int) -> bool:
        return self.starts_at <= now_ns < self.ends_at

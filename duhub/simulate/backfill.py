"""The year-2022 history from the article, as events: the figures it reports, exactly.

Pure and deterministic (its own fixed seed by default), so sending it again after a lost
state file yields the same event ids and content: duplicates, never double counts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from duhub.simulate import build
from duhub.simulate.units import Hierarchy
from duhub.v1 import events_pb2 as pb

BACKFILL_SEED = 20221231
NS = build.NS
HOUR = 3600 * NS
DAY = 24 * HOUR
# The article's 2022 is Yichang's (Beijing time), the command line's dates are UTC unless told
# otherwise: every event lies in both years, from UTC's start to Beijing's end, so the figures
# are the article's either way. To UTC's end, 51 rectifications fell on 2023-01-01 in Beijing,
# and the dashboard's 2022 (Beijing days) showed 1,672 epidemic problems rectified, 50 open.
BEIJING = timezone(timedelta(hours=8))
START = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp()) * NS
END = int(datetime(2023, 1, 1, tzinfo=BEIJING).timestamp()) * NS

# area -> metric -> 2022 total ("" holds the talks, published without an area).
ARTICLE_2022: dict[str, dict[str, int]] = {
    "ecology": {
        "visits": 102,
        "sanctioned_persons": 32,
        "accountability_persons": 72,
        "problems_found": 54,
        "problems_rectified": 54,
    },
    "epidemic": {"problems_found": 1721, "problems_rectified": 1721, "accountability_persons": 774},
    "grain": {"sanctioned_persons": 102, "recommendations": 22, "regulations_improved": 116},
    "": {"talk_persons_top_leader": 971, "talk_persons_admonishment": 8},
}


def split(rng: random.Random, total: int, hi: int = 5) -> list[int]:
    """Return parts of 1..hi persons that sum to exactly `total`."""
    parts = []
    while total > 0:
        part = rng.randint(1, min(hi, total))
        parts.append(part)
        total -= part
    return parts


class _History:
    def __init__(self, h: Hierarchy, rng: random.Random) -> None:
        self.h, self.rng = h, rng
        self.events: list[pb.Event] = []

    def when(self, latest: int = END - 1) -> int:
        """Return a moment of 2022, to the second, no later than `latest`."""
        return START + self.rng.randrange((latest - START) // NS) * NS

    def grassroots(self) -> tuple[str, str]:
        """Return (source, unit): a township or village of a random county."""
        county = self.rng.choice(self.h.counties)
        pool = county.townships if self.rng.random() < 0.25 else county.villages
        return county.unit_id, self.rng.choice(pool or county.grassroots)

    def any_unit(self) -> tuple[str, str]:
        """Return (source, unit), a county HQ one time in five."""
        if self.rng.random() < 0.2:
            county = self.rng.choice(self.h.counties)
            return county.unit_id, county.unit_id
        return self.grassroots()

    def problem(
        self, pid: str, source: str, unit: str, area: str, found: int, fix_days: tuple[int, int]
    ) -> None:
        delay = self.rng.randint(fix_days[0] * 24, fix_days[1] * 24) * HOUR
        fixed = min(found + delay, END - NS)
        self.events.append(build.problem_found(source, found, pid, unit, area))
        self.events.append(build.problem_rectified(source, fixed, pid))

    def persons(self, make, area: str, total: int) -> None:  # type: ignore[no-untyped-def]
        for n in split(self.rng, total):
            source, unit = self.any_unit()
            self.events.append(make(source, self.when(), unit, area, n))


def backfill_2022(h: Hierarchy, rng: random.Random | None = None) -> list[pb.Event]:
    """Return the 2022 history in event-time order; seq and event_id are left unset."""
    x = _History(h, rng or random.Random(BACKFILL_SEED))
    eco, epi, grain, talks = (ARTICLE_2022[a] for a in ("ecology", "epidemic", "grain", ""))
    # Ecology: the problems were found on the inspections themselves.
    findings = [0] * eco["visits"]
    for i in x.rng.choices(range(eco["visits"]), k=eco["problems_found"]):
        findings[i] += 1
    n = 0
    for k in findings:
        source, unit = x.any_unit()
        at = x.when(END - 5 * HOUR)
        x.events.append(build.visit(source, at, unit, "ecology", findings=k))
        for _ in range(k):
            n += 1
            found = at + x.rng.randint(1, 4) * HOUR
            x.problem(f"sim-2022-eco-{n}", source, unit, "ecology", found, (7, 60))
    x.persons(build.sanction, "ecology", eco["sanctioned_persons"])
    x.persons(build.accountability, "ecology", eco["accountability_persons"])
    # Epidemic prevention: problems found and each rectified within weeks.
    for n in range(1, epi["problems_found"] + 1):
        source, unit = x.grassroots()
        x.problem(f"sim-2022-epi-{n}", source, unit, "epidemic", x.when(END - HOUR), (1, 20))
    x.persons(build.accountability, "epidemic", epi["accountability_persons"])
    # Grain purchase and sales.
    x.persons(build.sanction, "grain", grain["sanctioned_persons"])
    x.persons(build.regulation, "grain", grain["regulations_improved"])
    for n in range(1, grain["recommendations"] + 1):
        source, unit = x.any_unit()
        x.events.append(build.letter(source, x.when(), f"sim-2022-grain-{n}", unit, "grain"))
    # Talks: city heads with county top leaders, county heads with township ones.
    for n in split(x.rng, talks["talk_persons_top_leader"]):
        county = x.rng.choice(h.counties)
        if x.rng.random() < 0.4:
            source, unit = h.city_id, county.unit_id
        else:
            source, unit = county.unit_id, x.rng.choice(county.townships or (county.unit_id,))
        x.events.append(build.talk(source, x.when(), unit, "", pb.TALK_KIND_TOP_LEADER, n))
    # Admonishment: the city summons the leaders of 8 low-ranked localities, one by one.
    for unit in x.rng.sample([c.unit_id for c in h.counties], talks["talk_persons_admonishment"]):
        x.events.append(build.talk(h.city_id, x.when(), unit, "", pb.TALK_KIND_ADMONISHMENT, 1))
    order = sorted(range(len(x.events)), key=lambda i: (build.occurred_ns(x.events[i]), i))
    return [x.events[i] for i in order]

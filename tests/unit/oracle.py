"""An independent, brute-force reading of the contract, for checking the hub against.

Nothing here uses duhub.projections or the read model: verdicts come from a plain model of the
contract's ingest rules, figures from scanning the list of accepted events for every question.
Slow on purpose; only for small scenarios.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from duhub.domain import events as ev
from duhub.domain.events import Event, Level, TalkKind, Tier

NS = 1_000_000_000
FUTURE_SLACK = 24 * 3600 * NS
REFERENCE = "reference"

METRICS = (
    "visits",
    "problems_found",
    "problems_rectified",
    "problems_open",
    "accountability_persons",
    "sanctioned_persons",
    "talk_persons",
    "talk_persons_top_leader",
    "talk_persons_admonishment",
    "talk_persons_other",
    "recommendations",
    "regulations_improved",
)
TALK_BY_KIND = {
    TalkKind.TOP_LEADER: "talk_persons_top_leader",
    TalkKind.ADMONISHMENT: "talk_persons_admonishment",
    TalkKind.OTHER: "talk_persons_other",
}


# ---------------------------------------------------------------------------------------------
# Verdicts: which events the hub must accept, as a plain model of the contract.


def _content(e: Event) -> tuple:
    """What a client sent: equal content means the same event sent again."""
    return (e.event_id, e.source, e.seq, e.occurred_at, e.payload)


@dataclass
class RuleModel:
    units: dict[str, tuple[str, Level]] = field(default_factory=dict)  # id -> (parent, level)
    campaigns: dict[str, ev.CampaignLaunched] = field(default_factory=dict)
    found: dict[str, Event] = field(default_factory=dict)  # problem id -> its ProblemFound
    rectified: set[str] = field(default_factory=set)
    letters: set[str] = field(default_factory=set)
    ids: dict[str, tuple] = field(default_factory=dict)
    seqs: dict[tuple[str, int], str] = field(default_factory=dict)

    def ancestry(self, unit_id: str) -> list[str]:
        out = [unit_id]
        while self.units[out[-1]][0]:
            out.append(self.units[out[-1]][0])
        return out

    def verdict(self, e: Event, now: int, *, allow_reference: bool = False) -> tuple[str, str]:
        """Return (kind, field) for an event arriving now; accepted events are taken in."""
        kind, field_, _ = self.answer(e, now, allow_reference=allow_reference)
        return kind, field_

    def answer(
        self, e: Event, now: int, *, allow_reference: bool = False
    ) -> tuple[str, str, str | None]:
        """Return (kind, field, reason) for an event arriving now, the reason where the
        contract's reading fixes its text (None elsewhere); accepted events are taken in."""
        kind, field_ = self._verdict(e, now, allow_reference=allow_reference)
        reason = None
        if field_ == "problem_rectified.problem_id" and e.source != REFERENCE:
            p = e.payload
            assert isinstance(p, ev.ProblemRectified)
            # A county is told alike of a problem that exists nowhere and of another
            # county's: the answer must not tell it which of another county's ids exist.
            if self.units[e.source][1] == Level.COUNTY and self._hidden(p.problem_id, e.source):
                reason = f"{field_}: unknown problem '{p.problem_id}' in the source's {e.source}"
        return kind, field_, reason

    def _hidden(self, problem_id: str, county: str) -> bool:
        """Return whether a problem is unknown to a county: found nowhere, or in another."""
        f = self.found.get(problem_id)
        return f is None or self._unit_fault(f.payload.unit_id, county)

    def _verdict(self, e: Event, now: int, *, allow_reference: bool = False) -> tuple[str, str]:
        if e.event_id in self.ids:
            return (
                ("duplicate", "")
                if self.ids[e.event_id] == _content(e)
                else ("rejected", "event_id")
            )
        # A client's `reference` event is refused for its source, whatever its seq.
        if e.source == REFERENCE and not allow_reference:
            return "rejected", "source"
        if (e.source, e.seq) in self.seqs:
            return "rejected", "seq"
        if e.occurred_at > now + FUTURE_SLACK:
            return "rejected", "occurred_at"
        if e.source == REFERENCE:
            authority = None
        else:
            if e.source not in self.units or self.units[e.source][1] not in (
                Level.CITY,
                Level.COUNTY,
            ):
                return "rejected", "source"
            authority = e.source
        fault = self._payload_fault(e, authority)
        if fault:
            return "rejected", fault
        self._take(e)
        return "accepted", ""

    def _county(self, authority: str | None) -> bool:
        return authority is not None and self.units[authority][1] == Level.COUNTY

    def _unit_fault(self, unit_id: str, authority: str | None) -> bool:
        if unit_id not in self.units:
            return True
        return authority is not None and authority not in self.ancestry(unit_id)

    def _payload_fault(self, e: Event, auth: str | None) -> str:
        p = e.payload
        if isinstance(p, ev.OrgUnitRegistered):
            if p.unit_id in self.units:
                return "org_unit_registered.unit_id"
            if p.level == Level.CITY:
                return "" if auth is None else "org_unit_registered.level"
            if self._unit_fault(p.parent_id, auth) or self.units[p.parent_id][1] != p.level - 1:
                return "org_unit_registered.parent_id"
            return ""
        if isinstance(p, ev.CampaignLaunched):
            if p.campaign_id in self.campaigns:
                return "campaign_launched.campaign_id"
            for i, g in enumerate(p.groups):
                if g.tier != Tier.COUNTY and self._county(auth):  # the city's groups
                    return f"campaign_launched.groups[{i}].tier"
                for j, t in enumerate(g.target_unit_ids):
                    if self._unit_fault(t, auth):
                        return f"campaign_launched.groups[{i}].target_unit_ids[{j}]"
            return ""
        if isinstance(p, ev.SupervisionVisit):
            if self._unit_fault(p.unit_id, auth):
                return "supervision_visit.unit_id"
            if p.campaign_id:
                c = self.campaigns.get(p.campaign_id)
                if c is None:
                    return "supervision_visit.campaign_id"
                tiers = {g.group_id: g.tier for g in c.groups}
                if p.group_id not in tiers:
                    return "supervision_visit.group_id"
                if tiers[p.group_id] != Tier.COUNTY and self._county(auth):
                    return "supervision_visit.group_id"  # a city group's visit: the city's
            return ""
        if isinstance(p, ev.ProblemFound):
            if p.problem_id in self.found:
                return "problem_found.problem_id"
            if self._unit_fault(p.unit_id, auth):
                return "problem_found.unit_id"
            if p.campaign_id and p.campaign_id not in self.campaigns:
                return "problem_found.campaign_id"
            return ""
        if isinstance(p, ev.ProblemRectified):
            f = self.found.get(p.problem_id)
            if f is None or p.problem_id in self.rectified:
                return "problem_rectified.problem_id"
            if self._unit_fault(f.payload.unit_id, auth):  # the city's node may rectify any
                return "problem_rectified.problem_id"
            if e.occurred_at < f.occurred_at:
                return "occurred_at"
            return ""
        if isinstance(p, ev.RecommendationIssued):
            if p.letter_id in self.letters:
                return "recommendation_issued.letter_id"
            return "recommendation_issued.unit_id" if self._unit_fault(p.unit_id, auth) else ""
        name = {
            ev.AccountabilityImposed: "accountability_imposed",
            ev.SanctionImposed: "sanction_imposed",
            ev.TalkHeld: "talk_held",
            ev.RegulationImproved: "regulation_improved",
        }[type(p)]
        return f"{name}.unit_id" if self._unit_fault(p.unit_id, auth) else ""

    def _take(self, e: Event) -> None:
        self.ids[e.event_id] = _content(e)
        self.seqs[(e.source, e.seq)] = e.event_id
        p = e.payload
        if isinstance(p, ev.OrgUnitRegistered):
            self.units[p.unit_id] = (p.parent_id, p.level)
        elif isinstance(p, ev.CampaignLaunched):
            self.campaigns[p.campaign_id] = p
        elif isinstance(p, ev.ProblemFound):
            self.found[p.problem_id] = e
        elif isinstance(p, ev.ProblemRectified):
            self.rectified.add(p.problem_id)
        elif isinstance(p, ev.RecommendationIssued):
            self.letters.add(p.letter_id)


# ---------------------------------------------------------------------------------------------
# Figures, by scanning the accepted events for each question.


class World:
    """The accepted events (each with its recorded_at set), in log order."""

    def __init__(self, accepted: Iterable[Event]) -> None:
        self.events = list(accepted)
        self.parent: dict[str, str] = {}
        self.problems: dict[str, ev.ProblemFound] = {}
        for e in self.events:
            if isinstance(e.payload, ev.OrgUnitRegistered):
                self.parent[e.payload.unit_id] = e.payload.parent_id
            elif isinstance(e.payload, ev.ProblemFound):
                self.problems[e.payload.problem_id] = e.payload

    def city(self) -> str:
        return min(u for u, p in self.parent.items() if not p)

    def within(self, unit_id: str, scope: str) -> bool:
        u = unit_id
        while u:
            if u == scope:
                return True
            u = self.parent[u]
        return False

    def county_of(self, unit_id: str) -> str:
        """Return the county at or above the unit ("" for the city)."""
        line = [unit_id]
        while self.parent[line[-1]]:
            line.append(self.parent[line[-1]])
        return line[-2] if len(line) >= 2 else ""

    def full_at_by_county(self, cov: Coverage) -> dict[str, int | None]:
        """Return per county when the last of its targets (over the groups) was first
        covered, if all are."""
        firsts: dict[str, list[int | None]] = {}
        for g in cov.groups:
            for t in g.targets:
                county = self.county_of(t)
                if county:
                    firsts.setdefault(county, []).append(g.first.get(t))
        return {
            county: None if None in ats else max(ats)  # type: ignore[type-var]
            for county, ats in firsts.items()
        }

    def coverage_by_county(self, cov: Coverage) -> dict[str, tuple[int, int, list[str]]]:
        """Return (targets, covered, uncovered in launch order) per county, over the groups."""
        out: dict[str, tuple[int, int, list[str]]] = {}
        for g in cov.groups:
            for t in g.targets:
                county = self.county_of(t)
                if not county:
                    continue
                n, c, missing = out.get(county, (0, 0, []))
                out[county] = (
                    n + 1,
                    c + (t not in g.uncovered),
                    missing + [t] if t in g.uncovered else missing,
                )
        return out

    def children(self, unit_id: str, as_of: int | None = None) -> list[str]:
        """Return the unit's children, as known at as_of (units registered later are not)."""
        known = {
            e.payload.unit_id
            for e in self._seen(as_of)
            if isinstance(e.payload, ev.OrgUnitRegistered)
        }
        return sorted(
            u for u, p in self.parent.items() if p == unit_id and (as_of is None or u in known)
        )

    def _seen(self, as_of: int | None) -> list[Event]:
        return [e for e in self.events if as_of is None or e.recorded_at <= as_of]

    def _contributions(self, e: Event) -> list[tuple[str, str, str, int]]:
        """Return (metric, unit, area, value) of one accepted event."""
        p = e.payload
        if isinstance(p, ev.SupervisionVisit):
            return [("visits", p.unit_id, p.area, 1)]
        if isinstance(p, ev.ProblemFound):
            return [("problems_found", p.unit_id, p.area, 1)]
        if isinstance(p, ev.ProblemRectified):
            found = self.problems[p.problem_id]
            return [("problems_rectified", found.unit_id, found.area, 1)]
        if isinstance(p, ev.AccountabilityImposed):
            return [("accountability_persons", p.unit_id, p.area, p.persons)]
        if isinstance(p, ev.SanctionImposed):
            return [("sanctioned_persons", p.unit_id, p.area, p.persons)]
        if isinstance(p, ev.TalkHeld):
            return [
                ("talk_persons", p.unit_id, p.area, p.persons),
                (TALK_BY_KIND[p.kind], p.unit_id, p.area, p.persons),
            ]
        if isinstance(p, ev.RecommendationIssued):
            return [("recommendations", p.unit_id, p.area, 1)]
        if isinstance(p, ev.RegulationImproved):
            return [("regulations_improved", p.unit_id, p.area, p.count)]
        return []

    def figures(
        self,
        scope: str = "",
        area: str = "",
        lo: int | None = None,
        hi: int | None = None,
        as_of: int | None = None,
    ) -> dict[str, int]:
        """Return every metric for the scope's subtree, area and [lo, hi), seen at as_of."""
        scope = scope or self.city()
        out = dict.fromkeys(METRICS, 0)
        seen = self._seen(as_of)
        for e in seen:
            t = e.occurred_at
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                continue
            for metric, unit_id, a, value in self._contributions(e):
                if self.within(unit_id, scope) and (not area or a == area):
                    out[metric] += value
        # Open: found before `to` and not rectified before `to`, one problem at a time.
        rectified_before = {
            e.payload.problem_id
            for e in seen
            if isinstance(e.payload, ev.ProblemRectified) and (hi is None or e.occurred_at < hi)
        }
        for e in seen:
            p = e.payload
            if (
                isinstance(p, ev.ProblemFound)
                and (hi is None or e.occurred_at < hi)
                and self.within(p.unit_id, scope)
                and (not area or p.area == area)
                and p.problem_id not in rectified_before
            ):
                out["problems_open"] += 1
        return out

    def by_unit(
        self,
        scope: str = "",
        area: str = "",
        lo: int | None = None,
        hi: int | None = None,
        as_of: int | None = None,
    ) -> dict[str, dict[str, int]]:
        return {
            c: self.figures(c, area, lo, hi, as_of)
            for c in self.children(scope or self.city(), as_of)
        }

    def by_period(
        self, kind: str, lo: int, hi: int, scope: str = "", area: str = "", as_of: int | None = None
    ) -> list[tuple[str, dict[str, int]]]:
        return [
            (key, self.figures(scope, area, a, b, as_of))
            for key, a, b in calendar_periods(kind, lo, hi)
        ]

    def coverage(
        self,
        campaign_id: str,
        scope: str = "",
        as_of: int | None = None,
        occurred_before: int | None = None,
    ) -> Coverage | None:
        """Return coverage of the campaign inside the scope at as_of (None: not known then),
        by the visits that occurred before occurred_before (None: every visit)."""
        seen = self._seen(as_of)
        launch = [
            e.payload
            for e in seen
            if isinstance(e.payload, ev.CampaignLaunched) and e.payload.campaign_id == campaign_id
        ]
        if not launch:
            return None
        c = launch[0]
        scope = scope or self.city()
        groups = []
        for g in c.groups:
            targets = [t for t in g.target_unit_ids if self.within(t, scope)]
            first: dict[str, int] = {}  # target -> earliest covering visit seen
            via: dict[str, tuple[int, str]] = {}  # target -> that visit's (time, event id)
            for e in seen:
                if (
                    isinstance(e.payload, ev.SupervisionVisit)
                    and e.payload.campaign_id == campaign_id
                    and e.payload.group_id == g.group_id
                    and e.payload.unit_id in targets
                    and c.starts_at <= e.occurred_at < c.ends_at
                    and (occurred_before is None or e.occurred_at < occurred_before)
                ):
                    u = e.payload.unit_id
                    first[u] = min(first.get(u, e.occurred_at), e.occurred_at)
                    # Of two visits at one moment, the lesser event id covered it.
                    via[u] = min(
                        via.get(u, (e.occurred_at, e.event_id)), (e.occurred_at, e.event_id)
                    )
            groups.append(
                GroupCoverage(
                    g.group_id,
                    g.tier,
                    targets,
                    [t for t in targets if t not in first],
                    first,
                    {u: event_id for u, (_, event_id) in via.items()},
                )
            )
        return Coverage(campaign_id, groups)


@dataclass(frozen=True)
class GroupCoverage:
    group_id: str
    tier: Tier
    targets: list[str]
    uncovered: list[str]
    first: dict[str, int]  # covered target -> its earliest covering visit's event time
    via: dict[str, str]  # covered target -> that visit's event id (lineage)

    @property
    def full_at(self) -> int | None:
        """When the last of its targets was first covered, if all are (none: no targets)."""
        return max(self.first.values()) if self.targets and not self.uncovered else None

    @property
    def covered(self) -> int:
        return len(self.targets) - len(self.uncovered)


@dataclass(frozen=True)
class Coverage:
    campaign_id: str
    groups: list[GroupCoverage]

    @property
    def full(self) -> bool:
        return all(not g.uncovered for g in self.groups)

    def tiers(self) -> dict[Tier, tuple[int, int]]:
        """Return (targets, covered) per tier, every tier listed."""
        out = {t: (0, 0) for t in Tier}
        for g in self.groups:
            n, c = out[g.tier]
            out[g.tier] = (n + len(g.targets), c + g.covered)
        return out


# ---------------------------------------------------------------------------------------------
# Calendar periods, stepped a day at a time (no arithmetic shortcuts to share bugs with).


def _period_key(kind: str, d: date) -> date:
    if kind == "day":
        return d
    if kind == "week":
        while d.weekday() != 0:  # Monday
            d -= timedelta(days=1)
        return d
    if kind == "month":
        return date(d.year, d.month, 1)
    if kind == "quarter":
        return date(
            d.year,
            {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 4, 7: 7, 8: 7, 9: 7, 10: 10, 11: 10, 12: 10}[d.month],
            1,
        )
    if kind == "year":
        return date(d.year, 1, 1)
    raise ValueError(kind)


def _midnight(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * NS


def calendar_periods(kind: str, lo: int, hi: int) -> list[tuple[str, int, int]]:
    """Return (key, start, end) of each period meeting [lo, hi), clipped to it."""
    out: list[tuple[str, int, int]] = []
    d = datetime.fromtimestamp(lo // NS, UTC).date()
    while _midnight(d) < hi:
        key = _period_key(kind, d)
        start = max(lo, _midnight(key))
        if not out or out[-1][0] != key.isoformat():
            out.append((key.isoformat(), start, start))
        d += timedelta(days=1)
        out[-1] = (out[-1][0], out[-1][1], min(hi, _midnight(d)))
    return out


def accepted_events(arrivals: Sequence[tuple[Event, int, bool]]) -> tuple[list[str], list[Event]]:
    """Return the verdict kinds and the accepted events (recorded_at set) of arrivals.

    Each arrival is (event, now, allow_reference), in the order the hub receives them.
    """
    model = RuleModel()
    kinds, accepted = [], []
    for e, now, allow in arrivals:
        kind, _ = model.verdict(e, now, allow_reference=allow)
        kinds.append(kind)
        if kind == "accepted":
            accepted.append(replace(e, recorded_at=now))
    return kinds, accepted

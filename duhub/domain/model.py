"""The state the rules and projections look at: units, campaigns, problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from duhub.domain.events import Level, Nanos, SupervisionGroup
from duhub.domain.frozen import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Unit:
    unit_id: str
    parent_id: str
    level: Level
    name: str
    # Ids from the city down to this unit, inclusive: the unit's ancestors define every scope
    # it rolls up into.
    path: tuple[str, ...]
    sample: bool = False
    local_code: bool = False

    @property
    def county_id(self) -> str | None:
        """Return the county-level unit this unit lies in (itself for a county)."""
        return self.path[1] if len(self.path) > 1 else None

    def within(self, scope_unit_id: str) -> bool:
        """Return whether this unit lies in the subtree of `scope_unit_id`."""
        return scope_unit_id in self.path


@quick_init
@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    name: str
    area: str
    starts_at: Nanos
    ends_at: Nanos
    groups: tuple[SupervisionGroup, ...]
    source: str
    recorded_at: Nanos
    # Group id -> the group, made at first use; and group id -> its targets as a set, each
    # made when a visit of that group is first asked about. A visit looked its group up among
    # the groups and its target in the group's tuple, 1.4 ms at 100,000 targets, so covering
    # a group took time in the square of its size. Ingest asks only for groups (once per
    # batch's knowledge): building every target set with them took ~3.6 ms a batch there.
    _index: dict[str, SupervisionGroup] | None = field(default=None, compare=False, repr=False)
    _targets: dict[str, frozenset[str]] | None = field(default=None, compare=False, repr=False)

    def group(self, group_id: str) -> SupervisionGroup | None:
        index = self._index
        if index is None:
            # Group ids are unique in a campaign (ingest refuses one twice).
            index = {g.group_id: g for g in self.groups}
            object.__setattr__(self, "_index", index)
        return index.get(group_id)

    def covers(self, group_id: str, unit_id: str, occurred_at: Nanos) -> bool:
        """Return whether a visit by this group to this unit at that time covers a target."""
        if not (self.starts_at <= occurred_at < self.ends_at):
            return False
        sets = self._targets
        if sets is None:
            sets = {}
            object.__setattr__(self, "_targets", sets)
        targets = sets.get(group_id)
        if targets is None:
            group = self.group(group_id)
            if group is None:
                return False
            # Two threads may both build it: the same set, one of them kept.
            targets = sets[group_id] = frozenset(group.target_unit_ids)
        return unit_id in targets


@quick_init
@dataclass(frozen=True, slots=True)
class Problem:
    problem_id: str
    unit_id: str
    area: str
    found_at: Nanos
    rectified_at: Nanos | None = None

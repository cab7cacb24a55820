"""State in memory over a base `Knowledge`: what a batch (or ingest's unapplied tail) has
added on top of what the read model holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from duhub.domain.knowledge import Knowledge
from duhub.domain.model import Campaign, Problem, Unit
from duhub.projections.effects import (
    CampaignAdded,
    Effect,
    LetterAdded,
    ProblemAdded,
    ProblemClosed,
    Seen,
    UnitAdded,
)

V = TypeVar("V")


def _found_once(memo: dict[str, V], ask: Callable[[str], V | None], key: str) -> V | None:
    """Return what `ask` answers for `key`, asking only until it has found it."""
    found = memo.get(key)
    if found is None:
        found = ask(key)
        if found is not None:
            memo[key] = found
    return found


class WorkingSet:
    def __init__(self, base: Knowledge) -> None:
        self.base = base
        self.units: dict[str, Unit] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.problems: dict[str, Problem] = {}
        self.letters: set[str] = set()
        self.digests: dict[str, bytes] = {}
        self.seqs: dict[tuple[str, int], str] = {}
        self.heads: dict[str, bytes] = {}
        # What the base answered: units and campaigns never change once registered, and a
        # few are asked for by every event (the base may be a chain: the batch being written,
        # then the read model).
        self._base_units: dict[str, Unit] = {}
        self._base_campaigns: dict[str, Campaign] = {}

    def unit(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id) or _found_once(self._base_units, self.base.unit, unit_id)

    def campaign(self, campaign_id: str) -> Campaign | None:
        return self.campaigns.get(campaign_id) or _found_once(
            self._base_campaigns, self.base.campaign, campaign_id
        )

    def problem(self, problem_id: str) -> Problem | None:
        return self.problems.get(problem_id) or self.base.problem(problem_id)

    def has_letter(self, letter_id: str) -> bool:
        return letter_id in self.letters or self.base.has_letter(letter_id)

    def event_digest(self, event_id: str) -> bytes | None:
        found = self.digests.get(event_id)
        return found if found is not None else self.base.event_digest(event_id)

    def seq_owner(self, source: str, seq: int) -> str | None:
        return self.seqs.get((source, seq)) or self.base.seq_owner(source, seq)

    def source_head(self, source: str) -> bytes | None:
        found = self.heads.get(source)
        return found if found is not None else self.base.source_head(source)

    def apply(self, effects: list[Effect]) -> None:
        """Take in the state changes of one event's effects (rollups are not state)."""
        for e in effects:
            if isinstance(e, Seen):
                self.digests[e.event_id] = e.digest
                self.seqs[(e.source, e.seq)] = e.event_id
                if e.stored_hash:
                    self.heads[e.source] = e.stored_hash
            elif isinstance(e, UnitAdded):
                self.units[e.unit.unit_id] = e.unit
            elif isinstance(e, CampaignAdded):
                self.campaigns[e.campaign.campaign_id] = e.campaign
            elif isinstance(e, ProblemAdded):
                self.problems[e.problem.problem_id] = e.problem
            elif isinstance(e, ProblemClosed):
                problem = self.problem(e.problem_id)
                if problem is not None:
                    self.problems[e.problem_id] = replace(problem, rectified_at=e.at)
            elif isinstance(e, LetterAdded):
                self.letters.add(e.letter_id)

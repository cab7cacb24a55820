"""What the rules and projections may ask of the hub's state. Implemented in memory and by
the read model; the rules never know which."""

from __future__ import annotations

from typing import Protocol

from duhub.domain.model import Campaign, Problem, Unit


class Knowledge(Protocol):
    def unit(self, unit_id: str) -> Unit | None: ...

    def campaign(self, campaign_id: str) -> Campaign | None: ...

    def problem(self, problem_id: str) -> Problem | None: ...

    def has_letter(self, letter_id: str) -> bool: ...

    def event_digest(self, event_id: str) -> bytes | None: ...

    def seq_owner(self, source: str, seq: int) -> str | None: ...

    def source_head(self, source: str) -> bytes | None:
        """Return the stored hash of the source's last chained event (None: it has none)."""
        ...


class EmptyKnowledge:
    """The state of an empty hub."""

    def unit(self, unit_id: str) -> Unit | None:
        return None

    def campaign(self, campaign_id: str) -> Campaign | None:
        return None

    def problem(self, problem_id: str) -> Problem | None:
        return None

    def has_letter(self, letter_id: str) -> bool:
        return False

    def event_digest(self, event_id: str) -> bytes | None:
        return None

    def seq_owner(self, source: str, seq: int) -> str | None:
        return None

    def source_head(self, source: str) -> bytes | None:
        return None

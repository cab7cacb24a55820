"""What the simulated nodes keep across restarts, in `state_dir/simulator.json`.

Seqs are reserved: the next seq per source is written (fsync, then rename) *before* a batch
that uses them is published, so a crash can leave gaps but a seq is never used twice. With
them go the step's events (`sending`) and the scenario as it stands after the step: until the
hub has answered every one, a restart sends those events again as they were (the hub answers
DUPLICATE for what it holds) instead of playing the step again under new ids.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duhub.v1 import events_pb2 as pb

STATE_FILE = "simulator.json"
VERSION = 1


def event_id(source: str, seq: int) -> str:
    return f"sim:{source}:{seq}"


@dataclass
class SeqBook:
    """The next seq of each source."""

    next_seq: dict[str, int] = field(default_factory=dict)

    def assign(self, events: Iterable[pb.Event]) -> None:
        """Give each event the next seq of its source and the event id that goes with it."""
        for e in events:
            seq = self.next_seq.get(e.source, 1)
            e.seq = seq
            e.event_id = event_id(e.source, seq)
            self.next_seq[e.source] = seq + 1

    def skip(self, source: str, past: int, jump: int) -> None:
        """Move a source's next seq beyond `past` by `jump`: the hub knows those seqs."""
        self.next_seq[source] = max(self.next_seq.get(source, 1), past + 1) + jump


@dataclass
class SimState:
    path: Path
    seqs: SeqBook = field(default_factory=SeqBook)
    backfilled: bool = False
    # Part of problem and letter ids, so a lost state file never makes them collide.
    nonce: str = field(default_factory=lambda: secrets.token_hex(4))
    scenario: dict[str, Any] = field(default_factory=dict)
    # The events of the step being sent, until the hub answered each (serialized).
    sending: list[bytes] = field(default_factory=list)

    @classmethod
    def load(cls, state_dir: Path) -> SimState:
        """Return the saved state, or a fresh one when there is none."""
        path = Path(state_dir) / STATE_FILE
        if not path.exists():
            return cls(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            raise ValueError(f"{path}: unknown simulator state version {data.get('version')}")
        return cls(
            path=path,
            seqs=SeqBook({k: int(v) for k, v in data["next_seq"].items()}),
            backfilled=bool(data["backfilled"]),
            nonce=str(data["nonce"]),
            scenario=dict(data.get("scenario") or {}),
            sending=[base64.b64decode(x) for x in data.get("sending") or []],
        )

    def save(self) -> None:
        """Write the state durably: a reader sees the old file or the new one, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": VERSION,
            "next_seq": dict(sorted(self.seqs.next_seq.items())),
            "backfilled": self.backfilled,
            "nonce": self.nonce,
            "scenario": self.scenario,
            "sending": [base64.b64encode(x).decode() for x in self.sending],
        }
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

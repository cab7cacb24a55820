"""Whether a read model was built from this log: its positions never lie past the log's end.

Offsets only grow, and a read model applies only what the log holds, so a position past the
end means another log (a --db of another topic, a topic made again after the broker lost its
data) or a log that lost records. A service started so applied nothing below the old
positions: the worker took the new records for applied ones, ingest opened all the same, and
every event it accepted there was missing from the figures with no word said.

The same holds while the services run (a broker that lost its data under them, a topic
deleted and made again): `refuse_lost` is the check they make then, and they stop.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine

from duhub.log.base import EventLog
from duhub.readmodel.writer import read_positions


def past_end(positions: Mapping[int, int], ends: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Return, per partition whose position lies past the log's end, (position, end); a
    partition the log does not have ends at 0."""
    return {p: (at, ends.get(p, 0)) for p, at in sorted(positions.items()) if at > ends.get(p, 0)}


class LogLost(ValueError):
    """The log ends before where the read model stands, found while a service runs."""


def _where(beyond: Mapping[int, tuple[int, int]]) -> str:
    shown = [f"partition {p} at {at}, the log ends at {end}" for p, (at, end) in beyond.items()]
    return "; ".join(shown[:3]) + (f"; and {len(shown) - 3} more" if len(shown) > 3 else "")


def refuse_past_end(positions: Mapping[int, int], ends: Mapping[int, int]) -> None:
    """Raise ValueError, naming --db and --log, when the read model is not this log's."""
    beyond = past_end(positions, ends)
    if beyond:
        raise ValueError(
            f"--db: the read model stands past the end of --log ({_where(beyond)}): it was "
            "built from another log, or the log lost records; give this log's read model, or "
            "rebuild one with duhub replay --into a fresh database"
        )


def refuse_lost(positions: Mapping[int, int], ends: Mapping[int, int]) -> None:
    """Raise LogLost when the log, read while a service runs, ends before the read model's
    positions: records it held are gone, and those it takes now would be taken for them."""
    beyond = past_end(positions, ends)
    if beyond:
        raise LogLost(
            f"--log lost records under the running service: the read model stands past its "
            f"end ({_where(beyond)}); the broker lost its data or the topic was made again. "
            "Stopping rather than take new records for applied ones: restore the log, or "
            "rebuild the read model with duhub replay --into a fresh database"
        )


def check_belongs(log: EventLog, engine: Engine) -> None:
    """refuse_past_end for a service about to run on `log` and the read model `engine`."""
    refuse_past_end(read_positions(engine), log.end_offsets())

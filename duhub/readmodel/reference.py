"""What the read model holds of the hub's reference hierarchy, read as little as a start needs:
the events after those a fingerprint already vouches for (`reference_loaded`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from duhub.domain.events import REFERENCE_SOURCE
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine

_ROW = 1  # reference_loaded holds one row


@dataclass(frozen=True, slots=True)
class Mark:
    """The first `units` reference events (seqs 1…units) hash to `fingerprint`, and passed
    the reference rules of version `rules` (0: not known to have)."""

    units: int
    fingerprint: bytes
    rules: int = 0


def fingerprint(digests: Sequence[bytes]) -> bytes:
    """Return the SHA-256 of the event digests one after another: equal exactly when the
    events are, in order (each digest covers the event's id and seq)."""
    return hashlib.sha256(b"".join(digests)).digest()


def read_mark(engine: Engine) -> Mark | None:
    """Return the mark the read model keeps, if one, and if the last event it vouches for is
    still there (a read model emptied behind it holds none: its mark is worth nothing)."""
    lo, seen = s.reference_loaded.c, s.events_seen.c
    with engine.connect() as conn:
        row = conn.execute(select(lo.units, lo.fingerprint, lo.rules).where(lo.id == _ROW)).first()
        if row is None or row.units < 1:
            return None
        last = conn.execute(
            select(seen.event_id)
            .where(seen.source == REFERENCE_SOURCE)
            .where(seen.seq == row.units)
        ).first()
    if last is None:
        return None
    return Mark(int(row.units), bytes(row.fingerprint), int(row.rules or 0))


def peek_mark(database: str) -> Mark | None:
    """Return the mark of the read model at `database` before it is opened, creating and
    changing nothing: None where there is none yet (a new SQLite file is not made), or it
    cannot be read now (a read model of an earlier layout; a server down): the file is then
    checked whole, and opening the read model says what is wrong."""
    try:
        url = make_url(database)
        if url.get_backend_name() == "sqlite" and not (
            url.database and Path(url.database).is_file()
        ):
            return None
        # No tables made, no layout changed: only read.
        engine = open_engine(database, create=False)
    except (SQLAlchemyError, ValueError, OSError):
        return None
    try:
        return read_mark(engine)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def write_mark(engine: Engine, mark: Mark) -> None:
    """Keep `mark`. Two starts at once may both write one: each vouches for what it read."""
    lo = s.reference_loaded.c
    values = {"units": mark.units, "fingerprint": mark.fingerprint, "rules": mark.rules}
    try:
        with engine.begin() as conn:
            done = conn.execute(update(s.reference_loaded).where(lo.id == _ROW).values(values))
            if done.rowcount == 0:
                conn.execute(insert(s.reference_loaded).values(id=_ROW, **values))
    except IntegrityError:
        pass  # the other start inserted it first; the next start reads one or the other


def reference_held(engine: Engine, after: int = 0) -> list[tuple[str, bytes]]:
    """Return the (event id, digest) of each event of the reference source the read model
    holds with a seq above `after`, in seq order."""
    seen = s.events_seen.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(seen.event_id, seen.digest)
            .where(seen.source == REFERENCE_SOURCE)
            .where(seen.seq > after)
            .order_by(seen.seq)
        )
        return [(r.event_id, bytes(r.digest)) for r in rows]

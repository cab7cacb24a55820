"""What `duhub publish` read of its file, kept on disk until the outbox stores it.

The file is read whole before any of it is stored, then stored in one transaction (input that
fails partway stores nothing). Held in memory, its events took about 150 bytes a line, 1.5 GB
for 10M lines; here only SQLite's page cache is in memory, whatever the file's size.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from duhub.v1 import events_pb2 as pb

CHUNK = 500


class Spool:
    def __init__(self) -> None:
        # "": a private temporary database on disk (in $SQLITE_TMPDIR, $TMPDIR, /var/tmp or
        # /tmp), removed when it is closed or the process ends.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")  # scratch: nothing to roll back to
        # event_id: NULL for an event the outbox cannot hold (no id, or an id on an earlier
        # line of the file), sent apart.
        self._db.execute(
            "CREATE TABLE spool (line INTEGER PRIMARY KEY, event_id TEXT UNIQUE,"
            " body BLOB NOT NULL, answered INTEGER NOT NULL DEFAULT 0)"
        )
        self._db.execute("BEGIN")  # one transaction throughout: no commit per line

    def keep(self, line: int, event: pb.Event) -> None:
        # As the outbox stores it: line_of matches the outbox's copy by these bytes.
        body = event.SerializeToString(deterministic=True)
        if event.event_id:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO spool (line, event_id, body) VALUES (?, ?, ?)",
                (line, event.event_id, body),
            )
            if cur.rowcount:
                return
        self._db.execute("INSERT INTO spool (line, body) VALUES (?, ?)", (line, body))

    def for_outbox(self) -> Iterator[pb.Event]:
        """The events with an id, each from its first line, in the file's order."""
        cur = self._db.execute("SELECT body FROM spool WHERE event_id IS NOT NULL ORDER BY line")
        for (body,) in cur:
            yield pb.Event.FromString(body)

    def apart(self) -> Iterator[tuple[int, pb.Event]]:
        """(line, event) of the events the outbox cannot hold, in the file's order."""
        cur = self._db.execute("SELECT line, body FROM spool WHERE event_id IS NULL ORDER BY line")
        for line, body in cur:
            yield line, pb.Event.FromString(body)

    def line_of(self, event_id: str, body: bytes) -> int | None:
        """The line an event id was first on, if with this content (as serialized); None for
        one not in the file, or another copy (another publish stored its own meanwhile)."""
        row = self._db.execute(
            "SELECT line FROM spool WHERE event_id = ? AND body = ?", (event_id, body)
        ).fetchone()
        return None if row is None else row[0]

    def answered(self, event_id: str) -> None:
        self._db.execute("UPDATE spool SET answered = 1 WHERE event_id = ?", (event_id,))

    def unanswered(self) -> Iterator[list[tuple[str, int]]]:
        """(event id, line) of the events with an id not answered yet, CHUNK at a time."""
        cur = self._db.execute(
            "SELECT event_id, line FROM spool WHERE event_id IS NOT NULL AND answered = 0"
            " ORDER BY line"
        )
        while chunk := cur.fetchmany(CHUNK):
            yield chunk

    def close(self) -> None:
        self._db.close()

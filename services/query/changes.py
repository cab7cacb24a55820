"""Where a query server in its own process learns that the read model changed.

PostgreSQL: LISTEN duhub_changes (the aggregator NOTIFYs in its commit). SQLite has no such
channel, so the applied positions are read every quarter second instead.
"""

from __future__ import annotations

import logging
import select
import threading

from sqlalchemy import Engine

from duhub.feed import ChangeFeed
from duhub.readmodel.writer import ALL_CAMPAIGNS, CHANGES_CHANNEL, read_positions

log = logging.getLogger(__name__)

POLL_S = 0.25


def follow_changes(engine: Engine, feed: ChangeFeed) -> threading.Thread:
    """Start a daemon thread that feeds `feed` from the read model's change signal."""
    target = _listen if engine.dialect.name == "postgresql" else _poll
    thread = threading.Thread(target=target, args=(engine, feed), name="changes", daemon=True)
    thread.start()
    return thread


def _listen(engine: Engine, feed: ChangeFeed) -> None:
    while not feed.closed:
        try:
            raw = engine.raw_connection()
            try:
                conn = raw.driver_connection
                conn.set_session(autocommit=True)
                conn.cursor().execute(f"LISTEN {CHANGES_CHANNEL}")
                feed.publish_all()  # whatever happened while not listening
                while not feed.closed:
                    if select.select([conn], [], [], 1.0) == ([], [], []):
                        continue
                    conn.poll()
                    campaigns: set[str] = set()
                    while conn.notifies:
                        note = conn.notifies.pop(0)
                        campaigns |= {c for c in note.payload.split(",") if c}
                    if ALL_CAMPAIGNS in campaigns:  # too many to name in a payload
                        feed.publish_all()
                    else:
                        feed.publish(campaigns, True)
            finally:
                raw.close()
        except Exception:  # the database went away: say so, then listen again
            log.exception("lost the change channel; reconnecting")
            feed.publish_all()
            threading.Event().wait(1.0)


def _poll(engine: Engine, feed: ChangeFeed) -> None:
    last: dict[int, int] | None = None
    while not feed.closed:
        try:
            now = read_positions(engine)
        except Exception:
            log.exception("cannot read positions")
            now = last
        if now != last:
            last = now
            feed.publish_all()
        threading.Event().wait(POLL_S)

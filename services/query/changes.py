"""Where a query server in its own process learns that the read model changed.

PostgreSQL: LISTEN duhub_changes (the aggregator NOTIFYs in its commit). SQLite has no such
channel, so the applied positions are read every quarter second instead.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from duhub.feed import ChangeFeed
from duhub.readmodel.writer import ALL_CAMPAIGNS, CHANGES_CHANNEL, read_positions

log = logging.getLogger(__name__)

POLL_S = 0.25
# PostgreSQL: how often the listener checks that a notification came for every commit.
CHECK_S = 5.0
NOTE_GRACE_S = 0.5
LISTEN_CONNECT = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}


def follow_changes(engine: Engine, feed: ChangeFeed) -> threading.Thread:
    """Start a daemon thread that feeds `feed` from the read model's change signal."""
    target = _listen if engine.dialect.name == "postgresql" else _poll
    thread = threading.Thread(target=target, args=(engine, feed), name="changes", daemon=True)
    thread.start()
    return thread


def _listen(engine: Engine, feed: ChangeFeed) -> None:
    # Connections of its own, opened afresh each time: the listening one never goes back to a
    # pool (it would go on receiving), and a check never waits on a pooled connection that
    # died with the listening one. A cut met in the middle of a statement fails it within
    # seconds (keepalives, unacknowledged data) instead of the system's hours.
    engine = create_engine(engine.url, poolclass=NullPool, connect_args=LISTEN_CONNECT)
    lost = False  # since the last failure: said once per outage, not at every attempt
    while not feed.closed:
        raw = None
        try:
            raw = engine.raw_connection()
            conn = raw.driver_connection
            conn.set_session(autocommit=True)
            conn.cursor().execute(f"LISTEN {CHANGES_CHANNEL}")
            # The channel works only with its checks, on a second connection: its slots all
            # taken by another client, the LISTEN got the last one and the check none, and
            # "again" was said (then "lost", with a traceback) every second.
            positions = read_positions(engine)
            if lost:
                log.warning("listening on the change channel again")
                lost = False
            feed.publish_all()  # whatever happened while not listening
            _hear(engine, conn, feed, positions)
        except Exception:  # the database went away: say so, then listen again
            if lost:
                log.debug("change channel: still no database", exc_info=True)
            else:
                log.exception("lost the change channel; reconnecting every second")
                lost = True
            if raw is not None:
                raw.invalidate()  # not back to the pool: dead, or still listening
            feed.publish_all()
            threading.Event().wait(1.0)
        else:
            raw.close()


class ChannelLost(Exception):
    """The applied positions moved and no notification came."""


def _hear(engine: Engine, conn: Any, feed: ChangeFeed, positions: dict[int, int]) -> None:
    """Pass the notifications on `conn` to the feed until it closes (`positions`: the
    applied positions read once it listened).

    Every commit of the aggregator notifies, so positions that moved over a check with no
    notification heard mean the connection died without a word (a network cut, a NAT that
    forgot it, a failover: nothing reaches an idle socket, and nothing would for hours):
    raise ChannelLost, to listen again on a new one."""
    heard = False
    next_check = time.monotonic() + CHECK_S
    while not feed.closed:
        if select.select([conn], [], [], 1.0) != ([], [], []):
            conn.poll()
            campaigns: set[str] = set()
            while conn.notifies:
                note = conn.notifies.pop(0)
                heard = True
                campaigns |= {c for c in note.payload.split(",") if c}
            if ALL_CAMPAIGNS in campaigns:  # too many to name in a payload
                feed.publish_all()
            else:
                feed.publish(campaigns, True)
        if time.monotonic() >= next_check:
            now = read_positions(engine)
            if now != positions and not heard:
                # A commit's notification is sent as it commits: give one in flight a moment.
                if select.select([conn], [], [], NOTE_GRACE_S) != ([], [], []):
                    continue  # read it first, then look again
                raise ChannelLost(f"positions moved to {now} with no notification in {CHECK_S:g} s")
            positions, heard = now, False
            next_check = time.monotonic() + CHECK_S


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

"""A county node's outbox: events are stored in a local SQLite file first, then forwarded to the
hub's ingest in batches, retrying with exponential backoff and jitter while the link or the hub
is down or busy (UNAVAILABLE, DEADLINE_EXCEEDED, a hub's concurrent-call limit).

Safe across crashes of the node: an event leaves the pending state only in the transaction that
records the hub's answer to it, so a crash between sending and recording means it is sent again,
and the hub answers DUPLICATE (never counting it twice). Events the hub REJECTED stay in the
outbox with the field and reason it gave, for the operator (`duhub outbox status`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from duhub.convert import MAX_EVENT_ID
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc

log = logging.getLogger(__name__)

PENDING, ACCEPTED, DUPLICATE, REJECTED = "pending", "accepted", "duplicate", "rejected"
# Answers worth retrying: the link, the hub or its log/read model is down for now.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# How grpc's server words a call refused past its maximum_concurrent_rpcs, and how the hub
# begins a call refused past its caller's share (services.shares): a busy hub, worth retrying,
# unlike the other RESOURCE_EXHAUSTED answers (a message over the size limit).
BUSY = "Concurrent RPC limit exceeded"


def retryable(e: grpc.RpcError) -> bool:
    """Whether a failed call is worth sending again: the link or the hub is down, or the hub
    is too busy to take it now."""
    code = e.code()  # type: ignore[attr-defined]
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return (e.details() or "").startswith(BUSY)  # type: ignore[attr-defined]
    return code in RETRYABLE


BATCH = 500
MAX_MESSAGE = 32 * 1024 * 1024
# A broken link must not leave the channel waiting minutes before it dials again (gRPC's own
# reconnect backoff grows to 120 s by default); our Backoff paces the retries instead. The
# command line's channels (duhub.cli.client) take the same options.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.initial_reconnect_backoff_ms", 100),
    # gRPC's core takes this as the time a connection attempt may take (TCP, TLS, the
    # server's first HTTP/2 frame), not only as a backoff: at 100 ms a hub slow to answer (a
    # loaded machine) was "no hub answers" ("timed out before receiving SETTINGS frame").
    ("grpc.min_reconnect_backoff_ms", 20_000),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# How often a forward waiting for another's turn to end looks again.
TURN_POLL = 0.02
# How the hub names the event whose source the caller may not publish as, refusing the whole
# request (duhub.auth.principal.check_publish): "events[3].source: node 420581 publishes …".
_NAMED_SOURCE = re.compile(r"events\[(\d+)\]\.source: ")


def _of_named_source(rows: Sequence[Stored], why: str) -> list[Stored]:
    """Return the rows of the source the hub's refusal names (every one of them would be
    refused alike), none when it names no event."""
    named = _NAMED_SOURCE.match(why)
    if named is None or int(named.group(1)) >= len(rows):
        return []
    source = rows[int(named.group(1))].event.source
    return [r for r in rows if r.event.source == source]


def _framed(size: int) -> int:
    """Return the bytes an event of `size` bytes takes in a PublishRequest (tag, length, it)."""
    length = 1
    while size >= 0x80 << (7 * (length - 1)):
        length += 1
    return 1 + length + size


def fitting(events: Sequence[pb.Event], limit: int = MAX_MESSAGE) -> int:
    """Return how many leading events fit in one PublishRequest of at most `limit` bytes (gRPC
    refuses a larger one, RESOURCE_EXHAUSTED, before the hub reads it); 0 when the first event
    alone does not."""
    total = 0
    for n, e in enumerate(events):
        total += _framed(e.ByteSize())
        if total > limit:
            return n
    return len(events)


def too_big(event: pb.Event) -> ipb.EventResult:
    """The answer to an event no request can carry: rejected, naming its size."""
    return ipb.EventResult(
        event_id=event.event_id[:128],
        result=ipb.RESULT_REJECTED,
        field="event",
        reason=f"event: {event.ByteSize()} bytes, more than the {MAX_MESSAGE} bytes a request "
        "may carry",
    )


def placed(result: ipb.EventResult) -> bool:
    """Return whether a result says where its event stands in the log: an ACCEPTED one does,
    a DUPLICATE one when the hub knew (older hubs left it at partition 0, offset 0, which
    no node's event holds: the reference data comes first)."""
    if result.result == ipb.RESULT_ACCEPTED:
        return True
    return result.result == ipb.RESULT_DUPLICATE and (result.partition, result.offset) != (0, 0)


SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    event_id    TEXT PRIMARY KEY,
    body        BLOB NOT NULL,          -- the serialized duhub.v1.Event
    state       TEXT NOT NULL DEFAULT 'pending',
    field       TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL DEFAULT '',
    partition   INTEGER,
    log_offset  INTEGER,
    added_at    REAL NOT NULL,
    answered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state);
"""


def default_path(target: str) -> Path:
    """Return the default outbox file for a hub address: one outbox per target."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", target).strip("_") or "default"
    return Path(cache) / "duhub" / f"outbox-{safe}.db"


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of
    min(cap, base * 2**n) seconds, so many nodes cut off together do not come back in step."""

    base: float = 0.1
    cap: float = 5.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return delay / 2 + self.rng.uniform(0, delay / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True, slots=True)
class Stored:
    """One event in the outbox and what the hub answered (state pending: nothing yet)."""

    event_id: str
    event: pb.Event
    state: str
    field: str
    reason: str
    partition: int | None
    offset: int | None
    # As stored: an answer is recorded only on the copy that was sent.
    body: bytes = b""


@dataclass(slots=True)
class ForwardReport:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    # Publish calls that failed and were retried.
    retries: int = 0
    # Events still pending when forward returned (0 unless stopped).
    pending: int = 0
    # The log end each partition must reach for every accepted (or duplicate) event to show
    # in queries.
    ends: dict[int, int] = field(default_factory=dict)


class Unreachable(Exception):
    """The hub did not answer for longer than forward was told to try; nothing is lost:
    every unanswered event stays pending in the outbox."""

    def __init__(self, error: grpc.RpcError, report: ForwardReport) -> None:
        super().__init__(f"hub unreachable ({report.pending} events pending): {error}")
        self.error = error
        self.report = report


class Outbox:
    """Store-and-forward of events to a hub. Thread-safe; several processes may share a file
    (SQLite locks it) and forward it at once: they take turns sending (`_turn`, a lock on the
    file PATH-lock beside it), so no event is sent twice at once."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        """Open the outbox at `path`, making it (and its directory) unless `create` is false:
        then FileNotFoundError when there is none, and nothing is made (a status query)."""
        self.path = Path(path)
        if create:
            # Its owner's only, as the hub's data dir: it holds the events on their way.
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise FileNotFoundError(f"no outbox at {self.path}")
        # Held by the forward sending a batch (`_turn`), beside the file as SQLite's own are.
        self._turn_path = self.path.with_name(self.path.name + "-lock")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: an event the node was told is stored survives a power cut.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- storing -----------------------------------------------------------------------

    def add(self, events: Iterable[pb.Event], *, replace: bool = False) -> list[str]:
        """Store events durably; return per event "added", "present" (same id already held:
        a no-op) or, with `replace`, "replaced" (the held copy, answered or not, is replaced by
        this one and pending again, behind what is pending: "send this again, as it is now").
        Events are sent in the order they were last added.

        Raises ValueError for an event without an event_id (it could not be de-duplicated).
        """
        out: list[str] = []
        self.store(events, replace=replace, each=out.append)
        return out

    def store(
        self,
        events: Iterable[pb.Event],
        *,
        replace: bool = False,
        each: Callable[[str], None] | None = None,
    ) -> None:
        """`add`, telling `each` what became of each event instead of listing them all (the
        millions of events of a file take no memory here, read from an iterator)."""
        now = time.time()
        out = each or (lambda _: None)
        with self._lock, self._tx():
            for e in events:
                if not e.event_id:
                    raise ValueError("event_id: required to keep an event in the outbox")
                body = e.SerializeToString(deterministic=True)
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO outbox (event_id, body, added_at) VALUES (?, ?, ?)",
                    (e.event_id, body, now),
                )
                if cur.rowcount:
                    out("added")
                elif replace:
                    # Behind what is pending (a new rowid), as a new event would be: the
                    # events of a call are sent in its order. Kept in its old place, an
                    # event answered before went ahead of the events added with it that it
                    # names (a visit re-sent behind the unit registration added for it was
                    # rejected again: unknown unit).
                    self._db.execute("DELETE FROM outbox WHERE event_id = ?", (e.event_id,))
                    self._db.execute(
                        "INSERT INTO outbox (event_id, body, added_at) VALUES (?, ?, ?)",
                        (e.event_id, body, now),
                    )
                    out("replaced")
                else:
                    out("present")

    def record_held(self, answered: Iterable[tuple[pb.Event, ipb.EventResult]]) -> int:
        """Record the hub's answers to copies sent outside the outbox (a file's later line
        under an id the outbox holds): one answered ACCEPTED or DUPLICATE, which the hub holds,
        takes the place of a rejected copy under its id, answered as the hub answered it, so the
        outbox holds what the hub holds. Kept, the rejected copy was listed by `outbox status`
        for good and sent again by `outbox retry --rejected`, to be rejected again. A pending
        copy is left to get its own answer; a delivered one stays. Return how many were taken."""
        now, n = time.time(), 0
        with self._lock, self._tx():
            for e, r in answered:
                if r.result not in (ipb.RESULT_ACCEPTED, ipb.RESULT_DUPLICATE):
                    continue
                state = ACCEPTED if r.result == ipb.RESULT_ACCEPTED else DUPLICATE
                where = (r.partition, r.offset) if placed(r) else (None, None)
                n += self._db.execute(
                    "UPDATE outbox SET body = ?, state = ?, field = '', reason = '',"
                    " partition = ?, log_offset = ?, answered_at = ?"
                    " WHERE event_id = ? AND state = 'rejected'",
                    (e.SerializeToString(deterministic=True), state, *where, now, e.event_id),
                ).rowcount
        return n

    def retry_rejected(self, event_ids: Sequence[str] | None = None) -> int:
        """Make rejected events pending again (after the hub's data was fixed, say)."""
        with self._lock, self._tx():
            if event_ids is None:
                cur = self._db.execute(
                    "UPDATE outbox SET state = 'pending', field = '', reason = ''"
                    " WHERE state = 'rejected'"
                )
                return cur.rowcount
            n = 0
            for i in event_ids:
                n += self._db.execute(
                    "UPDATE outbox SET state = 'pending', field = '', reason = ''"
                    " WHERE state = 'rejected' AND event_id = ?",
                    (i,),
                ).rowcount
            return n

    def prune(self, older_than_s: float) -> int:
        """Forget accepted and duplicate events answered more than `older_than_s` ago."""
        with self._lock, self._tx():
            return self._db.execute(
                "DELETE FROM outbox WHERE state IN ('accepted', 'duplicate') AND answered_at < ?",
                (time.time() - older_than_s,),
            ).rowcount

    # --- reading -----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Return the number of events per state (pending, accepted, duplicate, rejected)."""
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        out = dict.fromkeys((PENDING, ACCEPTED, DUPLICATE, REJECTED), 0)
        out.update({state: n for state, n in rows})
        return out

    def pending(self, limit: int = BATCH) -> list[Stored]:
        return self._select("WHERE state = 'pending' ORDER BY rowid LIMIT ?", (limit,))

    def rejected(self) -> list[Stored]:
        return self._select("WHERE state = 'rejected' ORDER BY rowid", ())

    def get(self, event_ids: Sequence[str]) -> dict[str, Stored]:
        out: dict[str, Stored] = {}
        for i in range(0, len(event_ids), 500):
            chunk = list(event_ids[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for s in self._select(f"WHERE event_id IN ({marks})", chunk):
                out[s.event_id] = s
        return out

    def _select(self, where: str, params: Sequence[object]) -> list[Stored]:
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, body, state, field, reason, partition, log_offset FROM outbox "
                + where,
                tuple(params),
            ).fetchall()
        return [
            Stored(i, pb.Event.FromString(body), state, f, r, p, o, body)
            for i, body, state, f, r, p, o in rows
        ]

    # --- forwarding --------------------------------------------------------------------

    def forward(
        self,
        target: str | grpc.Channel,
        *,
        batch: int = BATCH,
        timeout: float = 30.0,
        give_up_after: float | None = None,
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        on_result: Callable[[Stored, ipb.EventResult], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ForwardReport:
        """Send every pending event, oldest first, until none is left; return what the hub
        answered. Retries UNAVAILABLE and DEADLINE_EXCEEDED with backoff; raises Unreachable
        once `give_up_after` seconds passed without an answer (None: never gives up; set
        `stop` to end early, leaving the rest pending). Other errors are raised as they come.
        """
        channel = (
            grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
            if isinstance(target, str)
            else target
        )
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        backoff = backoff or Backoff()
        report = ForwardReport()
        last_answer = time.monotonic()
        try:
            while stop is None or not stop.is_set():
                with self._turn(stop) as ours:
                    if not ours:
                        break  # stopped while another forward had the turn
                    rows = self.pending(batch)
                    if not rows:
                        return report
                    fit = fitting([r.event for r in rows])
                    if not fit:
                        # gRPC refuses it before the hub reads it, whatever is sent with it:
                        # kept pending, it failed every forward after it. Rejected here, for
                        # the operator.
                        self._record(rows[:1], [too_big(rows[0].event)], report, on_result)
                        continue
                    rows = rows[:fit]
                    request = ipb.PublishRequest(events=[r.event for r in rows])
                    try:
                        reply = stub.Publish(request, timeout=timeout, metadata=metadata)
                    except grpc.RpcError as e:
                        failed = e
                        code = e.code()  # type: ignore[attr-defined]
                        if code == grpc.StatusCode.PERMISSION_DENIED:
                            # The hub refused the whole request: nothing was appended. The
                            # events of the source it names (another node's) are kept for the
                            # operator, out of the way of later publishes, which would be
                            # refused with them again; the others wait, as does every event
                            # when the caller may not publish at all (a user's credentials).
                            # Marking the whole batch rejected held back the good events sent
                            # with it, those an earlier run left waiting too, for good.
                            why = e.details() or ""  # type: ignore[attr-defined]
                            self._refuse(_of_named_source(rows, why), f"PERMISSION_DENIED: {why}")
                    else:
                        self._record(rows, reply.results, report, on_result)
                        backoff.reset()
                        last_answer = time.monotonic()
                        continue
                # Out of turn: another forward of this outbox may send while this one waits.
                if not retryable(failed):
                    raise failed
                if give_up_after is not None and time.monotonic() - last_answer > give_up_after:
                    report.pending = self.counts()[PENDING]
                    raise Unreachable(failed, report) from failed
                report.retries += 1
                pause = backoff.next()
                log.info(
                    "outbox: publish failed (%s: %s); retrying %d events in %.2f s",
                    code.name,
                    failed.details(),  # type: ignore[attr-defined]
                    len(rows),
                    pause,
                )
                if stop is not None:
                    stop.wait(pause)
                else:
                    sleep(pause)
            report.pending = self.counts()[PENDING]
            return report
        finally:
            if isinstance(target, str):
                channel.close()

    @contextlib.contextmanager
    def _turn(self, stop: threading.Event | None) -> Iterator[bool]:
        """Hold the outbox's turn to send: one forward at a time, across threads and
        processes, picks a batch, sends it and records the answers. Two forwards sending the
        same pending events at once had the second copy answered DUPLICATE, which could be
        recorded over the first's ACCEPTED (its log position lost: publish did not wait for
        it to show, and reported a file of new events as duplicates). Yields False, without
        the turn, when `stop` is set while waiting for it."""
        fd = os.open(self._turn_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if stop is None:
                        time.sleep(TURN_POLL)
                    elif stop.wait(TURN_POLL):
                        yield False
                        return
            yield True
        finally:
            os.close(fd)  # lets go of the lock

    def _record(
        self,
        rows: Sequence[Stored],
        results: Sequence[ipb.EventResult],
        report: ForwardReport,
        on_result: Callable[[Stored, ipb.EventResult], None] | None,
    ) -> None:
        """Record the hub's answers, all in one transaction: only now do they leave pending."""
        if len(results) != len(rows):
            raise RuntimeError(f"hub answered {len(results)} results for {len(rows)} events")
        now = time.time()
        with self._lock, self._tx():
            for row, r in zip(rows, results, strict=True):
                # The hub echoes at most MAX_EVENT_ID characters of an id (a longer one is
                # rejected for its length): the echo of a long id is its prefix.
                if r.event_id and r.event_id != row.event_id[:MAX_EVENT_ID]:
                    raise RuntimeError(f"hub answered for {r.event_id!r}, not {row.event_id!r}")
                where: tuple[int | None, int | None] = (None, None)
                if r.result == ipb.RESULT_ACCEPTED:
                    state = ACCEPTED
                    report.accepted += 1
                    where = (r.partition, r.offset)
                elif r.result == ipb.RESULT_DUPLICATE:
                    state = DUPLICATE
                    report.duplicate += 1
                    if placed(r):
                        where = (r.partition, r.offset)
                else:
                    state, where = REJECTED, (None, None)
                    report.rejected += 1
                if where[0] is not None:
                    report.ends[r.partition] = max(report.ends.get(r.partition, 0), r.offset + 1)
                self._db.execute(
                    "UPDATE outbox SET state = ?, field = ?, reason = ?, partition = ?,"
                    " log_offset = ?, answered_at = ? WHERE event_id = ? AND state = 'pending'"
                    # Not on a copy stored anew (other content) while this one was on its way.
                    " AND body = ?",
                    (state, r.field, r.reason, *where, now, row.event_id, row.body),
                )
        if on_result is not None:
            for row, r in zip(rows, results, strict=True):
                on_result(row, r)

    def _refuse(self, rows: Sequence[Stored], reason: str) -> None:
        """Mark the events of a refused request rejected (`outbox retry --rejected` resends)."""
        with self._lock, self._tx():
            self._db.executemany(
                "UPDATE outbox SET state = 'rejected', field = 'request', reason = ?,"
                " answered_at = ? WHERE event_id = ? AND state = 'pending' AND body = ?",
                [(reason, time.time(), row.event_id, row.body) for row in rows],
            )

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error) on an autocommit sqlite3 connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")

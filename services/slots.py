"""Places for long-lived streams, so they never take every thread of a server.

A sync gRPC server runs each call on a thread of its pool for as long as the call lasts, a
stream included. With one pool of 32 threads, 32 open WatchCoverage streams (screens in a
command centre) or PublishStreams (county nodes) left none for anything else: publishing and
every query waited until a stream ended. Each kind of stream has a cap of its own, and the
pool holds the caps of the servicers it serves plus threads kept for calls.

Within a kind's cap, each caller (an authenticated principal) holds at most its share: one
county node's token, or one user's, opening every place locked every other screen and county
out. Callers that cannot be told apart (the local caller: a hub without credentials, or its own
simulator) are held to the cap alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from duhub.auth.principal import Kind, Principal

# Streams of each kind one server holds open at once (--max-streams), and the most it may be
# set to: a waiting thread is cheap, not free.
MAX_STREAMS = 128
MAX_STREAM_CAP = 10_000
# A caller's share of a kind's places unless told (--max-streams-per-caller): a quarter.
SHARE_DIVISOR = 4
# Threads kept for calls. (Health Watch streams take none: grpc answers them from callbacks.)
CALL_THREADS = 32
# Calls a server lets wait for a thread when every one is busy. Past them a call is refused
# RESOURCE_EXHAUSTED at once (grpc's maximum_concurrent_rpcs) instead of queueing without end:
# before, a caller opening thousands of calls queued each one, memory and all, and the city's
# queries waited behind them past their deadlines.
QUEUED_CALLS = 64


def concurrent_rpcs(threads: int, queued: int = QUEUED_CALLS) -> int:
    """Return the RPCs a server with `threads` threads takes at once: one per thread and
    `queued` waiting. The threads hold every stream cap plus CALL_THREADS, so streams at their
    caps never reach this bound: only a flood of calls does, and it is refused, not queued."""
    return threads + queued


def refusal(kind: str, limit: int) -> str:
    """Return why a stream of `kind` is refused at its cap, naming the option."""
    return (
        f"{kind}: {limit} streams are open on this server already, its limit "
        "(--max-streams); try again later"
    )


def share_refusal(kind: str, caller: str, share: int) -> str:
    """Return why a stream of `kind` is refused to a caller holding its share, naming the
    option."""
    return (
        f"{kind}: {share} streams of {caller} are open on this server already, the share one "
        "caller may hold (--max-streams-per-caller); end one, or try again later"
    )


def caller_share(limit: int, per_caller: int | None = None) -> int:
    """Return a caller's share of `limit` places: `per_caller`, or a quarter of them (at least
    one) when None; ValueError naming the option when it is not 1 … limit."""
    if per_caller is None:
        return max(1, limit // SHARE_DIVISOR)
    if not 1 <= per_caller <= limit:
        raise ValueError(
            f"--max-streams-per-caller: {per_caller} is "
            + (f"more than --max-streams ({limit})" if per_caller > limit else "less than 1")
            + "; a caller's share is 1 to --max-streams streams of each kind"
        )
    return per_caller


# Reflection's callers sending no credentials the hub knows: held to one share together,
# since nothing tells one from another.
ANONYMOUS = "callers without credentials"


def caller_of(principal: Principal | None) -> str:
    """Return whom a stream counts against: a principal's URI; "" (the cap alone) for the
    local caller, whom nothing tells apart; ANONYMOUS for None (no credentials, where they
    are not required)."""
    if principal is None:
        return ANONYMOUS
    return "" if principal.kind == Kind.LOCAL else principal.uri


class SlotRefused(Exception):
    """No place for a stream: its message says which limit refused it, naming the option."""


class StreamSlots:
    """At most `limit` streams of one kind (an RPC's name) open at once, and at most
    `per_caller` of them (default: caller_share) held by any one caller."""

    def __init__(self, kind: str, limit: int = MAX_STREAMS, per_caller: int | None = None) -> None:
        self.kind = kind
        self.limit = limit
        self.per_caller = caller_share(limit, per_caller)
        self._open = 0
        self._held: Counter[str] = Counter()  # by caller; "" (the cap alone) not counted
        self._changed = threading.Condition()

    @property
    def open(self) -> int:
        """How many places are held now."""
        return self._open

    @property
    def callers(self) -> int:
        """How many callers hold a place now (those counted against a share)."""
        return len(self._held)

    def take(self, caller: str = "") -> None:
        """Take a place for `caller` ("": not counted against a share) if one is free and the
        caller holds less than its share; else raise SlotRefused saying why not (its share
        held, or the cap reached). Worded under the lock that refused it: read afterwards, a
        place freed in between named the wrong limit. (An exception, not a returned refusal
        that a later `if slots.take(…)` would read backwards.)"""
        with self._changed:
            if self._open >= self.limit:
                raise SlotRefused(refusal(self.kind, self.limit))
            if caller:
                if self._held[caller] >= self.per_caller:
                    raise SlotRefused(share_refusal(self.kind, caller, self.per_caller))
                self._held[caller] += 1
            self._open += 1

    def give_back(self, caller: str = "") -> None:
        """Free a place taken by take(caller)."""
        with self._changed:
            self._open -= 1
            if caller:
                self._held[caller] -= 1
                if self._held[caller] <= 0:
                    del self._held[caller]  # a caller gone leaves nothing behind
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no place is held (a server stopping waits for its streams to end);
        return whether none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout)

    @contextmanager
    def held(self, context: grpc.ServicerContext, caller: str = "") -> Iterator[None]:
        """Hold a place for `caller` while the stream lasts; refuse it RESOURCE_EXHAUSTED when
        none is free or the caller holds its share (a client may try again later, or another
        server)."""
        try:
            self.take(caller)
        except SlotRefused as refused:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(refused))
        try:
            yield
        finally:
            self.give_back(caller)

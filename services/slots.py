"""Places for long-lived streams, so they never take every thread of a server.

A sync gRPC server runs each call on a thread of its pool for as long as the call lasts, a
stream included. With one pool of 32 threads, 32 open WatchCoverage streams (screens in a
command centre) or PublishStreams (county nodes) left none for anything else: publishing and
every query waited until a stream ended. Each kind of stream has a cap of its own, and the
pool holds the caps of the servicers it serves plus threads kept for calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

# Streams of each kind one server holds open at once (--max-streams), and the most it may be
# set to: a waiting thread is cheap, not free.
MAX_STREAMS = 128
MAX_STREAM_CAP = 10_000
# Threads kept for calls. (Health Watch streams take none: grpc answers them from callbacks.)
CALL_THREADS = 32


def refusal(kind: str, limit: int) -> str:
    """Return why a stream of `kind` is refused at its cap, naming the option."""
    return (
        f"{kind}: {limit} streams are open on this server already, its limit "
        "(--max-streams); try again later"
    )


class StreamSlots:
    """At most `limit` streams of one kind (an RPC's name) open at once."""

    def __init__(self, kind: str, limit: int = MAX_STREAMS) -> None:
        self.kind = kind
        self.limit = limit
        self._open = 0
        self._changed = threading.Condition()

    @property
    def open(self) -> int:
        """How many places are held now."""
        return self._open

    @property
    def refusal(self) -> str:
        return refusal(self.kind, self.limit)

    def take(self) -> bool:
        """Take a place if one is free; return whether it was."""
        with self._changed:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def give_back(self) -> None:
        """Free a place taken by take()."""
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no place is held (a server stopping waits for its streams to end);
        return whether none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout)

    @contextmanager
    def held(self, context: grpc.ServicerContext) -> Iterator[None]:
        """Hold a place while the stream lasts; refuse it RESOURCE_EXHAUSTED when none is
        free (a client may try again later, or another server)."""
        if not self.take():
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self.refusal)
        try:
            yield
        finally:
            self.give_back()

"""A caller's share of the calls a server takes at once.

A server takes at most concurrent_rpcs calls at once (services.slots), from all its callers
together: one caller flooding calls (a buggy county system, a stolen token) held them all and
every other county and screen was refused while it lasted. So each caller (an authenticated
principal) holds at most its share of them, streams included while they are open; callers that
cannot be told apart (the local caller) are held to the server's bound alone, as for streams.

A call is counted from the moment it has a thread until that thread is done with it, however
it ends; a caller holding its share is known by its bearer token too, so that its next calls
are refused before they take a thread (services.admission).
"""

from __future__ import annotations

import threading
from collections import Counter

# grpc's words for a call refused past maximum_concurrent_rpcs, which node outboxes, `duhub
# publish` and every client written against them already retry as "busy, ask again later":
# a share's refusal starts with the very string they match.
from duhub.node.outbox import BUSY
from services.slots import SHARE_DIVISOR


def calls_per_caller(call_places: int, stream_shares: int) -> int:
    """Return how many calls one caller may have in flight on a server: the streams it may
    hold open (`stream_shares`, its share of each kind added up) and a quarter of the places
    left for calls (`call_places`: the threads for calls and the calls let wait), at least
    one. With the defaults a quarter of the server's bound: 120 of 480 for `duhub up`."""
    return stream_shares + max(1, call_places // SHARE_DIVISOR)


def share_refusal(caller: str, share: int) -> str:
    """Return why a call of `caller` is refused: it has its share in flight already."""
    return (
        f"{BUSY} for one caller: too many calls in flight from {caller} (at most {share} at "
        "once on this server, one caller's share); try again when some have ended"
    )


class ShareRefused(Exception):
    """The caller holds its share of calls; the message says so (share_refusal)."""


class CallShares:
    """Calls in flight by caller, each caller at most `share` of them ("": not counted)."""

    def __init__(self, share: int) -> None:
        if share < 1:
            raise ValueError(f"share: {share} calls; a caller's share is at least 1")
        self.share = share
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        # The bearer tokens of the callers holding calls, so that a call is refused before it
        # has a thread (at the door its caller is known by nothing else). Only tokens that
        # named a caller are kept, and only while it holds calls: a caller gone, or one
        # cycling made-up tokens, leaves nothing behind.
        self._by_token: dict[str, str] = {}
        self._tokens: dict[str, set[str]] = {}

    def held(self, caller: str) -> int:
        """How many calls `caller` has in flight."""
        with self._lock:
            return self._held[caller]

    def in_flight(self) -> int:
        """How many counted calls are in flight, of all callers."""
        with self._lock:
            return sum(self._held.values())

    def full(self, token: str) -> str:
        """Return the caller of a bearer token when it has its share in flight, else ""."""
        if not token:
            return ""
        with self._lock:
            caller = self._by_token.get(token, "")
            return caller if caller and self._held[caller] >= self.share else ""

    def take(self, caller: str, token: str = "") -> None:
        """Count a call of `caller` ("": nothing counted), who made it with `token` (""
        when none); raise ShareRefused when the caller has its share in flight."""
        if not caller:
            return
        with self._lock:
            if self._held[caller] >= self.share:
                raise ShareRefused(share_refusal(caller, self.share))
            self._held[caller] += 1
            if token:
                self._by_token[token] = caller
                self._tokens.setdefault(caller, set()).add(token)

    def give_back(self, caller: str) -> None:
        """Uncount a call counted by take(caller)."""
        if not caller:
            return
        with self._lock:
            self._held[caller] -= 1
            if self._held[caller] <= 0:
                del self._held[caller]
                for token in self._tokens.pop(caller, ()):
                    if self._by_token.get(token) == caller:  # not since given to another
                        del self._by_token[token]

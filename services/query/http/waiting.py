"""Connections waiting for their request's head, so that the oldest can make room.

The dashboard holds a thread per connection, at most --max-streams + CALL_CONNECTIONS of them.
Connections that sent nothing held them all: 200 idle ones, reopened as each timed out, kept
every caller out (503, or no answer on HTTPS), no credentials needed (security probe). A
connection still waiting for its head past a second, the oldest first, is now closed to make
room for a new one: a client that sends its request at once is past its head in
milliseconds, and one kept alive between requests is waiting again, as a new one is.
"""

from __future__ import annotations

import socket
import threading
import time

# A connection waiting for its head this long may be closed for a new one.
EVICTABLE_AFTER_S = 1.0


class WaitingHeads:
    def __init__(self, evictable_after: float = EVICTABLE_AFTER_S) -> None:
        self.evictable_after = evictable_after
        self._lock = threading.Lock()
        self._since: dict[socket.socket, float] = {}  # in insertion order: oldest first

    def waiting(self, sock: socket.socket) -> None:
        """`sock` waits for a request's head (a new connection's, or its next one's). One
        already waiting keeps its place: a new connection is put here when accepted, in the
        order accepted, and again when its thread starts, in whatever order threads run (the
        oldest connection could be passed over for a younger one, CI)."""
        with self._lock:
            self._since.setdefault(sock, time.monotonic())

    def done(self, sock: socket.socket) -> None:
        """`sock`'s head is in (or the connection ended)."""
        with self._lock:
            self._since.pop(sock, None)

    def evict_oldest(self) -> bool:
        """Close the connection that has waited longest for its head, if it has waited past
        `evictable_after`; return whether one was closed. Its thread reads the end of the
        stream and lets its place go."""
        with self._lock:
            if not self._since:
                return False
            sock, since = next(iter(self._since.items()))
            if time.monotonic() - since < self.evictable_after:
                return False
            del self._since[sock]
        try:
            # socket.socket's own shutdown, not SSLSocket's, which drops its TLS state under
            # the thread reading it (a handshake in progress).
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:  # already gone
            pass
        return True

"""A connection's reads with a deadline for the whole request head, not just for each read.

A socket timeout bounds one read: a client sending its head a line at a time, each inside the
timeout, held its connection and thread for as long as it went on (slowloris).
"""

from __future__ import annotations

import io
import socket
import time


class HeadDeadline(io.RawIOBase):
    """Read a socket, each read waiting at most `per_read` seconds, and, between `start` and
    `stop`, none past the deadline `start` set."""

    def __init__(self, sock: socket.socket, per_read: float) -> None:
        super().__init__()
        self.sock = sock
        self.per_read = per_read
        self.until: float | None = None

    def start(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def stop(self) -> None:
        """The head is in: reads and writes get `per_read` each again."""
        self.until = None
        self.sock.settimeout(self.per_read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        timeout = self.per_read
        if self.until is not None:
            left = self.until - time.monotonic()
            if left <= 0:
                raise TimeoutError("request head: not sent in time")
            timeout = min(timeout, left)
        self.sock.settimeout(timeout)
        return self.sock.recv_into(buffer)

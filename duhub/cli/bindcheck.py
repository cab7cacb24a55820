"""Whether a server's address can be bound, asked before `duhub up` makes or writes anything.

Before, a port in use was found only once the hub had made its data dir and written the
shipped reference into the log: the corrected start, with --reference, was then refused (the
log held another hierarchy). A port taken between this check and the bind still fails the
start late, as before.
"""

from __future__ import annotations

import contextlib
import socket

from duhub.auth.listen import is_unix


def bind_failure(address: str) -> OSError | None:
    """Return why HOST:PORT (or [V6HOST]:PORT) cannot be bound now, None when it can, or is
    not such an address (a unix socket, port 0: nothing to ask; a malformed one is named by
    the server that takes it). Bound as the servers bind (SO_REUSEADDR): a socket in
    TIME_WAIT is no failure, a listening one is."""
    if is_unix(address):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) == 0:
        return None
    host = host.strip("[]")
    try:
        found = socket.getaddrinfo(
            host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as e:  # socket.gaierror: a name this host does not have
        return e
    failure: OSError | None = None
    for family, kind, proto, _, where in found:
        with contextlib.closing(socket.socket(family, kind, proto)) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(where)
                return None  # one of its addresses binds: the server may
            except OSError as e:
                failure = e
    return failure

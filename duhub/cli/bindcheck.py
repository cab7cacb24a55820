"""Whether a server's addresses can be bound, asked before `duhub up` or `duhub serve` makes
or writes anything.

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
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:  # the parser names a bad one
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


def unbindable(listen: str, http: str, metrics_at: str, *, metrics_default: str = "") -> str:
    """Return why an address asked for cannot be bound, as the servers would say it, or "".
    `metrics_default`: a metrics address taken by default, only a warning when in use
    (another hub on this machine)."""
    if listen and (e := bind_failure(listen)):
        return f"--listen: cannot bind {listen} (in use, or not an address of this host: {e})"
    if http and (e := bind_failure(http)):
        return f"--http: cannot bind {http}: {e.strerror or e}"
    off = metrics_at.strip().lower() in ("", "off", "none")
    if not off and metrics_at != metrics_default and (e := bind_failure(metrics_at)):
        return f"--metrics: cannot serve metrics on {metrics_at}: {e}"
    return ""

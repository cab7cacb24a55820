"""Which listen addresses a hub without credentials may use: loopback ones only."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = ("localhost",)


def split_host(listen: str) -> str:
    """Return the host of HOST:PORT or [V6]:PORT (unix:… has no host)."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return listen
    host, sep, _ = listen.rpartition(":")
    if not sep:
        return listen
    return host.strip("[]")


def is_unix(listen: str) -> bool:
    """Return whether a listen address is a unix socket (unix:PATH, unix-abstract:NAME)."""
    return listen.startswith(("unix:", "unix-abstract:"))


def is_loopback(listen: str) -> bool:
    """Return whether a listen address reaches this machine only.

    127.0.0.0/8, ::1 and "localhost" do; an empty host, 0.0.0.0, ::, any other name or address
    do not (a name other than localhost may resolve to anything).
    """
    host = split_host(listen)
    if host.startswith(("unix:", "unix-abstract:")):
        # This machine only. A socket file is guarded by its permissions besides; an abstract
        # one is not: any local user may connect to it, as to 127.0.0.1.
        return True
    return is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    """Return whether a host name or address (no port, no brackets) is this machine's."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of_header(value: str) -> str:
    """Return the host of an HTTP Host header: NAME[:PORT] or [V6][:PORT]."""
    value = value.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class InsecureListen(ValueError):
    pass


def check_listen(listen: str, option: str, secured: bool) -> None:
    """Raise InsecureListen, naming the option, for a non-loopback address without credentials."""
    if secured or is_loopback(listen):
        return
    raise InsecureListen(
        f"{option} {listen}: without credentials duhub listens on a loopback address only "
        "(127.0.0.0/8, ::1, localhost); give --tls-dir DIR and/or --tokens FILE "
        "(made with 'duhub certs'), or listen on 127.0.0.1"
    )

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
        return True  # a socket file: the file system's permissions guard it
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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

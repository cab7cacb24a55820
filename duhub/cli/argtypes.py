"""argparse types shared by the commands: a refused value names why, and argparse the option."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable


def whole_number(lo: int, hi: int, unit: str = "") -> Callable[[str], int]:
    """Return an argparse type taking a whole number lo … hi (of `unit`, if given)."""
    of = f" of {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number{of}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not between {lo} and {hi}")
        return value

    return parse


def not_empty(text: str) -> str:
    """An argparse type for a path or URL that has no default worth falling back to when given
    empty: a script's unset variable (--log "$KAFKA_URL") was taken as the option left out,
    and ingest acknowledged events into an embedded log in ./data."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is empty; give a value or leave the option out")
    return text


class FromEnvironment(str):
    """An option's default read from an environment variable: argparse hands it to the
    option's type as it is, so a refusal can say where the text came from."""

    variable: str

    def __new__(cls, value: str, variable: str) -> FromEnvironment:
        made = super().__new__(cls, value)
        made.variable = variable
        return made


def environment_default(variable: str) -> FromEnvironment | None:
    """The default an option takes from `variable`; None when unset or empty (as unset)."""
    value = os.environ.get(variable)
    return FromEnvironment(value, variable) if value else None


def log_location(text: str) -> str:
    """An argparse type for --log: kafka://… or a data directory, not empty, and not a mistyped
    Kafka URL (duhub.log.spec), which was taken for a directory path and got a log made in
    it. The option's default, $DUHUB_LOG, is checked here too: said so when it is the one
    (not when the same text was typed)."""
    from duhub.log.spec import log_problem

    problem = log_problem(not_empty(text))
    if problem:
        given = f" (from ${text.variable})" if isinstance(text, FromEnvironment) else ""
        raise argparse.ArgumentTypeError(f"{text!r}{given} {problem}")
    return str(text)  # a plain str onwards (a FromEnvironment does not pickle)


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, finite and 0 or more (nan passed every "longer
    than?" test as false: `--retry-for nan` retried without end)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds, 0 or more")
    return value


def host_port(off: bool = False) -> Callable[[str], str]:
    """Return an argparse type taking HOST:PORT ([V6]:PORT) with a PORT of 0 … 65535, or a
    unix:PATH; with `off`, also off, none or nothing (the server not started). Else gRPC took
    `127.0.0.1:99999` as port 34463 and a bare `localhost` as port 443, and the metrics server
    raised an OverflowError traceback."""

    def parse(text: str) -> str:
        if text.startswith(("unix:", "unix-abstract:")):
            return text
        if off and text.strip().lower() in ("", "off", "none"):
            return text
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
        if not (port.isascii() and port.isdigit() and int(port) <= 65535):
            raise argparse.ArgumentTypeError(
                f"{text!r}: the port must be a whole number from 0 to 65535"
            )
        return text

    return parse


def target_problem(text: str) -> str | None:
    """Return why a hub address given to a client cannot be one, or None. gRPC took a port past
    65535 modulo 65536 (`127.0.0.1:99999` reached port 34463) and port 0 as no answer. Only an
    explicit port is checked: a scheme (dns:///, ipv4:, unix:) or a bare host is gRPC's, but
    a web address (the dashboard's) is no gRPC one: gRPC looked it up as a host name, and the
    command said "no hub answers" (exit 3) as if the hub were down."""
    if not text.strip():
        # A script's unset variable (--target "$CITY_HUB"): taken as no option, it went to
        # DUHUB_TARGET or the local hub, and a publish delivered the file there.
        return f"{text!r} is empty; give HOST:PORT (e.g. 127.0.0.1:50051) or leave the option out"
    if text.lower().startswith(("http://", "https://")):
        return (
            f"{text!r} is a web address; the hub's gRPC address is HOST:PORT (e.g. 127.0.0.1:50051)"
        )
    if "://" in text or text.startswith(("unix:", "unix-abstract:", "ipv4:", "ipv6:", "dns:")):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or (":" in host and not host.endswith("]")):
        return None  # no port, or a bare IPv6 address (gRPC's)
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        return f"{text!r}: the port must be a whole number from 1 to 65535"
    return None


def client_target(text: str) -> str:
    """An argparse type: a hub address for --target (`target_problem`)."""
    problem = target_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text

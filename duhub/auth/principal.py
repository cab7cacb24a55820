"""Who is calling, and what they may do: pure checks, no I/O.

A principal is
- a node: a county system (or the city's own), publishing as `source` = its unit id; it may read
  the figures of its own subtree (the city node: everything);
- a user: a person of the city command or of a county, reading the figures of the subtree of
  `unit_id`, their scope (the city's id: everything); users never publish;
- the local caller: anyone reaching a hub that runs without credentials, which listens on a
  loopback address only. It may do everything, as before authentication existed.

Principals are written as URIs, in certificates (a SAN URI) and in the token file:
`duhub:node:420581`, `duhub:user:420581:alice`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

URI_PREFIX = "duhub:"
# Unit ids as events carry them (duhub.convert.ID_RE); user names are plainer (no ':').
# Matched whole (fullmatch): "$" would let a trailing newline through.
UNIT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


class Kind(StrEnum):
    NODE = "node"
    USER = "user"
    LOCAL = "local"


class Unauthenticated(Exception):
    """No credentials, or ones the hub does not know (gRPC UNAUTHENTICATED, HTTP 401)."""


class Forbidden(Exception):
    """The caller is known but may not do this (gRPC PERMISSION_DENIED, HTTP 403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Kind
    # node: its source; user: its scope; local: "" (no limit).
    unit_id: str = ""
    # user: the person's name; node: "".
    name: str = ""

    def __str__(self) -> str:
        if self.kind == Kind.NODE:
            return f"node {self.unit_id}"
        if self.kind == Kind.USER:
            return f"user {self.name} (scope {self.unit_id})"
        return "the local caller"

    @property
    def uri(self) -> str:
        if self.kind == Kind.NODE:
            return f"{URI_PREFIX}node:{self.unit_id}"
        if self.kind == Kind.USER:
            return f"{URI_PREFIX}user:{self.unit_id}:{self.name}"
        return f"{URI_PREFIX}local"

    @property
    def scope(self) -> str:
        """The unit whose subtree this principal may read; "" for no limit."""
        return "" if self.kind == Kind.LOCAL else self.unit_id


LOCAL = Principal(Kind.LOCAL)


def node(source: str) -> Principal:
    if not UNIT_RE.fullmatch(source):
        raise ValueError(f"source: {source!r} is not a unit id")
    return Principal(Kind.NODE, source)


def user(name: str, scope: str) -> Principal:
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"name: {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    if not UNIT_RE.fullmatch(scope):
        raise ValueError(f"scope: {scope!r} is not a unit id")
    return Principal(Kind.USER, scope, name)


def parse_uri(uri: str) -> Principal:
    """Return the principal a URI names: duhub:node:UNIT or duhub:user:UNIT:NAME."""
    if uri.startswith(URI_PREFIX + "node:"):
        return node(uri[len(URI_PREFIX + "node:") :])
    if uri.startswith(URI_PREFIX + "user:"):
        unit_id, sep, name = uri[len(URI_PREFIX + "user:") :].rpartition(":")
        if sep:
            return user(name, unit_id)
    raise ValueError(f"{uri!r} names no principal (duhub:node:UNIT or duhub:user:UNIT:NAME)")


def principal_in(uris: Iterable[str]) -> Principal | None:
    """Return the one principal among a certificate's SAN URIs; None when there is none.

    Two different principals in one certificate are refused: whoever made it made a mistake.
    """
    found = {parse_uri(u) for u in uris if u.startswith(URI_PREFIX)}
    if len(found) > 1:
        raise ValueError("the certificate names more than one principal")
    return found.pop() if found else None


def check_publish(principal: Principal, sources: Iterable[str | None]) -> None:
    """Raise Forbidden unless the principal may publish events with these sources.

    A node publishes only as itself; which units it may name is the rules' business (a per
    event rejection, duhub.domain.rules). The local caller publishes as anyone. None stands for
    an event whose source could not be read (it is rejected by itself); the index in the
    message is the event's place in the request. `sources` is read only for a node: a
    generator spares the local caller building a list per request.
    """
    if principal.kind == Kind.LOCAL:
        return
    if principal.kind != Kind.NODE:
        raise Forbidden(f"{principal} may not publish: only city and county nodes do")
    bad = [(i, s) for i, s in enumerate(sources) if s is not None and s != principal.unit_id]
    if not bad:
        return
    (i, source), others = bad[0], bad[1:]
    message = (
        f"events[{i}].source: {principal} publishes only as '{principal.unit_id}', "
        f"not as '{source}'"
    )
    if others:
        # Each named, so that a batch is mended in one go, not one round trip an event.
        named = ", ".join(f"events[{j}] ('{s}')" for j, s in others[:MAX_NAMED])
        more = f" and {len(others) - MAX_NAMED} more" if len(others) > MAX_NAMED else ""
        message += f"; so do {named}{more}"
    raise Forbidden(f"{message}; nothing of this request was appended")


# Events named in a refusal beside the first.
MAX_NAMED = 20


# unit id -> the ids from the root down to it (inclusive), or None when the unit is unknown.
PathOf = Callable[[str], Sequence[str] | None]


def unlimited(principal: Principal, path_of: PathOf) -> bool:
    """Return whether the principal reads everything (the local caller, or a root's scope)."""
    if principal.kind == Kind.LOCAL:
        return True
    path = path_of(principal.unit_id)
    return path is not None and len(path) == 1


def check_within(principal: Principal, unit_id: str, path_of: PathOf, field: str) -> None:
    """Raise Forbidden when a known unit lies outside the principal's scope.

    An unknown unit passes: the question itself then answers NOT_FOUND, as it would for
    anyone (unit ids are public codes, so this tells nothing secret).
    """
    if unlimited(principal, path_of):
        return
    path = path_of(unit_id)
    if path is not None and principal.unit_id not in path:
        # str(principal) names the scope ("user alice (scope 420581)", "node 420581").
        raise Forbidden(f"{field}: unit '{unit_id}' lies outside the scope of {principal}")


def scope_for(principal: Principal, requested: str, path_of: PathOf, field: str) -> str:
    """Return the scope to answer for: the requested one when the principal may read it.

    An empty request means "everything I may see": the city for an unlimited principal (the
    request is left as it was), else the principal's own scope.
    """
    if unlimited(principal, path_of):
        return requested
    if not requested:
        if path_of(principal.unit_id) is None:
            # Else answered "unknown unit '999'" as if the caller had asked for it.
            raise Forbidden(
                f"{field}: the scope of {principal} is no unit this hub knows: its "
                "credentials were made for another hub, or with a mistyped --scope"
            )
        return principal.unit_id
    check_within(principal, requested, path_of, field)
    return requested

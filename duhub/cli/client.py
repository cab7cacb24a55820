"""How the command line reaches a running hub."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import NoReturn

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from duhub.bootstrap import DEFAULT_LISTEN
from duhub.cli.argtypes import target_problem
from duhub.cli.tables import shown
from duhub.cli.tls_probe import TlsProblem, host_port, probe
from duhub.health import hub_answered
from duhub.node.outbox import CHANNEL_OPTIONS

# Exit codes that scripts can rely on.
EXIT_OK = 0
EXIT_REJECTED = 1  # publish: some events were rejected
EXIT_USAGE = 2  # bad arguments or a question the hub cannot answer as asked
EXIT_UNREACHABLE = 3  # the hub did not answer
EXIT_DENIED = 5  # the hub does not know the caller's credentials, or the caller may not do this
EXIT_NOT_COMPARED = 6  # replay: the live read model stayed behind or is of another log;
# audit report: the read model changed under every attempt to read it in one state

# Set by main() from the command's options (--tls-dir, --cert, --token-file, …) and the
# environment; read when the first channel opens.
_options: dict[str, str] = {}
_credentials = None


def target(arg: str | None) -> str:
    """Return the hub address to call: --target (checked by argparse), else DUHUB_TARGET, which
    is checked here the same way (exit 2 naming it), else the local hub."""
    if arg:
        return arg
    env = os.environ.get("DUHUB_TARGET")
    if env:
        problem = target_problem(env)
        if problem:
            print(f"duhub: DUHUB_TARGET={problem}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE)
        return env
    return DEFAULT_LISTEN


def configure(args: argparse.Namespace) -> None:
    """Remember the credential options of a command (duhub.cli.credentials)."""
    global _credentials
    _credentials = None
    _options.clear()
    for name in ("tls_dir", "cert", "ca", "key", "token_file"):
        _options[name] = getattr(args, name, None) or ""


def credentials():  # type: ignore[no-untyped-def]
    """Return the configured client credentials; exit 2 naming the option when unusable."""
    global _credentials
    from duhub.cli.credentials import CredentialError, load

    if _credentials is None:
        try:
            _credentials = load(**_options)
        except CredentialError as e:
            fail(str(e), EXIT_USAGE)
    return _credentials


def check_channel(address: str) -> None:
    """Exit 2 when the credentials may not go to `address` (a token, in the clear)."""
    from duhub.cli.credentials import CredentialError

    try:
        credentials().check(address)
    except CredentialError as e:
        fail(str(e), EXIT_USAGE)


def channel(address: str) -> grpc.Channel:
    from duhub.cli.credentials import CredentialError

    try:
        return credentials().channel(  # checked there: a token goes in the clear to loopback only
            address,
            # Over a flaky link, dial again within 2 s, not gRPC's default of up to 120 s:
            # publish's outbox paces its retries itself (duhub.node.outbox.Backoff).
            options=CHANNEL_OPTIONS,
        )
    except CredentialError as e:
        fail(str(e), EXIT_USAGE)


def fail(message: str, code: int) -> NoReturn:
    # A hub's refusal quotes the ids and values it refused: their controls written out.
    print(f"duhub: {shown(message, lines=True)}", file=sys.stderr)
    raise SystemExit(code)


# How gRPC's core says the server at an address answered in something else than HTTP/2: an
# HTTP/1.x server (the dashboard), or bytes that are no HTTP/2 frame.
_NOT_GRPC = ("Trying to connect an http1.x server", "Expected SETTINGS frame as the first frame")


def fail_rpc(e: grpc.RpcError, address: str, within_s: float | None = None) -> NoReturn:
    """Exit saying why the call failed (`within_s`: the call's deadline, when known)."""
    status = e.code()  # type: ignore[attr-defined]
    detail = e.details()  # type: ignore[attr-defined]
    if status == grpc.StatusCode.DEADLINE_EXCEEDED and _listens(address) is not False:
        # A hub that took the call and did not answer in time (a table lock held, its
        # database slow) was said not to be there, "start one with 'duhub up'".
        within = f"within {within_s:g} s" if within_s else "in time"
        fail(
            f"the hub at {address} did not answer {within} ({detail}): it is busy, or waiting "
            "on its database; try again later, and look at the hub's log if it lasts",
            EXIT_UNREACHABLE,
        )
    if status == grpc.StatusCode.UNAVAILABLE and hub_answered(e):
        # The hub is there and said why (behind, or its log or read model away): retry later.
        fail(f"the hub at {address} answers UNAVAILABLE: {detail}", EXIT_UNREACHABLE)
    if status == grpc.StatusCode.UNAVAILABLE:
        # gRPC says UNAVAILABLE for every failed handshake too, in words of its own: a
        # handshake of ours tells a hub that is down from credentials that do not fit it.
        problem = _handshake_problem(address)
        if problem is not None:
            fail(
                _TLS_ADVICE[problem.kind].format(
                    address=address, host=_host(address), detail=problem.detail
                ),
                EXIT_UNREACHABLE,
            )
    if status == grpc.StatusCode.UNAVAILABLE and any(s in (detail or "") for s in _NOT_GRPC):
        # The dashboard's address, printed in the same banner as the hub's, given by mistake:
        # it was "no hub answers", though one ran.
        fail(
            f"{address} answers, but not in gRPC: perhaps the dashboard's address (--http) or "
            "another server's; give the hub's gRPC address (--listen, default "
            "127.0.0.1:50051) as --target / DUHUB_TARGET",
            EXIT_USAGE,
        )
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        fail(
            f"no hub answers at {address} ({detail}); start one with 'duhub up' or set "
            f"--target / DUHUB_TARGET (a hub with TLS answers so too when the handshake fails: "
            f"check --tls-dir and --cert)",
            EXIT_UNREACHABLE,
        )
    if status in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        fail(f"{status.name}: {_given_as(detail)}", EXIT_DENIED)
    if status in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        fail(_given_as(detail), EXIT_USAGE)
    if status == grpc.StatusCode.UNIMPLEMENTED:
        # A service answered, not the one the command needs (the services apart): a usage
        # mistake, not "no hub answered".
        fail(wrong_service(address, detail), EXIT_USAGE)
    fail(f"{status.name}: {detail}", EXIT_UNREACHABLE)


# What a failed handshake means for the caller (duhub.cli.tls_probe's kinds), and what to do.
_TLS_ADVICE = {
    "name": "the hub at {address} answers with a certificate not for {host} ({detail}): dial "
    "a name its server.crt holds, or make that again with 'duhub certs server --host {host}' "
    "(and its other names)",
    "untrusted": "the hub at {address} answers with a certificate the CA given did not sign "
    "({detail}): give the hub's CA (its ca.crt) by --tls-dir or --ca",
    "refused": "the hub at {address} refused the client certificate given ({detail}): it is "
    "another CA's, or expired; make one with 'duhub certs node|user' in the hub's --tls-dir",
    "required": "the hub at {address} asks for a client certificate ({detail}): give --cert "
    "NAME with --tls-dir (made by 'duhub certs node|user')",
    "tls": "the hub at {address} speaks TLS ({detail}): give its CA by --tls-dir or --ca "
    "(or DUHUB_TLS_DIR), and a --cert or a token",
    "plain": "the hub at {address} speaks no TLS ({detail}): call it without --tls-dir or --ca "
    "(or DUHUB_TLS_DIR)",
}


def wrong_service(address: str, detail: str) -> str:
    """Say which service at `address` answered UNIMPLEMENTED, and where to go instead."""
    from duhub.cli import served

    return served.unimplemented(address, served.services(channel(address)), detail)


# How long the look for a server at a hub's address that let a call's deadline pass may take.
LISTENS_WITHIN_S = 2.0


def _listens(address: str) -> bool | None:
    """Return whether a server takes connections at `address` (None: an address gRPC
    resolves itself, dns:/// and the like, which is not looked at)."""
    where = host_port(address)
    path = address.removeprefix("unix://") if address.startswith("unix:") else ""
    path = path.removeprefix("unix:") if path.startswith("unix:") else path
    if where is None and not path:
        return None
    try:
        if path:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(LISTENS_WITHIN_S)
                s.connect(path)
        else:
            socket.create_connection(where, timeout=LISTENS_WITHIN_S).close()  # type: ignore[arg-type]
    except OSError:
        return False
    return True


def _host(address: str) -> str:
    where = host_port(address)
    return where[0] if where is not None else address


def _handshake_problem(address: str) -> TlsProblem | None:
    """What a handshake with the credentials of this command finds wrong (tls_probe)."""
    creds = _credentials
    if creds is None:
        return None
    return probe(address, creds.ca, creds.cert, creds.key)


# The command-line spelling of the request fields a hub's refusal names first.
OPTION_OF = {
    "scope_unit_id": "option --scope",
    "campaign_id": "option --campaign",
    "metrics": "option --metric",
    "metric": "option --metric",
    "area": "option --area",
    "from": "option --from",
    "to": "option --to",
    "as_of": "option --as-of",
    "group_by": "option --group-by",
    "time_zone": "option --time-zone",
    "compare_previous": "option --compare",
    "limit": "option --limit",
    "group_id": "option --group",
    "parent_id": "argument PARENT",
}


def _given_as(detail: str) -> str:
    """Add the option a refused field comes from: the hub names the request's field
    (`scope_unit_id: unknown unit '9'`), which the user never typed."""
    option = OPTION_OF.get(detail.partition(":")[0])
    # A reason that names options itself ("made with a mistyped --scope") is left alone.
    return f"{detail} ({option})" if option and "--" not in detail else detail


def reply_json(msg: Message) -> str:
    """Return a reply as protobuf canonical JSON with every field present, for scripts."""
    return json_format.MessageToJson(
        msg, ensure_ascii=False, indent=2, always_print_fields_with_no_presence=True
    )

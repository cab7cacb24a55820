"""`duhub certs init|server|node|user|token|origin-key`: make the credentials of a hub and its
callers.

    duhub certs init   --dir DIR                          the CA: ca.crt, ca.key
    duhub certs server --dir DIR --host 127.0.0.1 [...]   server.crt, server.key
    duhub certs node   --dir DIR --source 420581          node-420581.crt/.key
    duhub certs user   --dir DIR --name alice --scope 420581   user-alice.crt/.key
    duhub certs token  (--node 420581 | --user alice --scope 420581) [--file F | --dir DIR]
                                                          prints a new token once; appends its
                                                          SHA-256 hash to the token file
    duhub certs origin-key --file F                       the key ingest signs its Kafka
                                                          records with (kafka://…?key=F)

Private keys are written 0600, and no file is ever overwritten (delete it first).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from duhub.cli.argtypes import whole_number

TOKENS_FILE = "tokens"


MAX_DAYS = 36500


# A validity in days (0 or less made a certificate that had expired when written).
_days = whole_number(1, MAX_DAYS, "days")


def add_parsers(sub) -> None:  # type: ignore[no-untyped-def]
    c = sub.add_parser(
        "certs",
        help="make a CA, server and client certificates, and bearer tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    csub = c.add_subparsers(dest="certs_command", required=True, metavar="ACTION")

    def cmd(name: str, text: str) -> argparse.ArgumentParser:
        p = csub.add_parser(name, help=text)
        p.add_argument("--dir", required=name != "token", help="the certificate directory")
        if name in ("server", "node", "user"):
            p.add_argument("--days", type=_days, default=825, help="validity (default 825 days)")
        return p

    init = cmd("init", "make the certificate authority (ca.crt, ca.key)")
    init.add_argument("--days", type=_days, default=3650, help="validity (default 3650 days)")
    init.add_argument("--name", default="duhub CA", help="the CA's common name")
    srv = cmd("server", "make the hub's certificate for the names and addresses it is reached at")
    srv.add_argument(
        "--host",
        action="append",
        required=True,
        help="a host name or IP address clients connect to; repeat for more",
    )
    node = cmd("node", "make a county (or city) node's client certificate")
    node.add_argument("--source", required=True, help="the node's unit id, e.g. 420581")
    user = cmd("user", "make a user's client certificate")
    user.add_argument("--name", required=True, help="the user's name (letters, digits, . _ -)")
    user.add_argument(
        "--scope", required=True, help="the unit whose subtree they may read (420500: all)"
    )
    tok = cmd("token", "make a bearer token: print it once, append its hash to the token file")
    who = tok.add_mutually_exclusive_group(required=True)
    who.add_argument("--node", metavar="SOURCE", help="a token for this node")
    who.add_argument("--user", metavar="NAME", help="a token for this user (with --scope)")
    tok.add_argument("--scope", help="the user's scope unit (420500: all)")
    tok.add_argument("--file", help=f"the token file (default DIR/{TOKENS_FILE})")
    tok.add_argument("--comment", default="", help="a note kept beside the hash")
    key = csub.add_parser(
        "origin-key",
        help="make the key ingest signs its Kafka records with (kafka://…?key=FILE); every "
        "ingest and aggregate process of the hub needs a copy (query processes do not)",
    )
    key.add_argument("--file", required=True, help="where to write it (0600)")


def _write(path: Path, data: bytes, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError:
        raise ValueError(f"{path} exists: delete it to make a new one") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if private:
        os.chmod(path, 0o600)  # whatever the umask
    print(f"wrote {path}")


def _ca(d: Path):  # type: ignore[no-untyped-def]
    from duhub.auth.pki import CA, Issued

    try:
        return Issued((d / f"{CA}.key").read_bytes(), (d / f"{CA}.crt").read_bytes())
    except OSError as e:
        raise ValueError(
            f"--dir {d}: no CA there ({e.strerror}); make one with 'duhub certs init --dir {d}'"
        ) from None


def _issue(d: Path, stem: str, issued) -> None:  # type: ignore[no-untyped-def]
    for suffix in (".crt", ".key"):
        if (d / f"{stem}{suffix}").exists():
            raise ValueError(f"{d / (stem + suffix)} exists: delete it to make a new one")
    _write(d / f"{stem}.key", issued.key_pem, private=True)
    _write(d / f"{stem}.crt", issued.cert_pem, private=False)


def run(args: argparse.Namespace) -> int:
    from duhub.auth import pki
    from duhub.auth.principal import node, user

    try:
        action = args.certs_command
        if action == "token":
            return _token(args)
        if action == "origin-key":
            return _origin_key(args.file)
        d = Path(args.dir)
        if action == "init":
            d.mkdir(parents=True, exist_ok=True)
            _issue(d, pki.CA, pki.make_ca(args.name, args.days))
            print("keep ca.key off the servers: it makes certificates; ca.crt verifies them")
        elif action == "server":
            _issue(d, pki.SERVER, pki.make_server(_ca(d), args.host, args.days))
        elif action == "node":
            who = node(args.source)
            _issue(d, pki.file_stem(who), pki.make_client(_ca(d), who, args.days))
            print(f"principal: {who.uri}")
        elif action == "user":
            who = user(args.name, args.scope)
            _issue(d, pki.file_stem(who), pki.make_client(_ca(d), who, args.days))
            print(f"principal: {who.uri}")
        return 0
    except ValueError as e:
        print(f"duhub: {e}", file=sys.stderr)
        return 2


def _origin_key(path: str) -> int:
    from duhub.log.origin import make_key

    if Path(path).exists():
        raise ValueError(
            f"{path} exists: delete it to make a new one (the hub's records "
            "signed with it would then be refused)"
        )
    make_key(path)
    print(
        f"wrote {path}: give every ingest and aggregate process of the hub a copy (and replay "
        f"and audit verify of its Kafka log), and kafka://…?key={path}"
    )
    return 0


def _token(args: argparse.Namespace) -> int:
    from duhub.auth.principal import node, user
    from duhub.auth.tokens import append_token

    if args.user and not args.scope:
        raise ValueError("--scope: a user token needs the unit whose subtree they may read")
    if args.node and args.scope:
        raise ValueError("--scope: a node's scope is its own source; give --scope with --user")
    if not args.file and not args.dir:
        raise ValueError("--file or --dir: where the token file is")
    who = node(args.node) if args.node else user(args.user, args.scope)
    path = Path(args.file) if args.file else Path(args.dir) / TOKENS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    comment = " ".join(x for x in (made, args.comment) if x)
    token = append_token(path, who, comment)
    print(token)
    print(
        f"(for {who.uri}; only its hash is kept, in {path}: it is not shown again)", file=sys.stderr
    )
    return 0

"""A client's credentials: TLS (the CA to trust, a client certificate) and a bearer token.

From options, else the environment:
  --tls-dir DIR   $DUHUB_TLS_DIR   the CA (DIR/ca.crt) and, with --cert NAME, DIR/NAME.crt/.key
                                   (NAME may be a file stem, `node-420581`, or just `420581`
                                   or `alice`)
  --cert C        $DUHUB_CERT      a NAME in --tls-dir, or a certificate file (key: --key, else
                                   the same path ending in .key)
  --ca FILE, --key FILE            the CA and the key as files
  --token-file F  $DUHUB_TOKEN     a bearer token (the file's first line, or the variable);
                                   sent without TLS to loopback only ($DUHUB_PLAINTEXT_TOKEN=1:
                                   to any address)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from duhub.auth.listen import is_loopback


class CredentialError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    token: str = ""

    @property
    def tls(self) -> bool:
        return self.ca is not None

    def check(self, address: str) -> None:
        """Raise CredentialError when a channel to `address` would send the token in the
        clear to another machine."""
        if self.token and not self.tls and not plaintext_token_allowed(address):
            raise CredentialError(
                f"a token goes in the clear without TLS: to {address}, not loopback, it is "
                "not sent; give --tls-dir (the hub's CA), or DUHUB_PLAINTEXT_TOKEN=1 on a "
                "network of your own"
            )

    def channel(self, address: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """Return a channel to `address` (`check`ed first)."""
        self.check(address)
        if self.tls:
            creds = grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
            ch = grpc.secure_channel(address, creds, options=list(options))
        else:
            ch = grpc.insecure_channel(address, options=list(options))
        if self.token:
            ch = grpc.intercept_channel(ch, BearerToken(self.token))
        return ch


NONE = ClientCredentials()


def plaintext_token_allowed(address: str) -> bool:
    """Whether a token may go without TLS to `address`: on loopback or a unix socket, or
    where DUHUB_PLAINTEXT_TOKEN=1 says the network is the operator's own. Before 2026-12-06
    a county's DUHUB_TOKEN went in the clear to any --target (security probe)."""
    return is_loopback(address) or os.environ.get("DUHUB_PLAINTEXT_TOKEN") == "1"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CredentialError(f"{what}: cannot read {path} ({e.strerror or e})") from None


def _cert_files(tls_dir: Path | None, cert: str, key: str) -> tuple[Path, Path]:
    given = Path(cert)
    if given.is_file():
        return given, Path(key) if key else given.with_suffix(".key")
    if tls_dir is None:
        raise CredentialError(f"--cert {cert}: no such file (give --tls-dir to name one in it)")
    for stem in (cert, f"node-{cert}", f"user-{cert}"):
        if (tls_dir / f"{stem}.crt").is_file():
            return tls_dir / f"{stem}.crt", Path(key) if key else tls_dir / f"{stem}.key"
    raise CredentialError(
        f"--cert {cert}: none of {cert}.crt, node-{cert}.crt, user-{cert}.crt in {tls_dir}"
    )


def load(
    *,
    tls_dir: str = "",
    cert: str = "",
    ca: str = "",
    key: str = "",
    token_file: str = "",
    env: Mapping[str, str] = os.environ,
) -> ClientCredentials:
    """Return the credentials the options (else the environment) name; NONE for none."""
    tls_dir = tls_dir or env.get("DUHUB_TLS_DIR", "")
    cert = cert or env.get("DUHUB_CERT", "")
    d = Path(tls_dir) if tls_dir else None
    token = ""
    if token_file:
        lines = _read(Path(token_file), "--token-file").decode().strip().splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise CredentialError(f"--token-file {token_file}: empty")
    else:
        token = env.get("DUHUB_TOKEN", "").strip()
    # Copied from an HTTP header ("Bearer duhub_…"), as the dashboard takes it: the token is
    # what follows (sent as it was, the hub knew no such token).
    token = _BEARER.sub("", token)
    ca_pem = None
    if ca:
        ca_pem = _read(Path(ca), "--ca")
    elif d is not None:
        ca_pem = _read(d / "ca.crt", "--tls-dir")
    cert_pem = key_pem = None
    if cert:
        if ca_pem is None:
            raise CredentialError("--cert: give --tls-dir or --ca too (the CA to trust)")
        cert_path, key_path = _cert_files(d, cert, key)
        cert_pem, key_pem = _read(cert_path, "--cert"), _read(key_path, "--key")
    elif key:
        raise CredentialError("--key: give --cert too")
    return ClientCredentials(ca_pem, cert_pem, key_pem, token)


_BEARER = re.compile(r"^bearer\s+", re.IGNORECASE)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Add `authorization: Bearer TOKEN` to every call (over TLS or, on loopback, plain)."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> _Details:
        metadata = [m for m in (details.metadata or ()) if m[0] != "authorization"]
        return _Details(details, [*metadata, self.header])

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), requests)

"""Who is calling a gRPC method or a dashboard request: the transport half of authentication.

A hub runs in one of these modes (`Security.load`):
- open: no credentials; it listens on loopback only and every caller is the local caller;
- mutual TLS (`--tls-dir`): every connection presents a client certificate signed by the CA
  (the TLS handshake refuses others); the principal is the certificate's SAN URI;
- tokens (`--tokens`): every call carries `authorization: Bearer TOKEN`, matched against the
  hashes in the token file; with `--tls-dir` too, over server-authenticated TLS (gRPC's Python
  server either requires a client certificate of every connection or asks none, so certificate
  holders then authenticate with tokens as well).
Besides, `duhub up` with credentials serves its own simulator on a private unix socket; callers
there are the local caller (the socket sits in a directory only the hub's user can enter).
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc

from duhub.auth.pki import server_problem
from duhub.auth.principal import LOCAL, Principal, Unauthenticated, principal_in
from duhub.auth.tokens import TokenFileError, TokenStore

SERVER_CERT, SERVER_KEY, CA_CERT = "server.crt", "server.key", "ca.crt"
BEARER = "bearer "
# The dashboard's cookie, for browsers (which cannot add a header to an EventSource).
TOKEN_COOKIE = "duhub_token"
# Set on a non-gRPC context (the dashboard's) to say who the caller is.
PRINCIPAL_ATTR = "duhub_principal"


@dataclass(slots=True)
class TlsFiles:
    cert: bytes
    key: bytes
    ca: bytes
    directory: Path

    @classmethod
    def read(cls, directory: str | Path) -> TlsFiles:
        d = Path(directory).resolve()
        try:
            found = cls(
                (d / SERVER_CERT).read_bytes(),
                (d / SERVER_KEY).read_bytes(),
                (d / CA_CERT).read_bytes(),
                d,
            )
        except OSError as e:
            raise ValueError(
                f"--tls-dir {d}: cannot read {Path(e.filename or '').name or e} "
                f"({e.strerror or e}); make them with 'duhub certs init' and 'duhub certs server'"
            ) from None
        problem = server_problem(found.cert, found.key, found.ca, dt.datetime.now(dt.UTC))
        if problem:
            raise ValueError(f"--tls-dir {d}: {problem}; make a new one with 'duhub certs server'")
        return found


@dataclass(slots=True)
class Security:
    tls: TlsFiles | None = None
    tokens: TokenStore | None = None
    # A unix socket (unix:PATH) whose callers are the local caller; set by the hub itself.
    local_socket: str = ""
    _cert_cache: dict[bytes, Principal | None] = field(default_factory=dict)

    @classmethod
    def load(cls, tls_dir: str = "", tokens: str = "") -> Security:
        """Read the server's certificate directory and token file; ValueError names the option."""
        tls = TlsFiles.read(tls_dir) if tls_dir else None
        store = None
        if tokens:
            try:
                store = TokenStore(tokens)
            except OSError as e:
                raise ValueError(f"--tokens {tokens}: {e.strerror or e}") from None
            except TokenFileError as e:
                raise ValueError(f"--tokens {e}") from None
        return cls(tls, store)

    @property
    def secured(self) -> bool:
        return self.tls is not None or self.tokens is not None

    @property
    def mutual_tls(self) -> bool:
        """Whether every connection must present a client certificate."""
        return self.tls is not None and self.tokens is None

    def describe(self) -> str:
        """One line for a banner: how callers authenticate."""
        if self.tls is not None and self.tokens is not None:
            return f"TLS ({self.tls.directory}) with bearer tokens ({self.tokens.path})"
        if self.tls is not None:
            return f"mutual TLS: client certificates signed by {self.tls.directory / CA_CERT}"
        if self.tokens is not None:
            return (
                f"bearer tokens ({self.tokens.path}) WITHOUT TLS: tokens travel in clear; "
                "add --tls-dir unless a TLS proxy fronts the hub"
            )
        return "no credentials: listening on loopback only"

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if self.tls is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.tls.key, self.tls.cert)],
            root_certificates=self.tls.ca if self.mutual_tls else None,
            require_client_auth=self.mutual_tls,
        )

    # ---- gRPC ----------------------------------------------------------------------------

    def principal(self, context: Any) -> Principal:
        """Return who makes this call; raise Unauthenticated when nobody known does."""
        given = getattr(context, PRINCIPAL_ATTR, None)
        if isinstance(given, Principal):
            return given
        if not self.secured:
            return LOCAL
        if self.local_socket and context.peer().startswith("unix:"):
            return LOCAL
        if self.mutual_tls:
            found = self._from_cert(context.auth_context())
            if found is None:
                raise Unauthenticated("the client certificate names no duhub principal")
            return found
        return self._from_token(token_in(context.invocation_metadata()))

    def bearer(self, metadata: Iterable[tuple[str, Any]] | None) -> str:
        """Return the bearer token of a call's metadata where this hub takes tokens; "" when
        it takes none, or the call carries none."""
        return token_in(metadata) if self.tokens is not None else ""

    def _from_cert(self, auth: Mapping[str, list[bytes]]) -> Principal | None:
        uris = [v.decode("utf-8", "replace") for v in auth.get("x509_subject_alternative_name", [])]
        key = b"\n".join(auth.get("x509_pem_cert", [])) or "\n".join(uris).encode()
        if key not in self._cert_cache:
            try:
                self._cert_cache[key] = principal_in(uris)
            except ValueError:
                self._cert_cache[key] = None
        return self._cert_cache[key]

    def token_principal(self, token: str) -> Principal:
        """Return whose bearer token this is (the dashboard's sign-in checks one before keeping
        it); raise Unauthenticated when it is missing, unknown or revoked."""
        if self.tokens is None:
            raise Unauthenticated("this hub takes no tokens (started without --tokens)")
        return self._from_token(token)

    def _from_token(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("no credentials: send 'authorization: Bearer TOKEN'")
        assert self.tokens is not None
        found = self.tokens.lookup(token)
        if found is None:
            raise Unauthenticated("unknown or revoked token")
        return found

    # ---- HTTP (the dashboard) ------------------------------------------------------------

    def http_ssl_context(self) -> ssl.SSLContext | None:
        """TLS for the dashboard: the server's certificate; with mutual TLS a client
        certificate is asked for (browsers rarely have one) and, when given, must be signed
        by the CA. With tokens none is asked for, as gRPC asks none: the token file decides."""
        if self.tls is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.tls.directory / SERVER_CERT, self.tls.directory / SERVER_KEY)
        if self.mutual_tls:
            ctx.load_verify_locations(cadata=self.tls.ca.decode())
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def http_principal(
        self, headers: Mapping[str, str], peer_cert: dict[str, Any] | None = None
    ) -> Principal:
        """Return who makes a dashboard request: a verified client certificate on a hub of
        mutual TLS, else `Authorization: Bearer TOKEN`, else the `duhub_token` cookie. On a hub
        with tokens a certificate names nobody, as on gRPC: taken there, a user whose token
        line was deleted still read the dashboard with the certificate for as long as it was
        valid (825 days by default; security review, 2026-12-07)."""
        if not self.secured:
            return LOCAL
        if peer_cert and self.mutual_tls:
            uris = [v for k, v in peer_cert.get("subjectAltName", ()) if k == "URI"]
            try:
                found = principal_in(uris)
            except ValueError:
                found = None
            if found is not None:
                return found
        if self.tokens is None:
            raise Unauthenticated("a client certificate signed by the hub's CA is required")
        return self._from_token(bearer_token(headers) or cookie_token(headers))


OPEN = Security()


def bearer_token(headers: Mapping[str, str]) -> str:
    """Return the token of an `Authorization: Bearer TOKEN` header; "" when none."""
    return _bearer(headers.get("Authorization") or headers.get("authorization") or "")


def cookie_token(headers: Mapping[str, str]) -> str:
    """Return the token of the dashboard's cookie; "" when none."""
    return _cookie(headers.get("Cookie") or headers.get("cookie") or "", TOKEN_COOKIE)


def token_in(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """Return the token of a gRPC call's `authorization: Bearer TOKEN` (its last, as sent);
    "" when none."""
    token = ""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            token = _bearer(value)
    return token


def _bearer(value: str) -> str:
    return value[len(BEARER) :].strip() if value.lower().startswith(BEARER) else ""


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == name:
            return v.strip()
    return ""


def grpc_principal(security: Security, context: grpc.ServicerContext) -> Principal:
    """Return the caller, or abort the call with UNAUTHENTICATED."""
    try:
        return security.principal(context)
    except Unauthenticated as e:
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, str(e))


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")

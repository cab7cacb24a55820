"""Why a TLS handshake with a hub fails, asked of Python's ssl when gRPC says only UNAVAILABLE.

gRPC reports every failed handshake as UNAVAILABLE with a detail whose wording is its own (and
changes between versions), so a command said "no hub answers" whether the hub was down, its
certificate named another host, it was made by another CA, or the hub refused the caller's
certificate. A handshake of our own, with the same CA and client certificate, tells them apart
by the verify code and alert OpenSSL gives, not by words.
"""

from __future__ import annotations

import signal
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH = {62, 64}
# Alerts a server sends when it refuses the client's certificate (RFC 8446 6.2); gRPC's
# server sends none under TLS 1.3 (it closes the connection), a TLS 1.2 one may.
_REFUSED_CERT_ALERTS = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "DECRYPT_ERROR")
_CERT_REQUIRED_ALERT = "CERTIFICATE_REQUIRED"
# What OpenSSL says when the other end answers a ClientHello with no TLS at all.
_NOT_TLS = "WRONG_VERSION_NUMBER"


@dataclass(frozen=True, slots=True)
class TlsProblem:
    """What failed, and OpenSSL's own words (`detail`). Kinds:
    - name: the hub's certificate is not for the host dialled;
    - untrusted: the hub's certificate is not signed by the CA given;
    - refused: the hub refused the client's certificate (another CA's, or expired);
    - required: the hub asks for a client certificate and none was given;
    - tls: the hub speaks TLS and the caller gave no CA;
    - plain: the caller gave a CA and the hub speaks no TLS."""

    kind: str
    detail: str


def host_port(address: str) -> tuple[str, int] | None:
    """Return (host, port) of a plain HOST:PORT or [V6]:PORT address; None for the schemes
    gRPC resolves itself (dns:///, unix:, ipv4:, …), which are not probed."""
    if "/" in address or address.startswith(("unix", "ipv4:", "ipv6:", "dns:")):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe(
    address: str,
    ca: bytes | None,
    cert: bytes | None = None,
    key: bytes | None = None,
    timeout: float = 3.0,
) -> TlsProblem | None:
    """Shake hands with the hub at `address` as a gRPC client with these credentials would
    (`ca` None: a client without TLS); return what failed, or None when the handshake is not
    the problem (it succeeds as the client would have it, nothing answers, or the address is
    not one to probe)."""
    where = host_port(address)
    if where is None:
        return None
    if ca is None:
        # A plaintext caller: does the hub speak TLS? Its certificate is not in question here.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        problem = _shake(where, context, timeout, client_cert=False)
        return problem if problem is not None and problem.kind == "tls" else None
    with tempfile.TemporaryDirectory(prefix="duhub-probe-") as tmp:
        try:
            context = ssl.create_default_context(cadata=ca.decode("ascii", "replace"))
            context.set_alpn_protocols(["h2"])
            if cert is not None and key is not None:
                # ssl loads a certificate chain from files only; the directory is our own.
                (Path(tmp) / "c.pem").write_bytes(cert)
                (Path(tmp) / "k.pem").write_bytes(key)
                context.load_cert_chain(Path(tmp) / "c.pem", Path(tmp) / "k.pem")
        except (ssl.SSLError, OSError, ValueError):
            return None  # credentials ssl cannot load: gRPC's own words stand
        return _shake(where, context, timeout, client_cert=cert is not None)


def _shake(
    where: tuple[str, int], context: ssl.SSLContext, timeout: float, *, client_cert: bool
) -> TlsProblem | None:
    host, port = where
    try:
        with _no_sigpipe(), socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                if context.verify_mode == ssl.CERT_NONE:
                    return TlsProblem("tls", "the hub completed a TLS handshake")
                # TLS 1.3 ends the client's handshake before the server has checked its
                # certificate: a hub that took it sends its HTTP/2 settings, and one that
                # refused it closes the connection.
                tls.settimeout(timeout)
                try:
                    first = tls.recv(1)
                except ssl.SSLEOFError:
                    first = b""
                if first == b"":
                    kind = "refused" if client_cert else "required"
                    return TlsProblem(kind, "the hub closed the connection after the handshake")
                return None
    except ssl.SSLCertVerificationError as e:
        kind = "name" if e.verify_code in _NAME_MISMATCH else "untrusted"
        return TlsProblem(kind, e.verify_message or str(e))
    except ssl.SSLError as e:
        reason = (e.reason or "").upper()
        if reason == _NOT_TLS:
            return TlsProblem("plain", "it answered the TLS hello with no TLS")
        if reason.endswith(_CERT_REQUIRED_ALERT):
            return TlsProblem("refused" if client_cert else "required", e.reason or str(e))
        if reason.endswith(_REFUSED_CERT_ALERTS):
            return TlsProblem("refused", e.reason or str(e))
        return None
    except (OSError, ValueError):
        return None


@contextmanager
def _no_sigpipe() -> Iterator[None]:
    """Ignore SIGPIPE while probing: the command line takes its default (a pipe to `head`
    ends the command quietly), and a hub that closed the socket under the handshake's write
    then killed the command before it said anything."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the probe runs on it
        return
    before = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGPIPE, before)

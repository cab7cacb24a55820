"""A small certificate authority for mutual TLS: the CA, the server's and each principal's.

Everything here returns PEM bytes; `duhub certs` writes them. Keys are ECDSA P-256. A node's or
user's certificate names its principal in a SAN URI (`duhub:node:420581`,
`duhub:user:420581:alice`) and in its common name, for people reading it.

The files of a certificate directory:
  ca.crt ca.key                the authority (keep ca.key off the servers)
  server.crt server.key        the hub's, for the host names and addresses it is reached at
  node-420581.crt/.key         a county node's
  user-alice.crt/.key          a user's
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from duhub.auth.principal import Kind, Principal

CA = "ca"
SERVER = "server"
CA_DAYS = 3650
LEAF_DAYS = 825


def file_stem(principal: Principal) -> str:
    """Return the file name (without .crt/.key) of a principal's certificate."""
    if principal.kind == Kind.NODE:
        return f"node-{principal.unit_id}"
    if principal.kind == Kind.USER:
        return f"user-{principal.name}"
    raise ValueError(f"{principal} has no certificate")


@dataclass(frozen=True, slots=True)
class Issued:
    key_pem: bytes
    cert_pem: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_ca(common_name: str = "duhub CA", days: int = CA_DAYS) -> Issued:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _load_ca(ca: Issued) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("ca.key: not an EC private key made by 'duhub certs init'")
    return key, x509.load_pem_x509_certificate(ca.cert_pem)


def _leaf(
    ca: Issued,
    common_name: str,
    sans: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    days: int,
) -> Issued:
    ca_key, ca_cert = _load_ca(ca)
    key = _key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def make_server(ca: Issued, hosts: Sequence[str], days: int = LEAF_DAYS) -> Issued:
    """Return the hub's certificate, valid for these host names and IP addresses."""
    if not hosts:
        raise ValueError("--host: give at least one host name or address")
    sans: list[x509.GeneralName] = []
    for h in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h.strip("[]"))))
        except ValueError:
            sans.append(x509.DNSName(h))
    return _leaf(ca, f"duhub server {hosts[0]}", sans, ExtendedKeyUsageOID.SERVER_AUTH, days)


def make_client(ca: Issued, principal: Principal, days: int = LEAF_DAYS) -> Issued:
    """Return a node's or user's client certificate, naming the principal in a SAN URI."""
    cn = f"duhub node {principal.unit_id}" if principal.kind == Kind.NODE else principal.name
    sans = [x509.UniformResourceIdentifier(principal.uri)]
    return _leaf(ca, cn, sans, ExtendedKeyUsageOID.CLIENT_AUTH, days)


def san_uris(cert_pem: bytes) -> list[str]:
    """Return the SAN URIs of a PEM certificate (none when it has no SAN)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.UniformResourceIdentifier))


def server_problem(cert_pem: bytes, key_pem: bytes, ca_pem: bytes, now: dt.datetime) -> str:
    """Return why a server's certificate cannot serve anyone ("" when it can): its key is not
    the certificate's, the CA did not sign it, it is not valid now, or it is not for servers.
    Checked at start: gRPC says only that it cannot bind, or fails every handshake."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return f"{SERVER}.crt is not a PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return f"{SERVER}.key is not an unencrypted PEM private key"
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        return f"{SERVER}.key does not belong to {SERVER}.crt"
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        return f"{CA}.crt is not a PEM certificate"
    if not any(_issued_by(cert, ca) for ca in cas):
        return f"{SERVER}.crt is not signed by {CA}.crt"
    if cert.not_valid_after_utc <= now:
        return f"{SERVER}.crt expired on {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    if cert.not_valid_before_utc > now:
        return f"{SERVER}.crt is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ""
    if ExtendedKeyUsageOID.SERVER_AUTH not in usage:
        return f"{SERVER}.crt is not a server certificate (no serverAuth usage)"
    return ""


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True

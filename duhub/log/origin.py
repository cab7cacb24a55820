"""Ingest's mark on its Kafka records, which a producer writing to the topic cannot forge.

Ingest's records are trusted by the aggregator: they carry the hub's record time (as-of
answers and audits go by it), may carry the hub's own source `reference`, and were checked
when accepted. A header alone (`duhub-origin: ingest`) any producer could add. So ingest adds
an HMAC-SHA256 of the value under the hub's origin key, a file every ingest and aggregate
process of one hub shares (`kafka://…?key=PATH`, made once with `duhub certs origin-key`): a
record claiming ingest's origin whose MAC does not hold is refused by the aggregator, naming
the header. Processes only read the file: one made by each on its own machine would sign with
keys the others refuse.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from pathlib import Path

ORIGIN_HEADER = "duhub-origin"
INGEST_ORIGIN = b"ingest"
MAC_HEADER = "duhub-origin-mac"
# Why a record claiming ingest's origin carries no MAC at all: audit verify, given the key,
# leaves such a record out of the chains (ingest signs every record it writes).
MAC_MISSING = "missing: a record claiming ingest's origin must carry its MAC"
KEY_HEX_CHARS = 64  # 32 random bytes, as hex: a text file ops can copy

_KEYS: dict[str, bytes] = {}


def make_key(path: str) -> bytes:
    """Return the origin key in `path`, making the file (0600) when there is none: for
    `duhub certs origin-key` and for the tests' and benchmarks' own hubs."""
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:  # ours to write: a reader meanwhile finds it short and waits (`_read_whole`)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(KEY_HEX_CHARS // 2) + "\n")
                out.flush()
                os.fsync(out.fileno())
    return load_key(path)


def load_key(path: str) -> bytes:
    """Return the origin key in `path`; ValueError naming the file when there is none, or it
    holds no key."""
    key = _KEYS.get(path)
    if key is not None:
        return key
    file = Path(path)
    if not file.exists():
        raise ValueError(
            f"--log: key={path}: no such file: make it once with 'duhub certs origin-key --file "
            f"{path}' and give every ingest and aggregate process of the hub a copy"
        )
    text = _read_whole(file)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) * 2 != KEY_HEX_CHARS:
        raise ValueError(f"--log: key={path}: not an origin key ({KEY_HEX_CHARS} hex digits)")
    _KEYS[path] = key
    return key


def _read_whole(file: Path, tries: int = 50) -> str:
    """Read a key file another process may be writing this moment (it ends with a newline)."""
    for _ in range(tries):
        text = file.read_text()
        if text.endswith("\n"):
            return text.strip()
        time.sleep(0.02)
    return file.read_text().strip()


def ingest_headers(key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
    """Return the headers ingest gives a record (without a key, the bare origin header)."""
    if key is None:
        return [(ORIGIN_HEADER, INGEST_ORIGIN)]
    return [(ORIGIN_HEADER, INGEST_ORIGIN), (MAC_HEADER, hmac.digest(key, value, "sha256"))]


def origin(key: bytes | None, headers: list[tuple[str, bytes]] | None, value: bytes) -> str:
    """Return "ingest" for a record of ingest's, "direct" for a Kafka-direct one, or why a
    record claiming ingest's origin is not (its MAC header missing or wrong under `key`). Without a
    key the header is taken at its word (a hub configured without one)."""
    found = dict(headers or [])
    if found.get(ORIGIN_HEADER) != INGEST_ORIGIN:
        return "direct"
    if key is None:
        return "ingest"
    mac = found.get(MAC_HEADER)
    if mac is None:
        return MAC_MISSING
    if not hmac.compare_digest(mac, hmac.digest(key, value, "sha256")):
        return (
            "does not match this hub's origin key (a forged record, or ingest and this "
            "worker use different key files)"
        )
    return "ingest"

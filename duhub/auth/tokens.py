"""Bearer tokens: the token file holds only their SHA-256 hashes, one principal each.

A line:  `sha256:<64 hex digits> <principal URI> [# comment]`, e.g.
         `sha256:9f86d08… duhub:user:420581:alice  # 2026-01-05T08:00:00Z`
Blank lines and lines starting with '#' are ignored. To revoke a token, delete its line: a
running server reads the file again when it changes. A file gone for more than GONE_GRACE_S
holds no token.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from duhub.auth.principal import Principal, parse_uri
from duhub.utf8 import bad_byte, decode

TOKEN_PREFIX = "duhub_"
HASH_PREFIX = "sha256:"
# A token file gone (or unreadable) longer than this is taken as holding no token: an editor
# replacing it leaves it gone for a moment, someone revoking everything for good.
GONE_GRACE_S = 2.0

log = logging.getLogger(__name__)


def new_token() -> str:
    """Return a fresh random token (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def token_line(token: str, principal: Principal, comment: str = "") -> str:
    tail = f"  # {comment}" if comment else ""
    return f"{token_hash(token)} {principal.uri}{tail}\n"


class TokenFileError(ValueError):
    pass


def parse_tokens(text: str, name: str = "tokens") -> dict[str, Principal]:
    """Return hash -> principal for a token file's text; errors name the line."""
    table, errors = read_tokens(text, name)
    if errors:
        raise TokenFileError(errors[0])
    return table


def read_tokens(text: str, name: str = "tokens") -> tuple[dict[str, Principal], list[str]]:
    """Return hash -> principal of a token file's good lines, and an error for each bad one,
    naming the line. A hash given two principals is a bad line and names neither."""
    out: dict[str, Principal] = {}
    errors: list[str] = []
    conflicted: set[str] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        bad = bad_byte(raw)  # the text as `read_file` decodes it
        if bad:
            errors.append(f"{name}:{n}: not UTF-8 ({bad})")
            continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            errors.append(f"{name}:{n}: expected 'sha256:HEX PRINCIPAL-URI'")
            continue
        digest, uri = parts
        hexpart = digest[len(HASH_PREFIX) :]
        if (
            not digest.startswith(HASH_PREFIX)
            or len(hexpart) != 64
            or any(c not in "0123456789abcdef" for c in hexpart)
        ):
            # Not quoted: it may be a secret (a token pasted where its hash belongs).
            hint = " (it is a token: the file holds only its hash)" if _is_token(digest) else ""
            errors.append(f"{name}:{n}: the first field is not sha256:<64 lowercase hex>{hint}")
            continue
        try:
            principal = parse_uri(uri)
        except ValueError as e:
            errors.append(f"{name}:{n}: {e}")
            continue
        if digest in conflicted or (digest in out and out[digest] != principal):
            errors.append(f"{name}:{n}: the same token hash names two principals")
            conflicted.add(digest)
            out.pop(digest, None)
            continue
        out[digest] = principal
    return out, errors


def read_file(path: Path) -> str:
    """Return a token file's text for `read_tokens`, which names a line that is not UTF-8
    (strictly decoded, one such line, a GBK comment say, failed every lookup unnamed)."""
    return decode(path.read_bytes())


def _is_token(text: str) -> bool:
    return text.startswith(TOKEN_PREFIX)


@dataclass(slots=True)
class _Snapshot:
    stamp: tuple[int, int, int, int]  # mtime, size, inode, mode
    table: dict[str, Principal]


class TokenStore:
    """The token file, read again whenever it changes (mtime, size or inode)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._snap = self._load()  # a bad file fails at start, with the line named
        self._gone_since: float | None = None  # monotonic time the file was first missed

    def _stamp(self) -> tuple[int, int, int, int, int]:
        st = self.path.stat()
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode, st.st_uid)

    def _mode_error(self, stamp: tuple[int, int, int, int, int]) -> str:
        """Say why a file others may write cannot be trusted ("" when it can): writable by
        group or others, or owned by another user than the hub's (or root), who may write it
        whatever its mode says (security probe: only the mode was looked at)."""
        mode, owner = stat.S_IMODE(stamp[3]), stamp[4]
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            return (
                f"{self.path}: writable by group or others (mode {mode:04o}): whoever may "
                f"write it may add a token for any principal; chmod 600 {self.path}"
            )
        if owner not in (os.getuid(), 0):
            return (
                f"{self.path}: owned by user {owner}, not the hub's ({os.getuid()}): its owner "
                f"may add a token for any principal; chown {os.getuid()} {self.path}"
            )
        return ""

    def _load(self) -> _Snapshot:
        stamp = self._stamp()
        unsafe = self._mode_error(stamp)
        if unsafe:
            raise TokenFileError(unsafe)
        return _Snapshot(stamp, parse_tokens(read_file(self.path), str(self.path)))

    def _reload(self) -> None:
        """Read the changed file. One broken by an edit (a typo on any line) or made writable
        by others adds nobody, but what it no longer holds is revoked: deleting a line revokes
        a token even when the same edit breaks another. Its first error is logged, naming the
        line."""
        stamp = self._stamp()
        table, errors = read_tokens(read_file(self.path), str(self.path))
        unsafe = self._mode_error(stamp)
        if unsafe:
            errors.insert(0, unsafe)
        if errors:
            old = self._snap.table
            table = {h: p for h, p in table.items() if old.get(h) == p}
            log.error(
                "%s: until it is fixed, only tokens it holds unchanged are accepted%s",
                errors[0],
                f" ({len(errors)} bad lines)" if len(errors) > 1 else "",
            )
        self._snap = _Snapshot(stamp, table)

    def lookup(self, token: str) -> Principal | None:
        """Return the principal of a token, or None when the file does not hold it."""
        with self._lock:
            try:
                if self._stamp() != self._snap.stamp:
                    self._reload()
                self._gone_since = None
            except OSError as e:
                self._missing(e)
            return self._snap.table.get(token_hash(token))

    def _missing(self, e: OSError) -> None:
        """The file cannot be read (lock held). Gone for a moment (an editor replacing it):
        keep what was last read. Gone longer than GONE_GRACE_S: hold no token until it is back,
        so deleting the file revokes every token (before, the last tokens read stayed good)."""
        now = time.monotonic()
        if self._gone_since is None:
            self._gone_since = now
        if now - self._gone_since < GONE_GRACE_S:
            return
        if self._snap.table:
            log.error(
                "%s: cannot be read (%s): every token is refused until it is back",
                self.path,
                e.strerror or e,
            )
            self._snap = _Snapshot((0, 0, 0, 0), {})


def append_token(path: str | os.PathLike[str], principal: Principal, comment: str = "") -> str:
    """Make a token for the principal, append its hash to the file (0600 when new); return it."""
    token = new_token()
    p = Path(path)
    if p.exists():
        parse_tokens(read_file(p), str(p))  # refuse to append to a broken file
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(token_line(token, principal, comment))
    return token

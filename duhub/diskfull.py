"""Tell a full disk from other failures, and say so in words that name it.

SQLite says "database or disk is full" (SQLITE_FULL) or, when the file cannot even be opened
on a full disk, "disk I/O error", which reads like a hardware fault; PostgreSQL says
"could not extend file" (SQLSTATE 53100); a file write raises OSError(ENOSPC). Before
2026-12-06 all of these were reported as "unreachable".

Also kept here: which read models refuse writes for a full disk now (set by the aggregator,
read by the health checks of the same process), so `duhub_dependency_up` and health say it.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from sqlalchemy import Engine

SQLITE_FULL = 13
PG_DISK_FULL = "53100"
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Below this many bytes free, a device counts as full (a write of a page or a frame fails).
ALMOST_NOTHING = 1 << 20


def disk_full(e: BaseException | None) -> bool:
    """Whether `e` (or what it wraps: SQLAlchemy's .orig, a cause) says the disk is full."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return True
        if getattr(e, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if PG_DISK_FULL in (getattr(e, "pgcode", None), getattr(e, "sqlstate", None)):
            return True
        if "database or disk is full" in str(e) or "No space left on device" in str(e):
            return True
        e = getattr(e, "orig", None) or e.__cause__ or e.__context__
    return False


def no_space_at(path: str | Path) -> bool:
    """Whether the device holding `path` (or its nearest existing parent) has no room left."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < ALMOST_NOTHING


def sqlite_path(engine: Engine) -> str:
    """The file of a SQLite read model ("" for PostgreSQL or an in-memory one)."""
    if engine.dialect.name != "sqlite":
        return ""
    database = engine.url.database or ""
    return "" if database == ":memory:" else database


def db_name(engine: Engine) -> str:
    """The read model's URL as the operator gave it, without a password."""
    return engine.url.render_as_string(hide_password=True)


_lock = threading.Lock()
# Read model (db_name) -> why it refuses writes now (its disk is full).
_refused: dict[str, str] = {}


def refuse_writes(engine: Engine, why: str) -> None:
    with _lock:
        _refused[db_name(engine)] = why


def writes_again(engine: Engine) -> None:
    with _lock:
        _refused.pop(db_name(engine), None)


def writes_refused(engine: Engine) -> str:
    """Why the read model refuses writes now ("" when it does not, as far as is known)."""
    with _lock:
        return _refused.get(db_name(engine), "")

"""Why a server could not start, as one line naming the option to fix, not a traceback."""

from __future__ import annotations

from pathlib import Path

from kafka.errors import BrokerResponseError, KafkaError
from sqlalchemy.exc import SQLAlchemyError

from duhub.diskfull import disk_full, no_space_at

# What opening the backends and binding the addresses raises for a bad option (a
# ValueError or OSError names it already) or an unreachable backend.
FAILURES = (ValueError, OSError, SQLAlchemyError, KafkaError)

# The read models duhub has a driver for (psycopg2, the standard library's sqlite3).
DB_SCHEMES = ("postgresql://", "postgresql+psycopg2://", "sqlite://")


def check_db(url: str, option: str = "--db") -> None:
    """Raise ValueError naming `option` unless `url` is a read model duhub can open: else
    SQLAlchemy fails later on an import (mysql://) or a parse (a bare path)."""
    if not url.startswith(DB_SCHEMES):
        raise ValueError(
            f"{option}: {redacted(url)}: duhub's read model is postgresql://… or sqlite:///…"
        )


def failure(e: BaseException, db_url: str, log_url: str) -> str:
    """Return the line to print for one of FAILURES."""
    if isinstance(e, SQLAlchemyError):
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        path = sqlite_file(db_url)
        if path is not None and (disk_full(e) or no_space_at(path)):
            # SQLite says "disk I/O error" when a full disk stops it creating its files,
            # which reads like a hardware fault.
            reason = f"no space left on the device holding {path} (SQLite: {reason})"
        return f"--db: cannot open {redacted(db_url)}: {reason}"
    if isinstance(e, BrokerResponseError):  # it answered, refusing (too many replicas, say)
        return f"--log: the broker of {log_url} refused: {e}"
    if isinstance(e, KafkaError):
        return f"--log: cannot reach {log_url}: {e}"
    return str(e)


def sqlite_file(url: str) -> Path | None:
    """Return the file of a SQLite URL (None for another database or one in memory)."""
    if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return Path(url.removeprefix("sqlite:///"))


def redacted(url: str) -> str:
    """Return a database URL without its password, for printing."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url

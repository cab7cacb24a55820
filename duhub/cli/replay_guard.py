"""What `duhub replay --fresh` must not empty: a read model that no replay made.

A replay target records its cut (`replay_cut`'s rows, written by `claim_cut` before the first
batch); a hub's live read model never does. The rows tell, not the table: a replay refused
without --fresh leaves the table made and empty. One holding applied records without a cut is
a live one (of this hub, whatever --db says, or of another) or a replay made before cuts were
recorded: not deleted on a flag, the operator deletes it by hand if that is what they mean.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, inspect, select
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from duhub.cli.startup import sqlite_file
from duhub.readmodel.schema import log_positions
from services.aggregate.replay import replay_cut

# The row `claim_cut` records with a replay's cut.
_CUT_LOG = select(replay_cut.c.name).where(replay_cut.c.name == "log")


def applied_without_cut(url: str) -> bool:
    """Return whether the read model at `url` holds applied records (a position past 0) but
    no replay's cut. A database that does not exist or does not answer is not known to be
    one (nothing is created: a SQLite file missing is left missing)."""
    if url.startswith("sqlite:///"):
        file = sqlite_file(url)
        if file is None or not file.is_file():
            return False
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql://"):  # psycopg2, as `open_engine` takes it
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
        kwargs["connect_args"] = {"connect_timeout": 5}  # a server away: not a hang here
    try:
        engine = create_engine(url, poolclass=NullPool, **kwargs)
    except (ArgumentError, ImportError):
        return False
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if "log_positions" not in tables:
                return False
            if "replay_cut" in tables and conn.execute(_CUT_LOG).first() is not None:
                return False
            return any(conn.execute(select(log_positions.c.next_offset)).scalars())
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()

"""`duhub readmodel trust-writes`: take the positions an older build moved as this layout's,
when the rows it wrote hold what this layout keeps.

A read model a build not knowing its layout marks wrote since this one did is refused at every
start (`duhub.readmodel.layout.check_written`). A recent build (one that knew every table but
not the marks, run beside this one in a rolling upgrade) wrote sound rows, and a rebuild from
the log is not needed; an older one wrote around tables it did not know. Builds cannot be told
apart, the rows can: this checks them (`layout.unsound_rows`) and takes the positions only
when they hold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from duhub.cli import client
from duhub.cli.startup import check_db, redacted, sqlite_file
from duhub.readmodel.engine import open_engine
from duhub.readmodel.layout import LayoutRefused, trust_written


def run(args: argparse.Namespace) -> int:
    option = "--db" if args.db else "--data-dir"
    url = args.db or f"sqlite:///{Path(args.data_dir).resolve() / 'readmodel.db'}"
    try:
        check_db(url, option)
    except ValueError as e:
        client.fail(str(e), client.EXIT_USAGE)
    file = sqlite_file(url)
    if file is not None and not file.is_file():
        client.fail(f"{option}: no read model at {redacted(url)}", client.EXIT_USAGE)
    engine = open_engine(url, create=False)  # as it is: neither upgraded nor checked
    try:
        try:
            columns = {c["name"] for c in inspect(engine).get_columns("log_positions")}
        except SQLAlchemyError as e:
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            client.fail(f"{option}: cannot read {redacted(url)}: {reason}", client.EXIT_USAGE)
        if "layout_offset" not in columns:  # no build of this layout opened it yet
            print(f"nothing to take: {redacted(url)} has not been opened by this build yet")
            return 0
        try:
            taken = trust_written(engine)
        except LayoutRefused as e:  # rows an older build got wrong, or one still writing
            client.fail(f"{option}: {e}", client.EXIT_USAGE)
    finally:
        engine.dispose()
    for partition, offset, left in taken:
        was = "added by it" if left is None else f"left at {left}"
        print(f"partition {partition} at {offset} ({was}): checked, taken as this layout's")
    if not taken:
        print(f"nothing to take: every position of {redacted(url)} was moved by this layout")
    open_engine(url).dispose()  # what a start checks: it opens now
    return 0

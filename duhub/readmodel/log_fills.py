"""Every fill of a read model from its log, run by each service that opens the two together.

Each fills what an older build left out of the rows it wrote, once (`log_places.py`). A new
one goes in FILLS, and in `layout.REFILLED_FROM_LOG` so `readmodel trust-writes` runs it again.
"""

from __future__ import annotations

from sqlalchemy import Engine

from duhub.log.base import EventLog
from duhub.readmodel.dead_letter_fill import fill_dead_letters
from duhub.readmodel.fact_campaigns import fill_fact_campaigns

FILLS = (fill_dead_letters, fill_fact_campaigns)


def fill_from_log(log_: EventLog, engine: Engine) -> None:
    """Run every fill of the read model `engine` from `log_` not made before."""
    for fill in FILLS:
        fill(log_, engine)

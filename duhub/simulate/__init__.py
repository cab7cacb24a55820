"""Simulated county nodes: the live demo behind `duhub up`.

`Scenario` and `backfill_2022` are pure (a seeded `random.Random` and a clock value in, events
out); `Simulator` publishes them to a hub over gRPC as each county node would.
"""

from duhub.simulate.backfill import ARTICLE_2022, backfill_2022
from duhub.simulate.nodes import Simulator
from duhub.simulate.scenario import CampaignPlan, Scenario
from duhub.simulate.state import SeqBook, SimState

__all__ = [
    "ARTICLE_2022",
    "CampaignPlan",
    "Scenario",
    "SeqBook",
    "SimState",
    "Simulator",
    "backfill_2022",
]

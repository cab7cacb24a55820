"""The hierarchy as the simulated nodes see it: who publishes for which unit."""

from __future__ import annotations

from dataclasses import dataclass, field

from duhub.reference import reference_units

CITY_ID = "420500"


@dataclass(frozen=True, slots=True)
class County:
    unit_id: str
    name: str
    townships: tuple[str, ...]
    villages: tuple[str, ...]

    @property
    def grassroots(self) -> tuple[str, ...]:
        """Return the townships and villages: the targets of the county's own group."""
        return self.townships + self.villages


@dataclass(frozen=True, slots=True)
class Hierarchy:
    city_id: str
    counties: tuple[County, ...]
    # unit id -> the county-level unit it lies in (the source that may publish for it).
    owner: dict[str, str] = field(default_factory=dict)

    def county(self, unit_id: str) -> County:
        for c in self.counties:
            if c.unit_id == unit_id:
                return c
        raise KeyError(unit_id)

    def source_for(self, unit_id: str) -> str:
        """Return the node that publishes for a unit: its county, or the city for the city."""
        return self.owner.get(unit_id, self.city_id)


def load_hierarchy(name: str = "yichang") -> Hierarchy:
    """Return the reference hierarchy the hub loads, grouped by county-level unit."""
    units = reference_units(name)
    level = {u["unit_id"]: u["level"] for u in units}
    parent = {u["unit_id"]: u["parent_id"] for u in units}
    city = next(u["unit_id"] for u in units if u["level"] == "LEVEL_CITY")
    owner: dict[str, str] = {}
    for uid in parent:
        up = uid
        while up and level[up] not in ("LEVEL_COUNTY", "LEVEL_CITY"):
            up = parent[up]
        if up and level[up] == "LEVEL_COUNTY":
            owner[uid] = up
    counties = []
    for u in units:
        if u["level"] != "LEVEL_COUNTY":
            continue
        cid = u["unit_id"]
        mine = [x for x in units if owner.get(x["unit_id"]) == cid]
        counties.append(
            County(
                unit_id=cid,
                name=u["name"],
                townships=tuple(x["unit_id"] for x in mine if x["level"] == "LEVEL_TOWNSHIP"),
                villages=tuple(x["unit_id"] for x in mine if x["level"] == "LEVEL_VILLAGE"),
            )
        )
    return Hierarchy(city_id=city or CITY_ID, counties=tuple(counties), owner=owner)

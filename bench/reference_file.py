"""Write a generated reference file of N units (`--reference FILE` at a country's scale):
one city, then counties, townships and villages in that order, each after its parent.

    python -m bench.reference_file OUT.json [UNITS]   # default 640,800, a country's count
"""

from __future__ import annotations

import json
import sys

COUNTIES, TOWNSHIPS_PER_COUNTY = 2_800, 10


def units(count: int) -> list[dict[str, str]]:
    """Return `count` units: the city, up to 2,800 counties, 10 townships each, villages."""
    out = [{"unit_id": "100000", "parent_id": "", "level": "LEVEL_CITY", "name": "市"}]
    counties = [f"1{c:05d}" for c in range(1, min(COUNTIES, count // 100 + 1) + 1)]
    out += [
        {"unit_id": c, "parent_id": "100000", "level": "LEVEL_COUNTY", "name": f"县{c}"}
        for c in counties
    ]
    towns = [f"{c}{t:03d}" for c in counties for t in range(1, TOWNSHIPS_PER_COUNTY + 1)]
    out += [
        {"unit_id": t, "parent_id": t[:6], "level": "LEVEL_TOWNSHIP", "name": f"镇{t}"}
        for t in towns
    ]
    village = 0
    while len(out) < count:
        town = towns[village % len(towns)]
        village += 1
        out.append(
            {
                "unit_id": f"{town}{village:06d}",
                "parent_id": town,
                "level": "LEVEL_VILLAGE",
                "name": f"村{village}",
            }
        )
    return out[:count]


def main(argv: list[str]) -> None:
    count = int(argv[1]) if len(argv) > 1 else 640_800
    with open(argv[0], "w", encoding="utf-8") as f:
        json.dump(
            {"about": f"generated: {count} units", "units": units(count)}, f, ensure_ascii=False
        )


if __name__ == "__main__":
    main(sys.argv[1:])
